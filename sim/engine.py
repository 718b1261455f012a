"""The simulation loop: traffic -> switch -> servers, and the controller at each poll.

Per polling interval: the switch model (sim/switch_model.py) gives every packet its backend
(new flows at the ring, then cache or `flows` entry), packets are binned per server and
served by the token-bucket queues; then the controller reads what the counters show (load
of the interval that just ended, flows whose digests have arrived), updates the FB_EST
estimates, asks the policy for weights and rewrites the ring (bounded by the churn cap and
hysteresis), which takes effect after `controller_lag` further intervals. So the policy
sees load as late as the real one would.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from controller.dataplane.constants import FLOW_CACHE_SETS, FLOW_CACHE_WAYS
from controller.estimators import FlowEstimates, RttPredictor
from controller.policies.base import ClusterView, Policy
from sim.metrics import LoadRecorder, RunSummary, SlowdownHistogram, summarise
from sim.policy_set import is_static
from sim.servers import ServerQueues
from sim.switch_model import NewFlowArrivals, make_switch
from sim.traffic import TrafficBatch, TrafficSource
from sim.workload import PACKET_BYTES

_Scalar = TypeVar("_Scalar", bound=np.generic)


@dataclass
class SimulationConfig:
    capacity: NDArray[np.float64]           # bytes/s per server
    configured_weight: NDArray[np.float64] | None = None   # operator weights (default: capacity)
    buffer_seconds: float = 0.01            # server buffer, in seconds of its capacity
    ring_size: int = 4096
    poll_interval: float = 0.1              # counter polling and ring rewrite period, s
    controller_lag: int = 0                 # extra intervals before a new ring takes effect
    install_delay: float = 0.02             # digest -> flows entry, s
    cache_timeout: float = 1.0
    bins_per_interval: int = 10             # server model resolution
    window: float = 1.0                     # balance metric window, s
    time_constant: float = 0.2              # K of eq. 2
    idle_rtts: float = 4.0                  # N: idle > N x RTT ends a busy period
    quiesce: list[tuple[int, float]] = field(default_factory=list)   # (server, from time)
    switch_model: str = "generations"       # or "legacy" (sim/switch_model.py)
    cache_sets: int = FLOW_CACHE_SETS       # the generations model's cache (p4src/shared/sizes.p4)
    cache_ways: int = FLOW_CACHE_WAYS
    ring_max_change: float | None = None    # cap per ring write, share of the ring (None: no cap)
    ring_hysteresis: float = 0.0            # no write while every server is this share from target

    def __post_init__(self) -> None:
        self.capacity = np.asarray(self.capacity, dtype=np.float64)
        if self.capacity.ndim != 1 or self.capacity.size == 0 or np.any(self.capacity <= 0):
            raise ValueError("need at least one server, every capacity positive")
        if self.configured_weight is None:
            self.configured_weight = self.capacity / self.capacity.max()
        if self.poll_interval <= 0 or self.bins_per_interval < 1 or self.controller_lag < 0:
            raise ValueError("poll interval must be positive, bins >= 1, lag >= 0")
        for server, _ in self.quiesce:
            if not 0 <= server < self.capacity.size:
                raise ValueError(f"cannot quiesce server {server}: servers are 0..{self.capacity.size - 1}")


@dataclass
class SimulationResult:
    summary: RunSummary
    loads: LoadRecorder


class _FlowTable:
    """Per-slot state of live flows (slots come from the traffic source and are reused)."""

    def __init__(self) -> None:
        self.size = 0
        self.backend: NDArray[np.int64] = np.zeros(0, np.int64)
        self.first: NDArray[np.float64] = np.zeros(0, np.float64)
        self.last: NDArray[np.float64] = np.zeros(0, np.float64)
        self.delay_at_last: NDArray[np.float64] = np.zeros(0, np.float64)
        self.known: NDArray[np.bool_] = np.zeros(0, np.bool_)

    def grow(self, needed: int) -> None:
        if needed <= self.size:
            return
        new = max(needed, 2 * self.size, 1024)
        self.backend = _grown(self.backend, new)
        self.first = _grown(self.first, new)
        self.last = _grown(self.last, new)
        self.delay_at_last = _grown(self.delay_at_last, new)
        self.known = _grown(self.known, new)
        self.size = new


def _grown(values: NDArray[_Scalar], size: int) -> NDArray[_Scalar]:
    """`values` followed by zeros (False for booleans) up to `size`."""
    grown = np.zeros(size, values.dtype)
    grown[:values.size] = values
    return grown


@dataclass
class _PendingFlows:
    """Flows not yet known to the controller: slot, digest time, RTT sample, source."""
    slot: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    digest: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))
    rtt: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0, np.float64))
    source: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def extended(self, more: _PendingFlows) -> _PendingFlows:
        return _PendingFlows(np.concatenate((self.slot, more.slot)), np.concatenate((self.digest, more.digest)),
                             np.concatenate((self.rtt, more.rtt)), np.concatenate((self.source, more.source)))

    def select(self, mask: NDArray[np.bool_]) -> _PendingFlows:
        return _PendingFlows(self.slot[mask], self.digest[mask], self.rtt[mask], self.source[mask])


class Simulation:
    def __init__(self, config: SimulationConfig, policy: Policy) -> None:
        self.config = config
        self.policy = policy
        n = config.capacity.size
        self.n = n
        self.switch = make_switch(config.switch_model, config.ring_size, config.cache_timeout,
                                  config.ring_max_change, config.ring_hysteresis,
                                  config.cache_sets, config.cache_ways)
        self.queues = ServerQueues(config.capacity, config.capacity * config.buffer_seconds)
        self.flows = _FlowTable()
        # SimulationConfig.__post_init__ fills in the default, so None cannot reach here.
        assert config.configured_weight is not None
        self.configured_weight: NDArray[np.float64] = config.configured_weight
        self.estimates = FlowEstimates(n, config.time_constant, config.idle_rtts)
        self.rtts = RttPredictor()
        self.recorder = LoadRecorder(n)
        self.slowdowns = SlowdownHistogram()
        self.packets = 0
        self._reads_load = policy.needs_flow_estimates or not is_static(policy)
        self._pending = _PendingFlows()
        self._rings: deque[tuple[NDArray[np.float64], NDArray[np.bool_]]] = deque()   # weights, available

    def run(self, source: TrafficSource, progress: Callable[[float], None] | None = None) -> SimulationResult:
        cfg = self.config
        attach = getattr(source, "attach", None)
        if attach is not None:   # sources that share servers fairly ask where flows go
            attach(self)
        view = ClusterView.idle(cfg.capacity)
        view.configured_weight = self.configured_weight
        view.available = self._available(0.0)
        view.interval = cfg.poll_interval
        self.switch.write_ring(self.policy.weights(view), 0.0, view.available)
        for batch in source.batches(cfg.poll_interval):
            self._step(batch)
            if progress:
                progress(batch.end)
        summary = summarise(self.policy.name, self.recorder, cfg.capacity, cfg.poll_interval, cfg.window,
                            self.slowdowns, self.packets, self.switch.counters, until=source.duration)
        summary.switch = self.switch.name
        summary.churn_cap = cfg.ring_max_change
        return SimulationResult(summary, self.recorder)

    @property
    def capacity(self) -> NDArray[np.float64]:
        return self.config.capacity

    def backend_of(self, slots: NDArray[np.int64], key_hash: NDArray[np.uint32], source_hash: NDArray[np.uint32],
                   new: NDArray[np.bool_]) -> NDArray[np.int64]:
        """sim.workload.Placement: a known flow's backend; for a new one the ring's entry now
        (what the switch gives it unless its cache set already holds it)."""
        ring_hash = source_hash if self.policy.hash_on == "source" else key_hash
        ring_backend = self.switch.ring[(ring_hash.astype(np.int64) >> 16) & self.switch.mask]
        known = np.zeros(slots.size, dtype=np.int64)
        old = ~new & (slots < self.flows.size)
        known[old] = self.flows.backend[slots[old]]
        return np.where(new | ~old, ring_backend, known)

    def _available(self, now: float) -> NDArray[np.bool_]:
        available = np.ones(self.n, dtype=bool)
        for server, since in self.config.quiesce:
            if now >= since:
                available[server] = False
        return available

    def _step(self, batch: TrafficBatch) -> None:
        cfg, flows, new = self.config, self.flows, batch.new
        interval = batch.end - batch.start
        # The switch decides every packet: new flows at the ring, then cache or `flows` entry
        # (digest one RTT after the first packet, entry after the install delay).
        cacheable = new.cacheable if new.cacheable is not None else np.ones(new.slot.size, dtype=bool)
        digest = np.where(cacheable, new.first + new.rtt, np.inf)   # non-IP capture frames: never
        ring_key = new.source_hash if self.policy.hash_on == "source" else new.key_hash
        arrivals = NewFlowArrivals(slot=new.slot, cache_hash=new.key_hash, ring_hash=ring_key, first=new.first,
                                   digest=digest, installed=digest + cfg.install_delay, cacheable=cacheable)
        packet_backend = self.switch.step(arrivals, batch.packet_time, batch.packet_slot)
        if new.slot.size:
            flows.grow(int(new.slot.max()) + 1)
            flows.backend[new.slot] = self.switch.first_backend[new.slot]
            flows.first[new.slot] = new.first
            flows.last[new.slot] = new.first
            flows.delay_at_last[new.slot] = 0.0
            flows.known[new.slot] = False
            self._pending = self._pending.extended(_PendingFlows(new.slot, digest, new.rtt, new.source))
        # Packets to servers, binned in time.
        bins = cfg.bins_per_interval
        bin_seconds = interval / bins
        packet_bin = np.minimum(((batch.packet_time - batch.start) / bin_seconds).astype(np.int64), bins - 1)
        offered = _weighted_bincount(packet_bin * self.n + packet_backend, batch.packet_bytes,
                                     bins * self.n).reshape(bins, self.n)
        served = self.queues.serve(offered, bin_seconds)
        offered_total = offered.sum(axis=0)
        self.recorder.add(batch.start, offered_total, served.dropped.sum(axis=0))
        self.packets += batch.packet_time.size
        touched = batch.touched_slot
        flows.last[touched] = batch.touched_last
        last_bin = np.clip(((batch.touched_last - batch.start) / bin_seconds).astype(np.int64), 0, bins - 1)
        flows.delay_at_last[touched] = served.delay[last_bin, flows.backend[touched]]
        slot_bytes = (_weighted_bincount(batch.packet_slot, batch.packet_bytes, flows.size)
                      if self._reads_load else None)
        self._finish_flows(batch)
        self._sync(batch, offered_total, served.delay.mean(axis=0), slot_bytes)

    def _finish_flows(self, batch: TrafficBatch) -> None:
        ended = batch.ended
        if not ended.slot.size:
            return
        backend = self.flows.backend[ended.slot]
        # Slowdown: the time to the last byte served, over the time the flow itself took
        # (plus one packet's service, so one-packet flows have a finite ideal).
        ideal = ended.last - ended.first + PACKET_BYTES / self.config.capacity[backend]
        self.slowdowns.add((ideal + self.flows.delay_at_last[ended.slot]) / ideal)
        self.flows.known[ended.slot] = False
        if self.policy.needs_flow_estimates:
            self.estimates.forget(ended.slot)
        slots = self._pending.slot
        if slots.size:
            keep = ~np.isin(slots, ended.slot)
            self._pending = self._pending.select(keep)

    def _sync(self, batch: TrafficBatch, offered: NDArray[np.float64], delay: NDArray[np.float64],
              slot_bytes: NDArray[np.float64] | None) -> None:
        cfg, flows, now = self.config, self.flows, batch.end
        interval = batch.end - batch.start
        pending = self._pending
        slot, digest, rtt, source = pending.slot, pending.digest, pending.rtt, pending.source
        due = digest <= now
        if due.any():
            flows.known[slot[due]] = True
            for prefix, sample in zip(source[due].tolist(), rtt[due].tolist()):
                self.rtts.add(prefix, sample)
            if self.policy.needs_flow_estimates:
                tracked = self.estimates.rate[self.estimates.tracked]
                prior = float(tracked[tracked > 0].mean()) if np.any(tracked > 0) else 0.0
                self.estimates.track(slot[due], flows.backend[slot[due]], rtt[due], prior)
            self._pending = pending.select(~due)
        if self.policy.needs_flow_estimates:
            self.estimates.sync(slot_bytes[:len(self.estimates.rate)] if slot_bytes is not None else 0.0,
                                now - flows.last[:len(self.estimates.rate)], interval)
        new_slots = batch.new.slot
        view = ClusterView(
            capacity=cfg.capacity, available=self._available(now), configured_weight=self.configured_weight,
            measured_rate=offered / interval,
            active_flows=np.bincount(flows.backend[flows.known], minlength=self.n),
            new_flows=np.bincount(flows.backend[new_slots], minlength=self.n),
            estimated_load=(self.estimates.server_load() if self.policy.needs_flow_estimates else np.zeros(self.n)),
            response_time=delay,
            # New flows were live for half the interval on average.
            incoming_rate=float(slot_bytes[new_slots].sum()) / (interval / 2) if slot_bytes is not None else 0.0,
            incoming_flows=float(new_slots.size), interval=interval,
            rtt=self.rtts.predict(-1), time=now)
        self._rings.append((self.policy.weights(view), view.available))
        if len(self._rings) > cfg.controller_lag:
            weights, available = self._rings.popleft()
            self.switch.write_ring(weights, now, available)


def _weighted_bincount(x: NDArray[np.int64], weights: NDArray[np.float64], minlength: int) -> NDArray[np.float64]:
    # With weights, bincount sums them as float64; numpy's stubs type every bincount as intp.
    # astype(copy=False) returns the same array, it only tells the type checker.
    return np.bincount(x, weights=weights, minlength=minlength).astype(np.float64, copy=False)


def _is_static(policy: Policy) -> bool:
    from controller.policies.fixed_split import FixedSplit
    from controller.policies.random_hash import RandomHash
    from controller.policies.round_robin import RoundRobin
    from controller.policies.weighted_round_robin import WeightedRoundRobin
    return isinstance(policy, (RoundRobin, WeightedRoundRobin, RandomHash, FixedSplit))
