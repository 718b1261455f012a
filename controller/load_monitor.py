"""Load readback: counters from the switch in, a ClusterView per service out.

Every poll reads the per-backend counter (measured rate) and, when a policy needs FB_EST's
per-flow estimates, the per-flow `flow_stats` counter in one bulk read; deltas since the
previous poll feed the estimators shared with the simulator. Installed flows (from the flow
manager) start being tracked with the RTT their digest carried.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.backend_pool import LiveBackend
from controller.dataplane.dispatcher_tables import CounterValue
from controller.estimators import FlowEstimates, RttPredictor
from controller.flow_manager import InstallEvent
from controller.flow_table import MAX_BACKENDS, SHARED_STATS_SLOT
from controller.policies import ClusterView

IPV4_MAPPED = 0xFFFF << 32


def source_prefix(flow_address: int) -> int:
    """RTTs are shared per client /24 (IPv4, kept IPv4-mapped in flow keys) or /48 (IPv6)."""
    if flow_address >> 32 == 0xFFFF:
        return IPV4_MAPPED | (flow_address & 0xFFFFFF00)
    return flow_address >> 80 << 80


def _bytes_array(cells: dict[int, CounterValue], size: int) -> NDArray[np.float64]:
    out = np.zeros(size)
    for index, value in cells.items():
        if 0 <= index < size:
            out[index] = value.bytes
    return out


class LoadMonitor:
    def __init__(self, stats_slots: int, track_flows: bool) -> None:
        self.track_flows = track_flows
        self.estimates = FlowEstimates(MAX_BACKENDS, capacity=stats_slots)
        self.rtts = RttPredictor()
        self._backend_bytes = np.zeros(MAX_BACKENDS)
        self._slot_bytes = np.zeros(stats_slots)
        self._slot_last_active = np.zeros(stats_slots)
        self.backend_rate = np.zeros(MAX_BACKENDS)       # bytes/s over the last interval
        self.new_flows = np.zeros(MAX_BACKENDS, dtype=np.int64)
        self._new_since_poll = np.zeros(MAX_BACKENDS, dtype=np.int64)
        self.new_flows_total = np.zeros(MAX_BACKENDS, dtype=np.int64)   # digested new flows since start
        self.interval = 0.0
        self._last_poll: float | None = None
        # Flows installed since the last poll, tracked in one vectorised step at the next
        # (one at a time would cost numpy's per-call overhead 10,000 times a second).
        self._to_track: dict[int, tuple[int, float]] = {}     # slot -> (backend, rtt)
        self._rate_prior = 0.0

    # ---- from the flow manager ------------------------------------------------------

    def flow_installed(self, event: InstallEvent) -> None:
        if event.digest is not None:
            self._new_since_poll[event.backend_id] += 1
            self.new_flows_total[event.backend_id] += 1
            if event.digest.rtt_valid:
                self.rtts.add(source_prefix(event.digest.src_addr), event.digest.rtt_us / 1e6)
        if self.track_flows and event.slot != SHARED_STATS_SLOT:
            rtt = event.digest.rtt_us / 1e6 if event.digest is not None and event.digest.rtt_valid \
                else self.rtts.predict(-1)
            self._to_track[event.slot] = (event.backend_id, rtt)

    def flow_removed(self, key: bytes, backend_id: int, slot: int) -> None:
        if self.track_flows and slot != SHARED_STATS_SLOT and self._to_track.pop(slot, None) is None:
            self.estimates.forget([slot])

    def _track_new_flows(self) -> None:
        """New flows start with the mean rate of the flows already sending (the prior)."""
        if not self._to_track:
            return
        slots = np.fromiter(self._to_track, dtype=np.int64, count=len(self._to_track))
        backends, rtts = zip(*self._to_track.values())
        self.estimates.track(slots, backends, rtts, self._rate_prior)
        self._slot_last_active[slots] = self._last_poll or 0.0
        self._to_track.clear()

    def _update_rate_prior(self) -> None:
        rates = self.estimates.rate[self.estimates.tracked]
        sending = rates[rates > 0]
        self._rate_prior = float(sending.mean()) if sending.size else 0.0

    # ---- from the switch -----------------------------------------------------------------

    def update(self, now: float, backend_traffic: dict[int, CounterValue],
               flow_stats: dict[int, CounterValue] | None) -> None:
        """One poll: counter totals as read at `now` (monotonic seconds)."""
        backend_bytes = _bytes_array(backend_traffic, MAX_BACKENDS)
        if self._last_poll is None:
            self._backend_bytes = backend_bytes
            if flow_stats is not None:
                self._slot_bytes = _bytes_array(flow_stats, len(self._slot_bytes))
            self._last_poll = now
            return
        interval = max(now - self._last_poll, 1e-6)
        self.interval = interval
        self.backend_rate = np.maximum(backend_bytes - self._backend_bytes, 0) / interval
        self._backend_bytes = backend_bytes
        self.new_flows = self._new_since_poll
        self._new_since_poll = np.zeros(MAX_BACKENDS, dtype=np.int64)
        if self.track_flows and flow_stats is not None:
            self._track_new_flows()
            slot_bytes = _bytes_array(flow_stats, len(self._slot_bytes))
            delta = np.maximum(slot_bytes - self._slot_bytes, 0)
            self._slot_bytes = slot_bytes
            self._slot_last_active[delta > 0] = now
            self.estimates.sync(delta, now - self._slot_last_active, interval)
            self._update_rate_prior()
        self._last_poll = now

    # ---- to the policies ------------------------------------------------------------------

    def view(self, backends: list[LiveBackend], active_flows: NDArray[np.int64], now: float,
             visibility: float | NDArray[np.float64] = 1.0, healthy: NDArray[np.bool_] | None = None,
             host_metric: NDArray[np.float64] | None = None,
             response_time: NDArray[np.float64] | None = None) -> ClusterView:
        """What the policy sees; capacities scaled to the share of traffic the switch counts.

        visibility: switch-counted bytes per byte served, one for all or one per backend
        (learned from the agents, controller/estimators/visibility.py). healthy: the health
        monitor's verdict, anded with the operator's state. host_metric (utilisation 0..1,
        NaN where unknown) and response_time (the advisors' forward metric, s) are nd's.
        """
        ids = np.array([b.id for b in backends], dtype=np.int64)
        load = self.estimates.server_load()[ids] if self.track_flows else np.zeros(len(ids))
        # New flows of the next interval are expected to bring what an average active flow
        # carries now: without this, water-filling would give them all to one backend.
        per_flow = self.backend_rate[ids].sum() / max(int(active_flows[ids].sum()), 1)
        incoming_flows = float(self.new_flows[ids].sum())
        available = np.array([b.takes_new_flows for b in backends], dtype=bool)
        if healthy is not None:
            available &= healthy
        return ClusterView(
            capacity=np.array([b.config.capacity for b in backends], dtype=np.float64) * visibility,
            available=available,
            configured_weight=np.array([b.config.weight for b in backends], dtype=np.float64),
            measured_rate=self.backend_rate[ids],
            active_flows=active_flows[ids],
            new_flows=self.new_flows[ids],
            estimated_load=load,
            response_time=np.zeros(len(ids)) if response_time is None else response_time,
            incoming_flows=incoming_flows,
            incoming_rate=incoming_flows * per_flow,
            interval=self.interval or 0.1,
            rtt=self.rtts.predict(-1),
            time=now,
            host_metric=host_metric)
