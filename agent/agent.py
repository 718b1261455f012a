"""The agent's loop: every period, check the application, send a heartbeat, sample the host
and send a load report.

The heartbeat goes first: it is the liveness signal, and sampling (listing connections,
running a metric command) may take a while. A failed sample costs the report, never the
heartbeat. Periods are kept on a monotonic schedule; a late turn does not send a burst.

Planned failure (SARA): `announce_planned_failure(in_s)` makes every heartbeat carry the
planned-failure flag and the ms left until then, so the controller drains the backend now
and takes it down at that time; `withdraw_planned_failure()` goes back to up.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.host_sampler import Sample
from controller.health.messages import (
    MIN_PERIOD_S,
    SEQUENCE_MODULO,
    Codec,
    Heartbeat,
    HeartbeatFlag,
    LoadReport,
    initial_sequence,
)

log = logging.getLogger("agent")
ERROR_LOG_EVERY = 60     # after the first, log one send error in this many


@dataclass(frozen=True)
class AgentSettings:
    controller: tuple[str, int]         # the controller's health listener (address, port)
    host_id: int
    period_s: float = 1.0
    key: bytes | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.host_id <= 0xFFFF:
            raise ValueError(f"host id must be within 0..65535, got {self.host_id}")
        if self.period_s < MIN_PERIOD_S:
            raise ValueError(f"period must be at least {MIN_PERIOD_S} s (sequence numbers are "
                             f"seeded from the clock in {MIN_PERIOD_S} s ticks), got {self.period_s}")


class Agent:
    def __init__(self, settings: AgentSettings, sample: Callable[[], Sample],
                 check: Callable[[], tuple[bool, str]], wall: Callable[[], float] = time.time,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.codec = Codec(settings.key)
        self.sample = sample
        self.check = check
        self.wall = wall
        self.clock = clock
        address = settings.controller[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._heartbeat_seq = self._report_seq = initial_sequence(wall())
        self._started = clock()
        self._planned_at: float | None = None     # on self.clock
        self._app_down_reason = ""
        self.sent = 0
        self.send_errors = 0

    # ---- planned failure (from signal handlers or an operator's tool) ----------------------

    def announce_planned_failure(self, in_s: float) -> None:
        self._planned_at = self.clock() + max(in_s, 0.0)
        log.info("announcing a planned failure in %.1f s", in_s)

    def withdraw_planned_failure(self) -> None:
        if self._planned_at is not None:
            log.info("planned failure withdrawn")
        self._planned_at = None

    # ---- one period -------------------------------------------------------------------------

    def heartbeat(self) -> Heartbeat:
        """The next heartbeat: application down beats planned failure beats up."""
        up, why = self.check()
        if not up and why != self._app_down_reason:
            log.warning("application down: %s", why)
        elif up and self._app_down_reason:
            log.info("application up again")
        self._app_down_reason = "" if up else why
        planned_at = self._planned_at
        if not up:
            flag, timestamp = HeartbeatFlag.APPLICATION_DOWN, self._wall_ms()
        elif planned_at is not None:
            flag, timestamp = HeartbeatFlag.PLANNED_FAILURE, round(max(planned_at - self.clock(), 0.0) * 1000)
        else:
            flag, timestamp = HeartbeatFlag.UP, self._wall_ms()
        self._heartbeat_seq = (self._heartbeat_seq + 1) % SEQUENCE_MODULO
        return Heartbeat(self.settings.host_id, self._heartbeat_seq, flag, min(timestamp, SEQUENCE_MODULO - 1))

    def report(self) -> LoadReport:
        s = self.sample()
        self._report_seq = (self._report_seq + 1) % SEQUENCE_MODULO
        return LoadReport(host_id=self.settings.host_id, seq=self._report_seq,
                          uptime_ms=round((self.clock() - self._started) * 1000) % SEQUENCE_MODULO,
                          tx_bytes=s.tx_bytes, tx_packets=s.tx_packets, cpu_percent=s.cpu_percent,
                          memory_percent=s.memory_percent, load_average=s.load_average, cpus=s.cpus,
                          connections=s.connections, custom=s.custom)

    def send_once(self) -> None:
        self._send(self.codec.encode(self.heartbeat()))
        try:
            report = self.report()
        except Exception as exc:       # psutil or the metric command: lose the report, not the agent
            log.warning("no load report this period: %s", exc)
            return
        self._send(self.codec.encode(report))

    def run(self, stop: threading.Event) -> None:
        """Until stop is set: one period's messages, then wait for the next period."""
        period = self.settings.period_s
        next_at = self.clock()
        while not stop.is_set():
            self.send_once()
            next_at += period
            now = self.clock()
            if next_at <= now:        # fell behind (a slow check or sample): no burst to catch up
                next_at = now + period
            stop.wait(next_at - now)

    def close(self) -> None:
        self._socket.close()

    def _send(self, payload: bytes) -> None:
        try:
            self._socket.sendto(payload, self.settings.controller)
            self.sent += 1
        except OSError as exc:
            self.send_errors += 1
            if self.send_errors % ERROR_LOG_EVERY == 1:
                log.warning("cannot send to %s:%d: %s (%d errors so far)", *self.settings.controller,
                            exc, self.send_errors)

    def _wall_ms(self) -> int:
        return int(self.wall() * 1000) % SEQUENCE_MODULO
