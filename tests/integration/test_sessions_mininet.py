"""Session affinity on a VIP service in Mininet (issue 13, server mode): SIP servers (SIPp
`uas`, RTP echoed) on three backends behind BMv2 and the real controller, direct server
return, and SIPp placing 200 calls with RTP from a client. The switch sees the clients' side
only: each INVITE's SDP offer names the caller's media port, the controller sends the flows
from that port to the INVITE's backend, and the VIP's media ports are the service's
(`session_ports`). Checked on the wire: every backend's link is captured (tcpdump), and
tshark reads which INVITEs and which RTP streams reached it.

Needs root, Mininet, the P4 toolchain, SIPp and tshark; skips with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from sipp_support import G711_PCAP, ringing_uas_scenario, sipp_missing

from controller.cluster_app import ClusterController
from controller.config import Config
from topo.cluster_demo import controlled
from topo.controller_testbed import RunningController
from topo.mininet_support import free_tcp_port, links_named_after, missing_mininet_reason
from topo.multi_dispatcher import MultiDispatcherCluster, MultiDispatcherSpec, per_process_prefix
from topo.server_cluster import ServerCluster, ServerClusterSpec
from topo.toolchain import REPO

SIP_PORT = 5060
MEDIA_PORT = 16000          # every server's RTP port (uas -rtp_echo answers every call from it)
CALLER_MEDIA = 20000        # SIPp gives each call its own port from here
CALLS = 200
RING_MS = 300


def missing() -> str | None:
    reason = missing_mininet_reason()
    if reason:
        return reason
    for tool, package in (("tshark", "tshark"), ("tcpdump", "tcpdump")):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian package {package}; scripts/setup.sh installs it)"
    return sipp_missing()


pytestmark = pytest.mark.skipif(missing() is not None, reason=str(missing()))


def tshark_fields(pcap: Path, display_filter: str, *fields: str) -> list[list[str]]:
    args = ["tshark", "-r", str(pcap), "-n", "-d", f"udp.port=={SIP_PORT},sip", "-Y", display_filter,
            "-T", "fields", "-E", "separator=|"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [line.split("|") for line in out.splitlines() if line.strip()]


class BackendCaptures:
    """tcpdump on every backend's link from each dispatcher (eth0 from the one switch or from
    disp1, eth<k> from disp<k>), one pcap per link, stopped by `stop`: (backend, k) -> pcap."""

    def __init__(self, cluster: ServerCluster, workdir: Path, capture_filter: str,
                 dispatchers: Sequence[int] = (1,)) -> None:
        self.cluster = cluster
        self.files: dict[tuple[str, int], Path] = {}
        self._procs: list[subprocess.Popen] = []
        for j in cluster.spec.backend_indices():
            name = cluster.spec.backend_name(j)
            for k in dispatchers:
                intf = f"{name}-eth{0 if k == 1 else k}"     # MultiDispatcherSpec.backend_dispatcher_intf
                self.files[(name, k)] = workdir / f"{intf}.pcap"
                self._procs.append(cluster.processes.start(
                    cluster.host(name), ["tcpdump", "-i", intf, "-n", "-U", "-w", str(self.files[(name, k)]),
                                         capture_filter], f"tcpdump {intf}", output=workdir / f"{intf}-tcpdump.out"))

    def stop(self) -> dict[tuple[str, int], Path]:
        time.sleep(1.0)      # tcpdump writes what it has read before it is stopped: the last packets too
        for proc in self._procs:
            self.cluster.processes.stop(proc)
        return self.files


def test_sip_calls_media_reaches_the_backend_of_its_invite(tmp_path):
    spec = ServerClusterSpec(clients=1, capacities_mbit=(100.0, 100.0, 100.0), shape_backends=False,
                             vip_port=SIP_PORT, policy="round_robin", grpc_port=free_tcp_port(),
                             thrift_port=free_tcp_port())
    cluster = ServerCluster(spec, tmp_path)
    work = tmp_path / "sipp"
    work.mkdir()
    (work / "pcap").symlink_to(G711_PCAP.parent)     # uac_pcap plays pcap/g711a.pcap
    scenario = ringing_uas_scenario(work / "uas_ringing.xml", RING_MS)
    service = {"name": "sip", "protocol": "udp", "sessions": {"sip": [SIP_PORT]},
               "session_ports": [f"{MEDIA_PORT}-{MEDIA_PORT + 99}"]}
    with controlled(cluster, free_tcp_port(), timers={"flow_idle_timeout_s": 30.0}, service=service) as embedded:
        capturing = BackendCaptures(cluster, tmp_path, f"udp and dst host {spec.vip}")
        for j in spec.backend_indices():
            name = spec.backend_name(j)
            host = cluster.host(name)
            cluster.processes.start(host, ["sipp", "-sf", str(scenario), "-i", spec.vip, "-p", str(SIP_PORT),
                                           "-mi", spec.vip,
                                           "-mp", str(MEDIA_PORT), "-rtp_echo", "-nostdin", "-max_socket", "1000"],
                                    f"sipp uas {name}", output=tmp_path / f"{name}-uas.out", cwd=str(work))
        client = cluster.host(spec.client_name(1))
        caller = spec.client_address(1)
        # -t un: one socket (so one source port, one signalling flow) per call, which the
        # switch spreads over the servers; each call's RTP from its own port. At most 30 calls
        # at once: 1,000 RTP packets/s, which BMv2 on two shared cores forwards without loss.
        uac = cluster.run_in(client, ["sipp", f"{spec.vip}:{SIP_PORT}", "-sn", "uac_pcap", "-i", caller,
                                      "-p", "5070", "-t", "un", "-max_socket", "1000", "-mi", caller,
                                      "-mp", str(CALLER_MEDIA), "-m", str(CALLS), "-r", "8", "-l", "30",
                                      "-nostdin", "-timeout", "150", "-timeout_error"],
                             "sipp uac", timeout=180, cwd=str(work))
        captures = capturing.stop()
        counts = embedded.controller.sessions.table.counts
    assert uac.returncode == 0, f"SIPp's calls failed: {uac.stdout[-3000:]}"

    invites: dict[str, set[int]] = {}      # backend -> the caller media ports its INVITEs offered
    media: dict[int, set[str]] = defaultdict(set)    # caller media port -> backends its RTP reached
    for (name, _), pcap in captures.items():
        invites[name] = {int(port) for _, port in tshark_fields(pcap, 'sip.Method == "INVITE"', "sip.Call-ID",
                                                                  "sdp.media.port") if port}
        for (port,) in tshark_fields(pcap, f"udp.dstport == {MEDIA_PORT}", "udp.srcport"):
            media[int(port)].add(name)
    offered = [p for ports in invites.values() for p in ports]
    assert len(offered) == CALLS == len(set(offered)), f"{len(offered)} INVITEs seen, {len(set(offered))} distinct"
    assert len(media) == CALLS, f"RTP of {len(media)} calls seen on the backends"
    assert all(len(ports) >= CALLS // 6 for ports in invites.values()), \
        f"the switch did not spread the calls: {[len(v) for v in invites.values()]}"
    print(f"\nsession counts: {counts}")
    wrong = {port: sorted(reached) for port, reached in media.items()
             if reached != {next(n for n, ports in invites.items() if port in ports)}}
    assert not wrong, f"{len(wrong)} calls' RTP reached another backend than their INVITE: {wrong}"
    assert counts.missed == 0 and counts.hits >= CALLS, counts
    print(f"\nSIP server mode: {CALLS} calls over {[len(v) for v in invites.values()]} servers, RTP of every "
          f"call on its INVITE's server; {counts.hits} hits, {counts.missed} missed, {counts.ended} ended")


# ---- FTP: ftplib against pyftpdlib on every backend ---------------------------------------------

FTP_SESSIONS_PER_CLIENT = 4
PASSIVE_PORTS = (50000, 50099)
ACTIVE_SOURCE_PORTS = (40000, 40999)     # the servers' ephemeral ports: pyftpdlib's PORT data connections


def test_ftp_data_connections_reach_the_server_of_their_control_connection(tmp_path):
    """Three clients, four FTP sessions each, one after another (3 passive + 1 active transfers each), to
    pyftpdlib on three backends, with `affinity = "client"`. With DSR the switch sees the
    client's PASV and PORT, never the server's 227: the ring, hashing the client's address,
    sends all of a client's connections to one server from their first packet, and the control
    connection's `control` entry and PORT's entry say the same (they would cover a ring change
    meanwhile). A data connection on the wrong server finds no listener (refused) or no
    connection, so a complete transfer already says it reached its session's server; the
    backends' links say which server each SYN reached (active: the client's SYN-ACK)."""
    pytest.importorskip("pyftpdlib", reason="pyftpdlib not installed (requirements.txt)")
    spec = ServerClusterSpec(clients=3, capacities_mbit=(100.0, 100.0, 100.0), shape_backends=False,
                             vip_port=21, policy="round_robin", grpc_port=free_tcp_port(), thrift_port=free_tcp_port())
    cluster = ServerCluster(spec, tmp_path)
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "data.bin").write_bytes(bytes(range(256)) * 400)      # 100 KiB
    service = {"name": "ftp", "sessions": {"ftp": [21]}, "affinity": "client",
               "session_ports": [f"{low}-{high}" for low, high in (ACTIVE_SOURCE_PORTS, PASSIVE_PORTS)]}
    with controlled(cluster, free_tcp_port(), timers={"flow_idle_timeout_s": 30.0}, service=service) as embedded:
        capturing = BackendCaptures(cluster, tmp_path, f"tcp[tcpflags] & tcp-syn != 0 and dst host {spec.vip}")
        for j in spec.backend_indices():
            name = spec.backend_name(j)
            host = cluster.host(name)
            host.cmd(f"sysctl -w net.ipv4.ip_local_port_range='{ACTIVE_SOURCE_PORTS[0]} {ACTIVE_SOURCE_PORTS[1]}'")
            cluster.processes.start(host, [sys.executable, "-m", "pyftpdlib", "-i", spec.vip, "-p", "21",
                                           "-r", f"{PASSIVE_PORTS[0]}-{PASSIVE_PORTS[1]}", "-d", str(root)],
                                    f"ftpd {name}", output=tmp_path / f"{name}-ftpd.out")
        for j in spec.backend_indices():
            cluster.wait_for_listener(cluster.host(spec.backend_name(j)), 21)

        def sessions_of(i: int) -> list[dict | str]:
            done: list[dict | str] = []
            for _ in range(FTP_SESSIONS_PER_CLIENT):
                run = cluster.run_in(cluster.host(spec.client_name(i)),
                                     [sys.executable, "-m", "workload.ftp_client", "--server", spec.vip,
                                      "--passive", "3", "--active", "1", "--pause", "0.05"],
                                     f"ftp client {i}", timeout=60, cwd=str(REPO))
                done.append(json.loads(run.stdout) if run.returncode == 0 else f"client {i}: {run.stderr}")
            return done

        # One session at a time. With the three clients' sessions at once, 4 of 10 runs had a
        # session stall (ftplib's 10 s time-out) whose next connection never reached the
        # switch (no drop counted, no new flow seen): not understood yet (docs/sessions.md).
        outcomes = [s for i in spec.client_indices() for s in sessions_of(i)]
        captures = capturing.stop()
        counts = embedded.controller.sessions.table.counts
        time.sleep(0.3)      # the status is rebuilt at every counter poll
        status = embedded.controller.status()
    print(f"\nsession counts: {counts}; switch drops: {status.drops}; events: {status.events}")
    failed = [o for o in outcomes if isinstance(o, str)]
    assert not failed, f"FTP sessions failed: {failed}"
    results = [o for o in outcomes if isinstance(o, dict)]
    reached: dict[tuple[str, int], set[str]] = defaultdict(set)    # client (address, port) -> servers its SYN reached
    for (name, _), pcap in captures.items():
        for src, sport in tshark_fields(pcap, "tcp.flags.syn == 1", "ip.src", "tcp.srcport"):
            reached[(src, int(sport))].add(name)
    assert len(results) == spec.clients * FTP_SESSIONS_PER_CLIENT
    servers: Counter[str] = Counter()
    wrong = []
    for session in results:
        control = reached[tuple(session["control"])]
        assert len(control) == 1, f"control connection {session['control']} reached {control}"
        servers.update(control)
        for transfer in session["transfers"]:
            assert transfer["bytes"] == 256 * 400, transfer
            data = reached[tuple(transfer["local"])]
            if data != control:
                wrong.append((transfer["mode"], transfer["local"], sorted(data), sorted(control)))
    assert not wrong, f"data connections off their control connection's server: {wrong}"
    assert len(servers) >= 2, f"the switch did not spread the sessions: {servers}"
    print(f"FTP server mode: {len(results)} sessions on {dict(servers)}, {4 * len(results)} transfers complete, "
          f"every data connection on its control connection's server")


# ---- several dispatchers (issue 15) ---------------------------------------------------------------

def test_sip_media_through_two_dispatchers_reaches_the_backend_of_its_invite(tmp_path):
    """The SIP calls above through two BMv2 dispatchers behind the ECMP router and one
    ClusterController. A call's INVITE and its RTP are different 5-tuples, which the router
    hashes apart: the INVITE's copy comes from the switch that carried it, and the session's
    announced entries go to both switches, so the RTP reaches the INVITE's server whichever
    dispatcher carries it. Checked on every backend's link from each dispatcher."""
    spec = MultiDispatcherSpec(dispatchers=2, clients=1, capacities_mbit=(100.0, 100.0, 100.0),
                               shape_backends=False, vip_port=SIP_PORT, policy="round_robin",
                               switch_prefix=per_process_prefix(),
                               switch_ports=tuple((free_tcp_port(), free_tcp_port()) for _ in range(2)))
    cluster = MultiDispatcherCluster(spec, tmp_path)
    work = tmp_path / "sipp"
    work.mkdir()
    (work / "pcap").symlink_to(G711_PCAP.parent)
    scenario = ringing_uas_scenario(work / "uas_ringing.xml", RING_MS)
    try:
        cluster.start()
        config = cluster.cluster_config()
        config["timers"]["flow_idle_timeout_s"] = 30.0
        config["services"][0].update({"name": "sip", "protocol": "udp", "sessions": {"sip": [SIP_PORT]},
                                      "session_ports": [f"{MEDIA_PORT}-{MEDIA_PORT + 99}"]})
        running = RunningController(ClusterController(Config.model_validate(config), ecmp=cluster.ecmp()))
        controller: ClusterController = running.controller
        running.start()
        try:
            deadline = time.monotonic() + 30
            while len(controller.switch_set) < 2:
                assert time.monotonic() < deadline, "the controller did not serve both dispatchers"
                time.sleep(0.05)
            capturing = BackendCaptures(cluster, tmp_path, f"udp and dst host {spec.vip}", dispatchers=(1, 2))
            for j in spec.backend_indices():
                name = spec.backend_name(j)
                cluster.processes.start(cluster.host(name),
                                        ["sipp", "-sf", str(scenario), "-i", spec.vip, "-p", str(SIP_PORT),
                                         "-mi", spec.vip, "-mp", str(MEDIA_PORT), "-rtp_echo", "-nostdin",
                                         "-max_socket", "1000"],
                                        f"sipp uas {name}", output=tmp_path / f"{name}-uas.out", cwd=str(work))
            caller = spec.client_address(1)
            uac = cluster.run_in(cluster.host(spec.client_name(1)),
                                 ["sipp", f"{spec.vip}:{SIP_PORT}", "-sn", "uac_pcap", "-i", caller, "-p", "5070",
                                  "-t", "un", "-max_socket", "1000", "-mi", caller, "-mp", str(CALLER_MEDIA),
                                  "-m", str(CALLS), "-r", "8", "-l", "30", "-nostdin", "-timeout", "150",
                                  "-timeout_error"], "sipp uac", timeout=180, cwd=str(work))
            captures = capturing.stop()
            counts = controller.sessions.table.counts
        finally:
            running.stop()
    finally:
        cluster.stop()
    assert links_named_after(cluster.node_names()) == {}
    assert uac.returncode == 0, f"SIPp's calls failed: {uac.stdout[-3000:]}"

    invite_at: dict[int, tuple[str, int]] = {}     # caller media port -> (backend, dispatcher) of its INVITE
    rtp_at: dict[int, set[tuple[str, int]]] = defaultdict(set)     # ... -> where its RTP arrived
    for (name, k), pcap in captures.items():
        for _, port in tshark_fields(pcap, 'sip.Method == "INVITE"', "sip.Call-ID", "sdp.media.port"):
            if port:
                invite_at[int(port)] = (name, k)
        for (port,) in tshark_fields(pcap, f"udp.dstport == {MEDIA_PORT}", "udp.srcport"):
            rtp_at[int(port)].add((name, k))
    assert len(invite_at) == CALLS and len(rtp_at) == CALLS, (len(invite_at), len(rtp_at))
    wrong = {port: sorted(seen) for port, seen in rtp_at.items() if {n for n, _ in seen} != {invite_at[port][0]}}
    crossed = sum(1 for port, seen in rtp_at.items() if {k for _, k in seen} != {invite_at[port][1]})
    through = Counter(k for _, k in invite_at.values())
    print(f"\nSIP through 2 dispatchers: INVITEs through {dict(through)}, {crossed} calls' RTP through "
          f"another dispatcher than their INVITE, {len(wrong)} calls' RTP on another server; session counts {counts}")
    assert not wrong, f"{len(wrong)} calls' RTP reached another backend than their INVITE: {wrong}"
    assert set(through) == {1, 2}, "the router sent every INVITE through one dispatcher"
    assert crossed > 0, "no call's RTP took another dispatcher than its INVITE: nothing was shown"
    assert counts.missed == 0 and counts.hits >= CALLS, counts
