"""The switch as the simulator sees it: dispatch ring, flow cache, delayed flow entries.

Two models, selectable (`SimulationConfig.switch_model`, `p4dispatch simulate --switch-model`):

* `generations` (the data plane of docs/consistency.md, modelled packet by packet): an
  exact-key cache of FLOW_CACHE_SETS sets x FLOW_CACHE_WAYS ways (set = crc32 & (SETS - 1));
  a way is free when empty or expired (last seen T_c or more ago), live ways are never
  overwritten, a cached flow refreshes its way with each packet until its `flows` entry
  exists. Ring entries carry a generation per write, and three registers each
  (applied_generation, applied_backend, stateless_seen) with the held rule. A flow that finds
  its set full is stateless: each of its packets is decided at its ring entry and stamps it.
* `legacy` (the design before issue 10, for before/after comparisons): one cache slot per
  crc32 & 0xFFFF, held by the first flow until its entry exists plus T_c; a flow whose slot
  is held follows the ring packet by packet until its entry exists.

Both: ring entry = (ring hash >> 16) & (ring size - 1); the `flows` entry exists from
digest + install delay on (the digest at the confirming packet, one RTT after the first),
with the backend the model gave the flow's last packet at or before the digest (the one the
digest carried). Legacy: packets from then on go to the entry's backend. Generations (entry
activation, docs/consistency.md "The mechanism" 1.): an entry decides only once activated; a
packet that finds an entry not yet activated is decided as a miss (cache way or ring entry,
committing state as any miss); if that names the entry's backend the entry is activated and
decides every later packet, otherwise the entry is stale (counted once) and the flow goes on
on its own state, each later packet checked again the same way.

Split flows are counted apart from either mechanism's bookkeeping: every packet's backend,
as the model gives it, is compared with the backend of its flow's first packet; a flow with
any mismatch is split (`split_flows`, flows as the traffic source has them). docs/consistency.md
ends a flow at a silence of T_c or more before its entry exists (the switch forgets it then);
`split_design_flows` counts only mismatches within such flows, i.e. against the first packet
after the last such silence: that is what the proof claims never happens.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from controller.dataplane.constants import FLOW_CACHE_SETS, FLOW_CACHE_WAYS
from controller.dispatch_ring import check_ring_size, plan_ring

LEGACY_CACHE_SLOTS = 1 << 16
SWITCH_MODELS = ("generations", "legacy")


@dataclass
class NewFlowArrivals:
    """The switch's view of the flows that start in a batch (one entry per flow, time order)."""
    slot: NDArray[np.int64]            # the simulator's flow slot (reused after a flow ends)
    cache_hash: NDArray[np.uint32]     # crc32 of the key: its low bits pick the cache set
    ring_hash: NDArray[np.uint32]      # its high 16 bits pick the ring entry
    first: NDArray[np.float64]         # first packet
    digest: NDArray[np.float64]        # when the digest leaves (inf: never)
    installed: NDArray[np.float64]     # when the `flows` entry exists (inf: never)
    cacheable: NDArray[np.bool_]       # False: never cached (non-IP capture traffic)


@dataclass
class PreEntry:
    """A batch's packets that find no `flows` entry, by flow then time ("runs" of one flow)."""
    order: NDArray[np.int64]           # their positions in the batch
    time: NDArray[np.float64]
    slot: NDArray[np.int64]
    run_start: NDArray[np.bool_]       # first of its flow in this batch
    previous: NDArray[np.float64]      # the flow's packet before (-inf: none)
    new_first: NDArray[np.bool_]       # a new flow's first packet


@dataclass
class SwitchCounters:
    flows: int = 0
    split_flows: int = 0         # flows (as the traffic source has them) given two backends
    split_design_flows: int = 0  # ... counting only within docs/consistency.md's flows (a silence of
                                 # T_c before the entry ends a flow): what the proof claims is 0
    collisions: int = 0          # flows that found their set (legacy: slot) full at least once
    stateless_packets: int = 0   # packets decided without an entry or a cache way
    held: int = 0                # decisions that kept an older generation (EVENT_GENERATION_HELD)
    applied: int = 0             # generations applied at a ring entry (EVENT_GENERATION_APPLIED)
    peak_live_ways: int = 0      # most cache ways live at a poll
    entries_activated: int = 0   # `flows` entries activated (generations: a hit decided as a miss named its backend)
    entries_stale: int = 0       # entries whose first hit (or any later, before activation) named another backend
    churn: list[int] = field(default_factory=list)         # slots changed at each poll after the first
    churn_time: list[float] = field(default_factory=list)  # ... and when

    def churn_stats(self, until: float | None = None) -> tuple[float, float, int]:
        """Slots changed per poll: mean, 99th percentile, max (polls that wrote nothing count
        0), over the polls before `until` (the end of arrivals: as the balance metrics, the
        drain afterwards, where a policy may swing the whole ring for no flow, is left out)."""
        values = np.asarray(self.churn, dtype=np.float64)
        if until is not None:
            values = values[np.asarray(self.churn_time) < until]
        if not values.size:
            return 0.0, 0.0, 0
        return float(values.mean()), float(np.percentile(values, 99)), int(values.max())


class RingWriter:
    """The controller's side: one ring, rewritten at each poll by `plan_ring` with a cap and
    hysteresis (shares of the ring), each write under a new generation (a counter that only
    grows; every changed slot takes the write's generation)."""

    def __init__(self, size: int, max_change: float | None = None, hysteresis: float = 0.0) -> None:
        self.size = check_ring_size(size)
        if max_change is not None and not 0 < max_change <= 1:
            raise ValueError(f"ring max change is a share of the ring in (0, 1], not {max_change}")
        if not 0 <= hysteresis <= 1:
            raise ValueError(f"ring hysteresis is a share of the ring in [0, 1], not {hysteresis}")
        self.max_change = None if max_change is None else max(1, int(max_change * size))
        self.hysteresis = hysteresis * size
        self.backend = np.full(size, -1, dtype=np.int64)
        self.generation = np.zeros(size, dtype=np.int64)
        self.last_generation = 0

    def write(self, weights: NDArray[np.float64], available: NDArray[np.bool_] | None = None) -> NDArray[np.int64]:
        """Plan and apply a write (`available`: servers that take new flows; default those
        with a positive weight); returns the slots it changed."""
        new = plan_ring(self.backend, weights, self.max_change, self.hysteresis, available)
        changed = np.flatnonzero(new != self.backend)
        if changed.size:
            self.last_generation += 1
            self.backend[changed] = new[changed]
            self.generation[changed] = self.last_generation
        return changed


class SwitchModel:
    """What both models share: the ring writer, per-flow records, entries and the split check."""

    name = "base"

    def __init__(self, ring_size: int, cache_timeout: float, max_change: float | None = None,
                 hysteresis: float = 0.0) -> None:
        if cache_timeout <= 0:
            raise ValueError(f"cache timeout must be positive, not {cache_timeout}")
        self.ring_size = check_ring_size(ring_size)
        self.mask = ring_size - 1
        self.cache_timeout = cache_timeout
        self.writer = RingWriter(ring_size, max_change, hysteresis)
        self.counters = SwitchCounters()
        self._writes = 0
        # Per flow slot (the traffic source's, reused after a flow ends); grown together.
        self._size = 0
        self.first_backend = np.zeros(0, np.int64)
        self._entry_backend = np.zeros(0, np.int64)   # backend of the flow's last packet up to its digest
        self._digest = np.zeros(0)
        self._installed = np.zeros(0)
        self._ring_index = np.zeros(0, np.int64)
        self._split = np.zeros(0, np.bool_)
        self._split_design = np.zeros(0, np.bool_)
        self._design_backend = np.zeros(0, np.int64)  # first backend of the flow's current design flow
        self._collided = np.zeros(0, np.bool_)
        self._last_pre = np.zeros(0)                  # the flow's last packet not decided by its entry, so far
        self._activated = np.zeros(0, np.bool_)       # its entry decides (legacy: unused, entries decide at once)
        self._stale = np.zeros(0, np.bool_)           # its entry was found stale at least once

    _PER_FLOW: tuple[str, ...] = ("first_backend", "_entry_backend", "_digest", "_installed", "_ring_index",
                                  "_split", "_split_design", "_design_backend", "_collided", "_last_pre",
                                  "_activated", "_stale")
    activation = False    # entries decide only once activated (the generations model)

    @property
    def ring(self) -> NDArray[np.int64]:
        return self.writer.backend

    # -- the controller's writes ------------------------------------------------------------

    def write_ring(self, weights: NDArray[np.float64], now: float, available: NDArray[np.bool_] | None = None) -> int:
        """A poll: the ring writer plans and writes; returns the slots changed."""
        changed = self.writer.write(weights, available)
        if self._writes:
            self.counters.churn.append(int(changed.size))
            self.counters.churn_time.append(now)
        self._writes += 1
        self.counters.peak_live_ways = max(self.counters.peak_live_ways, self.live_ways(now))
        return int(changed.size)

    def live_ways(self, now: float) -> int:
        raise NotImplementedError

    # -- packets ------------------------------------------------------------------------------

    def step(self, new: NewFlowArrivals, packet_time: NDArray[np.float64],
             packet_slot: NDArray[np.int64]) -> NDArray[np.int64]:
        """The backend of every packet of a batch (new flows start in it). Ring writes come
        between batches, at poll boundaries."""
        self._admit(new)
        installed = packet_time >= self._installed[packet_slot]
        if not self.activation:
            return self._step(new, packet_time, packet_slot, ~installed)
        # Checks: packets that find an entry not yet activated. Each is decided as a miss; the
        # first whose decision names the entry's backend activates it (later packets follow
        # the entry). Which one that is depends on the decisions, which depend on which packets
        # take the miss path: guess (the first check activates), run, and run again from a
        # snapshot with the guess corrected until it holds. Decisions are causal (a packet's
        # depends only on earlier ones), so each correction settles at least the earliest wrong
        # guess; a wrong guess means a stale entry, which is rare.
        check = np.flatnonzero(installed & ~self._activated[packet_slot])
        if not check.size:
            return self._step(new, packet_time, packet_slot, ~installed)
        check = check[np.lexsort((check, packet_time[check], packet_slot[check]))]
        check_slot = packet_slot[check]
        start = np.r_[True, check_slot[1:] != check_slot[:-1]]
        group = np.cumsum(start) - 1
        rank = np.arange(check.size) - np.flatnonzero(start)[group]   # the check's rank within its flow
        groups = int(group[-1]) + 1
        last_rank = np.bincount(group, minlength=groups) - 1
        never = np.iinfo(np.int64).max
        cut = np.zeros(groups, dtype=np.int64)     # checks of rank <= cut take the miss path
        snapshot = self._snapshot(np.unique(packet_slot))
        for _ in range(10_000):
            miss = ~installed
            miss[check] = rank <= cut[group]
            backend = self._step(new, packet_time, packet_slot, miss)
            tried = miss[check]
            match = tried & (backend[check] == self._entry_backend[check_slot])
            first_match = np.full(groups, never, dtype=np.int64)
            np.minimum.at(first_match, group[match], rank[match])
            settled = np.where(first_match == never, cut >= last_rank, first_match == cut)
            if settled.all():
                break
            cut = first_match
            self._restore(snapshot)
        else:
            raise AssertionError("entry activation did not settle")
        activated = check_slot[start][first_match != never]
        self._activated[activated] = True
        self.counters.entries_activated += int(activated.size)
        self._count(self._stale, "entries_stale", check_slot[tried & ~match])
        return backend

    def _snapshot(self, slots: NDArray[np.int64]) -> tuple:
        """What a batch can change: the counters and these flows' records (subclasses add theirs)."""
        return (replace(self.counters), slots, [getattr(self, name)[slots].copy() for name in self._PER_FLOW])

    def _restore(self, snapshot: tuple) -> None:
        counters, slots, values = snapshot[:3]
        self.counters = replace(counters)
        for name, value in zip(self._PER_FLOW, values):
            getattr(self, name)[slots] = value

    def _step(self, new: NewFlowArrivals, packet_time: NDArray[np.float64], packet_slot: NDArray[np.int64],
              miss: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The batch, with `miss` the packets not decided by an entry."""
        backend = np.empty(packet_time.size, dtype=np.int64)
        pre = self._pre_entry(new, packet_time, packet_slot, miss)
        pre_backend = self._without_entry(new, pre)
        backend[pre.order] = pre_backend
        run_end = np.r_[pre.run_start[1:], True] if pre.time.size else np.zeros(0, dtype=bool)
        # The entry carries what the digest carried: the backend of the last packet up to it.
        upto = np.flatnonzero(pre.time <= self._digest[pre.slot])
        if upto.size:
            last = upto[np.r_[pre.slot[upto][1:] != pre.slot[upto][:-1], True]]
            self._entry_backend[pre.slot[last]] = pre_backend[last]
        entered = np.ones(packet_time.size, dtype=bool)
        entered[pre.order] = False
        backend[entered] = self._entry_backend[packet_slot[entered]]
        # The split checks: every packet against its flow's first, and against the first of its
        # design flow (a new one starts after a silence of T_c before the entry).
        self._count(self._split, "split_flows", packet_slot[backend != self.first_backend[packet_slot]])
        restart = pre.new_first | (pre.previous + self.cache_timeout <= pre.time)
        reference = np.full(pre.time.size, -1, dtype=np.int64)
        reference[pre.run_start] = self._design_backend[pre.slot[pre.run_start]]
        reference[restart] = pre_backend[restart]
        reference = reference[np.maximum.accumulate(np.where(reference >= 0, np.arange(reference.size), 0))]
        self._design_backend[pre.slot[run_end]] = reference[run_end]
        self._last_pre[pre.slot[run_end]] = pre.time[run_end]
        design_moved = np.r_[pre.slot[pre_backend != reference],
                             packet_slot[entered][backend[entered] != self._design_backend[packet_slot[entered]]]]
        self._count(self._split_design, "split_design_flows", design_moved)
        return backend

    def _pre_entry(self, new: NewFlowArrivals, time: NDArray[np.float64], slot: NDArray[np.int64],
                   miss: NDArray[np.bool_]) -> PreEntry:
        """The packets not decided by an entry, by flow then time, and how each relates to the last."""
        index = np.flatnonzero(miss)
        order = index[np.lexsort((time[index], slot[index]))]
        ts, ss = time[order], slot[order]
        run_start = np.r_[True, ss[1:] != ss[:-1]] if ss.size else np.zeros(0, dtype=bool)
        previous = np.r_[-np.inf, ts[:-1]]
        previous[run_start] = self._last_pre[ss[run_start]]
        is_new = np.zeros(self._size, dtype=bool)
        is_new[new.slot] = True
        new_first = run_start & is_new[ss]
        if int(np.count_nonzero(new_first)) != new.slot.size or np.any(ts[new_first] != previous[new_first]):
            raise ValueError("every new flow needs its first packet in the batch, at its first time")
        return PreEntry(order, ts, ss, run_start, previous, new_first)

    def _count(self, flags: NDArray[np.bool_], counter: str, slots: NDArray[np.int64]) -> None:
        """Flag these flows, counting each one the first time."""
        if slots.size:
            slots = np.unique(slots)
            fresh = slots[~flags[slots]]
            flags[fresh] = True
            setattr(self.counters, counter, getattr(self.counters, counter) + int(fresh.size))

    def _admit(self, new: NewFlowArrivals) -> None:
        if new.slot.size:
            self._grow(int(new.slot.max()) + 1)
        s = new.slot
        self.counters.flows += int(s.size)
        self.first_backend[s] = -1
        self._entry_backend[s] = -1
        self._digest[s] = new.digest
        self._installed[s] = new.installed
        self._ring_index[s] = (new.ring_hash.astype(np.int64) >> 16) & self.mask
        self._split[s] = False
        self._split_design[s] = False
        self._collided[s] = False
        self._activated[s] = False
        self._stale[s] = False
        self._last_pre[s] = new.first     # so the first packet is no silence

    def _mark_collided(self, slots: NDArray[np.int64]) -> None:
        self._count(self._collided, "collisions", slots)

    def _grow(self, needed: int) -> None:
        if needed <= self._size:
            return
        new = max(needed, 2 * self._size, 1024)
        for name in self._PER_FLOW:
            old: NDArray = getattr(self, name)
            grown = np.zeros(new, dtype=old.dtype)
            grown[:self._size] = old
            setattr(self, name, grown)
        self._size = new

    def _without_entry(self, new: NewFlowArrivals, pre: PreEntry) -> NDArray[np.int64]:
        """Backends of the packets that find no `flows` entry (in `pre`'s order); sets
        first_backend of new flows."""
        raise NotImplementedError


class LegacySwitchModel(SwitchModel):
    """The switch before issue 10 (docs/dataplane.md as it was): one cache slot per hash value."""

    name = "legacy"

    def __init__(self, ring_size: int, cache_timeout: float, max_change: float | None = None,
                 hysteresis: float = 0.0) -> None:
        super().__init__(ring_size, cache_timeout, max_change, hysteresis)
        self._cache_busy_until = np.full(LEGACY_CACHE_SLOTS, -np.inf)

    def live_ways(self, now: float) -> int:
        return int(np.count_nonzero(self._cache_busy_until > now))

    def _without_entry(self, new: NewFlowArrivals, pre: PreEntry) -> NDArray[np.int64]:
        s = new.slot
        self.first_backend[s] = self.ring[self._ring_index[s]]
        cache_slot = new.cache_hash.astype(np.int64) & (LEGACY_CACHE_SLOTS - 1)
        held = self._cache_busy_until[cache_slot] > new.first
        winner = np.zeros(s.size, dtype=bool)
        winner[np.unique(cache_slot, return_index=True)[1]] = True   # the first of a batch's flows per slot
        winner &= ~held & new.cacheable
        # The slot is refreshed by every miss, so it stays held until the entry exists, plus the timeout.
        self._cache_busy_until[cache_slot[winner]] = new.installed[winner] + self.cache_timeout
        self._mark_collided(s[~winner])
        # A cached flow keeps its first backend; a colliding one follows the ring (which is
        # constant within a batch) at every packet.
        backend = self.first_backend[pre.slot].copy()
        stateless = self._collided[pre.slot]
        backend[stateless] = self.ring[self._ring_index[pre.slot[stateless]]]
        self.counters.stateless_packets += int(np.count_nonzero(stateless))
        return backend


class GenerationSwitchModel(SwitchModel):
    """docs/consistency.md: exact-key set-associative cache, per-ring-entry generations."""

    name = "generations"

    def __init__(self, ring_size: int, cache_timeout: float, max_change: float | None = None,
                 hysteresis: float = 0.0, cache_sets: int = FLOW_CACHE_SETS,
                 cache_ways: int = FLOW_CACHE_WAYS) -> None:
        super().__init__(ring_size, cache_timeout, max_change, hysteresis)
        if cache_sets < 1 or cache_sets & (cache_sets - 1) or cache_ways < 1:
            raise ValueError(f"the cache needs a power-of-two number of sets and at least one way, "
                             f"not {cache_sets} x {cache_ways}")
        self.cache_sets = cache_sets
        self.cache_ways = cache_ways
        # The cache: way w of set s is s * ways + w. until = last seen + T_c (-inf: empty), so
        # a way is free at t exactly when until <= t.
        self._way_until = np.full(cache_sets * cache_ways, -np.inf)
        self._way_backend = np.zeros(cache_sets * cache_ways, dtype=np.int64)
        # Per ring entry (Python lists: the event loop reads them one at a time).
        self._applied_generation = [0] * ring_size
        self._applied_backend = [-1] * ring_size
        self._stateless_seen = [-np.inf] * ring_size   # -inf: never (P4 uses 0)
        # Per flow slot.
        self._set_index = np.zeros(0, np.int64)
        self._cacheable = np.zeros(0, np.bool_)
        self._way = np.zeros(0, np.int64)          # the way the flow holds, -1: none

    _PER_FLOW = SwitchModel._PER_FLOW + ("_set_index", "_cacheable", "_way")
    activation = True

    def _snapshot(self, slots: NDArray[np.int64]) -> tuple:
        # The cache sets and ring entries these flows can touch.
        ways = (self._set_index[slots][:, None] * self.cache_ways + np.arange(self.cache_ways)).ravel()
        ways = np.unique(ways)
        entries = np.unique(self._ring_index[slots]).tolist()
        return super()._snapshot(slots) + (
            ways, self._way_until[ways].copy(), self._way_backend[ways].copy(), entries,
            [(self._applied_generation[r], self._applied_backend[r], self._stateless_seen[r]) for r in entries])

    def _restore(self, snapshot: tuple) -> None:
        super()._restore(snapshot)
        ways, until, backend, entries, registers = snapshot[3:]
        self._way_until[ways] = until
        self._way_backend[ways] = backend
        for r, (generation, applied, seen) in zip(entries, registers):
            self._applied_generation[r], self._applied_backend[r], self._stateless_seen[r] = generation, applied, seen

    def live_ways(self, now: float) -> int:
        return int(np.count_nonzero(self._way_until > now))

    def _admit(self, new: NewFlowArrivals) -> None:
        super()._admit(new)
        s = new.slot
        self._set_index[s] = new.cache_hash.astype(np.int64) & (self.cache_sets - 1)
        self._cacheable[s] = new.cacheable
        self._way[s] = -1

    def _without_entry(self, new: NewFlowArrivals, pre: PreEntry) -> NDArray[np.int64]:
        timeout = self.cache_timeout
        ts, ss, run_start = pre.time, pre.slot, pre.run_start
        n = ts.size
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        # Segments of a flow's run split where it was silent for T_c or more (its way expired:
        # the next packet is decided again). The same float expression as a way's liveness:
        # until = last seen + T_c <= now.
        segment_start = (pre.previous + timeout <= ts) & ~pre.new_first
        way_at_start = self._way[ss[run_start]]
        # Decisions: new flows' first packets, silences of T_c, and the first packet of a run
        # whose flow holds no way (stateless); later packets of a stateless flow are queued as
        # it stays stateless.
        decide = segment_start.copy()
        decide[run_start] |= pre.new_first[run_start] | (way_at_start < 0)
        boundary = run_start | segment_start
        segment = np.cumsum(boundary) - 1
        segment_last = ts[np.r_[np.flatnonzero(boundary)[1:] - 1, n - 1]][segment]
        # Cached flows that keep their way into this batch refresh it first: with every gap
        # under T_c, the way is live until T_c after the last packet of that segment.
        keeps = run_start & ~decide
        self._way_until[self._way[ss[keeps]]] = segment_last[keeps] + timeout
        start_backend = np.where(way_at_start >= 0, self._way_backend[np.maximum(way_at_start, 0)], -1)
        decided, decided_backend = self._decide(ts, ss, decide, run_start | segment_start, segment_last)
        # Packets not decided are a cached flow's: its way's backend, i.e. the last decision of
        # its run, or the way it held at the start of the batch.
        value = np.full(n, -1, dtype=np.int64)
        value[run_start] = start_backend
        value[decided] = decided_backend
        backend = value[np.maximum.accumulate(np.where(value >= 0, np.arange(n), 0))]
        if np.any(backend < 0):
            raise AssertionError("a packet with neither a decision nor a cache way")
        self.first_backend[ss[pre.new_first]] = backend[pre.new_first]
        return backend

    def _decide(self, ts: NDArray[np.float64], ss: NDArray[np.int64], decide: NDArray[np.bool_],
                queued_elsewhere: NDArray[np.bool_], segment_last: NDArray[np.float64]
                ) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """The packets decided at their ring entry, one at a time in time order (the held rule,
        then a free way or a stamp). A packet that leaves its flow stateless queues the flow's
        next packet. Returns the decided packets (positions in ts) and their backends."""
        timeout, ways = self.cache_timeout, self.cache_ways
        ring_backend = self.writer.backend.tolist()
        ring_generation = self.writer.generation.tolist()
        applied_generation, applied_backend = self._applied_generation, self._applied_backend
        seen = self._stateless_seen
        way_until, way_backend = self._way_until, self._way_backend
        ring_of, set_of = self._ring_index[ss], self._set_index[ss]
        cacheable_of = self._cacheable[ss]
        # A stateless flow's next packet, unless it is a decision queued already.
        follows = np.r_[~queued_elsewhere[1:], False]
        # The decisions known up front, in time order (ties: by position), as Python lists; a
        # heap holds the few packets stateless flows add, merged in as the loop goes.
        first = np.flatnonzero(decide)
        first = first[np.lexsort((first, ts[first]))]
        first_time, first_pos = ts[first].tolist(), first.tolist()
        first_ring, first_set = ring_of[first].tolist(), set_of[first].tolist()
        first_cacheable, first_last = cacheable_of[first].tolist(), segment_last[first].tolist()
        count = len(first_pos)
        k = 0
        heap: list[tuple[float, int]] = []
        decided: list[int] = []
        backends: list[int] = []
        held = applied = stateless = 0
        stateless_at: list[int] = []
        claims: list[tuple[int, int]] = []     # (position, way); -1: none
        while k < count or heap:
            if heap and (k == count or heap[0] < (first_time[k], first_pos[k])):
                t, i = heapq.heappop(heap)
                r, cache_set = ring_of.item(i), set_of.item(i)
                cacheable, last = cacheable_of.item(i), segment_last.item(i)
            else:
                t, i, r, cache_set = first_time[k], first_pos[k], first_ring[k], first_set[k]
                cacheable, last = first_cacheable[k], first_last[k]
                k += 1
            generation = ring_generation[r]
            if applied_generation[r] != generation:
                if t - seen[r] < timeout:
                    backend = applied_backend[r]         # an older flow still depends on it
                    held += 1
                else:
                    applied_generation[r] = generation
                    backend = applied_backend[r] = ring_backend[r]
                    applied += 1
            else:
                backend = ring_backend[r]
            decided.append(i)
            backends.append(backend)
            claimed = -1
            if cacheable:
                base = cache_set * ways
                for w in range(base, base + ways):
                    if way_until.item(w) <= t:         # empty or expired: free
                        claimed = w
                        break
            claims.append((i, claimed))
            if claimed >= 0:
                way_until[claimed] = last + timeout
                way_backend[claimed] = backend
            else:
                seen[r] = t
                stateless += 1
                stateless_at.append(i)
                if follows.item(i):
                    heapq.heappush(heap, (ts.item(i + 1), i + 1))
        self.counters.held += held
        self.counters.applied += applied
        self.counters.stateless_packets += stateless
        if claims:
            # A flow's way after the batch is what its last decision left (claims are in time order).
            position, way = np.array(claims, dtype=np.int64).T
            flow = ss[position]
            # (numpy leaves the winner among repeated indices open: keep each flow's last.)
            latest = np.unique(flow[::-1], return_index=True)[1]
            self._way[flow[::-1][latest]] = way[::-1][latest]
        if stateless_at:
            self._mark_collided(ss[np.array(stateless_at, dtype=np.int64)])
        return np.array(decided, dtype=np.int64), np.array(backends, dtype=np.int64)


def make_switch(model: str, ring_size: int, cache_timeout: float, max_change: float | None = None,
                hysteresis: float = 0.0, cache_sets: int = FLOW_CACHE_SETS,
                cache_ways: int = FLOW_CACHE_WAYS) -> SwitchModel:
    if model == "generations":
        return GenerationSwitchModel(ring_size, cache_timeout, max_change, hysteresis, cache_sets, cache_ways)
    if model == "legacy":
        return LegacySwitchModel(ring_size, cache_timeout, max_change, hysteresis)
    raise ValueError(f"unknown switch model {model!r} (known: {', '.join(SWITCH_MODELS)})")
