"""Writes fanned out to several switches (controller/p4runtime/switch_set.py) and counters
summed over them (controller/cluster_counters.py), on in-memory switches."""

from __future__ import annotations

import pytest
from finsy.proto import rpc_code
from switch_stub import InMemorySwitch

from controller.cluster_counters import ClusterCounters
from controller.counter_poller import CounterReading
from controller.dataplane.dispatcher_tables import CounterValue, DispatcherTables
from controller.flow_manager import FlowManager
from controller.p4runtime import P4InfoIndex, P4RuntimeError, WriteError
from controller.p4runtime.switch_set import AllSwitchesLost, SwitchSet
from topo.toolchain import BUILD_DIR

P4INFO = BUILD_DIR / "dispatcher.p4info.txtpb"


@pytest.fixture
def tables() -> DispatcherTables:
    if not P4INFO.exists():
        pytest.skip("build/dispatcher.p4info.txtpb not built (bash scripts/build_p4.sh)")
    return DispatcherTables(P4InfoIndex.load(P4INFO))


class DeadSwitch(InMemorySwitch):
    """A switch whose session is gone: every write raises as a lost channel does."""

    def write_async(self, updates):
        raise P4RuntimeError("Write on 127.0.0.1:1: UNAVAILABLE: connection refused")


def ring(tables: DispatcherTables, generation: int, backends: list[int], kind: str = "insert"):
    return [tables.ring_slot(1, slot, b, generation, kind) for slot, b in enumerate(backends)]


def test_every_member_gets_every_batch_in_the_same_order(tables):
    a, b, c = (InMemorySwitch(tables.info) for _ in range(3))
    switches = SwitchSet({"disp1": a, "disp2": b, "disp3": c})
    switches.write(ring(tables, 1, [10, 11, 12, 10]), batch_size=3)
    switches.write(ring(tables, 2, [11, 11], kind="modify"))
    assert a.ring(1) == b.ring(1) == c.ring(1) == {0: 11, 1: 11, 2: 12, 3: 10}
    assert [[u.SerializeToString() for u in batch] for batch in a.writes] == \
           [[u.SerializeToString() for u in batch] for batch in c.writes]
    assert len(a.writes) == 3 and switches.batches == 3


def test_a_refusal_on_any_member_is_reported_at_its_position(tables):
    a, b = InMemorySwitch(tables.info), InMemorySwitch(tables.info)
    b.write(ring(tables, 1, [10]))                    # b has slot 0 already: its insert is refused
    switches = SwitchSet({"disp1": a, "disp2": b})
    with pytest.raises(WriteError) as refused:
        switches.write(ring(tables, 2, [11, 12]))
    assert [(f.index, f.code) for f in refused.value.failures] == [(0, rpc_code.ALREADY_EXISTS)]
    assert a.ring(1) == {0: 11, 1: 12} and b.ring(1) == {0: 10, 1: 12}


def test_a_dead_member_leaves_the_set_and_the_others_are_written(tables):
    a, dead = InMemorySwitch(tables.info), DeadSwitch(tables.info)
    switches = SwitchSet({"disp1": a, "disp2": dead})
    heard: list[str] = []
    switches.on_lost.append(lambda name, reason: heard.append(name))
    switches.write(ring(tables, 1, [10, 11]))
    assert a.ring(1) == {0: 10, 1: 11}
    assert switches.names == ["disp1"] and "UNAVAILABLE" in switches.lost["disp2"] and heard == ["disp2"]
    # A switch that comes back joins and gets every later write; leaving twice is heard once.
    back = InMemorySwitch(tables.info)
    switches.add("disp2", back)
    switches.write([tables.ring_slot(1, 5, 12, 2, "insert")])
    assert back.ring(1) == {5: 12} and a.ring(1)[5] == 12 and "disp2" not in switches.lost
    switches.lose("disp2", "test")
    switches.lose("disp2", "test")
    assert heard == ["disp2", "disp2"]
    with pytest.raises(ValueError):
        switches.add("disp1", a)


def test_no_member_left_is_an_error(tables):
    switches = SwitchSet({"disp1": DeadSwitch(tables.info)})
    with pytest.raises(AllSwitchesLost):
        switches.write(ring(tables, 1, [10]))
    with pytest.raises(AllSwitchesLost):
        switches.write(ring(tables, 1, [10]))


def test_the_flow_manager_writes_through_a_set(tables):
    """The fan-out has the flow manager's Writer interface: entries land on every member."""
    a, b = InMemorySwitch(tables.info), InMemorySwitch(tables.info)
    manager = FlowManager(tables, SwitchSet({"disp1": a, "disp2": b}), known_backend=lambda _: True,
                          idle_timeout_ns=0, stats_slots=100, table_size=100)
    assert manager.install_now((0x0A000101, 0x0A000064, 6, 40000, 80), 11)
    assert a.flow_backends() == b.flow_backends() == [11]


def reading(at: float, backends: dict[int, int], flows: dict[int, int] | None = None) -> CounterReading:
    cells = {i: CounterValue(p, 100 * p) for i, p in backends.items()}
    return CounterReading(at=at, backend_traffic=cells,
                          flow_stats=None if flows is None else {i: CounterValue(p, 60 * p) for i, p in flows.items()},
                          ports={"in": {1: CounterValue(sum(backends.values()), 0)}})


def test_counters_are_summed_over_switches_and_survive_a_restart():
    cluster = ClusterCounters()
    cluster.add("disp1", reading(1.0, {10: 5, 11: 1}, flows={7: 3}))
    cluster.add("disp2", reading(1.1, {10: 2}, flows={7: 4}))
    summed = cluster.reading()
    assert summed.at == 1.1
    assert summed.backend_traffic == {10: CounterValue(7, 700), 11: CounterValue(1, 100)}
    assert summed.flow_stats == {7: CounterValue(7, 420)}        # one flow, carried by both switches
    assert summed.ports["in"][1].packets == 8
    cluster.add("disp1", reading(2.0, {10: 9, 11: 1}, flows={7: 5}))
    assert cluster.reading().backend_traffic[10] == CounterValue(11, 1100)
    # disp2 restarted: its counters start again at 0; the cluster's totals never go back.
    cluster.add("disp2", reading(2.1, {10: 1}, flows={}))
    after = cluster.reading()
    assert after.backend_traffic[10] == CounterValue(12, 1200)
    assert after.flow_stats == {7: CounterValue(9, 540)}
    assert cluster.readings == {"disp1": 2, "disp2": 2}


def test_no_per_flow_counters_unless_a_switch_read_them():
    cluster = ClusterCounters()
    cluster.add("disp1", reading(1.0, {10: 1}))
    assert cluster.reading().flow_stats is None
