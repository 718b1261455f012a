"""Per-backend health: a state machine fed with heartbeats, advisor results and the clock.

Pure: times are passed in (the controller's monotonic seconds), nothing here sleeps, reads
a socket or a clock, so the serving loop, the tests and a simulator drive it alike.

States (only UP takes new flows):

    UP          healthy
    DRAINING    a planned failure is announced: no new flows, its flows continue;
                DOWN at the announced time (UP again if the announcement is withdrawn)
    DOWN        failed; the reason says why
    RECOVERING  healthy again, but not yet for `recovery_periods` periods in a row

A backend is failed when any of its sources says so:

  * its agent's heartbeats: none for more than (missed_limit + late_tolerance) periods
    (SARA: 3 missed periods; the tolerance keeps a heartbeat a few ms late from counting
    as missed), the application-down flag, or a planned failure whose time has come;
  * an advisor: `advisor_fail_limit` failed probes in a row.

Recovery (hysteresis): every source must have `recovery_periods` good periods in a row. A
heartbeat period is good when an up-flagged heartbeat arrives; heartbeats closer than half
a period count once; a gap of more than (1 + late_tolerance) periods restarts the count.
A heartbeat is good when up-flagged or announcing a failure still ahead. An advisor period
is good when its probe succeeds. Any failure, and every move to DOWN, resets the counts.

A backend with no agent and no advisor is not watched: it is always UP. At start every
watched backend is assumed UP with full good counts, and its agent has missed_limit
periods (plus the tolerance) from the monitor's start to be heard.

Every method that can change a state returns the transitions it made, oldest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from controller.health.messages import Heartbeat, HeartbeatFlag

HISTORY = 20   # transitions kept per backend for the status


class HealthState(StrEnum):
    UP = "up"
    DRAINING = "draining"
    DOWN = "down"
    RECOVERING = "recovering"


@dataclass(frozen=True)
class MonitorSettings:
    period_s: float = 1.0
    missed_limit: int = 3
    recovery_periods: int = 3
    late_tolerance: float = 0.5
    advisor_fail_limit: int = 1

    def __post_init__(self) -> None:
        if self.period_s <= 0 or self.missed_limit < 1 or self.recovery_periods < 1 or self.advisor_fail_limit < 1:
            raise ValueError(f"health settings out of range: {self}")
        if not 0 <= self.late_tolerance < 1:
            raise ValueError(f"late_tolerance must be in [0, 1), got {self.late_tolerance}")


@dataclass(frozen=True)
class Transition:
    backend_id: int
    time: float
    old: HealthState
    new: HealthState
    reason: str


@dataclass(frozen=True)
class AdvisorStatus:
    ok: bool | None              # None: no probe finished yet
    response_time: float | None  # seconds, of the latest successful probe
    detail: str
    failures: int                # failed probes in a row


@dataclass(frozen=True)
class BackendHealth:
    """One backend's health as the status shows it."""
    backend_id: int
    state: HealthState
    reason: str
    since: float
    has_agent: bool
    last_heartbeat_age: float | None       # s since the last accepted heartbeat (None: never)
    flag: HeartbeatFlag | None
    planned_failure_in: float | None       # s until the announced failure (negative: past)
    good_periods: int                      # the smallest good-period count over its sources
    advisors: dict[str, AdvisorStatus]
    transitions: tuple[Transition, ...]

    @property
    def takes_new_flows(self) -> bool:
        return self.state == HealthState.UP


@dataclass
class _Advisor:
    ok: bool | None = None
    response_time: float | None = None
    detail: str = "no probe yet"
    failures: int = 0
    streak: int = 0


@dataclass
class _Backend:
    id: int
    has_agent: bool
    advisors: dict[str, _Advisor]
    state: HealthState
    reason: str
    since: float
    last_heard: float                       # last accepted heartbeat (or the monitor's start)
    heard: bool = False
    flag: HeartbeatFlag | None = None
    planned_at: float | None = None
    streak: int = 0                         # good heartbeat periods in a row
    last_good: float | None = None
    last_counted: float | None = None
    history: deque[Transition] = field(default_factory=lambda: deque(maxlen=HISTORY))


class HealthMonitor:
    """Health of every watched backend.

    hosts: host id -> the backends its agent speaks for (usually one).
    advisors: backend id -> the names of the advisors probing it.
    """

    def __init__(self, settings: MonitorSettings, hosts: Mapping[int, Iterable[int]],
                 advisors: Mapping[int, Iterable[str]], now: float) -> None:
        self.settings = settings
        self.hosts = {host: tuple(backends) for host, backends in hosts.items()}
        with_agent = {b for backends in self.hosts.values() for b in backends}
        k = settings.recovery_periods
        self._backends: dict[int, _Backend] = {}
        for backend_id in with_agent | set(advisors):
            names = tuple(advisors.get(backend_id, ()))
            self._backends[backend_id] = _Backend(
                id=backend_id, has_agent=backend_id in with_agent,
                advisors={name: _Advisor(streak=k) for name in names},
                state=HealthState.UP, reason="assumed up at start", since=now, last_heard=now, streak=k,
                last_good=now, last_counted=now)

    # ---- questions ----------------------------------------------------------------------

    def __contains__(self, backend_id: int) -> bool:
        return backend_id in self._backends

    def state(self, backend_id: int) -> HealthState:
        backend = self._backends.get(backend_id)
        return HealthState.UP if backend is None else backend.state

    def takes_new_flows(self, backend_id: int) -> bool:
        """Only an UP backend (or one nobody watches) may be given new flows."""
        return self.state(backend_id) == HealthState.UP

    def advisors_pass(self, backend_id: int) -> bool:
        """Whether the backend has advisors and every one passed its latest probe: the server
        answers, whatever its agent says."""
        backend = self._backends.get(backend_id)
        return backend is not None and bool(backend.advisors) and all(a.ok for a in backend.advisors.values())

    def forward_metric(self, backend_id: int) -> float:
        """ND's forward metric: the slowest of its advisors' latest response times, s (0: none)."""
        backend = self._backends.get(backend_id)
        times = [a.response_time for a in backend.advisors.values() if a.response_time is not None] \
            if backend else []
        return max(times, default=0.0)

    def snapshot(self, now: float) -> dict[int, BackendHealth]:
        return {b.id: self._health(b, now) for b in self._backends.values()}

    # ---- events ----------------------------------------------------------------------------

    def heartbeat(self, message: Heartbeat, received_at: float) -> list[Transition]:
        """An accepted heartbeat (see intake.py); applies to every backend of its host."""
        changes: list[Transition] = []
        for backend_id in self.hosts.get(message.host_id, ()):
            backend = self._backends[backend_id]
            self._record_heartbeat(backend, message, received_at)
            changes += self._evaluate(backend, received_at)
        return changes

    def advisor_result(self, backend_id: int, advisor: str, ok: bool, at: float,
                       response_time: float | None = None, detail: str = "") -> list[Transition]:
        backend = self._backends.get(backend_id)
        if backend is None or advisor not in backend.advisors:
            return []
        track = backend.advisors[advisor]
        track.ok, track.detail = ok, detail or ("ok" if ok else "failed")
        if ok:
            track.response_time = response_time
            track.failures, track.streak = 0, track.streak + 1
        else:
            track.failures, track.streak = track.failures + 1, 0
        return self._evaluate(backend, at)

    def tick(self, now: float) -> list[Transition]:
        """Re-evaluate every backend: missed heartbeats and planned failures fall due here."""
        changes: list[Transition] = []
        for backend in self._backends.values():
            changes += self._evaluate(backend, now)
        return changes

    # ---- the rules --------------------------------------------------------------------------

    def _record_heartbeat(self, backend: _Backend, message: Heartbeat, at: float) -> None:
        period = self.settings.period_s
        backend.last_heard, backend.heard, backend.flag = at, True, message.flag
        if message.flag == HeartbeatFlag.PLANNED_FAILURE:
            backend.planned_at = at + message.timestamp_ms / 1000
        else:
            backend.planned_at = None
        # Alive with its application up: up-flagged, or a planned failure still ahead.
        good = message.flag == HeartbeatFlag.UP or (backend.planned_at is not None and backend.planned_at > at)
        if not good:
            backend.streak, backend.last_good, backend.last_counted = 0, None, None
            return
        if backend.last_good is None or at - backend.last_good > (1 + self.settings.late_tolerance) * period:
            backend.streak, backend.last_counted = 1, at       # a period was missed: count anew
        elif backend.last_counted is None or at - backend.last_counted >= period / 2:
            backend.streak, backend.last_counted = backend.streak + 1, at
        backend.last_good = at

    def _problem(self, backend: _Backend, now: float) -> str | None:
        """Why the backend is failed now, or None."""
        s = self.settings
        if backend.has_agent:
            silent = now - backend.last_heard
            if silent > (s.missed_limit + s.late_tolerance) * s.period_s:
                since = "since the controller started" if not backend.heard else f"for {silent:.1f} s"
                return f"no heartbeat {since} ({int(silent / s.period_s)} periods missed)"
            if backend.flag == HeartbeatFlag.APPLICATION_DOWN:
                return "application down (the agent's check failed)"
            if backend.planned_at is not None and backend.planned_at <= now:
                return "planned failure"
        for name, advisor in backend.advisors.items():
            if advisor.failures >= s.advisor_fail_limit:
                return f"advisor {name}: {advisor.detail}"
        return None

    def _good_periods(self, backend: _Backend) -> int:
        counts = [a.streak for a in backend.advisors.values()]
        if backend.has_agent:
            counts.append(backend.streak)
        return min(counts, default=self.settings.recovery_periods)

    def _evaluate(self, backend: _Backend, now: float) -> list[Transition]:
        problem = self._problem(backend, now)
        state = backend.state
        if problem is not None:
            if state != HealthState.DOWN:
                return [self._move(backend, HealthState.DOWN, problem, now)]
            backend.reason = problem     # still down, perhaps for another reason now
            return []
        if backend.planned_at is not None and backend.planned_at > now:
            why = f"planned failure in {backend.planned_at - now:.1f} s"
            if state in (HealthState.UP, HealthState.RECOVERING):
                return [self._move(backend, HealthState.DRAINING, why, now)]
            if state == HealthState.DRAINING:
                backend.reason = why
            return []
        k = self.settings.recovery_periods
        good = self._good_periods(backend)
        if state == HealthState.DRAINING:     # withdrawn before its time: it never failed
            target = HealthState.UP if good >= k else HealthState.RECOVERING
            return [self._move(backend, target, "planned failure withdrawn", now)]
        if state == HealthState.DOWN:
            if good >= k:
                return [self._move(backend, HealthState.UP, f"{good} good periods", now)]
            return [self._move(backend, HealthState.RECOVERING, f"good again ({good} of {k} periods)", now)]
        if state == HealthState.RECOVERING:
            if good >= k:
                return [self._move(backend, HealthState.UP, f"{k} good periods in a row", now)]
            backend.reason = f"good again ({good} of {k} periods)"
        return []

    @staticmethod
    def _move(backend: _Backend, new: HealthState, reason: str, now: float) -> Transition:
        change = Transition(backend.id, now, backend.state, new, reason)
        backend.state, backend.reason, backend.since = new, reason, now
        if new == HealthState.DOWN:     # recovery counts good periods from the failure on
            backend.streak, backend.last_good, backend.last_counted = 0, None, None
            for advisor in backend.advisors.values():
                advisor.streak = 0
        backend.history.append(change)
        return change

    def _health(self, b: _Backend, now: float) -> BackendHealth:
        return BackendHealth(
            backend_id=b.id, state=b.state, reason=b.reason, since=b.since, has_agent=b.has_agent,
            last_heartbeat_age=now - b.last_heard if b.heard else None, flag=b.flag,
            planned_failure_in=None if b.planned_at is None else b.planned_at - now,
            good_periods=self._good_periods(b),
            advisors={name: AdvisorStatus(a.ok, a.response_time, a.detail, a.failures)
                      for name, a in b.advisors.items()},
            transitions=tuple(b.history))
