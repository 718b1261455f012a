"""SA2C live: once per health period, for every service with an `admission` section, the
cluster's load from the agents' reports and the switch's counters, SA2C's decision
(controller/admission_control.py), and the switch's `admission` entry written only when
the decision changes it.

Per server the load vector has the components the service's `load_components` names (each a
fraction of what the server can take, NaN where unknown; controller/admission_control.py):

    cpu          CPU utilisation (agent)
    served       bytes/s the server sent (agent) / capacity
    switch       bytes/s the switch counted / switch-to-served ratio / capacity
    connections  established connections (agent) / the backend's max_connections

`switch` is the only one a backend without an agent has (with the configured ratio); where
an agent reports, `served` and `switch` measure the same traffic and the larger decides.
The byte components stop near 1.0 on a full link whatever the excess, so an overload
controller for bandwidth-bound servers reads `connections` (docs/health.md, Overload).

The table holds an entry only for a service that is not at ADMIT_ALL (its default action
admits everything): ADMIT_ALL deletes the entry. What the switch holds is read back at each
take-over (a restarted controller continues from it), and again after a refused write.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from controller.admission_control import (
    AdmissionControl,
    AdmissionDecision,
    LoadComponent,
    cluster_load,
    new_flow_budget,
    new_flow_share,
    server_utilisation,
)
from controller.backend_pool import BackendPool, LiveBackend
from controller.config import Config
from controller.dataplane.constants import AdmissionLevel, DropReason
from controller.dataplane.dispatcher_tables import CounterValue, DispatcherTables
from controller.health.host_metrics import HostSample
from controller.health.monitor import HealthState
from controller.health_control import HealthControl
from controller.load_monitor import LoadMonitor
from controller.p4runtime import entities as ent
from controller.p4runtime.client import WriteError

log = logging.getLogger("controller.admission")

P_STEP = 0.01          # a drop probability that moved less than this is not rewritten (needs_write)
PROB_SCALE = 65536     # the data plane's drop_prob is p * 65536 (p4src/v1model/admission.p4)


@dataclass(frozen=True)
class AdmissionEntry:
    """What the switch's entry for a service says."""
    level: AdmissionLevel
    drop_prob: float


EntryUpdate = Literal["insert", "modify", "delete"]


def entry_update(on_switch: AdmissionEntry | None, decision: AdmissionDecision,
                 p_step: float = P_STEP) -> EntryUpdate | None:
    """The write that makes the switch's entry say `decision` (None: it says it already)."""
    if decision.level == AdmissionLevel.ADMIT_ALL:
        return None if on_switch is None else "delete"
    if on_switch is None:
        return "insert"
    if on_switch.level != decision.level or abs(on_switch.drop_prob - decision.drop_prob) >= p_step:
        return "modify"
    return None


def load_components(cpu: NDArray[np.float64], served_rate: NDArray[np.float64], switch_rate: NDArray[np.float64],
                    ratio: NDArray[np.float64], capacity: NDArray[np.float64], connections: NDArray[np.float64],
                    max_connections: NDArray[np.float64]) -> dict[LoadComponent, NDArray[np.float64]]:
    """Every component of every server's load vector, by name (NaN where unknown)."""
    capacity = np.maximum(capacity, 1e-12)
    return {"cpu": cpu,
            "served": served_rate / capacity,
            "switch": switch_rate / np.maximum(ratio, 1e-12) / capacity,
            "connections": connections / max_connections}


def load_vectors(components: dict[LoadComponent, NDArray[np.float64]],
                 names: Sequence[LoadComponent]) -> NDArray[np.float64]:
    """Per server (rows) the named components (columns), in that order."""
    return np.column_stack([components[n] for n in names])


class AdmissionWriter:
    def __init__(self, config: Config, tables: DispatcherTables, pool: BackendPool, monitor: LoadMonitor,
                 health: HealthControl) -> None:
        self.tables = tables
        self.pool = pool
        self.monitor = monitor
        self.health = health
        self.period_s = config.health.period_s
        self.controls = {s.id: AdmissionControl(s.admission) for s in config.services if s.admission is not None}
        self.decisions: dict[int, AdmissionDecision] = {}
        # Each component's cluster load alone, last period (what made x what it was)
        self.components: dict[int, dict[str, float]] = {}
        # For the new-flow budget: each service's admitted new flows (cumulative) at the last period
        self._new_flows_seen: dict[int, int] = {}
        self.budgets: dict[int, float] = {}
        self._refused_seen: int | None = None     # the switch's admission_new drops, cumulative
        # Programs with the new-flow meter (p4src/v1model/admission.p4) get the budget as its
        # rate; older ones as a cap on the share of new flows admitted.
        self.metered = "new_flow_meter" in {m.preamble.name.split(".")[-1] for m in tables.info.p4info.meters}
        self.meter_rates: dict[int, float | None] = {}     # new flows/s written; None: unlimited
        self.on_switch: dict[int, AdmissionEntry | None] = {}
        self.writes: Counter[int] = Counter()
        self._last: float | None = None
        self._synced = False          # on_switch read from the switch since the last take-over

    def adopt(self, client) -> None:
        """Read the switch's admission entries (each take-over); delete those of services
        that have no SA2C in this configuration (left by an earlier one)."""
        found: dict[int, AdmissionEntry] = {}
        info = self.tables.info
        for entity in client.read([ent.entity(ent.table_entry(info, "admission"))]):
            service_id = ent.decode_match(info, entity.table_entry)["service_id"]
            _, params = ent.decode_action(info, entity.table_entry)
            found[service_id] = AdmissionEntry(AdmissionLevel(params["level"]), params["drop_prob"] / PROB_SCALE)
        stale = sorted(set(found) - set(self.controls))
        if stale:
            client.write([self.tables.admission_delete(s) for s in stale])
            log.info("deleted admission entries of services without SA2C: %s", stale)
        self.on_switch = {s: found.get(s) for s in self.controls}
        self.meter_rates = {}       # not read back: written again at the next period
        self._synced = True

    def turn(self, client, now: float, drops: Mapping[int, CounterValue] | None = None) -> None:
        """Once per period: a decision per service, written when the switch's entry must change.
        `drops`: the switch's drop counters by reason, for the new flows it refused."""
        if not self.controls or (self._last is not None and now - self._last < self.period_s):
            return
        self._last = now
        if not self._synced:
            self.adopt(client)
        refused = self._refused_since_last(drops)
        refusing = [sid for sid, d in self.decisions.items() if new_flow_share(d.level, d.drop_prob) < 1]
        for service_id, control in self.controls.items():
            backends = self.pool.of_service(service_id)
            if not backends:
                continue
            samples = [self.health.host_sample(b.id, now) for b in backends]   # read once, used twice
            raw = self.raw_load(service_id, backends, samples, now)
            budget, admitted = self._budget(service_id, backends, samples)
            if self.metered:
                # The switch's new-flow bucket carries the budget: it holds however the SYNs
                # bunch up within the period, which a share fixed for the period cannot.
                decision = control.update(raw)
                self._meter(client, service_id, budget)
            else:
                # The switch counts refused new flows per reason, not per service: they are
                # this service's when no other service was refusing.
                offered = None
                if admitted is not None and refused is not None and set(refusing) <= {service_id}:
                    offered = admitted + refused
                decision = control.update(raw, budget, admitted, offered)
            self.decisions[service_id] = decision
            self._apply(client, service_id, decision)

    def _meter(self, client, service_id: int, budget: float | None) -> None:
        """Set the service's new-flow bucket to the budget (per period) when it moved by 10 %."""
        rate = None if budget is None else max(budget, 1.0) / self.period_s
        old = self.meter_rates.get(service_id, "unknown")
        if old == rate or (rate is not None and isinstance(old, float) and abs(rate - old) < 0.1 * old):
            return
        burst = 1 if budget is None else max(1, round(budget / 4))
        try:
            client.write([self.tables.new_flow_meter(service_id, rate, burst)])
        except WriteError as exc:
            log.warning("service %d: new-flow meter refused (%s)", service_id, exc)
            self.meter_rates.pop(service_id, None)
            return
        self.meter_rates[service_id] = rate

    def raw_load(self, service_id: int, backends: Sequence[LiveBackend], samples: Sequence[HostSample | None],
                 now: float) -> float:
        """This period's cluster load x: capacity-weighted bottleneck utilisation of the servers not
        down, over the service's load components (`samples`: each backend's latest host report)."""
        ids = np.array([b.id for b in backends], dtype=np.int64)
        capacity = np.array([b.config.capacity for b in backends], dtype=np.float64)
        components = load_components(
            cpu=np.array([math.nan if s is None else s.cpu for s in samples]),
            served_rate=np.array([math.nan if s is None or s.tx_rate is None else s.tx_rate for s in samples]),
            switch_rate=self.monitor.backend_rate[ids],
            ratio=self.health.visibility_ratios(backends, now),
            capacity=capacity,
            connections=np.array([math.nan if s is None else s.connections for s in samples], dtype=np.float64),
            max_connections=np.array([math.nan if b.config.max_connections is None else b.config.max_connections
                                      for b in backends], dtype=np.float64))
        up = [self.health.state(b.id) != HealthState.DOWN for b in backends]
        names = self.controls[service_id].settings.load_components
        self.components[service_id] = {n: cluster_load(server_utilisation(components[n][:, None]), capacity, up)
                                       for n in names}
        return cluster_load(server_utilisation(load_vectors(components, names)), capacity, up)

    def _refused_since_last(self, drops: Mapping[int, CounterValue] | None) -> int | None:
        if drops is None or DropReason.ADMISSION_NEW not in drops:
            return None
        total = drops[DropReason.ADMISSION_NEW].packets
        last, self._refused_seen = self._refused_seen, total
        return None if last is None else max(0, total - last)

    def _budget(self, service_id: int, backends: Sequence[LiveBackend],
                samples: Sequence[HostSample | None]) -> tuple[float | None, int | None]:
        """The new-flow budget and the new flows admitted since the last period, for a service
        that reads the connections component and knows every live server's limit and count."""
        total = int(self.monitor.new_flows_total[[b.id for b in backends]].sum())
        admitted = total - self._new_flows_seen[service_id] if service_id in self._new_flows_seen else None
        self._new_flows_seen[service_id] = total
        control = self.controls[service_id]
        if "connections" not in control.settings.load_components:
            return None, admitted
        live = [(b, s) for b, s in zip(backends, samples) if self.health.state(b.id) != HealthState.DOWN]
        if not live or any(b.config.max_connections is None or s is None for b, s in live):
            return None, admitted
        limit = float(sum(b.config.max_connections or 0 for b, _ in live))
        connections = float(sum(s.connections for _, s in live if s is not None))
        budget = new_flow_budget(limit, connections, admitted, control.t2)
        self.budgets[service_id] = budget
        return budget, admitted

    def _apply(self, client, service_id: int, decision: AdmissionDecision) -> None:
        kind = entry_update(self.on_switch.get(service_id), decision)
        if kind is None:
            return
        if kind == "delete":
            update = self.tables.admission_delete(service_id)
        else:
            update = self.tables.admission(service_id, decision.level, decision.drop_prob, kind=kind)
        try:
            client.write([update])
        except WriteError as exc:
            # The entry is not what we thought (another controller, a lost answer): read it
            # back at the next period and decide from there.
            log.warning("service %d: admission %s refused (%s); reading the table again", service_id, kind, exc)
            self._synced = False
            return
        self.on_switch[service_id] = None if kind == "delete" else AdmissionEntry(decision.level, decision.drop_prob)
        self.writes[service_id] += 1
        log.info("service %s: admission %s, p %.2f (load %.2f, raw %.2f, T2 %.2f, T3 %.2f%s)",
                 self._name(service_id), decision.level.name, decision.drop_prob, decision.load,
                 decision.raw_load, decision.t2, decision.t3,
                 "" if decision.wanted == decision.level else f", SA2C asked {decision.wanted.name}")

    def _name(self, service_id: int) -> str:
        service = self.pool.services.get(service_id)
        return service.name if service is not None else str(service_id)
