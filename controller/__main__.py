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
    from controller.cli import add_commands, run_command
    add_commands(commands)
    args = parser.parse_args(argv)
    if args.command in ("run", "status", "flows", "backends"):
        return run_command(args)
    if args.command == "demo-dataplane":
        from controller import dataplane_demo
        return dataplane_demo.run(args.flows)
    if args.command == "simulate":
        from controller.simulator import cli as simulate_cli
        return simulate_cli.run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
