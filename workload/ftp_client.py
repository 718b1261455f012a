"""A real FTP client session (the standard library's ftplib): one control connection, then
file transfers over passive (PASV) and active (PORT) data connections.

    python -m workload.ftp_client --server 10.77.0.2 --passive 4 --active 2 --file data.bin

Prints one JSON object: the control connection's local port and, per transfer, its mode,
the bytes received and the data connection's ends as the client saw them (a test matches
them with what the switch forwarded). Standard library only.
"""

from __future__ import annotations

import argparse
import ftplib
import json
import socket
import sys
import time


class RecordingFTP(ftplib.FTP):
    """ftplib.FTP that remembers each data connection's ends."""

    def __init__(self) -> None:
        super().__init__()
        self.data_ends: list[tuple[str, int, str, int]] = []

    def ntransfercmd(self, cmd: str, rest: int | str | None = None) -> tuple[socket.socket, int | None]:
        conn, size = super().ntransfercmd(cmd, rest)
        local, remote = conn.getsockname(), conn.getpeername()
        self.data_ends.append((local[0], local[1], remote[0], remote[1]))
        return conn, size


def run(server: str, port: int, passive: int, active: int, name: str, pause_s: float) -> dict:
    ftp = RecordingFTP()
    ftp.connect(server, port, timeout=10)
    ftp.login()
    assert ftp.sock is not None     # connected above
    control = ftp.sock.getsockname()
    transfers = []
    for mode in ["passive"] * passive + ["active"] * active:
        ftp.set_pasv(mode == "passive")
        received = bytearray()
        ftp.retrbinary(f"RETR {name}", received.extend)
        local_ip, local_port, remote_ip, remote_port = ftp.data_ends[-1]
        transfers.append({"mode": mode, "bytes": len(received), "local": [local_ip, local_port],
                          "remote": [remote_ip, remote_port]})
        time.sleep(pause_s)
    ftp.quit()
    return {"control": [control[0], control[1]], "transfers": transfers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", required=True)
    parser.add_argument("--port", type=int, default=21)
    parser.add_argument("--passive", type=int, default=3, help="transfers over PASV data connections")
    parser.add_argument("--active", type=int, default=0, help="transfers over PORT data connections")
    parser.add_argument("--file", default="data.bin", help="the file to retrieve each time")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between transfers")
    args = parser.parse_args(argv)
    try:
        result = run(args.server, args.port, args.passive, args.active, args.file, args.pause)
    except (OSError, ftplib.Error) as exc:
        print(f"ftp_client: {args.server}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
