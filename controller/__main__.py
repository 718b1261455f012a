"""`python -m controller`: the runtime's own commands (run, status, flows, backends, nd,
sessions) and `query` (capture_query/: queries over the capture cluster's stored captures, a
form issue 12 fixes). `p4dispatch` (p4dispatch/cli.py) has these and the simulator's and the
testbed's. Only this entry point imports capture_query: the runtime itself does not depend on it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import capture_query.cli
from controller import cli


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m controller", description="P4 flow dispatcher controller")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    cli.register(commands)
    capture_query.cli.register(commands)
    args = top.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
