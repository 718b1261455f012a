"""One command line over the parts: the runtime (controller/), the simulator (sim/), the
testbed (topo/), the backend agent (agent/) and the capture queries (capture_query/). Each
part registers its own sub-commands; none imports another's CLI."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import agent.cli
import capture_query.cli
import controller.cli
import sim.cli
import topo.cli


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="p4dispatch", description="P4 flow dispatcher: controller, "
                                  "simulator and emulated testbed")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    controller.cli.register(commands)
    sim.cli.register(commands)
    topo.cli.register(commands)
    agent.cli.register(commands)
    capture_query.cli.register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return int(args.handler(args))
