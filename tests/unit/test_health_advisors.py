"""Advisors against real servers on 127.0.0.1: HTTP GET with status and timeout, TCP connect,
the runner's thread pool, and the monitor taking a backend down and up on their results."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from controller.health.advisors import AdvisorRunner, AdvisorSpec, probe_http, probe_tcp
from controller.health.cluster_health import ClusterHealth
from controller.health.config import HealthConfig, HealthPlan
from controller.health.monitor import HealthMonitor, HealthState, MonitorSettings


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.6)
        status = 500 if self.path == "/error" else 301 if self.path == "/moved" else 200
        body = b"hello"
        self.send_response(status)
        if status == 301:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]       # free again once closed: nothing listens there


def test_http_probe(http_server):
    port = http_server.server_address[1]
    ok = probe_http("127.0.0.1", port, "/", 200, timeout_s=2)
    assert ok.ok and 0 < ok.response_time < 2 and ok.detail.startswith("status 200")
    bad = probe_http("127.0.0.1", port, "/error", 200, timeout_s=2)
    assert not bad.ok and bad.detail == "GET /error: status 500, expected 200"
    moved = probe_http("127.0.0.1", port, "/moved", 301, timeout_s=2)
    assert moved.ok                                    # not followed: the advisor sees the 301
    slow = probe_http("127.0.0.1", port, "/slow", 200, timeout_s=0.2)
    assert not slow.ok and "timed out" in slow.detail and slow.response_time < 0.6


def test_tcp_probe(http_server):
    ok = probe_tcp("127.0.0.1", http_server.server_address[1], 1.0)
    assert ok.ok and ok.response_time < 1.0
    refused = probe_tcp("127.0.0.1", closed_port(), 1.0)
    assert not refused.ok and "connect 127.0.0.1" in refused.detail
    refused_http = probe_http("127.0.0.1", closed_port(), "/", 200, 1.0)
    assert not refused_http.ok


def collect(runner: AdvisorRunner, count: int, timeout: float = 5.0):
    results, deadline = [], time.monotonic() + timeout
    while len(results) < count and time.monotonic() < deadline:
        results += runner.results()
        time.sleep(0.01)
    return results


def test_runner_probes_each_target_once_per_period(http_server):
    port = http_server.server_address[1]
    runner = AdvisorRunner([(1, AdvisorSpec("http", "http", "127.0.0.1", port, "/")),
                            (2, AdvisorSpec("http", "http", "127.0.0.1", port, "/error"))], period_s=10.0)
    try:
        assert runner.run_due(100.0) == 2
        assert runner.run_due(105.0) == 0              # not due again before 110
        results = sorted(collect(runner, 2), key=lambda r: r.backend_id)
        assert [(r.backend_id, r.advisor, r.result.ok) for r in results] == [(1, "http", True), (2, "http", False)]
        assert runner.run_due(110.0) == 2
        assert len(collect(runner, 2)) == 2
    finally:
        runner.close()


def test_a_hanging_target_is_skipped_not_piled_up(http_server):
    runner = AdvisorRunner([(1, AdvisorSpec("slow", "http", "127.0.0.1", http_server.server_address[1], "/slow",
                                            timeout_s=2.0))], period_s=0.1)
    try:
        assert runner.run_due(0.0) == 1
        assert runner.run_due(0.1) == 0 and runner.run_due(0.2) == 0
        assert runner.skipped == 2
        [result] = collect(runner, 1)
        assert result.result.ok
        assert runner.run_due(0.35) == 1
    finally:
        runner.close()


def test_monitor_takes_a_stopped_server_down_and_back(http_server):
    port = http_server.server_address[1]
    spec = AdvisorSpec("http:/", "http", "127.0.0.1", port, "/", timeout_s=1.0)
    monitor = HealthMonitor(MonitorSettings(period_s=0.1, recovery_periods=2), {}, {7: ["http:/"]}, now=0.0)
    runner = AdvisorRunner([(7, spec)], period_s=0.1)

    def one_round(now: float):
        runner.run_due(now)
        [r] = collect(runner, 1)
        return monitor.advisor_result(r.backend_id, r.advisor, r.result.ok, now, r.result.response_time,
                                      r.result.detail)

    try:
        assert one_round(1.0) == [] and monitor.forward_metric(7) > 0
        http_server.shutdown()
        http_server.server_close()                     # nothing listens on the port any more
        [down] = one_round(2.0)
        assert down.new == HealthState.DOWN and down.reason.startswith("advisor http:/: GET /:")
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            assert one_round(3.0)[0].new == HealthState.RECOVERING
            assert one_round(4.0)[0].new == HealthState.UP
        finally:
            server.shutdown()
            server.server_close()
    finally:
        runner.close()


def test_cluster_health_runs_the_advisors_of_its_plan(http_server):
    """ClusterHealth with advisors only (no agents: no UDP port is opened)."""
    port = http_server.server_address[1]
    spec = AdvisorSpec("http:/error", "http", "127.0.0.1", port, "/error", timeout_s=0.5)
    plan = HealthPlan(hosts={}, advisors=[(3, spec)], advisor_names={3: ("http:/error",)}, down_entries={})
    health = ClusterHealth(HealthConfig(period_s=0.5), plan, now=time.monotonic()).start()
    try:
        assert health.listener is None
        deadline, seen = time.monotonic() + 5, []
        while not seen and time.monotonic() < deadline:
            seen = health.poll(time.monotonic()).transitions
            time.sleep(0.01)
        assert [(t.backend_id, t.new) for t in seen] == [(3, HealthState.DOWN)]
        assert "status 500, expected 200" in seen[0].reason
        assert not health.takes_new_flows(3) and health.takes_new_flows(4)
        assert health.snapshot(time.monotonic())[3].advisors["http:/error"].ok is False
    finally:
        health.stop()
