"""The backend agent: what it imports, what it measures (psutil, on this host's loopback),
its application check, the heartbeat flags it chooses, its command line and signals."""

import ast
import contextlib
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from agent.agent import Agent, AgentSettings
from agent.app_check import AppCheck
from agent.cli import build, parse_address
from agent.host_sampler import HostSampler, Sample
from controller.health.messages import Codec, HeartbeatFlag, LoadReport, initial_sequence
from p4dispatch.cli import parser as p4dispatch_parser

REPO = Path(__file__).resolve().parents[2]
STDLIB = set(sys.stdlib_module_names)


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_the_agent_imports_only_the_shared_wire_format_from_the_controller():
    for path in (REPO / "agent").rglob("*.py"):
        foreign = {n for n in imports(path) if n.split(".")[0] not in STDLIB | {"agent", "psutil", "__future__"}}
        assert foreign <= {"controller.health.messages"}, path


def test_the_wire_format_uses_the_standard_library_only_and_the_runtime_never_imports_the_agent():
    assert {n.split(".")[0] for n in imports(REPO / "controller/health/messages.py")} <= STDLIB | {"__future__"}
    assert imports(REPO / "controller/health/__init__.py") == set()
    for path in (REPO / "controller").rglob("*.py"):
        assert not {n for n in imports(path) if n.split(".")[0] == "agent"}, path


# ---- host metrics ------------------------------------------------------------------------

def test_bytes_sent_on_the_service_interface_are_counted():
    sampler = HostSampler(interface="lo")
    before = sampler.sample()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        rx.bind(("127.0.0.1", 0))
        for _ in range(100):
            tx.sendto(b"x" * 1000, rx.getsockname())
    after = sampler.sample()
    assert after.tx_bytes - before.tx_bytes >= 100_000
    assert after.tx_packets - before.tx_packets >= 100
    assert 0 <= after.cpu_percent <= 100 and 0 < after.memory_percent <= 100
    assert after.load_average >= 0 and after.cpus >= 1 and math.isnan(after.custom)


def test_established_connections_to_the_service_port():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        sampler = HostSampler(service_port=port)
        assert sampler.sample().connections == 0
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        accepted = [server.accept()[0] for _ in clients]
        try:
            assert sampler.sample().connections == 3     # the server's side only, not the clients'
        finally:
            for s in clients + accepted:
                s.close()



def test_a_closed_connection_whose_response_is_still_unsent_is_in_service():
    """A server that writes a response and closes (as HTTP/1.0 servers do) still serves it
    while the data waits for the client: FIN_WAIT1 with data queued counts, until delivered."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        sampler = HostSampler(service_port=port)
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)    # a slow reader
        client.connect(("127.0.0.1", port))
        accepted = server.accept()[0]
        try:
            accepted.setblocking(False)
            sent = 0
            with contextlib.suppress(BlockingIOError):
                while True:
                    sent += accepted.send(b"x" * 65536)
            accepted.close()                     # response written, socket closed, data still queued
            assert sampler.sample().connections == 1
            received = 0
            while received < sent:               # the client reads it all: delivered, no longer in service
                chunk = client.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
            deadline = time.monotonic() + 5
            while sampler.sample().connections and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sampler.sample().connections == 0
        finally:
            client.close()


SPINNER = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", int(sys.argv[1])))
server.listen()
print("listening", flush=True)
end = time.monotonic() + 30
while time.monotonic() < end:      # busy: about one CPU
    pass
"""


def test_service_cpu_is_the_listening_process_s_own():
    """--cpu service: the CPU of what listens on the service port, not the host's; a busy
    process that does not listen there does not count. Checked against the listening
    process's own CPU time over the same interval, so a loaded machine changes the figures,
    not the outcome."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listening = subprocess.Popen([sys.executable, "-c", SPINNER, str(port)], stdout=subprocess.PIPE, text=True)
    other = subprocess.Popen([sys.executable, "-c", SPINNER, "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert listening.stdout.readline().strip() == "listening" and other.stdout.readline()
        own = psutil.Process(listening.pid)
        sampler = HostSampler(service_port=port, cpu="service")
        of_four = HostSampler(service_port=port, cpu="service", service_cpus=4)
        before, t0 = sum(own.cpu_times()[:2]), time.monotonic()
        time.sleep(1.0)
        busy = sampler.sample().cpu_percent
        quarter = of_four.sample().cpu_percent
        expected = (sum(own.cpu_times()[:2]) - before) / (time.monotonic() - t0) * 100
        assert expected > 1, f"the spinner got no CPU at all ({expected:.1f} %)"
        assert abs(busy - min(expected, 100)) <= max(10, 0.25 * expected), (busy, expected)
        idle = HostSampler(service_port=port + 1 if port < 65535 else port - 1, cpu="service")
        time.sleep(0.5)
        assert idle.sample().cpu_percent == 0.0     # nothing listens there (the other spinner is not counted)
        assert abs(quarter - busy / 4) <= 5, (quarter, busy)     # the same CPU, as a share of 4
    finally:
        for proc in (listening, other):
            proc.kill()
            proc.wait()
    with pytest.raises(ValueError, match="service port"):
        HostSampler(cpu="service")


def test_metric_command_and_bad_interface():
    assert HostSampler(command=f"{sys.executable} -c 'print(42.5, \"jobs\")'", command_timeout_s=5).sample().custom \
        == 42.5
    assert math.isnan(HostSampler(command="echo not-a-number").sample().custom)
    assert math.isnan(HostSampler(command="/nonexistent/command").sample().custom)
    with pytest.raises(ValueError, match="no interface 'nope0'; this host has .*lo"):
        HostSampler(interface="nope0")


# ---- application check -------------------------------------------------------------------

class Status(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/ok" else 503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_application_checks():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Status)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        assert AppCheck("tcp", "127.0.0.1", port)() == (True, "")
        assert AppCheck("http", "127.0.0.1", port, "/ok")() == (True, "")
        up, why = AppCheck("http", "127.0.0.1", port, "/down")()
        assert not up and why == "GET /down: status 503, expected 200"
        assert AppCheck("none")() == (True, "")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    up, why = AppCheck("tcp", "127.0.0.1", port, timeout_s=0.5)()
    assert not up and why.startswith(f"tcp check 127.0.0.1:{port}:")


# ---- the agent's messages ----------------------------------------------------------------

class Clock:
    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


def make_agent(check=lambda: (True, ""), clock=None):
    sample = Sample(tx_bytes=1000, tx_packets=10, cpu_percent=25.0, memory_percent=50.0, load_average=0.5,
                    cpus=2, connections=4)
    agent = Agent(AgentSettings(("127.0.0.1", 9), host_id=42, period_s=1.0), lambda: sample, check,
                  wall=lambda: 1_800_000_000.0, clock=clock or Clock())
    return agent


def test_heartbeat_flags_and_numbers():
    app = {"up": True}
    clock = Clock()
    agent = make_agent(check=lambda: (app["up"], "" if app["up"] else "refused"), clock=clock)
    try:
        first = agent.heartbeat()
        assert (first.host_id, first.flag, first.seq) == (42, HeartbeatFlag.UP, initial_sequence(1_800_000_000.0) + 1)
        agent.announce_planned_failure(30.0)
        clock.t += 10.0
        planned = agent.heartbeat()
        assert (planned.flag, planned.timestamp_ms) == (HeartbeatFlag.PLANNED_FAILURE, 20_000)
        assert planned.seq == first.seq + 1
        app["up"] = False                                   # application down beats planned failure
        assert agent.heartbeat().flag == HeartbeatFlag.APPLICATION_DOWN
        app["up"] = True
        clock.t += 25.0
        assert agent.heartbeat().timestamp_ms == 0          # past its time: "now"
        agent.withdraw_planned_failure()
        assert agent.heartbeat().flag == HeartbeatFlag.UP
        report = agent.report()
        assert isinstance(report, LoadReport) and (report.host_id, report.connections, report.cpus) == (42, 4, 2)
        assert report.uptime_ms == 35_000
    finally:
        agent.close()


def test_a_failing_sample_costs_the_report_not_the_heartbeat():
    def broken():
        raise RuntimeError("psutil broke")

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        agent = Agent(AgentSettings(rx.getsockname(), host_id=1), broken, lambda: (True, ""))
        try:
            agent.send_once()
            assert len(rx.recv(100)) == 11 and agent.sent == 1
        finally:
            agent.close()


# ---- command line ----------------------------------------------------------------------------

def agent_args(*extra):
    return p4dispatch_parser().parse_args(["agent", "--controller", "127.0.0.1:9190", "--host-id", "3", *extra])


def test_registered_in_the_main_command_line():
    args = agent_args("--service-port", "80")
    agent = build(args)
    try:
        assert agent.settings.controller == ("127.0.0.1", 9190) and agent.check.kind == "tcp"
        assert agent.check.timeout_s == 0.5
    finally:
        agent.close()


@pytest.mark.parametrize("extra, message", [
    (["--period", "0.05"], "at least 0.1"),
    (["--check", "http"], "needs --check-port or --service-port"),
    (["--interface", "nope0"], "no interface 'nope0'"),
    (["--host-id", "70000"], "host id must be within"),
    (["--cpu", "service"], "--cpu service needs --service-port"),
])
def test_build_errors(extra, message):
    with pytest.raises(ValueError, match=message):
        build(agent_args(*extra))


def test_parse_address():
    assert parse_address("127.0.0.1:9190") == ("127.0.0.1", 9190)
    assert parse_address("[::1]:9190") == ("::1", 9190)
    for bad in ("127.0.0.1", "host:port", ":9190"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_process_signals(tmp_path):
    """The agent as a server runs it: heartbeats arrive, SIGUSR1 announces a planned failure,
    SIGUSR2 withdraws it, SIGTERM stops it cleanly."""
    key = tmp_path / "key"
    key.write_text("0123456789abcdef0123456789abcdef")
    codec = Codec(key.read_text().encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(5)
        process = subprocess.Popen([sys.executable, "-m", "agent", "--controller", f"127.0.0.1:{rx.getsockname()[1]}",
                                    "--host-id", "9", "--period", "0.1", "--key-file", str(key),
                                    "--planned-notice", "30"], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            assert "sending to 127.0.0.1" in process.stdout.readline()

            def next_heartbeat():
                while True:
                    message = codec.decode(rx.recv(512))
                    if message.kind == "heartbeat":
                        return message

            assert next_heartbeat().flag == HeartbeatFlag.UP
            process.send_signal(signal.SIGUSR1)
            for _ in range(20):
                beat = next_heartbeat()
                if beat.flag == HeartbeatFlag.PLANNED_FAILURE:
                    break
            assert beat.flag == HeartbeatFlag.PLANNED_FAILURE and 25_000 < beat.timestamp_ms <= 30_000
            process.send_signal(signal.SIGUSR2)
            for _ in range(20):
                if next_heartbeat().flag == HeartbeatFlag.UP:
                    break
            else:
                pytest.fail("the planned failure was not withdrawn")
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=5) == 0
            assert "stopped after" in process.stdout.read()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            process.stdout.close()
