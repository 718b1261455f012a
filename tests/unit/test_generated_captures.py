"""The capture demo's own captures: read back with the project's reader, every flow has both
directions, frames fit the emulated links, the same seed writes the same files; and how
`--captures` names are resolved."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from scapy.layers.inet import TCP
from scapy.layers.l2 import Ether

from controller.dataplane.flow_key import flow_key
from sim.pcap_frames import read_frames
from topo.capture_sources import GENERATED_DIR, CaptureSourceError, demo_captures, resolve_capture
from topo.generated_captures import ETHERNET_MAX, write_generated_captures

TCP_PROTO, UDP_PROTO, ICMP_PROTO = 6, 17, 1


@pytest.fixture(scope="module")
def captures(tmp_path_factory):
    return write_generated_captures(tmp_path_factory.mktemp("generated"))


def directional_flows(path) -> Counter:
    """Frames per direction of each flow: (src, dst, protocol, sport, dport) as the data plane keys it."""
    return Counter(flow_key(frame.data) for frame in read_frames(path))


def test_every_flow_is_seen_in_both_directions(captures):
    assert [p.name for p in captures] == ["generated-http.pcap", "generated-dns.pcap", "generated-mixed.pcap"]
    for path in captures:
        flows = directional_flows(path)
        assert None not in flows, f"{path.name}: a frame without a flow key"
        one_way = [k for k in flows if (k[1], k[0], k[2], k[4], k[3]) not in flows]
        assert one_way == [], f"{path.name}: flows seen in one direction only"


def test_the_mix_of_traffic_is_what_the_module_says(captures):
    http, dns, mixed = (directional_flows(p) for p in captures)

    def connections(flows: Counter, protocol: int) -> int:
        return len({tuple(sorted([(k[0], k[3]), (k[1], k[4])])) for k in flows if k[2] == protocol})

    assert connections(http, TCP_PROTO) == 42 and connections(http, UDP_PROTO) == 0
    assert connections(dns, UDP_PROTO) == 60 and connections(dns, ICMP_PROTO) >= 1
    ipv6_tcp = {k for k in mixed if k[2] == TCP_PROTO and k[0] >> 32 != 0xFFFF}
    assert len(ipv6_tcp) == 12                            # 6 connections, two directions each
    assert connections(mixed, UDP_PROTO) == 1
    total = sum(sum(f.values()) for f in (http, dns, mixed))
    assert 1_000 <= total <= 3_000


def test_tcp_connections_open_and_close_from_both_ends(captures):
    flags: dict[tuple, set[str]] = defaultdict(set)
    for path in captures:
        for frame in read_frames(path):
            packet = Ether(frame.data)
            if packet.haslayer(TCP):
                key = flow_key(frame.data)
                flags[key] |= {f for f in ("S", "F") if f in str(packet[TCP].flags)}
    assert flags and all(seen == {"S", "F"} for seen in flags.values()), \
        [k for k, seen in flags.items() if seen != {"S", "F"}]


def test_frames_fit_the_emulated_links_and_time_runs_forward(captures):
    for path in captures:
        frames = list(read_frames(path))
        assert max(len(f.data) for f in frames) <= ETHERNET_MAX
        assert max(len(f.data) for f in frames) == ETHERNET_MAX or path.name != "generated-http.pcap"
        times = [f.timestamp for f in frames]
        assert times == sorted(times), f"{path.name}: frames out of time order"


def test_same_seed_same_bytes_other_seed_other_traffic(tmp_path, captures):
    again = write_generated_captures(tmp_path / "again")
    assert [p.read_bytes() for p in again] == [p.read_bytes() for p in captures]
    other = write_generated_captures(tmp_path / "other", seed=2)
    assert other[0].read_bytes() != captures[0].read_bytes()


def test_no_captures_named_means_generated_into_the_output_dir(tmp_path):
    paths = demo_captures([], tmp_path)
    assert [p.parent for p in paths] == [tmp_path / GENERATED_DIR] * 3 and all(p.is_file() for p in paths)


def test_named_captures_are_paths_or_shared_names(tmp_path, monkeypatch, captures):
    assert demo_captures([str(captures[1])], tmp_path) == [captures[1]]
    monkeypatch.setenv("P4DISPATCH_SHARED_DATA", str(tmp_path / "absent"))
    with pytest.raises(CaptureSourceError, match=r"sip\.pcap: not a file here, and bare names are looked up in "
                                                 r"\$P4DISPATCH_SHARED_DATA/pcaps, but .*absent is not here"):
        resolve_capture("sip.pcap")
    with pytest.raises(CaptureSourceError, match=r"nowhere/x\.pcap: no such capture file; y\.pcap: not a file here"):
        demo_captures(["nowhere/x.pcap", "y.pcap"], tmp_path)
    corpus = tmp_path / "shared" / "pcaps"
    corpus.mkdir(parents=True)
    (corpus / "sip.pcap").write_bytes(captures[1].read_bytes())
    monkeypatch.setenv("P4DISPATCH_SHARED_DATA", str(tmp_path / "shared"))
    assert resolve_capture("sip.pcap") == corpus / "sip.pcap"
    with pytest.raises(CaptureSourceError, match=r"ftp\.pcap: not a file here nor in .*shared/pcaps"):
        resolve_capture("ftp.pcap")
