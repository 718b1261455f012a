"""The signalling parsers and SessionTracker (controller/sessions/): SIP/SDP over UDP and TCP,
RTSP SETUP/TEARDOWN, FTP PORT/EPRT/PASV/EPSV, TCP reassembly, limits, the sessions command."""

from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from controller.__main__ import main as controller_main
from controller.sessions.capture import analyse
from controller.sessions.ftp import parse_227, parse_229, parse_eprt, parse_port
from controller.sessions.model import Announcement, Limits, SessionEnd
from controller.sessions.report import parse_ports
from controller.sessions.tracker import TCP_ACK, TCP_FIN, TCP_SYN, SessionTracker

A, B = "10.0.0.1", "10.0.0.2"


def sdp(address: str, *ports: int) -> bytes:
    lines = ["v=0", f"o=- 1 1 IN IP4 {address}", "s=-", f"c=IN IP4 {address}", "t=0 0"]
    lines += [f"m=audio {p} RTP/AVP 0" for p in ports]
    return ("\r\n".join(lines) + "\r\n").encode()


def sip(start: str, call_id: str = "call-1", cseq: str = "1 INVITE", body: bytes = b"", compact: bool = False) -> bytes:
    head = [start, "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1", "From: <sip:a@x>;tag=1", "To: <sip:b@y>",
            f"{'i' if compact else 'Call-ID'}: {call_id}", f"CSeq: {cseq}"]
    if body:
        head.append(f"{'c' if compact else 'Content-Type'}: application/sdp")
    head.append(f"{'l' if compact else 'Content-Length'}: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def announced(events) -> list[tuple[str, int, str]]:
    return [(e.address, e.port, e.kind) for e in events if isinstance(e, Announcement)]


def ended(events) -> list[str]:
    return [e.reason for e in events if isinstance(e, SessionEnd)]


# ---- SIP ------------------------------------------------------------------------------------

def test_sip_call_over_udp_offer_answer_reinvite_bye():
    t = SessionTracker()
    udp = lambda src, dst, payload: t.feed(0.0, src, dst, 17, 5060, 5060, payload)  # noqa: E731
    offer = udp(A, B, sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000)))
    assert announced(offer) == [(A, 30000, "sdp-offer")]
    assert offer[0].signalling == (A, B, 17, 5060, 5060) and offer[0].session == "call-1"
    assert offer[0].port_count == 2 and offer[0].announcer == "initiator"
    answer = udp(B, A, sip("SIP/2.0 200 OK", body=sdp(B, 40000)))
    assert announced(answer) == [(B, 40000, "sdp-answer")]
    # Paired with the offer's m-line: the answer names both ends of its media flow.
    assert (answer[0].peer, answer[0].peer_port, answer[0].port_count) == (A, 30000, 2)
    assert udp(A, B, sip("ACK sip:b@y SIP/2.0", cseq="1 ACK")) == []
    reinvite = udp(A, B, sip("INVITE sip:b@y SIP/2.0", cseq="2 INVITE", body=sdp(A, 30002)))
    assert announced(reinvite) == [(A, 30002, "sdp-offer")]
    assert ended(udp(B, A, sip("SIP/2.0 488 Not Acceptable Here", cseq="2 INVITE"))) == []   # call goes on
    assert ended(udp(A, B, sip("BYE sip:b@y SIP/2.0", cseq="3 BYE"))) == ["bye"]
    assert not t.stats.errors


def test_sip_rejected_first_invite_ends_the_session_and_compact_headers():
    t = SessionTracker()
    t.feed(0.0, A, B, 17, 5060, 5060, sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000), compact=True))
    assert ended(t.feed(0.0, B, A, 17, 5060, 5060, sip("SIP/2.0 486 Busy Here", compact=True))) == ["rejected"]


def test_sip_over_tcp_split_and_coalesced_messages():
    t = SessionTracker()
    stream = sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000)) + sip("INVITE sip:b@y SIP/2.0", "call-2",
                                                                      body=sdp(A, 30010))
    t.feed(0.0, A, B, 6, 40000, 5060, b"", seq=99, flags=TCP_SYN)
    events = []
    seq = 100
    for piece in (stream[:10], stream[10:300], stream[300:]):     # split mid-header, mid-body, then two at once
        events += t.feed(0.0, A, B, 6, 40000, 5060, piece, seq=seq, flags=TCP_ACK)
        seq += len(piece)
    assert announced(events) == [(A, 30000, "sdp-offer"), (A, 30010, "sdp-offer")]
    assert events[0].signalling == (A, B, 6, 40000, 5060) and events[0].transport == "udp"
    assert ended(t.feed(1.0, B, A, 6, 5060, 40000, b"", seq=5, flags=TCP_FIN | TCP_ACK)) == ["close"]


def test_tcp_out_of_order_and_retransmitted_segments():
    t = SessionTracker()
    msg = sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000))
    parts = [msg[:100], msg[100:200], msg[200:]]
    assert t.feed(0, A, B, 6, 40000, 5060, parts[2], seq=1200, flags=TCP_ACK) == []   # first seen: starts there
    t2 = SessionTracker()
    t2.feed(0, A, B, 6, 40000, 5060, b"", seq=0, flags=TCP_SYN)
    events = t2.feed(0, A, B, 6, 40000, 5060, parts[1], seq=101, flags=TCP_ACK)         # out of order
    events += t2.feed(0, A, B, 6, 40000, 5060, parts[0], seq=1, flags=TCP_ACK)
    events += t2.feed(0, A, B, 6, 40000, 5060, parts[0], seq=1, flags=TCP_ACK)          # retransmission
    events += t2.feed(0, A, B, 6, 40000, 5060, parts[2], seq=201, flags=TCP_ACK)
    assert announced(events) == [(A, 30000, "sdp-offer")]
    assert t2.stats.notes["tcp_retransmission"] == 1


def test_sdp_hold_disabled_and_bad_addresses_are_not_announced():
    t = SessionTracker()
    events = t.feed(0, A, B, 17, 5060, 5060, sip("INVITE sip:b@y SIP/2.0", body=sdp("0.0.0.0", 30000)))
    events += t.feed(0, A, B, 17, 5060, 5060, sip("INVITE sip:b@y SIP/2.0", "c2", body=sdp(A, 0)))
    events += t.feed(0, A, B, 17, 5060, 5060, sip("INVITE sip:b@y SIP/2.0", "c3", body=sdp("999.1.1.1", 5)))
    assert announced(events) == []
    assert t.stats.notes["sdp_media_on_hold"] == 1 and t.stats.notes["sdp_media_disabled"] == 1
    assert t.stats.errors["sdp_bad_address"] == 1


@pytest.mark.parametrize(("payload", "error"), [
    (sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000))[:-20], "sip_truncated"),
    (sip("INVITE sip:b@y SIP/2.0").replace(b"Call-ID", b"Call\xffID"), "sip_encoding"),
    (sip("INVITE sip:b@y SIP/2.0").replace(b"Content-Length: 0", b"Content-Length: x"), "sip_bad_content_length"),
    (sip("GARBAGE"), "sip_malformed"),
    (sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000)).replace(b"c=IN", "c=ÍN".encode("latin-1")),
     "sdp_encoding"),
    (sip("INVITE sip:b@y SIP/2.0", body=b"v=0\r\n" + b"m=audio 1 RTP/AVP 0\r\n" * 40), "sdp_too_many_media"),
    (b"INVITE sip:b@y SIP/2.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", "sip_too_many_headers"),
    (b"x" * 70_000, "sip_too_large"),
])
def test_bad_sip_is_counted_not_raised(payload, error):
    t = SessionTracker()
    t.feed(0, A, B, 17, 5060, 5060, payload)
    assert t.stats.errors[error] >= 1


def test_oversized_sip_body_on_tcp_is_skipped_and_the_next_message_parsed():
    t = SessionTracker(limits=Limits(max_message=2_000))
    big = sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000) + b"a=x\r\n" * 1000)
    events = t.feed(0, A, B, 6, 40000, 5060, big + sip("INVITE sip:b@y SIP/2.0", "c2", body=sdp(A, 30002)),
                    seq=1, flags=TCP_ACK)
    assert announced(events) == [(A, 30002, "sdp-offer")] and t.stats.errors["sip_too_large"] == 1


# ---- RTSP -----------------------------------------------------------------------------------

def rtsp(start: str, cseq: int, **headers: str) -> bytes:
    lines = [start, f"CSeq: {cseq}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_rtsp_setup_reply_interleaved_and_teardown():
    t = SessionTracker()
    tcp = lambda src, dst, sport, dport, data, seq: t.feed(0, src, dst, 6, sport, dport, data, seq=seq,  # noqa: E731
                                                          flags=TCP_ACK)
    req = rtsp("SETUP rtsp://x/track1 RTSP/1.0", 3, Transport="RTP/AVP;unicast;client_port=5000-5001")
    assert announced(tcp(A, B, 50000, 554, req[:20], 1) + tcp(A, B, 50000, 554, req[20:], 21)) == \
        [(A, 5000, "client_port")]
    reply = rtsp("RTSP/1.0 200 OK", 3, Session="abc;timeout=30",
                 Transport="RTP/AVP;unicast;client_port=5000-5001;server_port=6000-6001")
    events = tcp(B, A, 554, 50000, b"$\x00\x00\x04abcd" + reply, 1)         # an interleaved frame first
    assert announced(events) == [(A, 5000, "client_port"), (B, 6000, "server_port")]
    assert {e.session for e in events} == {"abc"} and events[1].start_within_s == 30
    assert events[1].announcer == "responder" and events[0].announcer == "initiator"
    inter = rtsp("SETUP rtsp://x/track2 RTSP/1.0", 4, Session="abc", Transport="RTP/AVP/TCP;interleaved=0-1")
    assert tcp(A, B, 50000, 554, inter, 1 + len(req)) == [] and t.stats.notes["rtsp_interleaved"] == 1
    teardown = rtsp("TEARDOWN rtsp://x/ RTSP/1.0", 5, Session="abc")
    assert ended(tcp(A, B, 50000, 554, teardown, 1 + len(req) + len(inter))) == ["teardown"]
    assert not t.stats.errors


def test_rtsp_reply_to_something_else_and_bad_transport():
    t = SessionTracker()
    t.feed(0, A, B, 6, 50000, 554, rtsp("PLAY rtsp://x/ RTSP/1.0", 1), seq=1, flags=TCP_ACK)
    assert t.feed(0, B, A, 6, 554, 50000, rtsp("RTSP/1.0 200 OK", 1, Transport="RTP/AVP;client_port=1-2"),
                  seq=1, flags=TCP_ACK) == []
    req = rtsp("SETUP rtsp://x RTSP/1.0", 2, Transport="RTP/AVP;client_port=99999-100000")
    assert announced(t.feed(0, A, B, 6, 50000, 554, req, seq=1 + len(rtsp("PLAY rtsp://x/ RTSP/1.0", 1)),
                            flags=TCP_ACK)) == []
    assert t.stats.errors["rtsp_bad_transport"] == 1


# ---- FTP ------------------------------------------------------------------------------------

def test_ftp_parsers():
    assert parse_port("10,0,0,1,4,1") == ("10.0.0.1", 1025)
    assert parse_port("10,0,0,256,4,1") is None and parse_port("1,2,3") is None
    assert parse_eprt("|1|10.0.0.1|6446|") == ("10.0.0.1", 6446)
    assert parse_eprt("|2|2001:db8::1|5282|") == ("2001:db8::1", 5282)
    assert parse_eprt("|1|2001:db8::1|5282|") is None and parse_eprt("|1|10.0.0.1|0|") is None
    assert parse_227("227 Entering Passive Mode (90,130,70,73,100,85).") == ("90.130.70.73", 25685)
    assert parse_227("227 Entering Passive Mode (900,130,70,73,100,85).") is None
    assert parse_229("229 Entering Extended Passive Mode (|||6446|)", B) == 6446
    assert parse_229("229 Entering Extended Passive Mode (|||99999|)", B) is None


def test_ftp_control_connection_with_tls_records_between():
    t = SessionTracker()
    c2s = b"USER a\r\nPORT 10,0,0,1,4,1\r\nEPRT |1|10.0.0.1|6446|\r\nPORT 1,2,3\r\n"
    s2c = (b"220 hi\r\n" + b"\x17\x03\x03\x00\x05hello" + b"227 Entering Passive Mode (10,0,0,2,4,2)\r\n"
           b"229 Entering Extended Passive Mode (|||7000|)\r\n")
    events = t.feed(0, A, B, 6, 40000, 21, c2s, seq=1, flags=TCP_ACK)
    events += t.feed(0, B, A, 6, 21, 40000, s2c, seq=1, flags=TCP_ACK)
    # First the control connection itself: the client's connections to its server, any port.
    assert announced(events) == [(B, 0, "control"), (A, 1025, "port"), (A, 6446, "eprt"), (B, 1026, "pasv"),
                                 (B, 7000, "epsv")]
    assert (events[0].peer, events[0].port_count) == (A, 0)
    assert events[3].peer == A and events[1].peer == B
    assert t.stats.errors["ftp_bad_port"] == 1 and t.stats.notes["ftp_tls_records"] == 1
    t.feed(0, A, B, 6, 40000, 21, b"A" * 5000, seq=1 + len(c2s), flags=TCP_ACK)
    assert t.stats.errors["ftp_line_too_long"] == 1


def test_flow_limit_drops_the_oldest():
    t = SessionTracker(limits=Limits(max_flows=2))
    for port in (1, 2, 3):
        t.feed(0, A, B, 17, port, 5060, b"\r\n")
    assert len(t.flows) == 2 and t.stats.errors["flows_limit"] == 1
    assert len(t.expire(100.0, 30.0)) == 2 and not t.flows


# ---- the command ------------------------------------------------------------------------------

def _capture(path) -> None:
    invite = sip("INVITE sip:b@y SIP/2.0", body=sdp(A, 30000))
    wrpcap(str(path), [Ether() / IP(src=A, dst=B) / UDP(sport=5060, dport=5060) / invite,
                       Ether() / IP(src=B, dst=A) / UDP(sport=5060, dport=5060) / sip("SIP/2.0 200 OK",
                                                                                        body=sdp(B, 40000)),
                       Ether() / IP(src=A, dst=B) / TCP(sport=40000, dport=21, seq=1, flags="PA")
                       / b"PASV\r\n",
                       Ether() / IP(src=B, dst=A) / TCP(sport=21, dport=40000, seq=1, flags="PA")
                       / b"227 Entering Passive Mode (10,0,0,2,4,2)\r\n"])


def test_sessions_command_json(tmp_path, capsys):
    _capture(tmp_path / "c.pcap")
    assert controller_main(["sessions", "--pcap", str(tmp_path / "c.pcap"), "--json"]) == 0
    flows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(f["protocol"], f["address"], f["port"]) for f in flows] == \
        [("sip", A, 30000), ("sip", B, 40000), ("ftp", B, 1026)]
    assert flows[0]["signalling"] == [A, B, 17, 5060, 5060] and flows[2]["signalling"] == [A, B, 6, 40000, 21]
    assert controller_main(["sessions", "--pcap", str(tmp_path / "c.pcap"), "--ports", "sip=5070"]) == 0
    out = capsys.readouterr()
    assert "sip" not in out.out and "ftp" in out.out


def test_sessions_command_corrupt_and_unreadable_captures(tmp_path, capsys):
    _capture(tmp_path / "c.pcap")
    data = (tmp_path / "c.pcap").read_bytes()
    (tmp_path / "cut.pcap").write_bytes(data[:-10])
    assert controller_main(["sessions", "--pcap", str(tmp_path / "cut.pcap"), "--json"]) == 1
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 2          # the two SIP flows before the damage
    assert "cut.pcap at byte" in out.err
    (tmp_path / "junk.pcap").write_bytes(b"not a capture")
    assert controller_main(["sessions", "--pcap", str(tmp_path / "junk.pcap")]) == 2
    assert "junk.pcap at byte 0" in capsys.readouterr().err
    assert analyse(tmp_path / "c.pcap").error is None


def test_ports_option():
    assert parse_ports(["sip=5060,5080"])["sip"] == (5060, 5080)
    for bad in ("http=80", "sip", "sip=x", "sip=70000"):
        with pytest.raises(ValueError):
            parse_ports([bad])
