"""Command line: python -m controller COMMAND ..."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller",
                                     description="P4 flow dispatcher controller and tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo-dataplane", help="load the dispatcher into BMv2 with a sample "
                               "configuration and open flows through it (root, BMv2)")
    demo.add_argument("--flows", type=int, default=60, help="TCP flows to open (default 60)")
    simulate = commands.add_parser("simulate", help="compare dispatch policies on a capture or a "
                                   "generated workload (trace-driven simulator)")
    from controller.simulator.cli import add_arguments as add_simulate_arguments
    add_simulate_arguments(simulate)
    demo = commands.add_parser("demo", help="the main job: an emulated cluster in Mininet with BMv2, "
                               "the controller and real traffic; live table, plot, JSON summary (root)")
    demo.add_argument("--topo", choices=["servers", "capture"], default="servers")
    demo.add_argument("--policy", default="fb_est", help="dispatch policy (default fb_est)")
    demo.add_argument("--duration", type=float, default=30.0, help="seconds of client arrivals (servers)")
    demo.add_argument("--rate", type=float, default=30.0, help="new connections/s over all clients")
    demo.add_argument("--clients", type=int, default=4)
    demo.add_argument("--capacities", default="20,10,5", help="backend capacities, Mbit/s (default 20,10,5)")
    demo.add_argument("--cdf", default="fb_hadoop", help="object sizes: fb_hadoop, websearch, ali_storage")
    demo.add_argument("--max-bytes", type=int, default=2_000_000, help="largest object")
    demo.add_argument("--probes", type=int, default=3, help="capture nodes (capture)")
    demo.add_argument("--captures", help="comma-separated names in ../shared/data/pcaps (capture)")
    demo.add_argument("--replay-pps", type=int, default=500, help="tcpreplay rate (capture)")
    demo.add_argument("--out", default="results/demo", help="plot and summary go here")
    demo.add_argument("--api-port", type=int, default=9180, help="controller API and metrics port")
    from controller.cli import add_commands, run_command
    add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("run", "status", "flows", "backends"):
        return run_command(args)
    if args.command == "demo":
        from pathlib import Path

        from topo.cluster_demo import DEFAULT_CAPTURES, DemoOptions, run as run_demo
        from controller.policies import POLICIES
        if args.policy not in POLICIES:
            parser.error(f"--policy: expected one of {', '.join(sorted(POLICIES))}, got {args.policy!r}")
        try:
            capacities = tuple(float(c) for c in args.capacities.split(","))
        except ValueError:
            parser.error(f"--capacities: expected numbers like 20,10,5, got {args.capacities!r}")
        return run_demo(DemoOptions(
            topo=args.topo, policy=args.policy, duration=args.duration, rate=args.rate,
            clients=args.clients, capacities=capacities, cdf=args.cdf, max_bytes=args.max_bytes,
            probes=args.probes, replay_pps=args.replay_pps, out=Path(args.out), api_port=args.api_port,
            captures=tuple(args.captures.split(",")) if args.captures else DEFAULT_CAPTURES))
    if args.command == "demo-dataplane":
        from controller import dataplane_demo
        return dataplane_demo.run(args.flows)
    if args.command == "simulate":
        from controller.simulator import cli as simulate_cli
        return simulate_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
