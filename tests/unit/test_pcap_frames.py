"""Reading real captures of every link type as Ethernet frames; clear errors for bad files."""

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from sim.pcap_frames import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_RAW,
    CaptureError,
    read_frames,
    to_ethernet,
)
from sim.shared_data import shared_data_dir, shared_data_reason

MISSING = shared_data_reason("pcaps")
PCAPS = (shared_data_dir() / "pcaps") if MISSING is None else None
needs_data = pytest.mark.skipif(MISSING is not None, reason=f"shared capture corpus absent: {MISSING}")


@needs_data
def test_every_capture_reads_or_is_refused_by_name():
    frames = refused = 0
    for path in sorted(PCAPS.iterdir()):
        if path.suffix not in (".pcap", ".pcapng", ".cap"):
            continue
        try:
            for frame in read_frames(path):
                assert len(frame.data) >= 14
                frames += 1
        except CaptureError as exc:
            assert str(exc).startswith(str(path))
            refused += 1
    assert frames > 70_000
    assert refused <= 3


# Captures in the corpus whose link type is not Ethernet (found with capinfos).
NON_ETHERNET = {"KakaoTalk_talk.pcap": "Linux cooked", "codm.pcap": "raw IP",
                "nats.pcap": "BSD loopback", "BGP_Cisco_hdlc_slarp.pcap": "PPP",
                "BGP_redist.pcap": "Cisco HDLC"}


@needs_data
@pytest.mark.parametrize("name", sorted(NON_ETHERNET))
def test_non_ethernet_captures_become_ethernet(name):
    frames = list(read_frames(PCAPS / name))
    assert frames, f"{name} ({NON_ETHERNET[name]}) gave no frames"
    ethertypes = {int.from_bytes(f.data[12:14], "big") for f in frames}
    assert ethertypes & {ETHERTYPE_IPV4, ETHERTYPE_IPV6}
    ip = [f for f in frames if int.from_bytes(f.data[12:14], "big") == ETHERTYPE_IPV4]
    assert all(f.data[14] >> 4 == 4 for f in ip), "an IPv4 frame whose payload is not IPv4"


def test_link_type_conversions():
    ip = bytes.fromhex("4500001c000000004011") + bytes(10)
    assert to_ethernet(LINKTYPE_RAW, ip)[12:14] == b"\x08\x00"
    sll = bytes(14) + b"\x86\xdd" + b"\x60" + bytes(39)
    assert to_ethernet(LINKTYPE_LINUX_SLL, sll)[12:14] == b"\x86\xdd"
    assert to_ethernet(LINKTYPE_RAW, b"") is None


def test_corrupt_capture_names_file_and_offset(tmp_path):
    good = tmp_path / "good.pcap"
    frame = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2")
             / UDP(sport=1, dport=2) / (b"x" * 20))
    wrpcap(str(good), [frame] * 3)
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all" * 4)
    with pytest.raises(CaptureError, match=r"garbage\.pcap at byte 0: not a pcap or pcapng"):
        list(read_frames(garbage))
    data = good.read_bytes()
    assert len(list(read_frames(good))) == 3
    # A record header that promises more bytes than the file holds.
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(data[:24] + (0).to_bytes(8, "little") + (10**6).to_bytes(4, "little") * 2 + b"xx")
    with pytest.raises(CaptureError, match=r"cut\.pcap at byte 24: record cut short: 2 of 1000000"):
        list(read_frames(cut))
    half_header = tmp_path / "half.pcap"
    half_header.write_bytes(data[:24] + bytes(10))
    with pytest.raises(CaptureError, match=r"half\.pcap at byte 24: 10 trailing bytes"):
        list(read_frames(half_header))
