"""Rings follow the policies: after each poll (or an operator's change) every service's policy
gives weights, and only the ring slots that must change are written to the switch.

Rewriting a slot never moves a flow that has packets: those sit in `flows` or the cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from controller.backend_pool import BackendPool, LiveBackend
from controller.config import Config, Service
from controller.dataplane.constants import REACTIVE_BACKEND_ID
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_table import FlowTable
from controller.load_monitor import LoadMonitor
from controller.p4runtime import P4RuntimeClient
from controller.policies import NoServerAvailable, Policy, make_policy
from controller.policies.nd import NetworkDispatcher
from controller.service_ring import EMPTY_SLOT, ServiceRing
from controller.switch_setup import write_idempotent

log = logging.getLogger("controller.rings")


class ViewInputs(Protocol):
    """What the policies see beyond the switch's counters (controller/health_control.py)."""
    def healthy(self, backends: Sequence[LiveBackend]) -> NDArray[np.bool_]: ...
    def visibility_ratios(self, backends: Sequence[LiveBackend], now: float) -> NDArray[np.float64]: ...
    def host_metric(self, backends: Sequence[LiveBackend], now: float) -> NDArray[np.float64] | None: ...
    def response_time(self, backends: Sequence[LiveBackend]) -> NDArray[np.float64]: ...


def policy_for(service: Service) -> Policy:
    """The service's policy, with its configured nd settings where it is nd."""
    if service.policy == NetworkDispatcher.name and service.nd is not None:
        s = service.nd
        return NetworkDispatcher(proportions=s.proportions, smoothing=s.smoothing, sensitivity=s.sensitivity,
                                 host_limit=s.host_limit, cooldown_s=s.cooldown_s)
    return make_policy(service.policy, service.damping.settings())


class RingUpdater:
    def __init__(self, config: Config, pool: BackendPool, monitor: LoadMonitor, flows: FlowTable,
                 tables: DispatcherTables, inputs: ViewInputs | None = None) -> None:
        self.pool = pool
        self.monitor = monitor
        self.flows = flows
        self.tables = tables
        self.inputs = inputs
        self.policies: dict[int, Policy] = {s.id: policy_for(s) for s in config.services}
        self.rings = {s.id: ServiceRing(s.id, s.ring_size, s.ring_threshold, s.ring_max_change)
                      for s in config.services}
        # Every ring write carries a generation no earlier write used (docs/consistency.md):
        # a counter that only grows, continued from the largest one found on the switch.
        self.generation = 0
        # Several switches (controller/cluster_app.py): service id -> the slots a rewrite must
        # leave alone for now (docs/multiswitch.md, rule 5). None: one switch, nothing spared.
        self.keep_slots: Callable[[int], set[int]] | None = None
        self.spared_changes = 0     # changes moved off a kept slot to another of its backend
        # Several switches, while a switch waits to rejoin ECMP (rule 6): the policies' rewrites
        # wait; forced ones (an operator's change, a backend's health) do not.
        self.frozen = False

    @property
    def needs_flow_estimates(self) -> bool:
        return any(p.needs_flow_estimates for p in self.policies.values())

    def adopt(self, slots_by_service: dict[int, dict[int, int]], generation: int = 0) -> None:
        """The rings as the switch has them (empty after a pipeline push), and the largest
        generation among their entries."""
        for service_id, ring in self.rings.items():
            ring.adopt(slots_by_service.get(service_id, {}))
        self.generation = max(self.generation, generation)

    def next_generation(self) -> int:
        self.generation += 1
        return self.generation

    def update(self, client: P4RuntimeClient, force: bool = False) -> None:
        if self.frozen and not force:
            return
        now = time.monotonic()
        for service in self.pool.services.values():
            backends = self.pool.of_service(service.id)
            ring = self.rings[service.id]
            if not backends:
                continue
            view = self._view(service, backends, now)
            try:
                weights = self.policies[service.id].weights(view)
            except NoServerAvailable:
                if not ring.warned_no_backend:
                    log.warning("service %s: no backend takes new flows; the ring stays as it is",
                                service.name)
                    ring.warned_no_backend = True
                continue
            ring.warned_no_backend = False
            changes = ring.plan([b.id for b in backends], weights, force=force, available=view.available)
            if changes and self.keep_slots is not None:
                movable = {b.id for b, ok in zip(backends, view.available) if ok}
                planned = changes
                changes = ring.spare(changes, self.keep_slots(service.id), movable)
                self.spared_changes += sum(1 for s in planned if s not in changes)
            if not changes:
                continue
            if service.dispatch == "reactive":
                ring.commit(changes)   # the controller's own ring decides; the switch punts
                self._write_punt_ring(client, ring)
                continue
            generation = self.next_generation()
            updates = [self.tables.ring_slot(service.id, slot, backend, generation,
                                             "insert" if ring.slots[slot] == EMPTY_SLOT else "modify")
                       for slot, backend in changes.items()]
            client.write(updates)
            ring.commit(changes)
            shares = ", ".join(f"{self.pool.name_of(b)} {s:.0%}" for b, s in sorted(ring.shares().items()))
            log.info("service %s: ring rewritten (%d of %d slots): %s", service.name,
                     len(changes), ring.size, shares)

    def _view(self, service: Service, backends: list[LiveBackend], now: float):
        if self.inputs is None:
            return self.monitor.view(backends, self.flows.per_backend, now, service.load_visibility)
        i = self.inputs
        return self.monitor.view(backends, self.flows.per_backend, now, visibility=i.visibility_ratios(backends, now),
                                 healthy=i.healthy(backends), host_metric=i.host_metric(backends, now),
                                 response_time=i.response_time(backends))

    def nd_policy(self, service_name: str) -> NetworkDispatcher:
        """The nd manager of a service, for run-time changes; ValueError when it has another policy."""
        service = self.pool.service_named(service_name)
        policy = self.policies[service.id]
        if not isinstance(policy, NetworkDispatcher):
            raise ValueError(f"service {service_name!r} runs policy {service.policy!r}, not nd")
        return policy

    def _write_punt_ring(self, client: P4RuntimeClient, ring: ServiceRing) -> None:
        """A reactive service's switch ring points every slot at the punt pseudo-backend."""
        if ring.punt_written:
            return
        write_idempotent(client, self.tables.ring(ring.service_id, [REACTIVE_BACKEND_ID] * ring.size,
                                                  self.next_generation()))
        ring.punt_written = True
