"""Issue 11's proofs in the emulated server cluster: a fault on one backend under load, what
the controller detected and when, what reached the backend afterwards, and what the clients
saw; and bad datagrams sent at the controller's health port over the emulated network.

    run_fault("server-killed", FaultOptions(), workdir) -> FaultResult
    run_bad_input(FaultOptions(), workdir) -> dict

Every run is a fresh ServerCluster with an agent on every backend and an HTTP advisor
(topo/server_cluster.py, `ClusterHealthSpec`), the real controller embedded in this process
(topo/cluster_demo.EmbeddedController, started once the servers and agents run), HTTP
clients at a steady Poisson rate, and tcpdump in every backend recording each client SYN
(`ServerCluster.start_syn_captures`). The timeline:

    clients start -> warm-up -> fault -> detection (the controller's transition) -> the ring
    write without the backend -> hold -> the fault undone -> recovery (UP again) -> load
    continues -> clients finish

Measures (all clocks of one machine: the controller's transition times are monotonic and
are put on the wall clock with one offset read at the fault; the ring write's time is that
of the controller's own log line, taken by `RingWrites`):
  * detection: the backend's first transition after the fault to DOWN (DRAINING for a
    planned failure), in seconds and health periods; and the ring write that follows;
  * new connections after detection: clients whose first SYN reached the backend's
    interfaces after that ring write and before the fault was undone (tcpdump on `any` in
    its namespace: a capture survives the links going down); with the links down nothing can
    arrive, so the packets the switch sent to its port in that time (the P4 program's
    `port_out`, from the controller's status) are given too;
  * failed requests: those in flight at any time from the fault until one period after the
    detection ("in the window"), those started after the ring write, and every failure by
    when it started;
  * recovery: the transition back to UP after the fault was undone, and the connections the
    backend received from then on (it takes new flows again).
Everything this starts is stopped on the way out, whatever happens (the cluster's own
clean-up; a frozen server is continued first).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from controller.config import Config
from controller.health.messages import (
    HEARTBEAT,
    REPORT,
    REPORT_MAGIC,
    REPORT_VERSION,
    TAG_SIZE,
    Codec,
    Heartbeat,
    HeartbeatFlag,
    LoadReport,
    load_key,
)
from controller.status import ControllerStatus
from topo.cluster_demo import EmbeddedController
from topo.lifetime import tied
from topo.mininet_support import free_tcp_port
from topo.server_cluster import (
    CONTROLLER_ADDRESS,
    MANAGEMENT,
    ClientRun,
    ClusterHealthSpec,
    ServerCluster,
    ServerClusterSpec,
    Syn,
)
from topo.toolchain import REPO

log = logging.getLogger("bench.health")

FAULTS = ("server-killed", "agent-killed", "server-frozen", "link-down", "planned")
SLOW_S = 1.0      # an answered request slower than this is counted as slow (p99 of them all: 0.25 s)


class BenchError(RuntimeError):
    """A run could not produce its measurement (a readiness wait timed out, ...)."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return int(s.getsockname()[1])


@dataclass
class FaultOptions:
    period_s: float = 1.0
    missed_limit: int = 3
    recovery_periods: int = 3
    clients: int = 3
    rate: float = 15.0                  # new connections/s over all clients
    capacities: tuple[float, ...] = (10.0, 10.0, 10.0)
    # round_robin: the ring gives every backend that takes new flows an equal share, so what
    # reaches the backend is the health machinery's doing (fb_est's own moves, which herd on
    # this cluster, would blur "it takes flows again").
    policy: str = "round_robin"
    cdf: str = "fb_hadoop"
    max_bytes: int = 200_000
    request_timeout_s: float = 10.0
    backend: str = "web1"               # the one the fault hits
    warmup_s: float = 8.0
    hold_s: float = 5.0                 # after the detection, before the fault is undone
    after_s: float = 8.0                # load after the recovery
    planned_notice_s: float = 5.0
    advisor: Literal["none", "tcp", "http"] = "http"
    agent_check: Literal["none", "tcp", "http"] = "http"

    def health(self) -> ClusterHealthSpec:
        return ClusterHealthSpec(period_s=self.period_s, missed_limit=self.missed_limit,
                                 recovery_periods=self.recovery_periods, planned_notice_s=self.planned_notice_s,
                                 advisor=self.advisor, agent_check=self.agent_check,
                                 advisor_timeout_s=min(0.5, self.period_s), listen_port=free_udp_port())

    def spec(self) -> ServerClusterSpec:
        return ServerClusterSpec(clients=self.clients, capacities_mbit=self.capacities, policy=self.policy,
                                 grpc_port=free_tcp_port(), thrift_port=free_tcp_port(), health=self.health())

    def detection_budget_s(self, fault: str) -> float:
        """The longest a detection may take before the run calls it missed."""
        budget = (self.missed_limit + 2.5) * self.period_s + 2.0
        return budget + (self.planned_notice_s if fault == "planned" else 0.0)

    def recovery_budget_s(self) -> float:
        return (self.recovery_periods + self.missed_limit + 3) * self.period_s + 5.0

    def client_duration_s(self, fault: str) -> float:
        return (self.warmup_s + self.detection_budget_s(fault) + self.hold_s + self.recovery_budget_s()
                + self.after_s)


# ---- the controller's status through a run --------------------------------------------------

@dataclass(frozen=True)
class TransitionAt:
    time: float             # monotonic
    old: str
    new: str
    reason: str


class StatusTrace:
    """The embedded controller's status, sampled every `interval` s in a thread."""

    def __init__(self, embedded: EmbeddedController, interval: float = 0.1) -> None:
        self.controller = embedded.controller
        self.interval = interval
        self.samples: list[tuple[float, ControllerStatus]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="status-trace", daemon=True)

    def __enter__(self) -> StatusTrace:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic(), self.controller.status()))

    def latest(self) -> ControllerStatus:
        return self.controller.status()

    def transitions(self, backend: str) -> list[TransitionAt]:
        """Every transition of `backend` in the status now (the last 20), on the monotonic clock."""
        return transitions_of(self.controller.status(), self.controller.started, backend)

    def port_packets(self, port: int, since: float, until: float) -> int | None:
        """Packets the switch sent to `port` between two monotonic times (nearest samples)."""
        def at(t: float) -> int | None:
            best = min(self.samples, key=lambda s: abs(s[0] - t), default=None)
            if best is None:
                return None
            cell = best[1].ports.get("out", {}).get(str(port))
            return cell.packets if cell is not None else None
        first, last = at(since), at(until)
        return None if first is None or last is None else last - first


class RingWrites(logging.Handler):
    """The wall-clock times of the controller's ring writes, from its own log line ("service web:
    ring rewritten ... : web2 50%, web3 50%", logged once the switch has taken the write):
    a down backend gets no new flow from the next ring write on, so that is when the count of
    new connections starts."""

    LOGGER = "controller.rings"

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.writes: list[tuple[float, str]] = []
        self._logger = logging.getLogger(self.LOGGER)
        self._level = self._logger.level

    def __enter__(self) -> RingWrites:
        self._logger.addHandler(self)
        if self._logger.getEffectiveLevel() > logging.INFO:
            self._logger.setLevel(logging.INFO)
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.setLevel(self._level)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "ring rewritten" in message:
            self.writes.append((record.created, message))

    def first_without(self, backend: str, after: float) -> float | None:
        """The first write at or after `after` (wall) that leaves `backend` out of the ring."""
        return next((t for t, message in self.writes
                     if t >= after and backend not in _ring_shares(message)), None)


def _ring_shares(message: str) -> list[str]:
    """Backend names in a "ring rewritten (...): web2 50%, web3 50%" line."""
    return [part.split()[0] for part in message.rpartition("): ")[2].split(", ") if part.strip()]


def transitions_of(status: ControllerStatus, started: float, backend: str) -> list[TransitionAt]:
    built = started + status.uptime_s
    for service in status.services:
        for b in service.backends:
            if b.name == backend and b.health is not None:
                return [TransitionAt(built - t.ago_s, t.old, t.new, t.reason) for t in b.health.transitions]
    return []


def backend_health(status: ControllerStatus, name: str):
    for service in status.services:
        for b in service.backends:
            if b.name == name:
                return b.health
    return None


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               state: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}; {state()}")
        time.sleep(0.05)


def health_table(status: ControllerStatus) -> str:
    rows = []
    for service in status.services:
        for b in service.backends:
            h = b.health
            rows.append(f"{b.name}: {h.state if h else '-'} ({h.reason if h else ''}, "
                        f"heartbeat age {h.last_heartbeat_age_s if h else None})")
    return "; ".join(rows)


def all_up(status: ControllerStatus, period_s: float) -> bool:
    """Every backend up, heard from within two periods, and its advisors (if any) passing."""
    backends = [b for s in status.services for b in s.backends]
    return bool(backends) and all(
        b.health is not None and b.health.state == "up" and b.health.last_heartbeat_age_s is not None
        and b.health.last_heartbeat_age_s < 2 * period_s and all(a.ok for a in b.health.advisors)
        for b in backends)


@contextmanager
def health_cluster(options: FaultOptions, workdir: Path,
                   spec: ServerClusterSpec | None = None) -> Iterator[tuple[ServerCluster, EmbeddedController]]:
    """A fresh cluster with HTTP servers and agents running, then its controller, primary, with
    every backend up and heard from; everything stopped on exit. (The servers start first, so
    that the advisors' first probes find them.)"""
    cluster = ServerCluster(spec or options.spec(), workdir)
    with cluster:
        cluster.start_http_servers()
        cluster.start_agents()
        config = cluster.controller_config()
        config["api"] = {"address": "127.0.0.1", "port": free_tcp_port()}
        with EmbeddedController(Config.model_validate(config)) as embedded:
            embedded.wait_primary()
            wait_until(lambda: all_up(embedded.controller.status(), options.period_s),
                       30 + (options.recovery_periods + 2) * options.period_s, "every backend up and heard from",
                       lambda: health_table(embedded.controller.status()))
            yield cluster, embedded


# ---- faults ---------------------------------------------------------------------------------

class Fault:
    """What happens to the backend, and how it is undone. `cleanup` makes sure nothing is left
    in a state the cluster's own stop cannot handle (a stopped process)."""

    name = ""
    detected_as = "down"

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        raise NotImplementedError

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        raise NotImplementedError

    def cleanup(self, cluster: ServerCluster, backend: str) -> None:
        """After the run, whatever happened."""


class ServerKilled(Fault):
    name = "server-killed"

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        cluster.signal_server(backend, signal.SIGKILL)

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        cluster.start_http_server(backend)


class AgentKilled(Fault):
    name = "agent-killed"

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        cluster.signal_agent(backend, signal.SIGKILL)

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        cluster.start_agent(backend)


class ServerFrozen(Fault):
    name = "server-frozen"

    def __init__(self) -> None:
        self.frozen = False

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        cluster.signal_server(backend, signal.SIGSTOP)
        self.frozen = True

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        cluster.signal_server(backend, signal.SIGCONT)
        self.frozen = False

    def cleanup(self, cluster: ServerCluster, backend: str) -> None:
        if self.frozen:
            self.undo(cluster, backend)


class LinkDown(Fault):
    name = "link-down"

    def __init__(self) -> None:
        self.down = False

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        self.down = True
        cluster.set_backend_links(backend, up=False)

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        cluster.set_backend_links(backend, up=True)
        self.down = False


class PlannedFailure(Fault):
    """The agent announces (SIGUSR1) a failure `planned_notice_s` ahead; at that time the
    maintenance stops the server (SIGTERM, as an operator's script would). Undone: the server
    started again and the announcement withdrawn (SIGUSR2)."""

    name = "planned"
    detected_as = "draining"

    def inject(self, cluster: ServerCluster, backend: str) -> None:
        cluster.signal_agent(backend, signal.SIGUSR1)

    def maintenance(self, cluster: ServerCluster, backend: str) -> None:
        proc = cluster.servers[backend]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)

    def undo(self, cluster: ServerCluster, backend: str) -> None:
        cluster.start_http_server(backend)
        cluster.signal_agent(backend, signal.SIGUSR2)


def make_fault(name: str) -> Fault:
    kinds: dict[str, type[Fault]] = {k.name: k for k in (ServerKilled, AgentKilled, ServerFrozen, LinkDown,
                                                         PlannedFailure)}
    if name not in kinds:
        raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
    return kinds[name]()


# ---- one fault ------------------------------------------------------------------------------

@dataclass
class FaultResult:
    fault: str
    backend: str
    period_s: float
    detected: bool
    run: int = 1                              # which repetition of this fault
    fault_time: float | None = None           # wall clock (the clients' records and tcpdump's stamps)
    detected_as: str | None = None
    detection_s: float | None = None          # from the fault to the transition
    down_s: float | None = None               # planned: from the announcement to DOWN
    detection_reason: str | None = None
    ring_write_s: float | None = None                     # from the detection to the ring write without it
    new_connections_after_detection: int | None = None   # clients whose first SYN came after the ring write
    syn_packets_after_detection: int | None = None        # SYN packets after the ring write (retransmissions too)
    new_connections_during_ring_write: int | None = None  # first SYNs between the detection and the write
    new_connections_fault_to_detection: int | None = None
    switch_packets_after_detection: int | None = None     # port_out of its port, ring write + 0.2 s -> undo
    switch_packets_before_fault: int | None = None        # as long before the fault, at most the warm-up (a reference)
    requests: int = 0
    failed: int = 0
    failed_in_window: int = 0
    requests_in_window: int = 0
    failed_after_detection: int = 0            # failures of requests started after the ring write
    failed_by_phase: dict[str, int] = field(default_factory=dict)
    errors_in_window: dict[str, int] = field(default_factory=dict)
    slow_in_window: int = 0                    # answered, but after more than SLOW_S
    max_latency_in_window_s: float | None = None
    recovered: bool = False
    recovery_s: float | None = None            # from the undo to UP
    new_connections_after_recovery: int = 0
    transitions: list[dict] = field(default_factory=list)   # relative to the fault
    notes: list[str] = field(default_factory=list)

    @property
    def detection_periods(self) -> float | None:
        return None if self.detection_s is None else self.detection_s / self.period_s


@dataclass
class Timeline:
    """What happened when in one fault run: monotonic times, and `offset` to put them on the
    wall clock (tcpdump's and the clients' stamps)."""
    offset: float
    fault_at: float
    undone_at: float
    detection: TransitionAt | None
    recovery: TransitionAt | None
    transitions: list[TransitionAt]
    ring_write: float | None                    # wall
    switch_packets: tuple[int | None, int | None] = (None, None)   # after the write, before the fault

    def wall(self, mono: float) -> float:
        return mono + self.offset


def run_fault(name: str, options: FaultOptions, workdir: Path, run: int = 1) -> FaultResult:
    fault = make_fault(name)
    backend = options.backend
    result = FaultResult(fault=name, backend=backend, period_s=options.period_s, detected=False, run=run)
    with health_cluster(options, workdir) as (cluster, embedded):
        spec = cluster.spec
        port = spec.backend_port(spec.backend_index(backend))
        cluster.start_syn_captures()
        time.sleep(1.0)                   # tcpdump attached
        duration = options.client_duration_s(name)
        with StatusTrace(embedded) as trace, RingWrites() as rings:
            running = cluster.start_clients(rate=options.rate / spec.clients, duration=duration, cdf=options.cdf,
                                            max_bytes=options.max_bytes, request_timeout=options.request_timeout_s)
            started = time.monotonic()
            try:
                time.sleep(options.warmup_s)
                offset = time.time() - time.monotonic()      # wall = monotonic + offset
                fault_at = time.monotonic()
                log.info("%s: injecting on %s", name, backend)
                fault.inject(cluster, backend)

                def after_fault(state: str) -> TransitionAt | None:
                    return next((t for t in trace.transitions(backend) if t.time >= fault_at and t.new == state),
                                None)

                try:
                    wait_until(lambda: after_fault(fault.detected_as) is not None,
                               options.detection_budget_s(name), f"{backend} {fault.detected_as}",
                               lambda: health_table(trace.latest()))
                except BenchError as exc:
                    result.notes.append(str(exc))
                detection = after_fault(fault.detected_as)
                if isinstance(fault, PlannedFailure):
                    # The maintenance window: the server goes when the announcement said.
                    planned_at = fault_at + options.planned_notice_s
                    time.sleep(max(0.0, planned_at - time.monotonic()))
                    fault.maintenance(cluster, backend)
                    try:
                        wait_until(lambda: after_fault("down") is not None, 3 * options.period_s + 2,
                                   f"{backend} down at the planned time", lambda: health_table(trace.latest()))
                    except BenchError as exc:
                        result.notes.append(str(exc))
                    hold_from = time.monotonic()
                else:
                    hold_from = detection.time if detection is not None else time.monotonic()
                time.sleep(max(0.0, hold_from + options.hold_s - time.monotonic()))
                undone_at = time.monotonic()
                log.info("%s: undoing on %s", name, backend)
                fault.undo(cluster, backend)

                def up_again() -> TransitionAt | None:
                    return next((t for t in trace.transitions(backend) if t.time >= undone_at and t.new == "up"),
                                None)

                try:
                    wait_until(lambda: up_again() is not None, options.recovery_budget_s(),
                               f"{backend} up again", lambda: health_table(trace.latest()))
                except BenchError as exc:
                    result.notes.append(str(exc))
                recovery = up_again()
            finally:
                fault.cleanup(cluster, backend)
            runs = cluster.finish_clients(running, timeout=max(0.0, started + duration - time.monotonic())
                                          + options.request_timeout_s + 30)
            timeline = Timeline(offset, fault_at, undone_at, detection, recovery,
                                [t for t in trace.transitions(backend) if t.time >= fault_at - 0.5],
                                rings.first_without(backend, detection.time + offset) if detection else None)
            if timeline.ring_write is not None:
                # The status is built after each counter poll (every 100 ms): from 0.2 s after the write.
                written = timeline.ring_write - offset
                span = min(undone_at - written - 0.2, options.warmup_s - 1.0)   # the reference: as long, or the warm-up
                timeline.switch_packets = (trace.port_packets(port, written + 0.2, undone_at),
                                           trace.port_packets(port, fault_at - span, fault_at))
        syns = cluster.syns(backend)
    _measure(result, options, fault, runs, syns, timeline)
    return result


def _measure(result: FaultResult, options: FaultOptions, fault: Fault, runs: dict[str, ClientRun],
             syns: list[Syn], tl: Timeline) -> None:
    wall = tl.wall
    fault_at, detection, recovery = tl.fault_at, tl.detection, tl.recovery
    result.transitions = [{"at_s": round(t.time - fault_at, 3), "old": t.old, "new": t.new, "reason": t.reason}
                          for t in tl.transitions]
    result.fault_time = wall(fault_at)
    first_syn: dict[str, float] = {}
    for syn in syns:
        first_syn.setdefault(syn.client, syn.time)
    if detection is not None:
        result.detected = True
        result.detected_as = detection.new
        result.detection_s = detection.time - fault_at
        result.detection_reason = detection.reason
        result.new_connections_fault_to_detection = sum(
            1 for t in first_syn.values() if wall(fault_at) <= t <= wall(detection.time))
        if tl.ring_write is not None:
            result.ring_write_s = tl.ring_write - wall(detection.time)
            result.syn_packets_after_detection = sum(1 for s in syns if tl.ring_write < s.time < wall(tl.undone_at))
            result.new_connections_after_detection = sum(
                1 for t in first_syn.values() if tl.ring_write < t < wall(tl.undone_at))
            result.new_connections_during_ring_write = sum(
                1 for t in first_syn.values() if wall(detection.time) < t <= tl.ring_write)
        else:
            result.notes.append("no ring write without the backend after its detection")
        result.switch_packets_after_detection, result.switch_packets_before_fault = tl.switch_packets
    down = next((t for t in tl.transitions if t.new == "down" and t.time >= fault_at), None)
    if isinstance(fault, PlannedFailure) and down is not None:
        result.down_s = down.time - fault_at
    if recovery is not None:
        result.recovered = True
        result.recovery_s = recovery.time - tl.undone_at
        result.new_connections_after_recovery = sum(1 for t in first_syn.values() if t > wall(recovery.time))
    records = [r for run in runs.values() for r in run.records]
    result.requests = len(records)
    failed = [r for r in records if not _ok(r)]
    result.failed = len(failed)
    detected_at = wall(detection.time) if detection is not None else wall(tl.undone_at)
    window = (wall(fault_at), detected_at + options.period_s)
    in_window = [r for r in records if r["start"] <= window[1] and _end(r, options) >= window[0]]
    result.requests_in_window = len(in_window)
    failed_window = [r for r in in_window if not _ok(r)]
    result.failed_in_window = len(failed_window)
    result.errors_in_window = dict(Counter(_error(r) for r in failed_window))
    answered = [r["latency"] for r in in_window if _ok(r)]
    result.slow_in_window = sum(1 for latency in answered if latency > SLOW_S)
    result.max_latency_in_window_s = max(answered, default=None)
    written = tl.ring_write if tl.ring_write is not None else detected_at
    result.failed_after_detection = sum(1 for r in failed if r["start"] > written)
    phases = [("before the fault", wall(fault_at)), ("fault to detection", detected_at),
              ("detection to undo", wall(tl.undone_at)),
              ("undo to up", wall(recovery.time) if recovery is not None else float("inf")),
              ("after up", float("inf"))]
    by_phase: Counter[str] = Counter()
    for r in failed:
        by_phase[next(label for label, until in phases if r["start"] < until)] += 1
    result.failed_by_phase = dict(by_phase)


def _ok(record: dict) -> bool:
    return record.get("error") is None and record.get("status") == 200


def _error(record: dict) -> str:
    error = record.get("error") or f"status {record.get('status')}"
    return f"{error} ({'connected' if record.get('connect') is not None else 'never connected'})"


def _end(record: dict, options: FaultOptions) -> float:
    """When a request ended (its start plus what it took; a failure without a time: the timeout)."""
    elapsed = record.get("elapsed")
    if elapsed is None:
        elapsed = record.get("latency") or options.request_timeout_s
    return float(record["start"]) + float(elapsed)


# ---- bad input --------------------------------------------------------------------------------

def run_bad_input(options: FaultOptions, workdir: Path) -> dict[str, Any]:
    """Malformed, unauthenticated and replayed heartbeats and load reports, sent from a client
    host (outside the backends) at the controller's health port while the cluster serves: each
    is counted by reason, and no backend changes state."""
    result: dict[str, Any] = {"sent": {}, "dropped": {}, "notes": []}
    with health_cluster(options, workdir) as (cluster, embedded):
        spec = cluster.spec
        h = spec.health
        assert h is not None
        controller = embedded.controller
        running = cluster.start_clients(rate=options.rate / spec.clients, duration=20, cdf=options.cdf,
                                        max_bytes=options.max_bytes, request_timeout=options.request_timeout_s)
        # Genuine datagrams, captured where the controller receives them, to replay.
        genuine = capture_datagrams(workdir / "genuine.pcap", h.listen_port, seconds=3 * options.period_s)
        time.sleep(1.0)
        before = controller.status()
        host_ids = [spec.backend_id(j) for j in spec.backend_indices()]
        datagrams = bad_datagrams(load_key(cluster.key_file), host_ids, genuine)
        for reason, batch in datagrams.items():
            result["sent"][reason] = len(batch)
        payload = workdir / "bad-datagrams.hex"
        payload.write_text("".join(d.hex() + "\n" for batch in datagrams.values() for d in batch))
        sender = cluster.host(spec.client_name(1))
        done = cluster.run_in(sender, [sys.executable, "-m", "topo.udp_send", "--to",
                                       f"{CONTROLLER_ADDRESS}:{h.listen_port}", "--hex-file", str(payload)],
                              "udp_send", timeout=30, cwd=str(REPO))
        if done.returncode != 0:
            raise BenchError(f"sending the datagrams failed: {done.stderr[-1000:]}")
        time.sleep(3 * options.period_s)   # past the missed limit: a lost real heartbeat would show
        after = controller.status()
        runs = cluster.finish_clients(running, timeout=60)
    assert before.health is not None and after.health is not None
    result["dropped"] = {k: after.health.dropped.get(k, 0) - before.health.dropped.get(k, 0)
                         for k in sorted(set(after.health.dropped) | set(before.health.dropped))}
    result["accepted_between"] = {k: after.health.messages.get(k, 0) - before.health.messages.get(k, 0)
                                  for k in after.health.messages}
    changes = {}
    for service in after.services:
        for b in service.backends:
            was = backend_health(before, b.name)
            now = b.health
            assert now is not None and was is not None
            changes[b.name] = {"state_before": was.state, "state_after": now.state,
                               "transitions_before": sum(was.transitions_total.values()),
                               "transitions_after": sum(now.transitions_total.values()),
                               "heartbeat_age_after_s": now.last_heartbeat_age_s,
                               "cpu_before": was.host.cpu if was.host else None,
                               "cpu_after": now.host.cpu if now.host else None}
    result["backends"] = changes
    records = [r for run in runs.values() for r in run.records]
    result["requests"] = len(records)
    result["failed"] = sum(1 for r in records if not _ok(r))
    result["counted_as_sent"] = all(result["dropped"].get(k, 0) == n for k, n in result["sent"].items())
    result["unchanged"] = all(c["state_after"] == "up" and c["transitions_after"] == c["transitions_before"]
                              and c["heartbeat_age_after_s"] is not None
                              and c["heartbeat_age_after_s"] < 2 * options.period_s for c in changes.values())
    return result


def bad_datagrams(key: bytes, host_ids: list[int], genuine: list[bytes]) -> dict[str, list[bytes]]:
    """Datagrams the controller must drop, by the reason it must count them under (`key` as
    the controller reads it: controller.health.messages.load_key): malformed
    (no message's size, or signed with the real key but nonsense inside: what a buggy agent
    could send), unauthenticated (unsigned, or signed with another key: every one claiming a
    failure or a full CPU), and replayed (`genuine` ones, captured, sent again)."""
    forged, unsigned = Codec(b"an attacker's key, not the shared one"), Codec()
    late = 0x7FFF_FFFF   # a sequence number far ahead: it must not lock the real agents out

    def signed(body: bytes) -> bytes:
        return body + hmac.new(key, body, hashlib.sha256).digest()[:TAG_SIZE]

    return {
        "malformed": [
            b"", b"\x00" * 7, b"LR" + b"\x09" * 60, b"x" * 2000,                       # no message's size
            signed(HEARTBEAT.pack(host_ids[0], late, 7, 0)),                            # no such flag
            signed(REPORT.pack(REPORT_MAGIC, 9, host_ids[0], late, 0, 0, 0, 0, 0, 0, 0, 0, 0.0)),   # version 9
            signed(REPORT.pack(REPORT_MAGIC, REPORT_VERSION, host_ids[0], late, 0, 0, 0, 20000, 0, 0, 1, 0,
                               math.nan)),                                              # CPU 200 %
        ],
        "unauthenticated": (
            [unsigned.encode(Heartbeat(i, late, HeartbeatFlag.APPLICATION_DOWN, 0)) for i in host_ids]
            + [forged.encode(Heartbeat(i, late, HeartbeatFlag.PLANNED_FAILURE, 0)) for i in host_ids]
            + [forged.encode(LoadReport(i, late, 0, 0, 0, 100.0, 100.0, 64.0, 2, 5000)) for i in host_ids]
            + [b"\xff" * (HEARTBEAT.size + TAG_SIZE)]),                                # a random tag
        "replayed": list(genuine),
    }


def capture_datagrams(path: Path, port: int, seconds: float) -> list[bytes]:
    """UDP payloads sent to the controller's health port, captured for `seconds` on the
    management veth in this (the root) namespace."""
    from sim.pcap_frames import read_frames

    proc = subprocess.Popen(tied(["tcpdump", "-i", f"{MANAGEMENT}-eth0", "-n", "-U", "-w", str(path),
                                  f"udp and dst port {port}"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(seconds)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    payloads = []
    for frame in read_frames(path):
        data = frame.data
        if len(data) < 14 + 20 + 8 or data[12:14] != b"\x08\x00":
            continue
        ihl = (data[14] & 0x0F) * 4
        payloads.append(bytes(data[14 + ihl + 8:]))
    return payloads


# ---- output -----------------------------------------------------------------------------------

def fault_row(r: FaultResult) -> dict[str, Any]:
    return {**asdict(r), "detection_periods": r.detection_periods}


def format_table(results: list[FaultResult]) -> str:
    head = (f"{'fault':16} {'detected as':11} {'after periods (s)':>18} {'ring write ms':>13} "
            f"{'new conn. after write':>21} {'switch pkts after':>17} {'failed in window':>16} "
            f"{'slow in window':>14} {'failed after write':>18} "
            f"{'up again after (s)':>18} {'new conn. after up':>18}")
    lines = [head, "-" * len(head)]
    for r in results:
        detected = (f"{r.detection_periods:.2f} ({r.detection_s:.2f})" if r.detection_s is not None
                    else "not detected")
        label = r.fault if r.run == 1 and not any(x.run > 1 for x in results) else f"{r.fault} #{r.run}"
        lines.append(
            f"{label:16} {r.detected_as or '-':11} {detected:>18} "
            f"{_num(None if r.ring_write_s is None else r.ring_write_s * 1e3, '.0f'):>13} "
            f"{_num(r.new_connections_after_detection):>21} {_num(r.switch_packets_after_detection):>17} "
            f"{f'{r.failed_in_window} of {r.requests_in_window}':>16} {r.slow_in_window:>14} "
            f"{r.failed_after_detection:>18} "
            f"{_num(r.recovery_s, '.2f'):>18} {r.new_connections_after_recovery:>18}")
    return "\n".join(lines)


def format_summary(results: list[FaultResult]) -> str:
    """Per fault over its repetitions: detection (min, median, max periods), new connections
    after the detection (total), failed requests in the window (total), recovery (max)."""
    lines = []
    for fault in dict.fromkeys(r.fault for r in results):
        runs = [r for r in results if r.fault == fault]
        periods = sorted(r.detection_periods for r in runs if r.detection_periods is not None)
        detected = (f"{periods[0]:.2f} / {periods[len(periods) // 2]:.2f} / {periods[-1]:.2f}" if periods
                    else "never")
        after = sum(r.new_connections_after_detection or 0 for r in runs)
        lines.append(f"{fault:14} {len(runs)} runs, detected in {len(periods)} after min/median/max {detected} "
                     f"periods; new connections after detection {after}; "
                     f"failed in the window {sum(r.failed_in_window for r in runs)} of "
                     f"{sum(r.requests_in_window for r in runs)}; slow {sum(r.slow_in_window for r in runs)}; "
                     f"up again in {sum(r.recovered for r in runs)} of {len(runs)}, taking new connections in "
                     f"{sum(r.new_connections_after_recovery > 0 for r in runs)}")
    return "\n".join(lines)


def _num(value: float | int | None, fmt: str = "") -> str:
    return "-" if value is None else format(value, fmt)


def write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
