#!/usr/bin/env python3
"""HTTP through the emulated server cluster: requests/s and latency, three ways, same run.

  dispatcher + controller, round robin   } on the unequal cluster (20, 10, 5 Mbit/s backends)
  dispatcher + controller, fb_est        }
  minimal_forward (one table, port -> port, each client tied to one backend): the baseline
    for what BMv2 costs without the dispatcher's stages and with no balancing decision.

The same clients (Poisson arrivals, object sizes from the built-in fb_hadoop model or --cdf) run against
each, one after the other, each on a fresh network. Prints achieved requests/s, p50/p99
latency, failures and max/mean backend utilisation, with ratios against the baseline.

    sudo .venv/bin/python scripts/bench_cluster.py [--rate 30] [--duration 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.cluster_demo import controlled, served_rate_per_second  # noqa: E402
from topo.mininet_support import free_tcp_port, missing_mininet_reason  # noqa: E402
from topo.server_cluster import ServerCluster, ServerClusterSpec, read_connection_log  # noqa: E402
from topo.static_pipeline import minimal_forward_updates  # noqa: E402


def run_variant(program: str, policy: str | None, args: argparse.Namespace, workdir: Path) -> dict:
    spec = ServerClusterSpec(clients=args.clients, capacities_mbit=tuple(args.capacities), program=program,
                             policy=policy or "round_robin", grpc_port=free_tcp_port(),
                             thrift_port=free_tcp_port())
    cluster = ServerCluster(spec, workdir)
    requests = max(1, round(args.rate * args.duration / spec.clients))

    def load() -> tuple[dict, dict[str, list[dict]]]:
        """The clients' runs, and each server's connection log."""
        logs = cluster.start_http_servers()
        runs = cluster.run_clients(rate=args.rate / spec.clients, requests=requests, cdf=args.cdf,
                                   max_bytes=args.max_bytes, timeout=args.duration + 120)
        return runs, {name: read_connection_log(path) for name, path in logs.items()}

    if program == "minimal_forward":
        with cluster:
            client, info = cluster.connect()
            try:
                client.write(minimal_forward_updates(info, spec.minimal_forward_ports()))
                runs, connections = load()
            finally:
                client.close()
    else:
        with controlled(cluster, free_tcp_port()):
            runs, connections = load()
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
    return {"program": program, "policy": policy, "requests": len(records), "failed": len(records) - len(ok),
            "requests_per_s": len(ok) / seconds,
            "latency_p50_ms": float(np.percentile(latency, 50)), "latency_p99_ms": float(np.percentile(latency, 99)),
            "max_over_mean_utilisation": float(ratio.mean()) if ratio.size else None,
            "connection_share": {n: len(connections[n]) / max(len(records), 1) for n in capacity}}


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
    for program, policy in (("minimal_forward", None), ("dispatcher", "round_robin"), ("dispatcher", "fb_est")):
        label = f"{program} {policy or ''}".strip()
        print(f"{label}: {args.rate:g} connections/s for {args.duration:g} s ...", flush=True)
        results.append(run_variant(program, policy, args, args.out / label.replace(" ", "-")))
    base = results[0]
    print(f"\n{'variant':28} {'req/s':>7} {'x base':>7} {'p50 ms':>8} {'p99 ms':>8} {'p99 x base':>10} "
          f"{'failed':>6} {'max/mean util':>13}  connection shares")
    for r in results:
        label = f"{r['program']} {r['policy'] or ''}".strip()
        shares = " ".join(f"{n} {s:.0%}" for n, s in r["connection_share"].items())
        p99_ratio = r["latency_p99_ms"] / base["latency_p99_ms"]
        print(f"{label:28} {r['requests_per_s']:7.1f} {r['requests_per_s'] / base['requests_per_s']:7.2f} "
              f"{r['latency_p50_ms']:8.1f} {r['latency_p99_ms']:8.1f} {p99_ratio:10.2f} "
              f"{r['failed']:6d} {r['max_over_mean_utilisation'] or 0:13.2f}  {shares}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
