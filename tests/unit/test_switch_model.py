"""The simulator's switch models (sim/switch_model.py) against docs/consistency.md.

The generations model is checked packet by packet against a plain reference written from the
document's pseudo-code (every packet in time order, no shortcuts), on random scenarios with a
tiny cache, a tiny ring rewritten at every poll, and flows that fall silent for longer than
T_c before their entries exist. Then the properties the issue asks for, on the real engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from controller.policies.base import ClusterView, Policy
from sim.engine import Simulation, SimulationConfig
from sim.flow_sizes import FlowSizeCdf
from sim.switch_model import (
    GenerationSwitchModel,
    LegacySwitchModel,
    NewFlowArrivals,
    RingWriter,
    SwitchCounters,
    SwitchModel,
    make_switch,
)
from sim.workload import GeneratedWorkload, WorkloadSpec


@dataclass
class Flow:
    cache_hash: int
    ring_hash: int
    times: list[float]          # packet times, the first is the flow's start
    digest: float
    installed: float
    cacheable: bool = True


def run_scenario(switch: SwitchModel, flows: list[Flow], weights: list[np.ndarray], interval: float
                 ) -> tuple[list[list[int]], int]:
    """Feeds `flows` through `switch` batch by batch (the ring written with weights[k] at the
    end of batch k; weights[0] before the first). Returns each flow's packet backends and the
    number of batches. Flow i uses slot i (never reused)."""
    switch.write_ring(weights[0], 0.0)
    horizon = max(max(f.times) for f in flows)
    batches = int(horizon / interval) + 2      # past the last packet, whatever the float rounding
    backends: list[list[int]] = [[] for _ in flows]
    for k in range(batches):
        start, end = k * interval, (k + 1) * interval
        new = [i for i, f in enumerate(flows) if start <= f.times[0] < end]
        new.sort(key=lambda i: flows[i].times[0])
        arrivals = NewFlowArrivals(
            slot=np.array(new, dtype=np.int64),
            cache_hash=np.array([flows[i].cache_hash for i in new], dtype=np.uint32),
            ring_hash=np.array([flows[i].ring_hash for i in new], dtype=np.uint32),
            first=np.array([flows[i].times[0] for i in new]),
            digest=np.array([flows[i].digest for i in new]),
            installed=np.array([flows[i].installed for i in new]),
            cacheable=np.array([flows[i].cacheable for i in new], dtype=bool))
        packets = [(t, i) for i, f in enumerate(flows) for t in f.times if start <= t < end]
        time = np.array([t for t, _ in packets])
        slot = np.array([i for _, i in packets], dtype=np.int64)
        out = switch.step(arrivals, time, slot)
        for (_, i), b in sorted(zip(packets, out.tolist())):
            backends[i].append(b)
        switch.write_ring(weights[min(k + 1, len(weights) - 1)], end)
    return backends, batches


def reference(flows: list[Flow], weights: list[np.ndarray], interval: float, batches: int, ring_size: int,
              sets: int, ways: int, timeout: float, max_change: float | None = None) -> dict:
    """docs/consistency.md, one packet at a time, in time order."""
    writer = RingWriter(ring_size, max_change)
    writer.write(weights[0])
    writes = [((k + 1) * interval, weights[min(k + 1, len(weights) - 1)]) for k in range(batches)]
    packets = sorted((t, i) for i, f in enumerate(flows) for t in f.times)
    way_key = [-1] * (sets * ways)
    way_seen = [-np.inf] * (sets * ways)
    way_backend = [0] * (sets * ways)
    applied_generation = [0] * ring_size
    applied_backend = [-1] * ring_size
    seen = [-np.inf] * ring_size
    entry = {}
    activated: dict[int, float] = {}     # flow -> when its entry was activated
    stale = set()
    out: list[list[int]] = [[] for _ in flows]
    held = applied = stateless = 0
    collided = set()
    for t, i in packets:
        while writes and writes[0][0] <= t:
            writer.write(writes.pop(0)[1])
        f = flows[i]
        if f.cacheable and t >= f.installed and i in activated:
            out[i].append(entry[i])
            continue
        base = (f.cache_hash & (sets - 1)) * ways
        # Free: empty or last seen T_c or more ago (written as the model compares floats).
        live = [w for w in range(base, base + ways) if not way_seen[w] + timeout <= t]
        hit = [w for w in live if way_key[w] == i] if f.cacheable else []
        if hit:
            way_seen[hit[0]] = t
            backend = way_backend[hit[0]]
        else:
            r = (f.ring_hash >> 16) & (ring_size - 1)
            b, g = int(writer.backend[r]), int(writer.generation[r])
            is_held = t - seen[r] < timeout
            if applied_generation[r] != g and is_held:
                backend = applied_backend[r]
                held += 1
            else:
                if applied_generation[r] != g:
                    applied += 1
                applied_generation[r], applied_backend[r], backend = g, b, b
            free = [w for w in range(base, base + ways) if way_seen[w] + timeout <= t]
            if f.cacheable and free:
                way_key[free[0]], way_seen[free[0]], way_backend[free[0]] = i, t, backend
            else:
                seen[r] = t
                stateless += 1
                collided.add(i)
        if t <= f.digest:
            entry[i] = backend
        if f.cacheable and t >= f.installed:      # an entry not activated: this miss decision checks it
            if backend == entry[i]:
                activated[i] = t
            else:
                stale.add(i)
        out[i].append(backend)
    return {"backends": out, "held": held, "applied": applied, "stateless": stateless,
            "collisions": len(collided), "activated": activated, "stale": len(stale)}


def random_flows(rng: np.random.Generator, count: int, duration: float, timeout: float) -> list[Flow]:
    flows = []
    for _ in range(count):
        first = float(rng.uniform(0, duration))
        # Gaps mostly short, sometimes longer than T_c (the flow's way expires before its entry).
        gaps = np.where(rng.random(int(rng.integers(1, 12))) < 0.15, rng.uniform(timeout, 2 * timeout, 1),
                        rng.exponential(timeout / 8, 1))
        times = (first + np.concatenate([[0.0], np.cumsum(gaps)[:-1]])).round(6)
        rtt = float(rng.uniform(0.001, timeout))
        delay = float(rng.choice([0.01, timeout, 4 * timeout]))
        cacheable = bool(rng.random() > 0.05)     # else non-IP: never cached, never an entry
        flows.append(Flow(cache_hash=int(rng.integers(0, 2**32)), ring_hash=int(rng.integers(0, 2**32)),
                          times=sorted(set(times.tolist())), digest=first + rtt if cacheable else np.inf,
                          installed=first + rtt + delay if cacheable else np.inf, cacheable=cacheable))
    return flows


def definitional_flows(flow: Flow, backends: list[int], timeout: float, activated: float = np.inf
                       ) -> list[list[int]]:
    """docs/consistency.md's flows within one simulated flow: a silence of T_c or more while
    no activated entry exists ends a flow (the next packet starts a new one)."""
    pieces = [[backends[0]]]
    for k in range(1, len(flow.times)):
        if flow.times[k] <= activated and flow.times[k - 1] + timeout <= flow.times[k]:
            pieces.append([])
        pieces[-1].append(backends[k])
    return pieces


@pytest.mark.parametrize("seed", range(12))
def test_generations_model_equals_the_reference_packet_by_packet(seed):
    rng = np.random.default_rng(seed)
    sets, ways, ring_size, timeout, interval = [(1, 1), (2, 1), (1, 2), (4, 2)][seed % 4] + (4, 0.3, 0.1)
    flows = random_flows(rng, 60, 2.0, timeout)
    weights = [rng.random(3) + 0.01 for _ in range(40)]
    switch = GenerationSwitchModel(ring_size, timeout, cache_sets=sets, cache_ways=ways)
    got, batches = run_scenario(switch, flows, weights, interval)
    want = reference(flows, weights, interval, batches, ring_size, sets, ways, timeout)
    assert got == want["backends"]
    assert (switch.counters.held, switch.counters.applied) == (want["held"], want["applied"])
    assert switch.counters.stateless_packets == want["stateless"]
    assert switch.counters.collisions == want["collisions"]
    assert want["held"] > 0 and want["collisions"] > 0, "the scenario exercises the held rule"
    # The split counter counts simulated flows with two backends, as the reference gives them.
    assert switch.counters.split_flows == sum(len(set(b)) > 1 for b in want["backends"])
    assert switch.counters.entries_activated == len(want["activated"])
    assert switch.counters.entries_stale == want["stale"]
    assert want["stale"] > 0 or seed in (0, 2, 10), "the scenario exercises stale entries (9 seeds of 12)"
    # Within docs/consistency.md's flows, no packet goes anywhere else than its flow's first
    # (before entry activation, test_an_earlier_flows_late_entry_is_stale_and_does_not_split_...
    # split some).
    for i, (flow, backends) in enumerate(zip(flows, got)):
        pieces = definitional_flows(flow, backends, timeout, want["activated"].get(i, np.inf))
        assert all(len(set(piece)) == 1 for piece in pieces)
    assert switch.counters.split_design_flows == 0


def every_flow_collides(model: str, seed: int = 3) -> tuple[SwitchModel, list[list[int]]]:
    """300 flows in 3 s on one cache set (legacy: one cache slot), ring rewritten with random
    weights at every 100 ms poll, each flow waiting 30-60 ms for its entry."""
    rng = np.random.default_rng(seed)
    flows = []
    for _ in range(300):
        first = float(rng.uniform(0, 3.0))
        times = first + np.arange(int(rng.integers(2, 40))) * 0.002
        rtt = float(rng.uniform(0.001, 0.01))
        installed = first + rtt + float(rng.uniform(0.03, 0.05))
        # Same low 16 bits: one legacy cache slot, one set of any power-of-two count.
        flows.append(Flow(cache_hash=0x0001_0000 * int(rng.integers(1, 1 << 16)), ring_hash=int(rng.integers(0, 2**32)),
                          times=times.round(6).tolist(), digest=first + rtt, installed=installed))
    weights = [rng.random(4) + 0.01 for _ in range(40)]
    if model == "legacy":
        switch: SwitchModel = LegacySwitchModel(64, 1.0)
    else:
        switch = GenerationSwitchModel(64, 1.0, cache_sets=1, cache_ways=1)
    backends, _ = run_scenario(switch, flows, weights, 0.1)
    return switch, backends


def test_every_flow_collides_and_none_splits_in_the_generations_model():
    switch, backends = every_flow_collides("generations")
    c = switch.counters
    assert c.collisions >= 280, "one way for 300 flows: nearly all are stateless"
    assert sum(c.churn) > 500 and c.held > 1000
    assert all(len(set(b)) == 1 for b in backends)
    assert c.split_flows == c.split_design_flows == 0


def test_the_same_load_splits_flows_in_the_legacy_model():
    switch, backends = every_flow_collides("legacy")
    split = sum(len(set(b)) > 1 for b in backends)
    assert switch.counters.collisions >= 280
    assert split > 10 and switch.counters.split_flows == split


U = 1 / 128          # time unit of the scripted tests: exact in binary, so boundaries are exact
T_C = 32 * U         # 0.25 s


def scripted(starts: dict[str, int], switch: GenerationSwitchModel, ring_writes: dict[int, list[float]],
             until: int) -> dict[str, list[int]]:
    """Named flows starting at the given times (in U), five packets U apart, entries far in
    the future (so they stay cached or stateless), all on ring entry 0 and one cache set; the
    ring written at the given poll numbers (polls every 16 U)."""
    flows = [Flow(cache_hash=0, ring_hash=0, times=[(first + k) * U for k in range(5)], digest=(first + 0.5) * U,
                  installed=100.0) for first in starts.values()]
    weights = [np.array(ring_writes[0])]
    for poll in range(1, until // 16 + 2):
        weights.append(np.array(ring_writes[poll]) if poll in ring_writes else weights[-1])
    got, _ = run_scenario(switch, flows, weights, 16 * U)
    return dict(zip(starts, got))


def tiny(ways: int = 1) -> GenerationSwitchModel:
    return GenerationSwitchModel(1, T_C, cache_sets=1, cache_ways=ways)


MOVE = {0: [1.0, 0.0], 1: [0.0, 1.0]}    # backend 0, then from 16 U on backend 1


def test_a_held_entry_takes_its_new_generation_only_after_t_c_without_stateless_flows():
    # A takes the only way (packets 1-5 U, free from 37 U); B is stateless (2-6 U), stamping
    # the ring entry until 6 U; the ring moves to backend 1 at 16 U.
    switch = tiny()
    got = scripted({"A": 1, "B": 2, "C": 18, "D": 36, "E": 39}, switch, MOVE, until=48)
    assert got["A"] == got["B"] == [0] * 5
    assert got["C"] == [0] * 5, "C (18-22 U) is stateless and held: B stamped at 6 U"
    assert got["D"] == [0] * 5, "D held at 36 U (C stamped at 22 U); at 37 U it takes A's way, still held"
    assert got["E"] == [0] * 5, "E (39-43 U) stateless, held: D stamped at 36 U"
    assert switch.counters.held == 5 + 2 + 5 and switch.counters.applied == 1   # only the first write's

    # Without a stateless flow in the last T_c, the next decision applies the new generation.
    # F takes A's way (free from 37 U) with whatever its first packet is given.
    for start, backend in ((37, 0), (38, 1), (39, 1)):      # B's last stamp: 6 U; T_c = 32 U
        switch = tiny()
        got = scripted({"A": 1, "B": 2, "F": start}, switch, MOVE, until=48)
        assert got["F"] == [backend] * 5, f"F at {start} U"
        assert (switch.counters.held, switch.counters.applied) == ((1, 1) if backend == 0 else (0, 2))


def test_a_way_is_reused_only_after_it_expires_and_a_live_way_is_never_taken():
    # A holds the only way, last seen at 5 U: free from 37 U on.
    switch = tiny()
    scripted({"A": 1, "B": 32, "C": 37}, switch, {0: [1.0]}, until=48)
    assert switch.counters.collisions == 1, "B (32-36 U) found A's way live; C (37 U) took it"
    assert switch.counters.stateless_packets == 5, "all five of B's packets, none of A's or C's"
    # Two ways: A and B cached, C collides; no way is overwritten while live.
    switch = tiny(ways=2)
    scripted({"A": 1, "B": 2, "C": 3}, switch, {0: [1.0]}, until=48)
    assert switch.counters.collisions == 1 and switch.counters.stateless_packets == 5
    assert switch.live_ways(10 * U) == 2 and switch.live_ways(37.5 * U) == 1 and switch.live_ways(38 * U) == 0


def test_a_stateless_flow_takes_a_way_that_frees_up_and_stops_stamping():
    switch = tiny()
    got = scripted({"A": 1, "B": 35, "C": 36}, switch, MOVE, until=48)
    assert switch.counters.stateless_packets == 2 + 5, "B's packets at 35 and 36 U (cached from 37 U), all of C's"
    # Nobody held the entry at 35 U, so B applied the new generation; from then on its stamps
    # (35, 36 U) held nothing new: C at 36 U (stateless while B has the way) is given B's backend.
    assert got["B"] == got["C"] == [1] * 5
    assert switch.counters.applied == 2 and switch.counters.held == 0


def test_an_earlier_flows_late_entry_is_stale_and_does_not_split_the_next_flow_with_its_key():
    # Key K: packets at 1 and 2 U, digest at 2 U (backend 0), silence until 40 U (longer than
    # T_c = 32 U, so its way expires and a new flow starts), the entry only at 42 U (an install
    # delay of 40 U = 0.31 s, e.g. an overloaded controller). The ring moved to backend 1 at 16 U.
    # The second flow is decided at the ring (backend 1); at 42 U it finds the entry (backend 0)
    # not yet activated: decided as a miss (its way, backend 1), which does not name the
    # entry's backend, so the entry is stale and the flow stays on its way.
    flow = Flow(cache_hash=0, ring_hash=0, times=[t * U for t in (1, 2, 40, 41, 42, 43, 44)],
                digest=2 * U, installed=42 * U)
    switch = tiny()
    got, _ = run_scenario(switch, [flow], [np.array(MOVE[0]), np.array(MOVE[1])], 16 * U)
    assert definitional_flows(flow, got[0], T_C) == [[0, 0], [1, 1, 1, 1, 1]]
    c = switch.counters
    assert (c.entries_stale, c.entries_activated) == (1, 0)
    assert c.split_design_flows == 0 and c.split_flows == 1, "two flows as defined, one as the source has them"
    assert switch.live_ways(75.5 * U) == 1 and switch.live_ways(76 * U) == 0, "still cached: refreshed at 44 U"


def test_an_entry_that_arrives_in_time_is_activated_and_decides_from_then_on():
    # Digest at 2 U (backend 0), entry at 3 U: the packet at 3 U is decided as a miss (its way,
    # backend 0), names the entry's backend and activates it; 4 and 5 U follow the entry and
    # no longer refresh the way (last seen at 3 U: free from 35 U).
    flow = Flow(cache_hash=0, ring_hash=0, times=[t * U for t in (1, 2, 3, 4, 5)], digest=2 * U, installed=3 * U)
    switch = tiny()
    got, _ = run_scenario(switch, [flow], [np.array(MOVE[0]), np.array(MOVE[1])], 16 * U)
    assert got == [[0] * 5]
    c = switch.counters
    assert (c.entries_activated, c.entries_stale, c.split_flows) == (1, 0, 0)
    assert switch.live_ways(34.5 * U) == 1 and switch.live_ways(35 * U) == 0


def test_a_stale_entry_is_activated_by_a_later_flow_whose_decision_names_its_backend():
    # As above, the second flow (40-41 U, backend 1) finds the entry (backend 0) stale at 41 U.
    # The ring goes back to backend 0 at 64 U; after a silence of T_c a third flow starts at
    # 80 U, decided at the ring (backend 0): that names the entry's backend, so it activates
    # the entry, and the third flow follows it.
    flow = Flow(cache_hash=0, ring_hash=0, times=[t * U for t in (1, 2, 40, 41, 80, 81, 82)],
                digest=2 * U, installed=41 * U)
    switch = tiny()
    weights = [np.array(MOVE[0])] + [np.array(MOVE[1])] * 3 + [np.array(MOVE[0])]
    got, _ = run_scenario(switch, [flow], weights, 16 * U)
    assert definitional_flows(flow, got[0], T_C, activated=80 * U) == [[0, 0], [1, 1], [0, 0, 0]]
    c = switch.counters
    assert (c.entries_stale, c.entries_activated) == (1, 1)
    assert c.split_design_flows == 0
    assert switch.live_ways(111.5 * U) == 1 and switch.live_ways(112 * U) == 0, "last refreshed at 80 U"


def test_non_ip_capture_frames_are_never_cached_and_never_entered():
    switch = GenerationSwitchModel(4, 0.3, cache_sets=4, cache_ways=4)
    flows = [Flow(cache_hash=5, ring_hash=0, times=[0.01, 0.02, 0.5], digest=np.inf, installed=np.inf,
                  cacheable=False)]
    backends, _ = run_scenario(switch, flows, [np.array([1.0])], 0.1)
    assert backends == [[0, 0, 0]]
    assert switch.counters.stateless_packets == 3 and switch.live_ways(0.015) == 0


def test_ring_writer_gives_each_write_a_new_generation_and_only_changed_slots_take_it():
    writer = RingWriter(8)
    assert writer.write(np.array([1.0, 1.0])).size == 8
    assert set(writer.generation.tolist()) == {1}
    changed = writer.write(np.array([3.0, 1.0]))          # 4:4 -> 6:2
    assert changed.size == 2 and np.all(writer.generation[changed] == 2)
    assert np.all(writer.generation[np.setdiff1d(np.arange(8), changed)] == 1)
    assert writer.write(np.array([3.0, 1.0])).size == 0 and writer.last_generation == 2, "no change, no generation"
    capped = RingWriter(64, max_change=0.05)
    capped.write(np.array([1.0, 1.0]))
    assert capped.write(np.array([1.0, 0.01])).size == 3, "5 % of 64 slots"
    with pytest.raises(ValueError, match="share of the ring"):
        RingWriter(64, max_change=2.0)
    with pytest.raises(ValueError, match="unknown switch model"):
        make_switch("nope", 64, 1.0)
    with pytest.raises(ValueError, match="power-of-two number of sets"):
        GenerationSwitchModel(64, 1.0, cache_sets=3)


def test_churn_per_poll_counts_quiet_polls_and_leaves_out_the_drain():
    counters = SwitchCounters(churn=[0, 10, 0, 30, 4096], churn_time=[0.1, 0.2, 0.3, 0.4, 0.5])
    assert counters.churn_stats() == (pytest.approx(827.2), pytest.approx(4096 - 0.04 * 4066), 4096)
    assert counters.churn_stats(until=0.5) == (10.0, pytest.approx(29.4), 30)


# On the engine: random weights at every poll, a tiny cache, generated traffic.

class RandomWeights(Policy):
    """A policy that rewrites the ring at every poll with random weights (maximum churn)."""
    name = "random_weights"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def _weights(self, view: ClusterView) -> np.ndarray:
        return self.rng.random(view.capacity.size) + 0.01


def engine_run(tmp_path, switch_model: str, **config) -> Simulation:
    cdf_path = tmp_path / "sizes.cdf"
    cdf_path.write_text("0 0\n1500 40\n30000 90\n300000 100\n")
    capacity = np.full(4, 125e6)
    spec = WorkloadSpec(cdf=FlowSizeCdf.load(cdf_path), offered_rate=0.6 * capacity.sum(), duration=2.0,
                        flow_rate=(1e6, 20e6), seed=5)
    sim = Simulation(SimulationConfig(capacity, ring_size=256, switch_model=switch_model, **config), RandomWeights())
    sim.run(GeneratedWorkload(spec))
    return sim


def test_engine_tiny_cache_ring_rewritten_every_poll_no_split_flow(tmp_path):
    sim = engine_run(tmp_path, "generations", cache_sets=1, cache_ways=1)
    c = sim.switch.counters
    assert c.flows > 5000 and c.collisions > 0.99 * c.flows, "every new flow but a handful collides"
    assert np.mean(c.churn) > 50 and c.held > 1000
    assert c.split_flows == 0


def test_engine_legacy_model_splits_flows_under_the_same_churn(tmp_path):
    sim = engine_run(tmp_path, "legacy")
    assert sim.switch.counters.split_flows > 0


def test_engine_churn_cap_bounds_every_write(tmp_path):
    sim = engine_run(tmp_path, "generations", ring_max_change=0.05)
    churn = sim.switch.counters.churn
    assert max(churn) <= int(0.05 * 256) and np.mean(churn) > 5
    uncapped = engine_run(tmp_path, "generations")
    assert max(uncapped.switch.counters.churn) > int(0.05 * 256)
