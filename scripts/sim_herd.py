"""Issue 11's herd in the simulator: the Mininet demo's cluster and workload, several seeds.

The demo (`p4dispatch demo`): backends of 20, 10 and 5 Mbit/s, 30 HTTP requests/s (4
clients), fb_hadoop object sizes clipped at 2 MB, TCP flows (so: --fair-share, flows capped
only by their server), 50 ms of buffer on each backend, a 1024-slot ring with the
controller's 5 % churn cap and 2 % hysteresis, 100 ms polls (the demo's BMv2 polls take
about 170 ms: --poll 0.2 is closer to it). For each policy and seed: max/mean of per-second
utilisation (median, p99 and mean over the windows while flows arrive), how often the ring
herds (a poll after which some server holds under a third or over three times its capacity
share of the ring) and the slots written per poll.

    .venv/bin/python scripts/sim_herd.py                    # 30 requests/s, 12 seeds
    .venv/bin/python scripts/sim_herd.py --rate 20 --poll 0.2

"fb_est before" is fb_est as it was before issue 11's fix (spare bytes/s water-filled, no
damping), kept here to reproduce the herd; "fb_est undamped" levels utilisation without
damping (`--damping none`); "fb_est" is the default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from controller.policies import ClusterView, Policy, make_policy
from controller.policies.damping import NO_DAMPING
from controller.policies.water_filling import water_fill
from sim.engine import Simulation, SimulationConfig
from sim.flow_sizes import ClippedSizes, flow_size_distribution
from sim.metrics import windowed
from sim.workload import GeneratedWorkload, WorkloadSpec

MBIT = 1e6 / 8


class FbEstBefore(Policy):
    """fb_est before issue 11: the next poll's new load water-filled onto spare bytes/s."""
    name = "fb_est before"
    needs_flow_estimates = True

    def _weights(self, view: ClusterView) -> NDArray[np.float64]:
        return water_fill(view.capacity - view.estimated_load, view.incoming_rate, view.available)


POLICIES = {
    "round_robin": lambda: make_policy("round_robin"),
    "weighted_round_robin": lambda: make_policy("weighted_round_robin"),
    "fb_est before": FbEstBefore,
    "fb_est undamped": lambda: make_policy("fb_est", NO_DAMPING),
    "fb_est": lambda: make_policy("fb_est"),
}


def run(policy: Policy, seed: int, args: argparse.Namespace) -> dict[str, float]:
    capacity = np.array([float(c) for c in args.capacities.split(",")]) * MBIT
    sizes = ClippedSizes(flow_size_distribution(args.cdf), args.max_bytes)
    spec = WorkloadSpec(cdf=sizes, offered_rate=args.rate * sizes.mean(), duration=args.duration,
                        flow_rate=(50 * MBIT, 200 * MBIT), seed=seed, fair_share=True)
    config = SimulationConfig(capacity=capacity, buffer_seconds=0.05, ring_size=args.ring_size,
                              poll_interval=args.poll, ring_max_change=args.churn_cap, ring_hysteresis=0.02)
    simulation = Simulation(config, policy)
    ring_shares: list[NDArray[np.float64]] = []
    write = simulation.switch.write_ring

    def recording_write(weights: NDArray[np.float64], now: float, available: NDArray[np.bool_] | None = None) -> int:
        changed = write(weights, now, available)
        ring = simulation.switch.ring
        ring_shares.append(np.bincount(ring[ring >= 0], minlength=capacity.size) / ring.size)
        return changed

    simulation.switch.write_ring = recording_write   # type: ignore[method-assign]
    result = simulation.run(GeneratedWorkload(spec))
    times, offered, _ = result.loads.table()
    rows = int(round(1.0 / args.poll))
    utilisation = windowed(offered[times < args.duration], rows) / (capacity * rows * args.poll)
    mean = utilisation.mean(axis=1)
    ratio = utilisation.max(axis=1)[mean > 0] / mean[mean > 0]
    shares = np.array(ring_shares[:int(args.duration / args.poll)]) / (capacity / capacity.sum())
    return {"p50": float(np.percentile(ratio, 50)), "p99": float(np.percentile(ratio, 99)),
            "mean": float(ratio.mean()), "herd": float(np.mean(np.any((shares < 1 / 3) | (shares > 3), axis=1))),
            "churn": result.summary.churn_mean}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0, help="new flows (requests) per second")
    parser.add_argument("--capacities", default="20,10,5", help="Mbit/s")
    parser.add_argument("--cdf", default="fb_hadoop")
    parser.add_argument("--max-bytes", type=float, default=2e6)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--poll", type=float, default=0.1, help="poll interval, s (1 s divisible by it)")
    parser.add_argument("--ring-size", type=int, default=1024)
    parser.add_argument("--churn-cap", type=float, default=0.05)
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--policies", default=",".join(POLICIES))
    args = parser.parse_args()
    print(f"rate {args.rate:g}/s, capacities {args.capacities} Mbit/s, {args.cdf} <= {args.max_bytes:g} B, "
          f"poll {args.poll:g} s, ring {args.ring_size} cap {args.churn_cap:g}, seeds 1-{args.seeds}; "
          "mean over seeds (± standard error)")
    print("| policy | max/mean p50 | max/mean p99 | max/mean mean | ring herds (polls) | slots written/poll |")
    print("|---|---|---|---|---|---|")
    for name in args.policies.split(","):
        values = np.array([[r[k] for k in ("p50", "p99", "mean", "herd", "churn")]
                           for r in (run(POLICIES[name](), seed, args) for seed in range(1, args.seeds + 1))])
        mean, error = values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(values))
        print(f"| {name} | {mean[0]:.2f} ± {error[0]:.2f} | {mean[1]:.2f} ± {error[1]:.2f} | "
              f"{mean[2]:.2f} ± {error[2]:.2f} | {mean[3]:.0%} | {mean[4]:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
