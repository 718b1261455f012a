#!/usr/bin/env python3
"""Issue 11's overload proof: the emulated server cluster (Mininet, BMv2, the real controller,
an agent on every backend) offered --factor times what it can serve for --duration s, once
without and once with SA2C admission control ([services.admission]), each on a fresh network
with the same clients. Prints completed requests/s, latency of the completed requests,
requests refused (never connected; the switch's SYN drops) and established connections
broken (target 0 with SA2C). See topo/overload_bench.py for how capacity is computed.

    sudo flock /tmp/mininet.lock .venv/bin/python scripts/bench_overload.py \\
        [--factor 2] [--duration 60] [--capacities 3,3,3] [--size 50000] [--json FILE]

Stops everything it started (processes, namespaces, links) on any exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.health_bench import BenchError, write_json  # noqa: E402
from topo.lifetime import Stopped, StopSignals  # noqa: E402
from topo.mininet_support import missing_mininet_reason, plain_logging  # noqa: E402
from topo.overload_bench import OverloadOptions, format_table, run_overload  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factor", type=float, default=2.0, help="offered load / capacity (default 2)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of arrivals (default 60)")
    parser.add_argument("--capacities", type=lambda s: tuple(float(c) for c in s.split(",")), default=(3.0, 3.0, 3.0),
                        help="backends' Mbit/s (default 3,3,3)")
    parser.add_argument("--size", type=int, default=50_000, help="bytes per object (default 50000)")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0, help="clients' per-request timeout, s (default 30)")
    parser.add_argument("--period", type=float, default=1.0, help="health period = SA2C's step, s")
    parser.add_argument("--policy", default="round_robin")
    parser.add_argument("--check", choices=("none", "tcp", "http"), default="tcp", help="agents' application check")
    parser.add_argument("--advisor", choices=("none", "tcp", "http"), default="none")
    parser.add_argument("--sa2c", default="{}", help="[services.admission] as JSON (default {}: SA2C's defaults)")
    parser.add_argument("--max-connections", type=int,
                        help="each backend's max_connections (SA2C's connections load component)")
    parser.add_argument("--only", choices=("off", "on"), help="one variant only")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_overload")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    reason = missing_mininet_reason()
    if reason:
        print(f"bench_overload cannot run here: {reason}")
        return 77
    options = OverloadOptions(capacities=args.capacities, clients=args.clients, size=args.size, factor=args.factor,
                              duration_s=args.duration, request_timeout_s=args.timeout, period_s=args.period,
                              policy=args.policy, agent_check=args.check, advisor=args.advisor,
                              admission=json.loads(args.sa2c), max_connections=args.max_connections)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    plain_logging()
    logging.getLogger().setLevel(logging.INFO)
    handler = logging.FileHandler(args.out / "controller.log", mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    variants = [v for v in (False, True) if args.only is None or args.only == ("on" if v else "off")]
    results, errors = [], {}
    try:
        with StopSignals():
            for sa2c in variants:
                label = "with SA2C" if sa2c else "without SA2C"
                print(f"{label}: {options.offered_rps:.1f} requests/s offered ({options.factor:g} x capacity "
                      f"{options.capacity_rps:.1f}/s) for {options.duration_s:g} s ...", flush=True)
                started = time.monotonic()
                try:
                    results.append(run_overload(options, sa2c, args.out / ("sa2c" if sa2c else "no-sa2c")))
                except BenchError as exc:
                    errors[label] = str(exc)
                    print(f"  failed: {exc}")
                print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    except Stopped as stop:
        print(f"stopped ({stop.name}): everything this run started has been stopped")
        return stop.exit_code
    if results:
        print()
        print(format_table(results))
        for r in results:
            print(f"\n{'with' if r['sa2c'] else 'without'} SA2C: never connected {r['never_connected_errors']}, "
                  f"broken {r['broken_errors']}, switch drops {r['switch_drops']}, "
                  f"health transitions {r['health_transitions'] or 'none'}")
            if r["levels_seconds"]:
                print(f"  SA2C levels (seconds): {r['levels_seconds']}")
    machine["load_average_at_end"] = os.getloadavg()
    print(f"\nmachine: {machine['cpus']} CPUs, load average (1, 5, 15 min) "
          f"{' '.join(f'{v:.2f}' for v in machine['load_average_at_start'])} at the start, "
          f"{' '.join(f'{v:.2f}' for v in machine['load_average_at_end'])} at the end")
    if args.json:
        write_json(args.json, {"machine": machine, "options": vars(options), "capacity_rps": options.capacity_rps,
                               "offered_rps": options.offered_rps, "results": results, "errors": errors})
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
