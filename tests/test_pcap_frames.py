"""Reading real captures of every link type as Ethernet frames; clear errors for bad files."""

from pathlib import Path

import pytest

from controller.traces.pcap_frames import (
    ETHERTYPE_IPV4, ETHERTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_RAW, CaptureError, read_frames,
    to_ethernet)

PCAPS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "pcaps"
needs_data = pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/data/pcaps is not beside the checkout")


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


@needs_data
def test_linux_cooked_and_raw_ip_become_ethernet():
    # Known captures of those link types in the corpus (see capinfos): check their frames.
    seen = set()
    for path in sorted(PCAPS.iterdir()):
        try:
            for frame in read_frames(path):
                seen.add(int.from_bytes(frame.data[12:14], "big"))
        except CaptureError:
            pass
    assert {ETHERTYPE_IPV4, ETHERTYPE_IPV6} <= seen


def test_link_type_conversions():
    ip = bytes.fromhex("4500001c000000004011") + bytes(10)
    assert to_ethernet(LINKTYPE_RAW, ip)[12:14] == b"\x08\x00"
    sll = bytes(14) + b"\x86\xdd" + b"\x60" + bytes(39)
    assert to_ethernet(LINKTYPE_LINUX_SLL, sll)[12:14] == b"\x86\xdd"
    assert to_ethernet(LINKTYPE_RAW, b"") is None


def test_corrupt_capture_names_file_and_offset(tmp_path):
    good = next(p for p in sorted(PCAPS.glob("*.pcap"))) if PCAPS.is_dir() else None
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture at all" * 4)
    with pytest.raises(CaptureError, match=r"garbage\.pcap at byte 0: not a pcap or pcapng"):
        list(read_frames(garbage))
    if good is not None:
        data = good.read_bytes()
        # A record header that promises more bytes than the file holds.
        cut = tmp_path / "cut.pcap"
        cut.write_bytes(data[:24] + (0).to_bytes(8, "little") + (10**6).to_bytes(4, "little") * 2 + b"xx")
        with pytest.raises(CaptureError, match=r"cut\.pcap at byte 24: record cut short: 2 of 1000000"):
            list(read_frames(cut))
        half_header = tmp_path / "half.pcap"
        half_header.write_bytes(data[:24] + bytes(10))
        with pytest.raises(CaptureError, match=r"half\.pcap at byte 24: 10 trailing bytes"):
            list(read_frames(half_header))
