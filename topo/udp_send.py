"""Send datagrams given as hex lines to one UDP address: how the health benchmark puts bad
input on the emulated network from inside a Mininet host (standard library only).

    python -m topo.udp_send --to 10.0.9.1:9190 --hex-file datagrams.hex [--gap 0.005]
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, metavar="HOST:PORT")
    parser.add_argument("--hex-file", type=Path, required=True, help="one datagram per line, in hex (empty: b'')")
    parser.add_argument("--gap", type=float, default=0.005, help="seconds between datagrams")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    datagrams = [bytes.fromhex(line.strip()) for line in args.hex_file.read_text().splitlines()]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for datagram in datagrams:
            s.sendto(datagram, (host, int(port)))
            time.sleep(args.gap)
    print(f"sent {len(datagrams)} datagrams to {host}:{port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
