"""An HTTP server of synthetic objects: `GET /obj/N` (or `/obj?size=N`) returns exactly N bytes.

One request per connection (HTTP/1.0, no keep-alive), so a connection is a flow is a request:
the unit the dispatcher balances. Every connection is logged as one JSON line, written when
it ends: the client's address and port as the server saw them, the address and port the
client connected to, start time and duration (workload/connections.py reads them back).
With direct server return the client's own record of its local address and port matches
that, so a test can check that each connection reached exactly one backend.

    python -m workload.http_server --port 80 --name web1 --log /tmp/web1.jsonl

Standard library only, so it runs under the system python of a Mininet host as well as the
project's venv.
"""

from __future__ import annotations

import argparse
import json
import signal
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TextIO
from urllib.parse import parse_qs, urlsplit

CHUNK = memoryview(bytes(range(256)) * 256)       # 64 KiB, written repeatedly for a body
DEFAULT_MAX_OBJECT = 1 << 30                     # 1 GiB: anything larger is a client bug


class ConnectionLog:
    """JSON lines, one per connection, flushed at once so a reader sees them while we run."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def write(self, record: dict) -> None:
        if self.stream is None:
            return
        line = json.dumps(record, separators=(",", ":"))
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()


def requested_size(path: str) -> int | None:
    """N from /obj/N or /obj?size=N; None if the path asks for something else."""
    parts = urlsplit(path)
    if parts.path == "/obj":
        values = parse_qs(parts.query).get("size")
        text = values[0] if values else ""
    elif parts.path.startswith("/obj/"):
        text = parts.path.removeprefix("/obj/")
    else:
        return None
    return int(text) if text.isdigit() else None


class ObjectHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"     # the connection closes after the response
    server_version = "workload-http/1"
    timeout = 30                      # a silent client must not hold a thread for ever
    server: ObjectServer

    def handle(self) -> None:
        """One connection: one request, then one log line, whatever happened."""
        self.status: int | None = None
        self.body_bytes = 0
        self.error: str | None = None
        started = time.time()
        # The address the client connected to (the VIP under direct server return, or the
        # server's own): with the client's address and port, it names the connection.
        local_host, local_port = self.connection.getsockname()[:2]
        try:
            super().handle()
        except OSError as exc:          # reset, broken pipe, timeout
            self.error = type(exc).__name__
        host, port = self.client_address[:2]
        self.server.log.write({
            "time": started, "server": self.server.name, "client": f"{host}:{port}",
            "server_address": f"{local_host}:{local_port}",
            "request": getattr(self, "requestline", ""), "status": self.status,
            "bytes": self.body_bytes, "seconds": round(time.time() - started, 6),
            "error": self.error})

    def send_response(self, code: int, message: str | None = None) -> None:
        self.status = code
        super().send_response(code, message)

    def log_message(self, format: str, *args) -> None:  # `format`: the base class's parameter name
        """Quiet: the connection log is the record (stderr would fill at hundreds per second)."""

    def do_GET(self) -> None:  # http.server's naming
        if self.path == "/health":
            self._send_body(200, 2, b"ok")
            return
        size = requested_size(self.path)
        if size is None:
            self.send_error(404, "try /obj/<bytes> or /obj?size=<bytes>")
            return
        if size > self.server.max_object_bytes:
            self.send_error(413, f"at most {self.server.max_object_bytes} bytes")
            return
        self._send_body(200, size)

    def _send_body(self, code: int, size: int, body: bytes | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream" if body is None else "text/plain")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if body is not None:
            self.wfile.write(body)
            self.body_bytes = len(body)
            return
        left = size
        while left:
            n = min(left, len(CHUNK))
            self.wfile.write(CHUNK[:n])
            self.body_bytes += n
            left -= n


class ObjectServer(ThreadingHTTPServer):
    daemon_threads = True             # stopping the server does not wait for slow clients
    request_queue_size = 1024         # listen backlog: Poisson bursts must not meet SYN drops

    def __init__(self, address: tuple[str, int], name: str, log: ConnectionLog,
                 max_object_bytes: int = DEFAULT_MAX_OBJECT) -> None:
        self.name = name
        self.log = log
        self.max_object_bytes = max_object_bytes
        super().__init__(address, ObjectHandler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse lookup of the bind address: inside a Mininet host
        there is no DNS, and getfqdn() would stall start-up for seconds."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.name, self.server_address[1]


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bind", default="0.0.0.0", help="address to listen on (a DSR backend: all, "
                                                          "so the VIP on lo is served)")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--name", default="server", help="this server's name in the log")
    parser.add_argument("--log", type=Path, help="connection log (JSON lines); default: none")
    parser.add_argument("--max-object-bytes", type=int, default=DEFAULT_MAX_OBJECT)
    args = parser.parse_args(argv)

    stream = args.log.open("a") if args.log else None
    server = ObjectServer((args.bind, args.port), args.name, ConnectionLog(stream), args.max_object_bytes)
    # SIGTERM (how tests and topologies stop us) ends serve_forever like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"{args.name}: serving on {args.bind}:{args.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if stream is not None:
            stream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
