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
from pathlib import Path

import pytest

from sim.shared_data import shared_data_dir, shared_data_reason
from topo.cluster_demo import DemoOptions, capture_summary, controlled, tshark_flows
from topo.generated_captures import write_generated_captures
from topo.mininet_support import free_tcp_port, missing_mininet_reason
from topo.server_cluster import ServerCluster, ServerClusterSpec, read_connection_log

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(missing_mininet_reason() is not None, reason=str(missing_mininet_reason()))


def ports() -> dict[str, int]:
    return {"grpc_port": free_tcp_port(), "thrift_port": free_tcp_port()}


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def served_by(logs: dict[str, Path]) -> dict[str, list[tuple[str, float]]]:
    """client ip:port -> [(server, time)] from the servers' own connection logs."""
    seen: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for name, path in logs.items():
        for record in read_connection_log(path):
            seen[record["client"]].append((name, record["time"]))
    return seen


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

        time.sleep(4)
        call("quiesce", name="web3")
        quiesced_at = connections("web3")
        time.sleep(5)
        # A flow already decided may still arrive (its SYN was in flight), but no new ones.
        assert connections("web3") <= quiesced_at + 3
        call("activate", name="web3")
        wait_for(lambda: connections("web3") > quiesced_at + 5, 15, "web3 to take flows again")
        call("drain", name="web3")
        wait_for(lambda: "web3" not in [b.name for b in controller.pool], 20, "web3 drained and removed")
        time.sleep(2)
        assert call("add", service="web", backend=web3.model_dump()) == {"added": "web3"}
        readded_at = connections("web3")
        wait_for(lambda: connections("web3") > readded_at + 5, 15, "the re-added web3 to take flows")
        # Removed outright (after a quiesce has let its flows finish), then back again.
        call("quiesce", name="web3")
        wait_for(lambda: controller.flows.table.per_backend[web3.id] == 0, 20, "web3's flows to end")
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
    seen = served_by(logs)
    for run in runs.values():
        for request in run.records:
            servers = {s for s, t in seen[request["local"]] if abs(t - request["start"]) < 5}
            assert len(servers) == 1, f"{request['local']} served by {servers or 'nobody'}"
    assert sum(len(read_connection_log(p)) for p in logs.values()) == 960


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


@pytest.mark.parametrize("how", ["switch killed", "ctrl-c"])
def test_the_demo_stops_cleanly_on_a_dead_switch_or_ctrl_c(tmp_path, how):
    out = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "p4dispatch", "demo", "--duration", "60", "--rate", "10",
                             "--out", str(out), "--api-port", str(free_tcp_port())],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env={**os.environ, "COLUMNS": "120"})
    try:
        wait_for(lambda: any(r.get("client") for r in _all_server_records(out)), 60, "first connections")
        if how == "switch killed":
            switch = _pids("simple_switch_grpc", "disp1-eth")
            assert switch, "the demo's switch is running"
            for pid in switch:
                os.kill(pid, signal.SIGKILL)
        else:
            os.killpg(demo.pid, signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    if how == "switch killed":
        assert demo.returncode == 1, output[-3000:]
        assert "the switch (simple_switch_grpc) died mid-run" in output
    else:
        assert demo.returncode == 130, output[-3000:]
        assert "interrupted" in output
    assert "Traceback" not in output, output[-3000:]
    assert not _pids("simple_switch_grpc", "disp1-eth"), "switch left running"
    assert not _pids("workload.http_server") and not _pids("workload.load_client"), "hosts' processes left"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert not any(name in links for name in ("disp1-eth", "cl1-eth", "web1-eth", "ret1")), links


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
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if all(n in cmdline for n in needles) and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids
