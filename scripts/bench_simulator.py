"""Simulator replay throughput (packets/s) and peak memory on a generated workload.

Runs each policy in its own process (so peak memory is its own) on a websearch workload
of --packets packets (default 10 M) over 3 servers at load 0.8, and once more at a fifth
of the packets to show that memory follows active flows, not the trace length.

    .venv/bin/python scripts/bench_simulator.py [--packets 10000000] [--policies round_robin,fb_est]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from itertools import takewhile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def one_run(policy_name: str, packets: int, seed: int) -> dict:
    import numpy as np

    from controller.policies import make_policy
    from sim.cli import GBIT, MBIT
    from sim.engine import Simulation, SimulationConfig
    from sim.flow_sizes import flow_size_distribution
    from sim.workload import PACKET_BYTES, GeneratedWorkload, WorkloadSpec

    capacity = np.full(3, GBIT)
    offered = 0.8 * capacity.sum()
    # Enough seconds of arrivals for the packet budget; the source is cut at the budget.
    duration = packets * PACKET_BYTES / offered * 1.2
    spec = WorkloadSpec(cdf=flow_size_distribution("websearch"), offered_rate=offered, duration=duration,
                        flow_rate=(8 * MBIT, 200 * MBIT), seed=seed)

    class Budgeted:
        """The workload, stopped once `packets` packets have been produced."""
        def __init__(self) -> None:
            self.source = GeneratedWorkload(spec)
            self.duration = duration
            self.produced = 0

        def batches(self, interval):
            def under_budget(batch):
                self.produced += batch.packet_time.size
                return self.produced - batch.packet_time.size < packets
            return takewhile(under_budget, self.source.batches(interval))

    source = Budgeted()
    simulation = Simulation(SimulationConfig(capacity), make_policy(policy_name))
    start = time.perf_counter()
    result = simulation.run(source)
    seconds = time.perf_counter() - start
    return {"policy": policy_name, "packets": result.summary.packets, "seconds": seconds,
            "packets_per_s": result.summary.packets / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "flow_slots": simulation.flows.size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=10_000_000)
    parser.add_argument("--policies", default="round_robin,fb_est")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--one", help=argparse.SUPPRESS)   # child process: one policy, JSON out
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.packets, args.seed)))
        return 0

    def child(policy: str, packets: int) -> dict:
        out = subprocess.run([sys.executable, __file__, "--one", policy, "--packets", str(packets),
                              "--seed", str(args.seed)], check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    runs = []
    print(f"{'policy':<14} {'packets':>11} {'seconds':>8} {'packets/s':>12} {'peak RSS MB':>12} {'flow slots':>10}")
    for policy in args.policies.split(","):
        for packets in (args.packets // 5, args.packets):
            r = child(policy, packets)
            runs.append(r)
            print(f"{r['policy']:<14} {r['packets']:>11,} {r['seconds']:>8.2f} {r['packets_per_s']:>12,.0f} "
                  f"{r['peak_rss_mb']:>12.1f} {r['flow_slots']:>10,}")
    full = [r for r in runs if r["packets"] >= args.packets]
    fifth = [r for r in runs if r["packets"] < args.packets]
    base = full[0]
    for r in full[1:]:
        print(f"{r['policy']} / {base['policy']}: throughput x{r['packets_per_s'] / base['packets_per_s']:.2f}, "
              f"peak memory x{r['peak_rss_mb'] / base['peak_rss_mb']:.2f}")
    for small, big in zip(fifth, full):
        print(f"{big['policy']}: {big['packets'] / small['packets']:.1f}x the packets -> "
              f"peak memory x{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}")
    target = 1_000_000
    ok = base["packets_per_s"] >= target
    print(f"target >= {target:,} packets/s for {base['policy']}: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
