"""`python -m controller`: the runtime's own commands (run, status, flows, backends, nd, sessions).
`p4dispatch` (p4dispatch/cli.py) has these and the simulator's and the testbed's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from controller import cli


def main(argv: Sequence[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m controller", description="P4 flow dispatcher controller")
    cli.register(top.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = top.parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
