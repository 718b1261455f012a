"""Agent -> UDP on 127.0.0.1 -> listener -> intake -> monitor, with real sockets: the
application dying and coming back, the agent going silent or killed, a planned failure, and
bad datagrams that are counted and change nothing."""

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.agent import Agent, AgentSettings
from agent.app_check import AppCheck
from agent.host_sampler import HostSampler
from controller.health.cluster_health import ClusterHealth
from controller.health.config import HealthConfig, HealthPlan
from controller.health.listener import HealthListener
from controller.health.messages import Codec, Heartbeat, HeartbeatFlag
from controller.health.monitor import HealthState, Transition

REPO = Path(__file__).resolve().parents[2]
KEY = b"0123456789abcdef0123456789abcdef"
PERIOD = 0.2
HOST = 5


@contextmanager
def cluster_health(tmp_path, recovery_periods=2):
    key_file = tmp_path / "health.key"
    key_file.write_bytes(KEY)
    config = HealthConfig(period_s=PERIOD, missed_limit=3, recovery_periods=recovery_periods, key_file=key_file,
                          listen_address="127.0.0.1", listen_port=0)
    plan = HealthPlan(hosts={HOST: (HOST,)}, advisors=[], advisor_names={}, down_entries={1: "delete"})
    health = ClusterHealth(config, plan, now=time.monotonic()).start()
    try:
        yield health
    finally:
        health.stop()


@contextmanager
def app_server():
    """A TCP service whose accept loop we can stop and start again on the same port."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield server
    finally:
        server.close()


@contextmanager
def agent_thread(port: int, service_port: int):
    agent = Agent(AgentSettings(("127.0.0.1", port), HOST, PERIOD, KEY),
                  HostSampler(interface="lo", service_port=service_port).sample,
                  AppCheck("tcp", "127.0.0.1", service_port, timeout_s=0.1))
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield agent, stop
    finally:
        stop.set()
        thread.join(timeout=5)
        agent.close()


def wait_for(health: ClusterHealth, until: Callable[[list[Transition]], bool], timeout: float = 5.0):
    """Poll like the serving loop until the transitions seen so far satisfy `until`."""
    seen: list[Transition] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        update = health.poll(time.monotonic())
        seen += update.transitions
        if until(seen):
            return seen
        time.sleep(0.01)
    pytest.fail(f"timed out; transitions so far: {seen}")


def reached(state):
    return lambda seen: any(t.new == state for t in seen)


def test_application_down_then_agent_silent(tmp_path):
    with cluster_health(tmp_path) as health, app_server() as app:
        service_port = app.getsockname()[1]
        with agent_thread(health.listener.port, service_port) as (agent, stop):
            wait_for(health, lambda _: health.counts()["accepted_heartbeat"] >= 3)
            assert health.takes_new_flows(HOST)
            sample = health.host_sample(HOST, time.monotonic())
            assert sample is not None and sample.cpu >= 0 and sample.tx_bytes > 0

            app.close()                                     # the application dies
            killed = time.monotonic()
            [down] = [t for t in wait_for(health, reached(HealthState.DOWN)) if t.new == HealthState.DOWN]
            assert "application down" in down.reason
            assert down.time - killed < 3 * PERIOD           # the next heartbeat carries the flag

            with socket.socket() as again:                  # the application is back on its port
                again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                again.bind(("127.0.0.1", service_port))
                again.listen()
                seen = wait_for(health, reached(HealthState.UP))
                assert [t.new for t in seen] == [HealthState.RECOVERING, HealthState.UP]
                assert seen[1].time - seen[0].time == pytest.approx(PERIOD, abs=0.15)   # 2 good periods

                stop.set()                                  # the agent goes silent
                silent = time.monotonic()
                [down] = wait_for(health, reached(HealthState.DOWN))
                assert "periods missed" in down.reason
                assert 2.5 * PERIOD <= down.time - silent <= 5 * PERIOD   # 3.5 periods after the last heartbeat
        counts = health.counts()
        assert counts["accepted_report"] >= 3
        assert all(counts[f"dropped_{r}"] == 0 for r in ("malformed", "unauthenticated", "unknown_host", "replayed"))


def test_bad_datagrams_are_counted_and_change_nothing(tmp_path):
    good, forged = Codec(KEY), Codec(b"not the shared key, but 16+ bytes")
    with cluster_health(tmp_path) as health, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        target = ("127.0.0.1", health.listener.port)
        tx.sendto(good.encode(Heartbeat(HOST, 1000, HeartbeatFlag.UP, 0)), target)
        wait_for(health, lambda _: health.counts()["accepted_heartbeat"] == 1)
        before = health.snapshot(time.monotonic())[HOST]

        bad = [
            b"\x00" * 7,                                                                   # malformed
            good.encode(Heartbeat(HOST, 1000, HeartbeatFlag.APPLICATION_DOWN, 0))[:-1],   # truncated tag
            forged.encode(Heartbeat(HOST, 2000, HeartbeatFlag.APPLICATION_DOWN, 0)),      # wrong key
            Codec().encode(Heartbeat(HOST, 2001, HeartbeatFlag.APPLICATION_DOWN, 0)),     # unsigned
            good.encode(Heartbeat(99, 1, HeartbeatFlag.APPLICATION_DOWN, 0)),             # unknown host
            good.encode(Heartbeat(HOST, 1000, HeartbeatFlag.APPLICATION_DOWN, 0)),        # replayed number
            good.encode(Heartbeat(HOST, 999, HeartbeatFlag.PLANNED_FAILURE, 0)),          # older number
        ]
        for datagram in bad:
            tx.sendto(datagram, target)
        wait_for(health, lambda _: sum(v for k, v in health.counts().items() if k.startswith("dropped_")) == 7)
        counts = health.counts()
        assert {k: counts[f"dropped_{k}"] for k in ("malformed", "unauthenticated", "unknown_host", "replayed")} == \
            {"malformed": 2, "unauthenticated": 2, "unknown_host": 1, "replayed": 2}
        after = health.snapshot(time.monotonic())[HOST]
        assert (after.state, after.flag, after.transitions) == (before.state, before.flag, before.transitions)
        assert counts["accepted_heartbeat"] == 1
        # The forged and unsigned numbers 2000 and 2001 did not move the replay window.
        tx.sendto(good.encode(Heartbeat(HOST, 1001, HeartbeatFlag.APPLICATION_DOWN, 0)), target)
        wait_for(health, reached(HealthState.DOWN))


def test_agent_process_killed_and_planned_failure(tmp_path):
    key_file = tmp_path / "agent.key"
    key_file.write_bytes(KEY)
    with cluster_health(tmp_path) as health:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "--controller", f"127.0.0.1:{health.listener.port}", "--host-id",
             str(HOST), "--period", str(PERIOD), "--key-file", str(key_file), "--planned-notice", "1.0"],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(health, lambda _: health.counts()["accepted_heartbeat"] >= 2)
            process.send_signal(signal.SIGUSR1)            # planned failure in 1 s
            announced = time.monotonic()
            seen = wait_for(health, reached(HealthState.DOWN))
            assert [t.new for t in seen] == [HealthState.DRAINING, HealthState.DOWN]
            assert seen[1].reason == "planned failure"
            assert seen[1].time - announced == pytest.approx(1.0, abs=PERIOD + 0.1)
            process.send_signal(signal.SIGUSR2)            # withdrawn: recovers after 2 good periods
            wait_for(health, reached(HealthState.UP))
            process.kill()                                 # SIGKILL: no goodbye
            killed = time.monotonic()
            [down] = wait_for(health, reached(HealthState.DOWN))
            assert 2.5 * PERIOD <= down.time - killed <= 5 * PERIOD
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=5)


def test_listener_overflow_is_counted_not_queued():
    with HealthListener("127.0.0.1", 0, queue_size=5) as listener, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(20):
            tx.sendto(bytes([i]), listener.address)
        deadline = time.monotonic() + 5
        while listener.received < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert listener.overflow == 15
        drained = listener.drain()
        assert [d.payload for d in drained] == [bytes([i]) for i in range(5)]
        assert all(d.source[0] == "127.0.0.1" and d.received_at > 0 for d in drained)
    with HealthListener("127.0.0.1", 0) as first, pytest.raises(OSError):   # a taken port: error at start
        HealthListener("127.0.0.1", first.port)
