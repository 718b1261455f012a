"""End to end in Mininet: BMv2, the real controller, HTTP clients and servers, tcpreplay and
tcpdump, and the demo command itself.

Needs root, Mininet and the P4 toolchain; skips with the reason otherwise. Every test takes
its network down whatever happens, and the last ones check nothing was left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from sim.shared_data import shared_data_dir, shared_data_reason
from topo.cluster_demo import DemoOptions, capture_summary, controlled, tshark_flows
from topo.generated_captures import write_generated_captures
from topo.lifetime import ProcessId
from topo.mininet_support import free_tcp_port, missing_mininet_reason
from topo.server_cluster import ServerCluster, ServerClusterSpec, read_connection_log
from workload.connections import Connection, ConnectionCount, count_connections

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(missing_mininet_reason() is not None, reason=str(missing_mininet_reason()))


def ports() -> dict[str, int]:
    return {"grpc_port": free_tcp_port(), "thrift_port": free_tcp_port()}


def wait_for(condition, timeout: float, what: str, state=lambda: "") -> None:
    """Wait for `condition`; on time-out, fail naming `what` and the `state()` then (readiness
    waits, generous on a loaded 2-core machine: they time nothing)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            try:
                seen = state()
            except Exception as error:  # the description must not hide the time-out
                seen = f"(state unreadable: {error!r})"
            pytest.fail(f"timed out waiting for {what} after {timeout:.0f} s; {seen}")
        time.sleep(0.1)


def connections_by_client(logs: dict[str, Path]) -> tuple[ConnectionCount, dict[str, list[Connection]]]:
    """The connections in the servers' own logs, and client ip:port -> its connections (a
    client port may be reused for a later connection)."""
    counted = count_connections({name: read_connection_log(path) for name, path in logs.items()})
    by_client: dict[str, list[Connection]] = defaultdict(list)
    for c in counted.connections:
        by_client[c.client].append(c)
    return counted, by_client


def test_backend_quiesced_drained_removed_and_readded_under_load_fails_no_request(tmp_path):
    spec = ServerClusterSpec(clients=3, capacities_mbit=(40.0, 40.0, 40.0), policy="round_robin", **ports())
    cluster = ServerCluster(spec, tmp_path)
    with controlled(cluster, free_tcp_port(), timers={"flow_idle_timeout_s": 2.0}) as embedded:
        controller = embedded.controller
        logs = cluster.start_http_servers()
        outcome = {}
        load = threading.Thread(target=lambda: outcome.update(runs=cluster.run_clients(
            rate=8, requests=320, cdf="fb_hadoop", max_bytes=200_000, timeout=120)))
        load.start()
        web3 = next(b for b in controller.pool if b.name == "web3").config

        def call(command: str, **args):
            return controller.submit(command, **args).result(timeout=10)

        def connections(name: str) -> int:
            return len(read_connection_log(logs[name]))

        def web3_state() -> str:
            status = controller.status()
            rows = [(b.name, b.state, f"ring {b.ring_share:.0%}", f"{connections(b.name)} connections")
                    for s in status.services for b in s.backends]
            return f"backends: {rows}; runs done: {'runs' in outcome}"

        time.sleep(4)
        call("quiesce", name="web3")
        quiesced_at = connections("web3")
        time.sleep(5)
        # A flow already decided may still arrive (its SYN was in flight), but no new ones.
        assert connections("web3") <= quiesced_at + 3
        call("activate", name="web3")
        wait_for(lambda: connections("web3") > quiesced_at + 5, 30, "web3 to take flows again", web3_state)
        call("drain", name="web3")
        wait_for(lambda: "web3" not in [b.name for b in controller.pool], 30, "web3 drained and removed", web3_state)
        time.sleep(2)
        assert call("add", service="web", backend=web3.model_dump()) == {"added": "web3"}
        readded_at = connections("web3")
        wait_for(lambda: connections("web3") > readded_at + 5, 30, "the re-added web3 to take flows", web3_state)
        # Removed outright (after a quiesce has let its flows finish), then back again.
        call("quiesce", name="web3")
        wait_for(lambda: controller.flows.table.per_backend[web3.id] == 0, 30, "web3's flows to end", web3_state)
        time.sleep(1.5)   # a cache timeout: no flow of web3's can still be pending
        assert call("remove", name="web3")["removed"] == "web3"
        time.sleep(2)
        assert call("add", service="web", backend=web3.model_dump()) == {"added": "web3"}
        load.join(timeout=120)
        assert "runs" in outcome, "clients did not finish"
    runs = outcome["runs"]
    failed = {name: run.summary["errors"] for name, run in runs.items() if run.summary["failed"]}
    assert not failed, f"failed requests: {failed}"
    # Every connection was served by exactly one server, at the time the client made it.
    counted, by_client = connections_by_client(logs)
    assert counted.split == [], f"split connections: {counted.split[:3]}"
    # Each request is the connection from its client port that began nearest its start (a
    # port closed by the server can be reused within a second), and no connection serves two.
    matched: set[int] = set()
    for run in runs.values():
        for request in run.records:
            made = [c for c in by_client[request["local"]]
                    if request["start"] - 1 <= c.start <= request["start"] + request["latency"] + 1]
            assert made, f"{request['local']} at {request['start']}: served by nobody"
            nearest = min(made, key=lambda c: abs(c.start - request["start"]))
            assert id(nearest) not in matched, f"{request['local']}: one connection for two requests"
            matched.add(id(nearest))
    assert counted.records == len(counted.connections) == 960


# Ethernet captures from the shared corpus with many flows of both directions (24 to 86 TCP
# flows each), no frame above 1514 bytes (TSO-sized frames cannot be replayed onto the links).
SHARED_CAPTURES = ("whatsapp.pcap", "instagram.pcap", "bittorrent.pcap", "zabbix.pcap", "android.pcap")


def capture_files(source: str, tmp_path: Path) -> list[Path]:
    """The captures to replay: the shared corpus's (skip when absent) or generated ones."""
    if source == "generated":
        return write_generated_captures(tmp_path / "generated")
    reason = shared_data_reason("pcaps")
    shared = shared_data_dir()
    if reason or shared is None:
        pytest.skip(f"shared capture corpus absent: {reason}")
    return [shared / "pcaps" / name for name in SHARED_CAPTURES]


@pytest.mark.parametrize("source", ["shared", "generated"])
def test_capture_cluster_keeps_whole_flows_on_one_node_with_the_controller(tmp_path, source):
    from topo.capture_cluster import CaptureCluster, CaptureClusterSpec
    captures = capture_files(source, tmp_path)
    spec = CaptureClusterSpec(probes=3, policy="round_robin", **ports())
    cluster = CaptureCluster(spec, tmp_path)
    with controlled(cluster, free_tcp_port()) as embedded:
        files = cluster.start_captures()
        for capture in captures:
            result = cluster.replay(capture, pps=500)
            assert result.failed == 0, f"{capture.name}: tcpreplay could not send {result.failed} frames"
        time.sleep(1.5)
        installed = embedded.controller.flows.stats.inserted
        cluster.stop_captures()
    summary = capture_summary(DemoOptions(topo="capture", policy="round_robin"), captures, files)
    print(json.dumps({n["name"]: n for n in summary["nodes"]}, indent=1))   # the per-node balance
    assert summary["captured_frames"] == summary["replayed_frames"], summary
    assert summary["flows_on_two_nodes"] == 0
    assert installed >= 1, "the controller installed the flows it was told about"
    # Whole flows in both directions: every flow replayed in both directions is stored at
    # its node in both directions.
    replayed = {}
    for capture in captures:
        replayed.update(tshark_flows(capture, directional=True))
    stored = {}
    for path in files.values():
        for flow, count in tshark_flows(path, directional=True).items():
            stored[flow] = stored.get(flow, 0) + count
    assert stored == replayed
    assert sum(1 for n in summary["nodes"] if n["frames"]) >= 2, "more than one node got traffic"


def test_the_capture_demo_runs_on_its_own_generated_captures(tmp_path):
    """No --captures and no ../shared: the demo generates captures, replays them, and every flow
    lands whole on one node."""
    out = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "p4dispatch", "demo", "--topo", "capture", "--policy",
                             "round_robin", "--out", str(out), "--api-port", str(free_tcp_port())],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True,
                            env={**os.environ, "COLUMNS": "120", "P4DISPATCH_SHARED_DATA": str(tmp_path / "none")})
    try:
        output, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 0, output[-3000:]
    assert "generated 3 captures" in output
    summary = json.loads((out / "capture-summary.json").read_text())
    assert summary["captures"] == ["generated-http.pcap", "generated-dns.pcap", "generated-mixed.pcap"]
    assert summary["captured_frames"] == summary["replayed_frames"] > 1000
    assert summary["flows_on_two_nodes"] == 0 and summary["flows"] > 100


# ---- the demo command itself -------------------------------------------------------------------

DEMO_NODES = ServerCluster(ServerClusterSpec(clients=DemoOptions().clients, capacities_mbit=DemoOptions().capacities),
                           Path("unused")).node_names()


@dataclass
class DemoRun:
    proc: subprocess.Popen
    out: Path
    below: list[ProcessId]       # processes below the demo once it served its first connections
    links: dict[str, int]        # its interfaces in this namespace then: name -> ifindex


@pytest.fixture
def demo(children, tmp_path):
    """Start `p4dispatch demo` (servers, 10 connections/s) as a child of the test and wait for
    its first connections; yields a function that does so and returns a DemoRun. However the
    test ends, the demo's whole process tree is ended (tests/conftest.py) and no interface it
    made stays behind. Interfaces are told apart by ifindex, not name alone: another run of
    this topology on the machine (a colliding test run) has the same names, and its
    interfaces are not ours to remove."""
    out = tmp_path / "demo"
    runs: list[DemoRun] = []

    def start(*wrapper: str) -> DemoRun:
        proc = children.start([*wrapper, sys.executable, "-m", "p4dispatch", "demo", "--duration", "60",
                               "--rate", "10", "--out", str(out), "--api-port", str(free_tcp_port())],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "COLUMNS": "120"})
        _wait_for_first_connections(proc, out)
        run = DemoRun(proc, out, children.note_descendants(proc), _demo_links())
        runs.append(run)
        return run
    try:
        yield start
    finally:
        children.end_all()
        # The hosts' namespaces (and the veth ends in them) go once their last process has;
        # the kernel frees them asynchronously. What is left after that is removed.
        for run in runs:
            _wait_for(lambda r=run: not _still_there(r.links), 15)
            for name in _still_there(run.links):
                subprocess.run(["ip", "link", "del", "dev", name], capture_output=True)


@pytest.mark.parametrize("how", ["switch killed", "SIGINT", "SIGTERM", "SIGINT, inherited ignored"])
def test_the_demo_stops_cleanly_on_a_dead_switch_or_a_stop_signal(demo, children, how):
    # "inherited ignored": as a background job of a non-interactive shell starts it; the demo
    # must install its handler anyway. Otherwise SIGINT and SIGTERM are at their defaults
    # (children.start), whatever this test run inherited.
    run = demo("env", "--ignore-signal=INT") if how == "SIGINT, inherited ignored" else demo()
    if how == "switch killed":
        # This demo's switch (a process below it), not any switch with these port names.
        switch = [p for p in run.below if "simple_switch_grpc" in _cmdline(p.pid)]
        assert switch, "the demo's switch is running"
        for p in switch:
            os.kill(p.pid, signal.SIGKILL)
    else:
        children.signal_group(run.proc, signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    output, _ = run.proc.communicate(timeout=60)
    expected = {"switch killed": (1, "the switch (simple_switch_grpc) died mid-run"),
                "SIGINT": (130, "interrupted (SIGINT): everything this run started has been stopped"),
                "SIGTERM": (143, "terminated (SIGTERM): everything this run started has been stopped"),
                "SIGINT, inherited ignored": (130, "interrupted (SIGINT)")}[how]
    assert run.proc.returncode == expected[0], output[-3000:]
    assert expected[1] in output, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    # Its own clean-up ended everything (Mininet's hosts' shells may take a moment to exit).
    _assert_nothing_left(run)


def test_a_killed_demo_leaves_no_switch_server_or_host_behind(demo):
    """SIGKILL: no clean-up runs; the switch, the servers, the hosts' shells die with the demo
    (parent-death signal), and with the shells their namespaces and links."""
    run = demo()
    assert any("simple_switch_grpc" in _cmdline(p.pid) for p in run.below), "the switch runs below the demo"
    assert any("mininet:web1" in _cmdline(p.pid) for p in run.below), "web1's shell runs below the demo"
    assert any(name.startswith("disp1-eth") for name in run.links), run.links
    os.kill(run.proc.pid, signal.SIGKILL)        # the demo alone, not its group: nothing else is told
    run.proc.wait(timeout=10)
    _assert_nothing_left(run)


def _wait_for_first_connections(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.monotonic() + 90
    while not any(r.get("client") for r in _all_server_records(out)):
        if proc.poll() is not None:
            pytest.fail(f"the demo ended ({proc.returncode}) before any connection:\n"
                        f"{proc.communicate()[0][-3000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the demo's first connections"
        time.sleep(0.2)


def _assert_nothing_left(run: DemoRun) -> None:
    """No process that ran below the demo, no server or client of this run, none of its
    interfaces (the kernel frees a namespace's links a moment after its last process has
    gone, hence the waits)."""
    _wait_for(lambda: not [p for p in run.below if p.alive()], 10)
    assert [(p.pid, _cmdline(p.pid)) for p in run.below if p.alive()] == [], "processes left"
    servers_run = str(run.out / "servers-run")
    assert not _pids("workload.http_server", servers_run) and not _pids("workload.load_client", servers_run), \
        "hosts' processes left"
    _wait_for(lambda: not _still_there(run.links), 15)
    assert _still_there(run.links) == []


def _demo_links() -> dict[str, int]:
    """Interfaces in this (the root) namespace named after the demo's nodes: name -> ifindex."""
    links = {}
    for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines():
        index, name = line.split(":", 2)[:2]        # "12: disp1-eth1@if11: <...>"
        name = name.strip().split("@")[0]
        if name in DEMO_NODES or any(name.startswith(f"{node}-eth") for node in DEMO_NODES):
            links[name] = int(index)
    return links


def _still_there(links: dict[str, int]) -> list[str]:
    """Which of these interfaces (name and ifindex) still exist."""
    now = _demo_links()
    return [name for name, index in links.items() if now.get(name) == index]


def _wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _all_server_records(out: Path) -> list[dict]:
    records = []
    for path in (out / "servers-run").glob("web*-connections.jsonl"):
        records += read_connection_log(path)
    return records


def _pids(*needles: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        cmdline = _cmdline(int(proc.name))
        if cmdline and all(n in cmdline for n in needles) and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids
