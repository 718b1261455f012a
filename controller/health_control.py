"""Cluster health and measured load in the serving loop (issue 11).

Two small classes:

  HealthControl   owns ClusterHealth (agents' heartbeats and reports, advisors, the state
                  machine) and the visibility estimator; answers what the policies' view
                  needs per backend: healthy?, switch-to-served ratio, host metric, forward
                  metric. Touches no switch.
  HealthEnforcer  turns its state changes into switch writes: a backend that leaves UP is
                  masked out of the rings at once (a forced ring rewrite), and one that goes
                  DOWN in a service whose `down_entries` is "delete" loses its `flows`
                  entries. The backend stays configured: it comes back by itself when its
                  health does (UP again: the next ring write gives it slots).

Single-threaded like the loop: ClusterHealth's listener and advisors are the only threads,
and they only fill queues that poll() drains.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from controller.backend_pool import BackendPool, LiveBackend
from controller.config import Config
from controller.dataplane.dispatcher_tables import CounterValue
from controller.estimators.visibility import RatioSource, VisibilityEstimator
from controller.health.cluster_health import ClusterHealth
from controller.health.host_metrics import HostSample
from controller.health.monitor import BackendHealth, HealthState, Transition

log = logging.getLogger("controller.health")

# Health is polled at most this often. The loop may turn thousands of times a second under
# a digest load, and every poll ticks every backend's state machine; arrival times are
# stamped by the listener thread, so polling 10 ms late changes no timing, only reaction.
MIN_POLL_INTERVAL_S = 0.01


class HealthStartError(RuntimeError):
    """The health listener could not start (its UDP port is taken, the address is not ours)."""


@dataclass
class HealthChanges:
    """What one poll changed, for the enforcer."""
    transitions: list[Transition] = field(default_factory=list)
    availability_changed: bool = False          # a backend left or re-entered UP: rewrite rings
    delete_entries: list[int] = field(default_factory=list)   # backends whose flows entries go


class HealthControl:
    def __init__(self, config: Config, pool: BackendPool, now: float) -> None:
        self.pool = pool
        self.plan = config.health.plan(config.services)
        self.period_s = config.health.period_s
        self.listen = (config.health.listen_address, config.health.listen_port)
        self.cluster = ClusterHealth(config.health, self.plan, now=now)
        v = config.visibility
        self.visibility = VisibilityEstimator({b.id: b.service.load_visibility for b in pool},
                                              smoothing=v.smoothing, min_served_bytes=v.min_served_bytes,
                                              min_samples=v.min_samples, stale_after_s=config.health.stale_after_s)
        self.transitions: Counter[tuple[int, HealthState]] = Counter()   # (backend, new state) -> times
        # Down, in a deleting service, entries kept because the advisors still passed
        self.entries_kept: set[int] = set()
        self._last_poll: float | None = None

    @property
    def listening(self) -> bool:
        return self.cluster.listener is not None

    def start(self) -> None:
        """Bind the UDP port when agents are configured; HealthStartError with the reason if not."""
        try:
            self.cluster.start()
        except OSError as exc:
            address, port = self.listen
            raise HealthStartError(f"cannot listen for agents' heartbeats on UDP {address}:{port}: "
                                   f"{exc.strerror or exc} ([health] listen_address, listen_port)") from None
        if self.cluster.listener is not None:
            address, port = self.cluster.listener.address
            log.info("health: listening for %d agents on UDP %s:%d (period %.2f s)",
                     len(self.plan.hosts), address, port, self.period_s)

    def stop(self) -> None:
        self.cluster.stop()

    # ---- each serving-loop turn ---------------------------------------------------------

    def poll(self, now: float) -> HealthChanges | None:
        """Heartbeats, reports and advisor results since the last poll; None when polled too recently."""
        if self._last_poll is not None and now - self._last_poll < MIN_POLL_INTERVAL_S:
            return None
        self._last_poll = now
        update = self.cluster.poll(now)
        for backend_id, sample in update.reports:
            self.visibility.served_bytes(backend_id, sample.tx_bytes, sample.uptime_s, sample.received_at)
        changes = HealthChanges(transitions=update.transitions)
        for t in update.transitions:
            self.transitions[(t.backend_id, t.new)] += 1
            level = logging.WARNING if t.new == HealthState.DOWN else logging.INFO
            log.log(level, "backend %s: %s -> %s (%s)", self.pool.name_of(t.backend_id), t.old, t.new, t.reason)
            if (t.old == HealthState.UP) != (t.new == HealthState.UP):
                changes.availability_changed = True
            if t.new == HealthState.DOWN and self._deletes_entries(t.backend_id):
                if self.cluster.monitor.advisors_pass(t.backend_id):
                    # Only the agent is silent or failing while the server answers its advisors:
                    # no new flows, but its live connections are not cut on that evidence.
                    self.entries_kept.add(t.backend_id)
                    log.warning("backend %s is down (%s) but its advisors pass: keeping its flows entries",
                                self.pool.name_of(t.backend_id), t.reason)
                else:
                    changes.delete_entries.append(t.backend_id)
        for backend_id in sorted(self.entries_kept):
            if self.state(backend_id) != HealthState.DOWN:
                self.entries_kept.discard(backend_id)
            elif not self.cluster.monitor.advisors_pass(backend_id):     # now the server is gone too
                self.entries_kept.discard(backend_id)
                changes.delete_entries.append(backend_id)
        return changes

    def switch_bytes(self, backend_traffic: Mapping[int, CounterValue]) -> None:
        """Each counter poll: the switch's per-backend byte counters, for the visibility ratios."""
        for backend_id, value in backend_traffic.items():
            self.visibility.switch_bytes(backend_id, value.bytes)

    def _deletes_entries(self, backend_id: int) -> bool:
        backend = self.pool.get(backend_id)
        return backend is not None and self.plan.down_entries.get(backend.service.id) == "delete"

    def down_deleting(self) -> list[int]:
        """Backends down now whose entries go (after a take-over: adopted entries of the dead)."""
        return [b.id for b in self.pool
                if self.cluster.monitor.state(b.id) == HealthState.DOWN and self._deletes_entries(b.id)
                and not self.cluster.monitor.advisors_pass(b.id)]

    # ---- questions (the policies' view, SA2C, the status) -------------------------------------

    def state(self, backend_id: int) -> HealthState:
        return self.cluster.monitor.state(backend_id)

    def watched(self, backend_id: int) -> bool:
        return backend_id in self.cluster.monitor

    def has_agent(self, backend_id: int) -> bool:
        return any(backend_id in backends for backends in self.plan.hosts.values())

    def healthy(self, backends: Sequence[LiveBackend]) -> NDArray[np.bool_]:
        return np.array([self.cluster.takes_new_flows(b.id) for b in backends], dtype=bool)

    def visibility_ratios(self, backends: Sequence[LiveBackend], now: float) -> NDArray[np.float64]:
        """Switch-counted bytes per served byte, learned per backend; the configured ratio where
        nothing is learned (no agent, too few windows yet)."""
        for b in backends:   # backends added at run time start on their service's configured ratio
            self.visibility.set_fallback(b.id, b.service.load_visibility)
        return self.visibility.ratios([b.id for b in backends], now)

    def load_source(self, backend_id: int, now: float) -> RatioSource:
        return self.visibility.source(backend_id, now)

    def host_sample(self, backend_id: int, now: float) -> HostSample | None:
        return self.cluster.host_sample(backend_id, now)

    def host_metric(self, backends: Sequence[LiveBackend], now: float) -> NDArray[np.float64] | None:
        """nd's host metric: CPU utilisation (0..1) from each server's agent, NaN where there is no
        fresh report; None when none of these backends has an agent."""
        if not any(self.has_agent(b.id) for b in backends):
            return None
        samples = [self.host_sample(b.id, now) for b in backends]
        return np.array([math.nan if s is None else s.cpu for s in samples], dtype=np.float64)

    def response_time(self, backends: Sequence[LiveBackend]) -> NDArray[np.float64]:
        """nd's forward metric: the slowest advisor's latest response time per backend, s (0: none)."""
        return np.array([self.cluster.monitor.forward_metric(b.id) for b in backends], dtype=np.float64)

    def snapshot(self, now: float) -> dict[int, BackendHealth]:
        return self.cluster.snapshot(now)

    def counts(self) -> dict[str, int]:
        return self.cluster.counts()


class RingWriter(Protocol):
    def update(self, client, force: bool = False) -> None: ...


class FlowRemover(Protocol):
    def remove_backend_flows(self, backend_id: int) -> int: ...


class HealthEnforcer:
    """Health changes as switch writes: rings at once, a dead server's entries deleted."""

    def __init__(self, health: HealthControl, rings: RingWriter, flows: FlowRemover) -> None:
        self.health = health
        self.rings = rings
        self.flows = flows
        self.entries_deleted = 0

    def turn(self, client, now: float) -> HealthChanges | None:
        changes = self.health.poll(now)
        if changes is None:
            return None
        if changes.availability_changed:
            # Forced: a backend that left UP is unavailable in the view, so the ring plan
            # moves all its slots anyway, whatever the churn cap; force also lets one that
            # came back in without waiting for the ring threshold (hysteresis), though the
            # cap (ring_max_change) still paces how fast it regains its share.
            self.rings.update(client, force=True)
        for backend_id in changes.delete_entries:
            self._delete(backend_id)
        return changes

    def after_take_over(self) -> None:
        """Entries adopted from the switch that belong to backends already down (and deleting)."""
        for backend_id in self.health.down_deleting():
            self._delete(backend_id)

    def _delete(self, backend_id: int) -> None:
        # Queued for the flow manager's next flush, in slices, like any delete. Flows the
        # switch had cached for this backend before the ring rewrite may still digest and get
        # entries afterwards; they idle out with the server gone.
        deleted = self.flows.remove_backend_flows(backend_id)
        self.entries_deleted += deleted
        log.warning("backend %s is down: deleting its %d flows entries (down_entries = delete)",
                    self.health.pool.name_of(backend_id), deleted)
