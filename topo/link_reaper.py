"""Delete a run's root-namespace interfaces if the run dies without its clean-up.

    python -m topo.link_reaper --parent PID NAME:IFINDEX ...

Why a watcher is needed at all: a run killed outright (SIGKILL) takes its processes with it
(parent-death signals, topo/lifetime.py), and a host's network namespace goes with its last
process -- unless a socket still holds it. TCP connections closed by a killed server or
client linger in FIN-WAIT or LAST-ACK for up to a couple of minutes, retransmitting towards a
switch that is gone, and each keeps its namespace, and so the veth ends in it and their peers
in the root namespace (the switch's `disp1-ethN`), alive. Nothing in the kernel shortens that
without changing TCP for the experiment itself (orphan retries, lingering), so this process,
started by the cluster once its network is built, waits for the run to end and then deletes
the interfaces it was given -- each only if it is still the same interface (same index), not
one of the same name that another run has made since. Deleting one end of a veth deletes
both; the namespaces then linger empty until their sockets time out, and go unseen.

A normal stop deletes the interfaces itself and then kills this process, which therefore
does nothing on SIGTERM or SIGKILL: it acts only when its parent is gone.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def ifindex(name: str) -> int | None:
    try:
        return int(Path(f"/sys/class/net/{name}/ifindex").read_text())
    except (OSError, ValueError):
        return None


def delete_if_same(links: dict[str, int]) -> list[str]:
    """Delete each interface that still has the index it had; returns those deleted."""
    return [name for name, index in links.items()
            if ifindex(name) == index
            and subprocess.run(["ip", "link", "del", "dev", name], capture_output=True).returncode == 0]


def parse_link(text: str) -> tuple[str, int]:
    name, _, index = text.rpartition(":")
    if not name or not index.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME:IFINDEX, got {text!r}")
    return name, int(index)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parent", type=int, required=True, help="the run's pid: act once it is gone")
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between looks at the parent")
    parser.add_argument("links", nargs="+", type=parse_link, metavar="NAME:IFINDEX")
    args = parser.parse_args(argv)
    # A Ctrl-C at the terminal is for the run, which then stops everything in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The parent's death makes us a child of init (or a subreaper): our parent pid changes.
    while os.getppid() == args.parent:
        time.sleep(args.interval)
    deleted = delete_if_same(dict(args.links))
    if deleted:
        print(f"link_reaper: run {args.parent} ended without its clean-up; deleted {' '.join(deleted)}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
