"""The emulated clusters in Mininet with BMv2, real clients, servers, tcpreplay and tcpdump.

Needs root, Mininet and simple_switch_grpc; each test skips with the reason otherwise.
Every test builds its own network and takes it down in a `finally`, failed or not: no
process, namespace or interface is left behind (test_stop_leaves_nothing_behind checks).
Traffic stays inside the namespaces the test made.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from controller.config import Config
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.p4runtime.encoding import address_from_flow
from sim.shared_data import shared_data_dir
from topo.capture_cluster import CaptureCluster, CaptureClusterSpec
from topo.flow_installer import FlowInstaller
from topo.mininet_support import free_tcp_port, missing_mininet_reason, remove_leftover_links
from topo.server_cluster import ServerCluster, ServerClusterSpec, read_connection_log
from topo.static_pipeline import dispatcher_updates, minimal_forward_updates
from workload.connections import count_connections

REPO = Path(__file__).resolve().parents[2]
SHARED = shared_data_dir()
PCAPS = SHARED / "pcaps" if SHARED else Path("../shared/data/pcaps")
REPLAYED = ["ftp.pcap", "sip.pcap", "smtp.pcap"]      # Ethernet; 4 TCP and 4 UDP flows, 416 frames


def skip_unless_mininet(program: str = "dispatcher") -> None:
    reason = missing_mininet_reason(program)
    if reason:
        pytest.skip(reason)


def fresh_ports() -> dict[str, int]:
    """Ports of our own: a demo or PTF run may hold 9559/9090 at the same time."""
    return {"grpc_port": free_tcp_port(), "thrift_port": free_tcp_port()}


@pytest.fixture
def server_cluster(request, tmp_path):
    """A running server cluster; the spec comes from @pytest.mark.parametrize(indirect) or defaults."""
    params = getattr(request, "param", {})
    skip_unless_mininet(params.get("program", "dispatcher"))
    spec = ServerClusterSpec(**{"clients": 2, "capacities_mbit": (20.0, 10.0, 5.0), **params, **fresh_ports()})
    cluster = ServerCluster(spec, tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def dispatcher(server_cluster):
    """The dispatcher pipeline and the cluster's configuration on the switch, and a flow
    installer in the controller's place; yields (client, tables, installer)."""
    client, info = server_cluster.connect()
    installer = None
    try:
        tables = DispatcherTables(info)
        config = Config.model_validate(server_cluster.controller_config())
        client.write(dispatcher_updates(tables, config))
        installer = FlowInstaller(client, tables)
        installer.start()
        yield client, tables, installer
    finally:
        if installer is not None:
            installer.stop()
        client.close()


# ---- server cluster, dispatcher program -------------------------------------------------------

def test_vip_connections_spread_over_backends_each_seen_once(server_cluster, dispatcher):
    client, tables, installer = dispatcher
    logs = server_cluster.start_http_servers()
    runs = server_cluster.run_clients(rate=50, requests=100, cdf="fb_hadoop", max_bytes=100_000)

    for run in runs.values():
        assert run.summary["failed"] == 0, f"{run.client}: {run.summary['errors']}"
        assert run.summary["ok"] == 100
    requests = [r["local"] for run in runs.values() for r in run.records]
    served = {name: [c["client"] for c in read_connection_log(path)] for name, path in logs.items()}
    # Per-connection consistency, seen from the servers: each connection at exactly one, once.
    # (A connection, not a client port: a port reused after its connection closed, and sent
    # elsewhere, is a new connection; workload/connections.py.)
    counted = count_connections({name: read_connection_log(path) for name, path in logs.items()})
    assert counted.split == [], counted.split[:5]
    where = defaultdict(list)
    for connection in counted.connections:
        where[connection.client] += connection.servers
    assert all(where[r] for r in requests), [r for r in requests if not where[r]][:5]
    assert counted.records == len(counted.connections) == len(requests) == 200
    # Spread by the ring, weighted by capacity 20:10:5 (4:2:1 of 200 connections).
    counts = {name: len(c) for name, c in served.items()}
    assert all(counts.values()), counts
    assert counts["web1"] > counts["web3"], counts
    # The switch's own record agrees: each `flows` entry names the backend that served it.
    backend_name = {server_cluster.spec.backend_id(j): server_cluster.spec.backend_name(j)
                    for j in server_cluster.spec.backend_indices()}
    installed = {f"{address_from_flow(key[0])}:{key[3]}": backend_name[b]      # "ip:port" -> backend
                 for key, b in installer.installed.items()}
    assert len(installed) >= 0.9 * len(requests), "digests lost or flows not installed"
    assert all(name in where[conn] for conn, name in installed.items())
    assert server_cluster.switch.alive()


def test_backend_capacities_limit_their_responses(server_cluster):
    """Each backend's return link is shaped to its capacity: a token bucket (tbf) at that rate
    on its end of the return link, which holds back its responses, so that a transfer of
    several seconds from it never goes faster than the capacity.

    Only the upper bound is asserted: it is what a shaper guarantees. How close a transfer
    comes to it depends on the CPU (7.5 of 10 Mbit/s on a busy 2-core machine), so a lower
    bound on a rate would test the machine, not the shaper. Without shaping the test fails:
    no tbf at the capacity, no packet held back, and a rate far above it.
    """
    server_cluster.start_http_servers()
    spec = server_cluster.spec
    measured = {}
    for j, mbit in zip(spec.backend_indices(), spec.capacities_mbit):
        backend = server_cluster.host(spec.backend_name(j))
        device = f"{backend.name}-eth1"
        before = _root_qdisc(backend, device)
        # Its configured rate: Mininet's TCIntf asks tc for `rate <bw>Mbit`; tc says bytes/s.
        assert before["kind"] == "tbf", f"{device}: no token bucket: {before}"
        assert before["options"]["rate"] == pytest.approx(mbit * 1e6 / 8, rel=0.01), before
        size = int(mbit * 1e6 / 8 * 4)          # 4 s worth at the capacity: the 15 kB burst is < 1 %
        result = server_cluster.run_in(
            server_cluster.host(spec.client_name(1)),
            [sys.executable, "-m", "workload.load_client", "--rate", "100", "--requests", "1", "--size", str(size),
             "--target", f"{spec.backend_address(j)}:{spec.vip_port}"],   # its own address: the return path
            "capacity probe", timeout=60, cwd=str(REPO))
        assert result.returncode == 0, result.stdout + result.stderr
        summary = json.loads(result.stdout.strip().splitlines()[-1])
        after = _root_qdisc(backend, device)
        seconds = summary["latency_p50_s"]
        sent = after["bytes"] - before["bytes"]          # headers included: what tbf paces
        measured[backend.name] = {"capacity": mbit, "goodput": size * 8 / seconds / 1e6,
                                  "wire": sent * 8 / seconds / 1e6,
                                  "held_back": after["overlimits"] - before["overlimits"],
                                  "dropped": after["drops"] - before["drops"]}
        assert sent >= size, f"{device}: the response did not pass the shaper ({sent} of {size} bytes)"
    for name, m in measured.items():
        assert m["held_back"] > 0, f"{name}: the token bucket never held a packet back: {measured}"
        assert m["wire"] <= 1.05 * m["capacity"], f"{name} sent faster than its capacity: {measured}"
        assert m["goodput"] <= m["wire"], measured
    print(json.dumps(measured, indent=1))


def _root_qdisc(host, device: str) -> dict:
    """tc's own record of the device's root qdisc in the host's namespace: kind, options and
    counters since it was made (bytes, packets, drops, overlimits)."""
    out = host.cmd(f"tc -s -j qdisc show dev {device}")
    try:
        qdiscs = json.loads(out)
    except json.JSONDecodeError:
        raise AssertionError(f"{host.name}: tc -s -j qdisc show dev {device}: {out!r}") from None
    roots = [q for q in qdiscs if q.get("root")]
    assert len(roots) == 1, qdiscs
    return roots[0]


# ---- server cluster, minimal forwarding program (benchmark baseline) --------------------------

@pytest.mark.parametrize("server_cluster", [{"program": "minimal_forward", "capacities_mbit": (50.0, 50.0)}],
                         indirect=True)
def test_minimal_forward_baseline(server_cluster):
    client, info = server_cluster.connect()
    try:
        client.write(minimal_forward_updates(info, server_cluster.spec.minimal_forward_ports()))
        logs = server_cluster.start_http_servers()
        runs = server_cluster.run_clients(rate=50, requests=50, cdf="fb_hadoop", max_bytes=100_000)
    finally:
        client.close()
    assert all(run.summary["failed"] == 0 for run in runs.values()), [r.summary for r in runs.values()]
    # No dispatch: client i's every connection reached its fixed backend.
    for i in server_cluster.spec.client_indices():
        mine = {r["local"] for r in runs[f"cl{i}"].records}
        assert mine <= {c["client"] for c in read_connection_log(logs[f"web{i}"])}


# ---- the switch process ------------------------------------------------------------------------

def test_stop_leaves_nothing_behind(tmp_path):
    """Even with the switch killed mid-run: alive() says so, and stop() removes every process
    and interface the cluster made."""
    skip_unless_mininet()
    cluster = ServerCluster(ServerClusterSpec(clients=1, capacities_mbit=(10.0,), **fresh_ports()), tmp_path)
    try:
        cluster.start()
        client, _ = cluster.connect()
        client.close()
        cluster.start_http_servers()
        switch = cluster.switch
        pids = [proc.pid for _, proc in cluster.processes.procs] + [switch.process.pid]
        assert switch.alive()
        os.kill(switch.process.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while switch.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not switch.alive()
    finally:
        cluster.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert remove_leftover_links(cluster.node_names()) == []


def test_a_switch_that_dies_at_start_says_why(tmp_path):
    skip_unless_mininet()
    from topo.mininet_bmv2 import Bmv2P4RuntimeSwitch, SwitchStartError

    switch = Bmv2P4RuntimeSwitch("fdx1", log_file=tmp_path / "bmv2", log_level="no-such-level",
                                 output_file=tmp_path / "fdx1.out", **fresh_ports())
    try:
        with pytest.raises(SwitchStartError, match="no-such-level"):
            switch.start([])
        assert not switch.alive()
    finally:
        switch.stop()
        switch.terminate()


# ---- capture cluster ---------------------------------------------------------------------------

@pytest.fixture
def capture_cluster(tmp_path):
    skip_unless_mininet()
    missing = [p for p in REPLAYED if not (PCAPS / p).exists()]
    if missing:
        pytest.skip(f"shared capture corpus absent: {', '.join(missing)} not in {PCAPS}")
    cluster = CaptureCluster(CaptureClusterSpec(probes=3, **fresh_ports()), tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def tshark_flows(path: Path) -> Counter:
    """Packets per connection (both directions one key) in a capture file, read by tshark."""
    out = subprocess.run(["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,",
                          "-e", "ip.src", "-e", "ip.dst", "-e", "ip.proto",
                          "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "udp.srcport", "-e", "udp.dstport"],
                         capture_output=True, text=True, check=True).stdout
    flows = Counter()
    for line in out.splitlines():
        src, dst, proto, *ports = line.split(",")
        sport, dport = [p for p in ports if p] or ["", ""]
        flows[(proto, *sorted([(src, sport), (dst, dport)]))] += 1
    return flows


def test_capture_replay_reaches_capture_nodes_one_node_per_connection(capture_cluster):
    client, info = capture_cluster.connect()
    installer = None
    try:
        tables = DispatcherTables(info)
        client.write(dispatcher_updates(tables, Config.model_validate(capture_cluster.controller_config())))
        installer = FlowInstaller(client, tables)
        installer.start()
        capture_cluster.start_captures()
        sent = sum(capture_cluster.replay(PCAPS / name).sent for name in REPLAYED)
        time.sleep(0.5)           # the last frames through BMv2
        files = capture_cluster.stop_captures()
        drops = tables.read_counter(client, "drops")
    finally:
        if installer is not None:
            installer.stop()
        client.close()

    assert sent == 416
    per_node = {name: tshark_flows(path) for name, path in files.items()}
    captured = sum(sum(flows.values()) for flows in per_node.values())
    assert captured == sent, f"{captured} of {sent} frames captured; switch drops: {drops}"
    nodes_of = defaultdict(set)
    for name, flows in per_node.items():
        for flow in flows:
            nodes_of[flow].add(name)
    assert len(nodes_of) == 8
    assert all(len(nodes) == 1 for nodes in nodes_of.values()), nodes_of
    assert len({n for nodes in nodes_of.values() for n in nodes}) >= 2, "all flows on one node"
    assert capture_cluster.switch.alive()


def test_a_cluster_whose_switch_cannot_start_cleans_up(tmp_path):
    """The gRPC port is taken: start() fails with the reason and leaves no host or link."""
    skip_unless_mininet()
    ports = fresh_ports()
    cluster = ServerCluster(ServerClusterSpec(clients=1, capacities_mbit=(10.0,), **ports), tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["grpc_port"]))
        squatter.listen()
        try:
            with pytest.raises(Exception, match="already in use"):
                cluster.start()
        finally:
            cluster.stop()
    assert remove_leftover_links(cluster.node_names()) == []


def test_a_running_network_of_the_same_names_is_left_alone(server_cluster, tmp_path):
    """A second cluster with the same node names refuses to start rather than clean up the
    running one's interfaces as if they were leftovers."""
    spec = ServerClusterSpec(clients=1, capacities_mbit=(10.0,), **fresh_ports())
    second = ServerCluster(spec, tmp_path / "second")
    with pytest.raises(RuntimeError, match="is running"):
        second.start()
    assert server_cluster.switch.alive()
    assert Path("/sys/class/net/disp1-eth1").exists()
