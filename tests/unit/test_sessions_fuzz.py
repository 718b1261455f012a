"""Malformed signalling never raises and never announces a bad endpoint: hypothesis-generated
bytes, and payloads of the shared corpus (or built-in messages without it) truncated,
oversized, re-encoded and mutated."""

from __future__ import annotations

import ipaddress
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.pcap_frames import read_frames
from controller.sessions.capture import decode
from controller.sessions.model import Announcement, Limits
from controller.sessions.tracker import TCP_ACK, SessionTracker
from sim.shared_data import shared_data_dir, shared_data_reason

PORTS = {"sip": 5060, "rtsp": 554, "ftp": 21}
BUILT_IN = [
    ("sip", b"INVITE sip:b@y SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            b"Content-Length: 62\r\n\r\nv=0\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=x\r\n"),
    ("rtsp", b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc\r\n"
             b"Transport: RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001\r\n\r\n"),
    ("rtsp", b"SETUP rtsp://x/ RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"),
    ("ftp", b"PORT 10,0,0,1,4,1\r\nEPRT |1|10.0.0.1|6446|\r\n"),
    ("ftp", b"227 Entering Passive Mode (10,0,0,2,4,2)\r\n229 Entering Extended Passive Mode (|||7000|)\r\n"),
]


def corpus_payloads() -> list[tuple[str, bytes]]:
    """Signalling payloads of the shared captures (when present) and the built-in messages."""
    payloads = list(BUILT_IN)
    if shared_data_reason("pcaps") is None:
        base = shared_data_dir()
        assert base is not None
        for name in ("sip.pcap", "rtsp.pcap", "ftp.pcap", "fuzz-2006-06-26-2594.pcap"):
            path = base / "pcaps" / name
            if not path.exists():
                continue
            for frame in read_frames(path):
                p = decode(frame.data)
                if p is None or not p.payload:
                    continue
                for protocol, port in PORTS.items():
                    if port in (p.sport, p.dport) or (protocol == "rtsp" and 8554 in (p.sport, p.dport)):
                        payloads.append((protocol, p.payload))
    return payloads


PAYLOADS = corpus_payloads()


def check(tracker: SessionTracker, events: list) -> None:
    for e in events:
        if isinstance(e, Announcement):
            ipaddress.ip_address(e.address)
            if e.kind == "control":     # an FTP control connection's start: any port, from its client
                assert (e.port, e.port_count) == (0, 0) and e.peer is not None
            else:
                assert 0 < e.port <= 65535 and 1 <= e.port_count <= 2
    assert len(tracker.flows) <= tracker.limits.max_flows


def feed_both(protocol: str, payload: bytes, tracker: SessionTracker | None = None) -> SessionTracker:
    """The payload from each end, over UDP (SIP, RTSP) and over TCP in pieces."""
    t = tracker or SessionTracker(limits=Limits(max_message=8_192, max_head=4_096, max_stream_buffer=16_384,
                                                max_out_of_order=4_096))
    port = PORTS[protocol]
    if protocol != "ftp":
        check(t, t.feed(0, "10.0.0.1", "10.0.0.2", 17, 40000, port, payload))
    for src, dst, sport, dport in (("10.0.0.1", "10.0.0.2", 40000, port), ("10.0.0.2", "10.0.0.1", port, 40000)):
        seq = 1000
        for i in range(0, len(payload), 97):
            check(t, t.feed(0, src, dst, 6, sport, dport, payload[i:i + 97], seq=seq, flags=TCP_ACK))
            seq += len(payload[i:i + 97])
    return t


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PORTS)), st.binary(max_size=3000))
def test_random_bytes(protocol, payload):
    feed_both(protocol, payload)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corpus_payloads_mutated(data):
    protocol, payload = data.draw(st.sampled_from(PAYLOADS))
    cut = data.draw(st.integers(0, len(payload)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(len(payload) - 1, 0)), st.integers(0, 255)),
                               max_size=8))
    mutated = bytearray(payload)
    for at, value in flips:
        if mutated:
            mutated[at % len(mutated)] = value
    feed_both(protocol, bytes(mutated[:cut] if data.draw(st.booleans()) else mutated))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["sip", "rtsp", "ftp"]),
       st.text(alphabet=st.sampled_from(list("0123456789,|.-;=: \r\nPORTEPRT227229SETUPINVITEc=m=audio")),
               max_size=400))
def test_near_miss_text(protocol, text):
    feed_both(protocol, text.encode())


def test_every_corpus_payload_truncated_oversized_and_re_encoded():
    """Deterministic sweep: each payload cut at several points, repeated past the size
    limit and re-encoded (UTF-16, Latin-1 of its mojibake) - counted, never raised, and
    a truncated SIP datagram announces nothing."""
    rng = random.Random(13)
    for protocol, payload in PAYLOADS[:400]:
        for cut in sorted({1, len(payload) // 3, len(payload) // 2, max(len(payload) - 1, 0)}):
            t = SessionTracker()
            if protocol == "sip" and b"\r\n\r\n" in payload[:cut] and b"Content-Length" in payload:
                events = t.feed(0, "10.0.0.1", "10.0.0.2", 17, 40000, 5060, payload[:cut])
                body_cut = payload.find(b"\r\n\r\n") + 4 < cut < len(payload)
                if body_cut:
                    assert not [e for e in events if isinstance(e, Announcement)]
            feed_both(protocol, payload[:cut])
        t = feed_both(protocol, payload * (70_000 // max(len(payload), 1) + 1))
        if protocol != "ftp" and payload.strip():     # the oversized UDP datagram (not a blank keepalive)
            assert t.stats.errors[f"{protocol}_too_large"] >= 1
        feed_both(protocol, payload.decode("latin-1").encode("utf-16"))
        feed_both(protocol, bytes(b ^ rng.randrange(256) if rng.random() < 0.05 else b for b in payload))
