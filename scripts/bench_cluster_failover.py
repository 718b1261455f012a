#!/usr/bin/env python3
"""Several dispatchers under many short connections, with 1, 2 and 3 switches in one run
(issue 15, docs/multiswitch.md): new flows installed per second, entries written per flow,
the controller's CPU per flow, and, with 2 or more, a dispatcher killed under that load.

For each N: the Mininet cluster of N BMv2 dispatchers behind the ECMP router
(topo/multi_dispatcher.py), the real controller in this process (Controller for one switch,
ClusterController driving the ECMP group for more), HTTP clients opening short connections
(Poisson arrivals, fb_hadoop sizes up to --max-bytes) for --duration s. With N >= 2, disp1
is SIGKILLed at --kill-at s and restarted 3 s later. Printed per N, with ratios against N = 1:

* connections, failed ones, and those in flight on any switch at the kill that failed;
* connections served by more than one server (the server logs; must be 0);
* home entries (flows installed) per second over the run and the entries written per flow
  (home + replicas + own entries);
* the controller's CPU: process_time of this process over the run (the controller's threads;
  the benchmark itself only waits), per second of the run and per installed flow (at low
  rates the per-flow figure is mostly the polling and policy work every turn does anyway);
* own entries and cross-switch splits (docs/multiswitch.md case (C)), keys reused by a new
  connection on another switch, and the time until the dead switch left the ECMP group.

    sudo .venv/bin/python scripts/bench_cluster_failover.py [--rate 40] [--duration 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from controller.app import Controller  # noqa: E402
from controller.cluster_app import ClusterController  # noqa: E402
from controller.config import Config  # noqa: E402
from topo.controller_testbed import RunningController  # noqa: E402
from topo.mininet_support import free_tcp_port, missing_mininet_reason  # noqa: E402
from topo.multi_dispatcher import MultiDispatcherCluster, MultiDispatcherSpec, per_process_prefix  # noqa: E402
from topo.server_cluster import read_connection_log  # noqa: E402
from workload.connections import count_connections  # noqa: E402


def wait_for(done, timeout: float) -> float | None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)
    return time.monotonic()


def run(n: int, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    spec = MultiDispatcherSpec(dispatchers=n, clients=2, capacities_mbit=(20.0, 10.0, 5.0),
                               switch_prefix=per_process_prefix(),
                               switch_ports=tuple((free_tcp_port(), free_tcp_port()) for _ in range(n)))
    cluster = MultiDispatcherCluster(spec, workdir)
    cluster.start()
    try:
        ecmp = cluster.ecmp() if n > 1 else None
        settings = cluster.cluster_config() if n > 1 else cluster.switch_config(1)
        if args.cache_timeout_ms is not None:
            settings["timers"]["cache_timeout_ms"] = args.cache_timeout_ms
        controller = (ClusterController(Config.model_validate(settings), ecmp=ecmp) if n > 1
                      else Controller(Config.model_validate(settings)))
        running = RunningController(controller)
        running.start()
        try:
            serving = (lambda: len(controller.switch_set) == n) if isinstance(controller, ClusterController) \
                else (lambda: controller.role == "primary")
            if wait_for(serving, 60) is None:
                raise RuntimeError(f"the controller did not serve {n} switches within 60 s")
            cluster.start_http_servers()
            cpu0, wall0 = time.process_time(), time.monotonic()
            inserted0 = controller.flows.stats.inserted
            clients = cluster.start_clients(rate=args.rate / spec.clients, duration=args.duration,
                                            cdf="fb_hadoop", max_bytes=args.max_bytes, request_timeout=60)
            kill: dict[str, Any] = {}
            kill_wall: float | None = None
            if n > 1:
                time.sleep(args.kill_at)
                kill_wall, killed = time.time(), time.monotonic()
                cluster.kill_dispatcher(1)
                removed = wait_for(lambda: 1 not in cluster.members, 10)
                kill["out_of_group_ms"] = None if removed is None else round((removed - killed) * 1e3)
                time.sleep(3)
                cluster.restart_dispatcher(1)
                back = wait_for(lambda: 1 in cluster.members, 60)
                kill["back_in_group_s"] = None if back is None else round(back - killed, 2)
            runs = cluster.finish_clients(clients, timeout=args.duration + 120)
            if ecmp is not None and kill_wall is not None:
                # Every change of the group, in seconds from the kill.
                kill["ecmp_changes"] = [(round(at - killed, 2), verb, k) for at, verb, k in ecmp.changes]
            # The last flows' entries are written within a digest and a turn of their ACK.
            time.sleep(1.0)
            wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
            inserted = controller.flows.stats.inserted - inserted0
            status = controller.cluster_status() if isinstance(controller, ClusterController) else None
        finally:
            running.stop()
        logs = {name: read_connection_log(path) for name, path in cluster.server_logs.items()}
    finally:
        cluster.stop()
    records = [r for run_ in runs.values() for r in run_.records]
    failed = [r for r in records if r.get("error")]
    at_kill = [r for r in records
               if kill_wall is not None and r["start"] < kill_wall < r["start"] + (r.get("elapsed") or 0)]
    counted = count_connections(logs)
    replicas = (status.replicas_written + status.restored_replicas) if status else 0
    own = status.own_entries if status else 0
    return {
        "switches": n, "connections": len(records), "failed": len(failed),
        "errors": dict(Counter(str(r["error"])[:80] for r in failed)),
        # When each failed connection started and ended, in seconds from the kill.
        "failed_vs_kill_s": [(round(r["start"] - kill_wall, 2),
                              round(r["start"] + (r.get("elapsed") or 0) - kill_wall, 2))
                             for r in failed] if kill_wall is not None else [],
        "in_flight_at_kill": len(at_kill), "failed_in_flight_at_kill": sum(1 for r in at_kill if r.get("error")),
        "served_by_two_servers": len(counted.split),
        "flows_installed": inserted, "installed_per_s": round(inserted / wall, 1),
        "entries_per_flow": round((inserted + replicas + own) / inserted, 2) if inserted else None,
        "controller_cpu_us_per_flow": round(cpu / inserted * 1e6) if inserted else None,
        "controller_cpu_share": round(cpu / wall, 3),
        "replicas": replicas, "own_entries": own,
        "cross_switch_splits": status.cross_switch_splits if status else 0,
        "reused_keys": status.reused_keys if status else 0, **kill,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--switches", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rate", type=float, default=40.0, help="new connections per second, all clients")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of arrivals")
    parser.add_argument("--kill-at", type=float, default=8.0, help="seconds into the load disp1 is killed (N >= 2)")
    parser.add_argument("--max-bytes", type=int, default=200_000, help="largest object (fb_hadoop sizes)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cache-timeout-ms", type=int, help="T_c (default: the topology's, 1000)")
    parser.add_argument("--log", type=Path, help="the controller's log (INFO) to this file")
    parser.add_argument("--keep", type=Path, help="keep the clients' records and servers' logs under this directory")
    args = parser.parse_args()
    if args.log:
        logging.basicConfig(filename=args.log, level=logging.INFO,
                            format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    reason = missing_mininet_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        for n in args.switches:
            print(f"{n} switch(es): {args.rate:g} connections/s for {args.duration:g} s ...", flush=True)
            workdir = (args.keep or Path(tmp)) / f"n{n}"
            workdir.mkdir(parents=True, exist_ok=True)
            results.append(run(n, args, workdir))
            print("  " + json.dumps(results[-1]), flush=True)
    base = next((r for r in results if r["switches"] == 1), None)
    print(f"\n{'switches':>8} {'conns':>6} {'failed':>6} {'in flight':>9} {'split srv':>9} {'flows/s':>8} "
          f"{'entries/flow':>12} {'CPU share':>9} {'CPU us/flow':>11} {'own':>4} {'splits':>6} {'out ms':>6}")
    for r in results:
        ratio = (f" ({r['controller_cpu_us_per_flow'] / base['controller_cpu_us_per_flow']:.2f}x CPU)"
                 if base and r is not base and base["controller_cpu_us_per_flow"] and r["controller_cpu_us_per_flow"]
                 else "")
        in_flight = f"{r['failed_in_flight_at_kill']}/{r['in_flight_at_kill']}" if r["switches"] > 1 else "-"
        print(f"{r['switches']:>8} {r['connections']:>6} {r['failed']:>6} {in_flight:>9} "
              f"{r['served_by_two_servers']:>9} {r['installed_per_s']:>8} {r['entries_per_flow']!s:>12} "
              f"{r['controller_cpu_share']:>9} "
              f"{r['controller_cpu_us_per_flow']!s:>11} {r['own_entries']:>4} {r['cross_switch_splits']:>6} "
              f"{r.get('out_of_group_ms', '-')!s:>6}{ratio}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 1 if any(r["served_by_two_servers"] or r["failed_in_flight_at_kill"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
