"""Session affinity on a real BMv2 with the real controller (issue 13): a capture service fed
from a tap, three capture nodes, the controller reading the signalling the switch clones.

* Real clients and servers across a delayed link, mirrored into the tap as they talk
  (topo/session_tap.py): an FTP session (ftplib against pyftpdlib) with passive and active
  transfers, and 200 SIP calls with RTP (SIPp, uac_pcap against a ringing uas with rtp_echo).
  Every data and media flow must reach the node its signalling flow reached, both directions.
* RTSP from the corpus (rtsp.pcap), replayed into the tap: its announced media flows too.
* Malformed signalling replayed with the controller up: counted, nothing installed, switch
  and controller alive.

On three nodes a flow lands on its signalling flow's node by chance one time in three, so
eight flows all doing so by chance is a 1-in-6,561 event.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from signalling_frames import ftp_frames
from sipp_support import G711_PCAP, invites_sent, ringing_uas_scenario, sipp_missing

from controller.cli import ApiError, fetch_status
from controller.config import Config
from controller.p4runtime.encoding import flow_address
from controller.pcap_frames import read_frames
from controller.sessions.capture import decode
from controller.sessions.model import Announcement
from controller.sessions.tracker import SessionTracker
from topo.controller_testbed import ControllerProcess, ControllerTestbed, backend_mac, backend_port, missing_reason
from topo.mininet_support import free_tcp_port
from topo.session_tap import CLIENT_ADDRESS, SERVER_ADDRESS, TappedLink
from topo.toolchain import REPO

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
TAP_PORT = 1
NODES = 3


def capture_config(tb: ControllerTestbed, sessions: dict, api_port: int) -> dict:
    return Config.model_validate({
        "switch": {"grpc_address": f"127.0.0.1:{tb.grpc_port}"},
        "timers": {"flow_idle_timeout_s": 30, "poll_interval_ms": 100},
        "api": {"address": "127.0.0.1", "port": api_port},
        "services": [{
            "name": "tap", "id": 1, "mode": "capture", "tap_ports": [TAP_PORT], "forwarding": "capture",
            "policy": "round_robin", "ring_size": 256, "sessions": sessions,
            "backends": [{"name": f"n{i}", "id": 10 + i, "port": backend_port(i), "mac": backend_mac(i)}
                         for i in range(NODES)],
        }],
    }).model_dump(mode="json", exclude_none=True)


def start_controller(tb: ControllerTestbed, sessions: dict) -> ControllerProcess:
    """The controller in its own process, as deployed (in the test's process it would share
    the interpreter with the tap wire's threads, and wait for them)."""
    api_port = free_tcp_port()
    proc = tb.controller_process(capture_config(tb, sessions, api_port), election_id=1, api_port=api_port,
                                 name="sessions")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if fetch_status(proc.api).role == "primary":
                return proc
        except ApiError:
            pass      # not listening yet
        assert proc.process is not None and proc.process.poll() is None, f"controller died: {proc.log()[-2000:]}"
        time.sleep(0.2)
    raise TimeoutError(f"controller not primary after 30 s: {proc.log()[-2000:]}")


@pytest.fixture
def testbed():
    with ControllerTestbed(backends=NODES) as tb:
        yield tb


def flows_by_node(tb: ControllerTestbed) -> dict[tuple, Counter]:
    """Both directions of each flow merged (the sorted key): key -> node port -> packets."""
    assert tb.wire is not None
    merged: dict[tuple, Counter] = {}
    with tb.wire._lock:
        for key, ports in tb.wire.seen.items():
            src, dst, protocol, sport, dport = key
            sorted_key = key if (src, sport) <= (dst, dport) else (dst, src, protocol, dport, sport)
            merged.setdefault(sorted_key, Counter()).update(ports)
    return merged


def node_of(flows: dict[tuple, Counter], key: tuple) -> int:
    ports = flows[key]
    assert len(ports) == 1, f"flow {key} reached {len(ports)} nodes: {dict(ports)}"
    return next(iter(ports))


def between(address_a: str, address_b: str, flows: dict[tuple, Counter]) -> list[tuple]:
    ends = {flow_address(address_a), flow_address(address_b)}
    return [k for k in flows if {k[0], k[1]} == ends and k[2] in (6, 17)]


def wait_quiet(tb: ControllerTestbed, seconds: float = 1.0, limit: float = 15.0) -> None:
    """Until the nodes have received nothing new for `seconds`."""
    assert tb.wire is not None
    deadline, last, since = time.monotonic() + limit, -1, time.monotonic()
    while time.monotonic() < deadline:
        now_received = tb.wire.received()
        if now_received != last:
            last, since = now_received, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.1)


def session_status(proc: ControllerProcess) -> dict:
    """The controller's session status, from a status built after everything arrived."""
    time.sleep(0.3)     # the status is rebuilt at every counter poll (100 ms)
    status = fetch_status(proc.api).sessions
    assert status is not None
    return status.model_dump()


# ---- FTP: ftplib against pyftpdlib ----------------------------------------------------------

def test_ftp_data_connections_reach_their_control_connections_node(testbed, tmp_path):
    pytest.importorskip("pyftpdlib", reason="pyftpdlib not installed (requirements.txt)")
    running = start_controller(testbed, {"ftp": [21]})
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)) * 400)      # 100 KiB
    passive, active = 6, 2
    # 50 ms each way: a passive SYN passes the tap 100 ms after the 227 did. With 20 ms, one
    # of the last four full runs on this 2-core machine had a passive connection's SYN beat
    # its announced entry (the entry took 1.3 ms once the controller read the 227).
    with TappedLink(testbed.host_interface(TAP_PORT), delay_ms=50) as link:
        link.start(link.server_ns, [sys.executable, "-m", "pyftpdlib", "-i", SERVER_ADDRESS, "-p", "21",
                                    "-d", str(root)], stdout=(tmp_path / "ftpd.log").open("w"),
                   stderr=subprocess.STDOUT)
        link.wait_listening(link.server_ns, 21)
        run = link.run(link.client_ns, sys.executable, "-m", "workload.ftp_client", "--server", SERVER_ADDRESS,
                       "--passive", str(passive), "--active", str(active), check=False, timeout=120, cwd=str(REPO))
        assert run.returncode == 0, f"the FTP client failed: {run.stderr}"
        result = json.loads(run.stdout)
        wait_quiet(testbed)
    assert all(t["bytes"] == 256 * 400 for t in result["transfers"])
    flows = flows_by_node(testbed)
    tcp = [k for k in between(CLIENT_ADDRESS, SERVER_ADDRESS, flows) if k[2] == 6]
    control = [k for k in tcp if 21 in (k[3], k[4])]
    data = [k for k in tcp if 21 not in (k[3], k[4])]
    assert len(control) == 1 and len(data) == passive + active, f"flows seen: {tcp}"
    control_node = node_of(flows, control[0])
    nodes = {k: node_of(flows, k) for k in data}     # every flow on one node, both directions
    status = session_status(running)
    by_mode: dict[str, list[int]] = {"passive": [], "active": []}
    for transfer in result["transfers"]:
        client_port = transfer["local"][1]
        key = next(k for k in data if client_port in (k[3], k[4]))
        by_mode[transfer["mode"]].append(nodes[key])
    print(f"\nFTP: control on node port {control_node}; data {by_mode}; {status['hits']} hits, "
          f"{status['missed']} missed; entry latency {status['entry_latency_ms']}")
    # PASV: the 227 reply passes the tap a round trip before the client's SYN, time enough.
    assert by_mode["passive"] == [control_node] * passive, "a passive data connection left its session's node"
    # PORT: the server connects as soon as PORT reaches it, so a tap at the server sees the
    # SYN right after the announcement: the controller may lose that race (docs/sessions.md).
    # The flow then follows the ring, counted as missed, and stays on one node all the same.
    assert status["hits"] + status["missed"] == passive + active
    assert status["hits"] >= passive
    assert status["ended"] >= 1 and status["announced_entries"] == 0, "QUIT/close removed the session"
    assert sum(status["parse_errors"].values()) == 0


# ---- SIP: SIPp calls with RTP ----------------------------------------------------------------

CALLS = 200
RING_MS = 300


@pytest.mark.skipif(sipp_missing() is not None, reason=str(sipp_missing()))
def test_sip_calls_media_reaches_the_signalling_flows_node(testbed, tmp_path):
    """200 calls from one SIPp caller (`-t un`: each call its own SIP socket, so its own
    signalling flow, and its own media port), at most 15 at once, to a SIPp server that
    rings 300 ms and echoes RTP. Every call's RTP, both directions, on its call's node.
    (Every RTP packet crosses the user-space wire twice and the switch once: at 30 calls
    at once, 3,000 packets/s, the controller on the two shared cores once read an INVITE
    more than 300 ms late, and that call's media started before its entries.)"""
    running = start_controller(testbed, {"sip": [5060]})
    work = tmp_path / "sipp"
    work.mkdir()
    (work / "pcap").symlink_to(G711_PCAP.parent)    # uac_pcap plays pcap/g711a.pcap and DTMF
    scenario = ringing_uas_scenario(work / "uas_ringing.xml", RING_MS)
    trace = tmp_path / "uac-messages.log"
    with TappedLink(testbed.host_interface(TAP_PORT), delay_ms=20) as link:
        link.start(link.server_ns, ["sipp", "-sf", str(scenario), "-i", SERVER_ADDRESS, "-p", "5060",
                                    "-mi", SERVER_ADDRESS, "-mp", "16000", "-rtp_echo", "-nostdin",
                                    "-max_socket", "1000"],
                   cwd=str(work), stdout=(tmp_path / "uas.log").open("w"), stderr=subprocess.STDOUT)
        link.wait_listening(link.server_ns, 5060, udp=True)
        caller = link.start(link.client_ns, ["sipp", f"{SERVER_ADDRESS}:5060", "-sn", "uac_pcap", "-i", CLIENT_ADDRESS,
                                             "-p", "5070", "-t", "un", "-max_socket", "1000", "-mi", CLIENT_ADDRESS,
                                             "-mp", "20000", "-m", str(CALLS), "-r", "5", "-l", "15", "-nostdin",
                                             "-timeout", "150", "-timeout_error", "-trace_msg", "-message_file",
                                             str(trace)],
                            cwd=str(work), stdout=(tmp_path / "uac.log").open("w"), stderr=subprocess.STDOUT)
        caller.wait(timeout=180)
        wait_quiet(testbed)
    assert caller.returncode == 0, f"SIPp's calls failed: {(tmp_path / 'uac.log').read_text()[-3000:]}"
    calls = invites_sent(trace)                      # (SIP port, media port), per call
    assert len({media for _, media in calls}) == CALLS, f"{len(calls)} calls in the trace"
    flows = flows_by_node(testbed)
    udp = [k for k in between(CLIENT_ADDRESS, SERVER_ADDRESS, flows) if k[2] == 17]
    client = flow_address(CLIENT_ADDRESS)

    def caller_port(key: tuple) -> int:
        return key[3] if key[0] == client else key[4]

    signalling = {caller_port(k): node_of(flows, k) for k in udp if 5060 in (k[3], k[4])}
    media = {caller_port(k): node_of(flows, k) for k in udp if 5060 not in (k[3], k[4])}
    assert set(signalling) == {sip for sip, _ in calls}, "a call's signalling flow missing on the nodes"
    assert set(media) == {rtp for _, rtp in calls}, f"RTP of {len(media)} of {CALLS} calls seen"
    status = session_status(running)
    wrong = [(sip, rtp) for sip, rtp in calls if media[rtp] != signalling[sip]]
    assert not wrong, f"{len(wrong)} calls' media left their signalling's node: {wrong[:10]}; {status}"
    assert status["hits"] >= CALLS and status["missed"] == 0
    assert status["ended"] >= CALLS, "BYE ended every call"
    print(f"\nSIP: {CALLS} calls, each call's RTP on its signalling's node ({Counter(signalling.values())}); "
          f"entry latency {status['entry_latency_ms']}")


# ---- RTSP from the corpus -------------------------------------------------------------------

def corpus_capture(name: str) -> Path:
    path = Path(os.environ.get("P4DISPATCH_SHARED_DATA", "")) / "pcaps" / name
    if not path.exists():
        pytest.skip(f"{path} absent (the shared capture corpus; set P4DISPATCH_SHARED_DATA)")
    return path


def media_frame(src: str, dst: str, sport: int, dport: int) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    rtp = bytes([0x80, 0x60]) + bytes(10) + bytes(160)     # an RTP header and 20 ms of payload
    return bytes(Ether(src="02:00:00:00:aa:01", dst="02:00:00:00:aa:02") / IP(src=src, dst=dst)
                 / UDP(sport=sport, dport=dport) / rtp)


def test_rtsp_corpus_sessions_media_reaches_the_rtsp_connections_node(testbed):
    """rtsp.pcap holds six RTSP sessions (SETUP, PLAY, TEARDOWN) but not their RTP: each SETUP
    reply's announced ports get RTP (server -> client) and RTCP (client -> server) sent 100 ms
    after the reply passes the tap, as a player and a server would after PLAY."""
    capture = corpus_capture("rtsp.pcap")
    running = start_controller(testbed, {"rtsp": [554, 8554], "start_within_max_s": 3})
    assert testbed.wire is not None
    watcher = SessionTracker({"rtsp": [554, 8554]})    # only to know when a reply announced ports
    media: list[tuple[tuple, tuple]] = []              # (media flow's ends, signalling 5-tuple)
    client_ports: dict[tuple, Announcement] = {}       # signalling flow -> its latest client_port
    previous = None
    for frame in read_frames(capture):
        if previous is not None:
            time.sleep(min(max(frame.timestamp - previous, 0.0), 0.01))   # 250 s compressed
        previous = frame.timestamp
        testbed.wire.send(frame.data)
        packet = decode(frame.data)
        if packet is None:
            continue
        events = watcher.feed(frame.timestamp, packet.src, packet.dst, packet.protocol, packet.sport, packet.dport,
                              packet.payload, packet.seq, packet.flags)
        announced = [e for e in events if isinstance(e, Announcement)]
        client_ports.update({e.signalling: e for e in announced if e.kind == "client_port"})
        server = next((e for e in announced if e.kind == "server_port"), None)
        client = client_ports.get(server.signalling) if server is not None else None
        if server is None or client is None:
            continue
        # A player sends PLAY and waits for its reply before media flows: a round trip at the
        # least (100 ms here); the capture's own gaps are cut to 10 ms, so this is the margin.
        time.sleep(0.1)
        rtp = media_frame(server.address, client.address, server.port, client.port)
        rtcp = media_frame(client.address, server.address, client.port + 1, server.port + 1)
        for _ in range(3):
            testbed.wire.send(rtp)
            testbed.wire.send(rtcp)
        media += [((server.address, server.port, client.address, client.port), server.signalling),
                  ((client.address, client.port + 1, server.address, server.port + 1), server.signalling)]
    wait_quiet(testbed)
    flows = flows_by_node(testbed)
    assert len(media) >= 12, f"the capture's replies announced {len(media)} media flows"

    def node_of_ends(src: str, sport: int, dst: str, dport: int, protocol: int) -> int:
        a, b = (flow_address(src), sport), (flow_address(dst), dport)
        (sa, sp), (da, dp) = sorted((a, b))
        return node_of(flows, (sa, da, protocol, sp, dp))

    wrong = []
    for (src, sport, dst, dport), (csrc, cdst, cproto, csport, cdport) in media:
        signalling_node = node_of_ends(csrc, csport, cdst, cdport, cproto)
        if node_of_ends(src, sport, dst, dport, 17) != signalling_node:
            wrong.append((src, sport, dst, dport))
    status = session_status(running)
    print(f"\nRTSP (rtsp.pcap): {len(media)} media flows, {len(media) - len(wrong)} on their RTSP "
          f"connection's node; {status['hits']} hits, {status['missed']} missed, {status['ended']} sessions "
          f"ended; entry latency {status['entry_latency_ms']}")
    assert not wrong, f"media flows off their session's node: {wrong}; {status}"
    assert status["hits"] == len(media)
    # Every session the capture ends is gone (five connections close, each with what SETUP
    # announced before the reply named the session and what came after); the last connection
    # (port 52482) never ends in it: its entries stay until they expire (start_within_max_s,
    # 3 s here).
    assert status["ended"] == 10 and status["sessions"] == 2, status
    deadline = time.monotonic() + 15
    while session_status(running)["announced_entries"] and time.monotonic() < deadline:
        time.sleep(0.5)
    status = session_status(running)
    assert status["announced_entries"] == 0 and status["expired"] >= 1, status


# ---- malformed signalling ----------------------------------------------------------------------

def malformed_signalling() -> list[bytes]:
    """Signalling the parsers must refuse (each kind counted, nothing announced), as frames
    from 10.9.0.1 to 10.9.0.2."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether
    ip = Ether(src="02:00:00:00:bb:01", dst="02:00:00:00:bb:02") / IP(src="10.9.0.1", dst="10.9.0.2")
    head = (b"INVITE sip:bob@10.9.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.0.1:5062;branch=z9hG4bK1\r\n"
            b"From: <sip:a@10.9.0.1>;tag=1\r\nTo: <sip:bob@10.9.0.2>\r\nCall-ID: bad-%d@10.9.0.1\r\n"
            b"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n")
    sdp = b"v=0\r\no=- 1 1 IN IP4 10.9.0.1\r\ns=-\r\nc=IN IP4 10.9.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"

    def sip(i: int, body: bytes, length: int | None = None, extra: bytes = b"") -> bytes:
        message = (head % i) + extra + b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body
        return bytes(ip / UDP(sport=5062, dport=5060) / message)

    frames = [
        sip(1, sdp[:40], length=len(sdp)),                                # cut inside its body
        sip(2, sdp, extra=b"Subject: caf\xe9 \xff\xfe\r\n"),               # not UTF-8
        sip(3, sdp.replace(b"c=IN IP4 10.9.0.1", b"c=IN IP4 10.9.0.999")),   # not an address
        sip(4, sdp.replace(b"m=audio 4000", b"m=audio 4000/2")),            # port with a count
        sip(5, sdp, length=-5),                                           # a negative length
        bytes(ip / UDP(sport=5062, dport=5060) / (b"INVITE " + b"A" * 8000)),   # no end of head
        bytes(ip / UDP(sport=5062, dport=5060) / (bytes(range(256)) * 4)),   # binary noise
    ]
    # FTP: a control connection whose 227 reply and PORT command are nonsense.
    seq = {"c": 100, "s": 900}
    frames.append(bytes(ip / TCP(sport=40100, dport=21, flags="S", seq=99)))
    for side, text in (("s", b"220 hi\r\n"), ("c", b"PORT 10,9,0,1,999,1\r\n"), ("s", b"200 ok\r\n"),
                       ("c", b"PASV\r\n"), ("s", b"227 Entering Passive Mode (10,9,0,2,4,x).\r\n"),
                       ("c", b"EPRT |9|10.9.0.1|5000|\r\n")):
        if side == "c":
            frames.append(bytes(ip / TCP(sport=40100, dport=21, flags="PA", seq=seq["c"]) / text))
        else:
            frames.append(bytes(Ether(src="02:00:00:00:bb:02", dst="02:00:00:00:bb:01")
                                / IP(src="10.9.0.2", dst="10.9.0.1")
                                / TCP(sport=21, dport=40100, flags="PA", seq=seq["s"]) / text))
        seq[side] += len(text)
    # RTSP: a SETUP whose Transport header is garbage.
    setup = b"SETUP rtsp://10.9.0.2/a RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;client_port=99999-1\r\n\r\n"
    frames.append(bytes(ip / TCP(sport=40200, dport=554, flags="PA", seq=1) / setup))
    return frames


def test_malformed_signalling_is_counted_installs_nothing_and_both_stay_up(testbed):
    running = start_controller(testbed, {"sip": [5060], "rtsp": [554, 8554], "ftp": [21]})
    assert testbed.wire is not None
    frames = malformed_signalling()
    fuzz = corpus_capture("fuzz-2006-06-26-2594.pcap")      # a SIP fuzzer's capture
    frames += [f.data for f in read_frames(fuzz)]
    for frame in frames:
        testbed.wire.send(frame)
        time.sleep(0.002)
    wait_quiet(testbed)
    status = session_status(running)
    errors = status["parse_errors"]
    print(f"\nmalformed: {len(frames)} frames, {status['signalling_packets']} signalling packets read, "
          f"parse errors {errors}")
    assert status["entries_written"] == 0 and status["announced_entries"] == 0, status
    for kind in ("sip_truncated", "sip_encoding", "sdp_bad_address", "sdp_bad_media", "ftp_bad_port",
                 "ftp_bad_pasv", "rtsp_bad_transport"):
        assert errors.get(kind, 0) >= 1, f"{kind} not counted: {errors}"
    assert status["signalling_packets"] >= len(malformed_signalling())
    # Both alive: the controller serves, and a new flow still gets through the switch.
    assert running.process is not None and running.process.poll() is None
    assert fetch_status(running.api).role == "primary"
    before = testbed.wire.received()
    testbed.wire.send(media_frame("10.9.1.1", "10.9.1.2", 7000, 7002))
    assert testbed.wire.wait_received(before + 1, timeout=5) == before + 1, "the switch forwards no more"


# ---- controller restart --------------------------------------------------------------------

def test_a_restarted_controller_adopts_the_sessions_and_ends_them(testbed):
    """The session table is rebuilt from the switch's entries (their metadata): a controller
    killed while a session is open is replaced by one that knows the session and removes its
    entries when the control connection closes."""
    assert testbed.wire is not None
    first = start_controller(testbed, {"ftp": [21]})
    frames = ftp_frames("10.5.0.1", "10.5.0.2", pasv_port=50123)
    for frame in frames[:5]:              # up to the 227 reply
        testbed.wire.send(frame)
        time.sleep(0.01)
    deadline = time.monotonic() + 10
    while session_status(first)["announced_entries"] != 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    written = session_status(first)
    assert written["announced_entries"] == 2 and written["sessions"] == 1, written
    first.kill()                          # SIGKILL: no goodbye
    second = start_controller(testbed, {"ftp": [21]})
    adopted = session_status(second)
    assert adopted["adopted"] == 2 and adopted["sessions"] == 1 and adopted["announced_entries"] == 2, adopted
    # The data connection the 227 announced, opened now: still the session's node.
    data = [bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.5.0.1", dst="10.5.0.2")
                  / TCP(sport=41000, dport=50123, flags=flags)) for flags in ("S", "A")]
    for frame in data:
        testbed.wire.send(frame)
    for frame in frames[5:]:              # QUIT, 221, FIN: the new tracker meets the flow mid-stream
        testbed.wire.send(frame)
        time.sleep(0.01)
    wait_quiet(testbed)
    ended = session_status(second)
    flows = flows_by_node(testbed)
    control = next(k for k in flows if 21 in (k[3], k[4]))
    data_key = next(k for k in flows if 50123 in (k[3], k[4]))
    assert node_of(flows, data_key) == node_of(flows, control)
    assert ended["hits"] == 1 and ended["ended"] == 1 and ended["announced_entries"] == 0, ended
