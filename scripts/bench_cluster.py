#!/usr/bin/env python3
"""HTTP through the emulated server cluster: requests/s and latency, four ways, same run.

  dispatcher + controller, round robin            } on the unequal cluster
  dispatcher + controller, fb_est, fixed ratio    } (20, 10, 5 Mbit/s backends)
  dispatcher + controller, fb_est, agents         }
  minimal_forward (one table, port -> port, each client tied to one backend): the baseline
    for what BMv2 costs without the dispatcher's stages and with no balancing decision.

"fixed ratio": the servers answer directly (DSR), so the switch sees only the clients' side;
fb_est turns it into load with the configured `visible_load_ratio`. "agents": every server
runs `python -m agent`, and the controller learns each backend's switch-to-served ratio from
what the server reports it sent (docs/health.md, Measured load).

The same clients (Poisson arrivals, object sizes from the built-in fb_hadoop model or --cdf) run against
each, one after the other, each on a fresh network. Prints achieved requests/s, p50/p99
latency, failures, connection shares against capacity shares, and the spread of per-second
utilisation (max/mean over the backends in each 1 s window: p50, p99 and mean over the
windows where the cluster is busy), with ratios against the baseline.

    sudo .venv/bin/python scripts/bench_cluster.py [--rate 30] [--duration 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Literal

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.cluster_demo import controlled, served_rate_per_second  # noqa: E402
from topo.health_bench import FaultOptions, free_udp_port, health_cluster  # noqa: E402
from topo.mininet_support import free_tcp_port, missing_mininet_reason  # noqa: E402
from topo.server_cluster import (  # noqa: E402
    ClusterHealthSpec,
    ServerCluster,
    ServerClusterSpec,
    read_connection_log,
)
from topo.static_pipeline import minimal_forward_updates  # noqa: E402

Program = Literal["dispatcher", "minimal_forward"]
VARIANTS: tuple[tuple[Program, str | None, bool], ...] = (
    ("minimal_forward", None, False), ("dispatcher", "round_robin", False),
    ("dispatcher", "fb_est", False), ("dispatcher", "fb_est", True))


def label_of(program: str, policy: str | None, agents: bool) -> str:
    if program == "minimal_forward":
        return program
    return f"{policy} agents" if agents else (f"{policy} fixed ratio" if policy == "fb_est" else str(policy))


def run_variant(program: Program, policy: str | None, agents: bool, args: argparse.Namespace, workdir: Path) -> dict:
    health = ClusterHealthSpec(period_s=1.0, agent_check="tcp", advisor="none", listen_port=free_udp_port()) \
        if agents else None
    spec = ServerClusterSpec(clients=args.clients, capacities_mbit=tuple(args.capacities), program=program,
                             policy=policy or "round_robin", grpc_port=free_tcp_port(),
                             thrift_port=free_tcp_port(), health=health)
    requests = max(1, round(args.rate * args.duration / spec.clients))

    def load(cluster: ServerCluster, start_servers: bool = True) -> tuple[dict, dict[str, list[dict]]]:
        """The clients' runs, and each server's connection log."""
        logs = cluster.start_http_servers() if start_servers else cluster.server_logs
        runs = cluster.run_clients(rate=args.rate / spec.clients, requests=requests, cdf=args.cdf,
                                   max_bytes=args.max_bytes, timeout=args.duration + 120)
        return runs, {name: read_connection_log(path) for name, path in logs.items()}

    if agents:
        # Servers and agents first, then the controller, every backend heard before the load
        with health_cluster(FaultOptions(period_s=1.0, advisor="none", agent_check="tcp"), workdir, spec) as (
                running, _):
            runs, connections = load(running, start_servers=False)
        return summarise(program, policy, agents, spec, runs, connections)
    cluster = ServerCluster(spec, workdir)
    if program == "minimal_forward":
        with cluster:
            client, info = cluster.connect()
            try:
                client.write(minimal_forward_updates(info, spec.minimal_forward_ports()))
                runs, connections = load(cluster)
            finally:
                client.close()
    else:
        with controlled(cluster, free_tcp_port()):
            runs, connections = load(cluster)
    return summarise(program, policy, agents, spec, runs, connections)


def summarise(program: str, policy: str | None, agents: bool, spec: ServerClusterSpec, runs: dict,
              connections: dict[str, list[dict]]) -> dict:
    records = [r for run in runs.values() for r in run.records]
    ok = [r for r in records if r.get("status") == 200 and not r.get("error")]
    latency = np.array([r["latency"] for r in ok]) * 1e3
    seconds = max(run.summary["seconds"] for run in runs.values())
    start = min(c["time"] for conns in connections.values() for c in conns)
    span = int(np.ceil(max(c["time"] + c["seconds"] for conns in connections.values() for c in conns) - start))
    capacity = {spec.backend_name(j): spec.capacities_mbit[j - 1] for j in spec.backend_indices()}
    util = np.array([served_rate_per_second(connections[n], start, span) * 8 / 1e6 / capacity[n] for n in capacity])
    busy = util.mean(axis=0) > 0.05
    ratio = util.max(axis=0)[busy] / util.mean(axis=0)[busy]

    def spread(q: float | None) -> float | None:
        if not ratio.size:
            return None
        return float(ratio.mean() if q is None else np.percentile(ratio, q))
    return {"program": program, "policy": policy, "agents": agents, "label": label_of(program, policy, agents),
            "requests": len(records), "failed": len(records) - len(ok),
            "requests_per_s": len(ok) / seconds,
            "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
            "max_over_mean_utilisation": spread(None),
            "max_over_mean_p50": spread(50), "max_over_mean_p99": spread(99),
            "capacity_share": {n: c / sum(capacity.values()) for n, c in capacity.items()},
            "connection_share": {n: len(connections[n]) / max(len(records), 1) for n in capacity},
            "byte_share": {n: sum(c.get("bytes") or 0 for c in connections[n]) /
                           max(sum(c.get("bytes") or 0 for conns in connections.values() for c in conns), 1)
                           for n in capacity}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="new connections/s over all clients")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--capacities", type=lambda s: [float(c) for c in s.split(",")], default=[20.0, 10.0, 5.0])
    parser.add_argument("--cdf", default="fb_hadoop")
    parser.add_argument("--max-bytes", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_cluster")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    reason = missing_mininet_reason("minimal_forward") or missing_mininet_reason()
    if reason:
        print(f"bench_cluster cannot run here: {reason}")
        return 77
    results = []
    for program, policy, agents in VARIANTS:
        label = label_of(program, policy, agents)
        print(f"{label}: {args.rate:g} connections/s for {args.duration:g} s ...", flush=True)
        results.append(run_variant(program, policy, agents, args, args.out / label.replace(" ", "-")))
    base = results[0]
    print(f"\n{'variant':20} {'req/s':>7} {'x base':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99 x base':>10} "
          f"{'failed':>6} {'max/mean p50':>12} {'p99':>5} {'mean':>5}  byte shares (capacity)")
    for r in results:
        shares = " ".join(f"{n} {s:.0%} ({r['capacity_share'][n]:.0%})" for n, s in r["byte_share"].items())
        p99_ratio = r["latency_p99_ms"] / base["latency_p99_ms"]
        print(f"{r['label']:20} {r['requests_per_s']:7.1f} {r['requests_per_s'] / base['requests_per_s']:7.2f} "
              f"{r['latency_p50_ms']:8.1f} {r['latency_p99_ms']:8.1f} {p99_ratio:10.2f} "
              f"{r['failed']:6d} {r['max_over_mean_p50'] or 0:12.2f} {r['max_over_mean_p99'] or 0:5.2f} "
              f"{r['max_over_mean_utilisation'] or 0:5.2f}  {shares}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
