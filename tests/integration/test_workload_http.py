"""The object server on loopback, with a real HTTP client and with the load generator."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from topo.mininet_support import free_tcp_port
from workload.http_server import ConnectionLog, ObjectServer, requested_size
from workload.load_client import poisson_schedule, run_load, summarise

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server():
    """An ObjectServer on a free loopback port, logging to memory; stopped after the test."""
    stream = io.StringIO()
    srv = ObjectServer(("127.0.0.1", 0), "t1", ConnectionLog(stream), max_object_bytes=10_000_000)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv, stream
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def log_lines(stream: io.StringIO, expected: int, timeout: float = 5.0) -> list[dict]:
    """The log's records once `expected` are there (a line is written as its connection ends)."""
    deadline = time.monotonic() + timeout
    while stream.getvalue().count("\n") < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def get(port: int, path: str) -> tuple[int, bytes, str, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        host, port_ = conn.sock.getsockname()[:2]
        local = f"{host}:{port_}"
        response = conn.getresponse()
        return response.status, response.read(), local, dict(response.getheaders())
    finally:
        conn.close()


@pytest.mark.parametrize("size", [0, 1, 1000, 65_536, 65_537, 3_000_001])
def test_returns_exactly_the_bytes_asked_for(server, size):
    srv, _ = server
    for path in (f"/obj/{size}", f"/obj?size={size}"):
        status, body, _, headers = get(srv.server_address[1], path)
        assert status == 200
        assert len(body) == size and int(headers["Content-Length"]) == size


def test_one_request_per_connection(server):
    srv, _ = server
    status, _, _, headers = get(srv.server_address[1], "/obj/10")
    assert status == 200 and headers.get("Connection", "close").lower() == "close"
    # HTTP/1.0: the server closes; the client reads to the end and sees nothing more.


def test_every_connection_is_logged_once_with_the_client_address(server):
    srv, stream = server
    locals_ = [get(srv.server_address[1], f"/obj/{n}")[2] for n in (5, 50, 500)]
    locals_.append(get(srv.server_address[1], "/nothing")[2])
    records = log_lines(stream, 4)
    assert [r["client"] for r in records] == locals_
    assert [r["status"] for r in records] == [200, 200, 200, 404]
    assert [r["bytes"] for r in records] == [5, 50, 500, 0]
    assert all(r["server"] == "t1" and r["error"] is None for r in records)
    assert records[0]["request"] == "GET /obj/5 HTTP/1.1"


def test_refuses_bad_requests(server):
    srv, _ = server
    port = srv.server_address[1]
    assert get(port, "/obj/abc")[0] == 404
    assert get(port, "/obj?size=-3")[0] == 404
    assert get(port, "/obj/10000001")[0] == 413
    assert get(port, "/health")[:2] == (200, b"ok")


def test_parses_sizes():
    assert requested_size("/obj/12") == 12
    assert requested_size("/obj?size=7&x=1") == 7
    assert requested_size("/obj") is None
    assert requested_size("/other/12") is None


def test_load_generator_against_the_server(server):
    """A few hundred requests/s: all succeed, on schedule, each in the log exactly once."""
    srv, stream = server
    rng = np.random.default_rng(2)
    schedule = poisson_schedule(rng, rate=400.0, count=600)
    sizes = rng.integers(1, 50_000, len(schedule)).tolist()
    started = time.perf_counter()
    results = asyncio.run(run_load("127.0.0.1", srv.server_address[1], schedule, sizes, timeout=10))
    summary = summarise(results, time.perf_counter() - started, 400.0)
    assert summary["failed"] == 0, summary["errors"]
    assert summary["requests"] == 600 and summary["bytes"] == sum(sizes)
    # Open loop: requests start on schedule, not when earlier ones finish. One pause of the
    # event loop (a loaded CI machine) makes the requests due in it late, but the lag must not
    # build up; a closed-loop generator would fall seconds behind here.
    assert summary["lag_p50_s"] < 0.02, "most requests did not start on schedule"
    assert summary["max_lag_s"] < 1.0, "the generator fell behind its schedule"
    assert summary["latency_p50_s"] <= summary["latency_p99_s"] < 5
    # Each request in the log once: compared as counts, since a client port may come back
    # within the run once the server closed first (the client's side keeps no TIME_WAIT).
    seen = Counter(r["client"] for r in log_lines(stream, 600))
    assert seen == Counter(r.local for r in results)
    assert sum(seen.values()) == 600


def test_load_generator_records_failures():
    """Nothing listens: every request fails with the error named, none is counted ok."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]         # bound, not listening: connections are refused
        results = asyncio.run(run_load("127.0.0.1", port, [0.0, 0.01], [10, 10], timeout=2))
    summary = summarise(results, 0.1, 20.0)
    assert summary["ok"] == 0 and summary["failed"] == 2
    assert summary["errors"] == {"ConnectionRefusedError": 2}


def test_command_lines(tmp_path, children):
    """The two programs as a Mininet host runs them: server in the background, client to the end."""
    log, out = tmp_path / "server.jsonl", tmp_path / "client.jsonl"
    port = free_tcp_port()
    # children.start: SIGTERM at its default whatever this run inherited, and the server is
    # ended with the test (tests/conftest.py), even if an assertion below fails.
    server = children.start([sys.executable, "-m", "workload.http_server", "--bind", "127.0.0.1",
                             "--port", str(port), "--name", "s1", "--log", str(log)],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert "serving on" in server.stdout.readline()
    client = subprocess.run([sys.executable, "-m", "workload.load_client", "--target", f"127.0.0.1:{port}",
                             "--rate", "200", "--requests", "100", "--cdf", "fb_hadoop",
                             "--max-bytes", "100000", "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert client.returncode == 0, client.stderr
    summary = json.loads(client.stdout.strip().splitlines()[-1])
    assert summary["ok"] == 100 and summary["failed"] == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 100 and all(r["status"] == 200 and r["bytes"] == r["size"] for r in records)
    server.terminate()
    assert server.wait(timeout=10) == 0      # SIGTERM is a clean stop
    logged = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(r["client"] for r in logged) == sorted(r["local"] for r in records)
    assert {r["server_address"] for r in logged} == {f"127.0.0.1:{port}"}

