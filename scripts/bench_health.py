#!/usr/bin/env python3
"""Issue 11's fault proofs in the emulated server cluster (Mininet, BMv2, the real controller,
an agent on every backend, an HTTP advisor): per fault on one backend under load, when the
controller detected it, the new connections that reached the backend afterwards, the client
requests that failed around it, and its return once the fault is undone.

Faults: server-killed (SIGKILL to its HTTP server), agent-killed (SIGKILL to its agent),
server-frozen (SIGSTOP, later SIGCONT), link-down (both its interfaces down, later up),
planned (the agent announces a failure --notice s ahead, the server is stopped then), and
bad-input (malformed, unauthenticated and replayed datagrams at the controller's health
port, sent from a client host: counted, and nothing changes). Each on a fresh network.

    sudo flock /tmp/mininet.lock .venv/bin/python scripts/bench_health.py \\
        [--faults server-killed,agent-killed,...] [--period 1] [--rate 15] [--json FILE]

Stops everything it started (processes, namespaces, links) on any exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.health_bench import (  # noqa: E402
    FAULTS,
    BenchError,
    FaultOptions,
    fault_row,
    format_summary,
    format_table,
    run_bad_input,
    run_fault,
    write_json,
)
from topo.lifetime import Stopped, StopSignals  # noqa: E402
from topo.mininet_support import missing_mininet_reason, plain_logging  # noqa: E402

CHOICES = (*FAULTS, "bad-input")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", default=",".join(CHOICES),
                        help=f"comma-separated, from {', '.join(CHOICES)} (default: all)")
    parser.add_argument("--period", type=float, default=1.0, help="health period, s (agents and advisors)")
    parser.add_argument("--rate", type=float, default=15.0, help="new connections/s over all clients")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--capacities", type=lambda s: tuple(float(c) for c in s.split(",")),
                        default=(10.0, 10.0, 10.0), help="backends' Mbit/s (default 10,10,10)")
    parser.add_argument("--backend", default="web1", help="the backend the faults hit")
    parser.add_argument("--policy", default="round_robin", help="the service's policy (default round_robin)")
    parser.add_argument("--notice", type=float, default=5.0, help="planned failure: seconds of notice")
    parser.add_argument("--max-bytes", type=int, default=200_000, help="cap on object sizes (fb_hadoop)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each fault (default 1)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench_health")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    chosen = [f.strip() for f in args.faults.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(CHOICES))
    if unknown:
        parser.error(f"unknown faults {unknown}; choose from {', '.join(CHOICES)}")
    reason = missing_mininet_reason()
    if reason:
        print(f"bench_health cannot run here: {reason}")
        return 77
    options = FaultOptions(period_s=args.period, rate=args.rate, clients=args.clients, capacities=args.capacities,
                           backend=args.backend, policy=args.policy, planned_notice_s=args.notice,
                           max_bytes=args.max_bytes)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    _log_to(args.out / "controller.log")
    results, bad_input, failures = [], None, {}
    try:
        with StopSignals():
            for fault, run in [(f, n) for f in chosen for n in range(1, args.repeat + 1)]:
                if fault == "bad-input" and run > 1:
                    continue
                print(f"{fault}{f' #{run}' if args.repeat > 1 else ''}: on {options.backend}, "
                      f"{options.rate:g} connections/s, period {options.period_s:g} s ...", flush=True)
                started = time.monotonic()
                workdir = args.out / (fault if run == 1 else f"{fault}-{run}")
                try:
                    if fault == "bad-input":
                        bad_input = run_bad_input(options, workdir)
                    else:
                        result = run_fault(fault, options, workdir, run=run)
                        results.append(result)
                        for note in result.notes:
                            print(f"  note: {note}")
                except BenchError as exc:
                    failures[f"{fault} #{run}"] = str(exc)
                    print(f"  failed: {exc}")
                print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    except Stopped as stop:
        print(f"stopped ({stop.name}): everything this run started has been stopped")
        return stop.exit_code
    if results:
        print()
        print(format_table(results))
        if args.repeat > 1:
            print()
            print(format_summary(results))
        print("\nfailed requests by when they started:")
        for r in results:
            print(f"  {r.fault:14} {r.failed} of {r.requests}: {r.failed_by_phase}; "
                  f"in the window: {r.errors_in_window}")
    if bad_input is not None:
        print(f"\nbad input: sent {bad_input['sent']}, dropped {bad_input['dropped']}, "
              f"backends unchanged: {bad_input['unchanged']}, failed requests {bad_input['failed']} "
              f"of {bad_input['requests']}")
        for name, change in bad_input["backends"].items():
            print(f"  {name}: {change}")
    machine["load_average_at_end"] = os.getloadavg()
    print(f"\nmachine: {machine['cpus']} CPUs, load average (1, 5, 15 min) "
          f"{' '.join(f'{v:.2f}' for v in machine['load_average_at_start'])} at the start, "
          f"{' '.join(f'{v:.2f}' for v in machine['load_average_at_end'])} at the end")
    if args.json:
        write_json(args.json, {"machine": machine, "options": vars(options), "faults": [fault_row(r) for r in results],
                               "bad_input": bad_input, "errors": failures})
    return 1 if failures else 0


def _log_to(path: Path) -> None:
    """The controller's log (and this run's) to a file; Mininet's console handlers undone."""
    plain_logging()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)


if __name__ == "__main__":
    sys.exit(main())
