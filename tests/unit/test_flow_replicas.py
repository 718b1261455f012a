"""Where a flow's entries go with several switches (controller/flow_replicas.py, the rules of
docs/multiswitch.md)."""

from __future__ import annotations

from controller.flow_replicas import FlowReplicas, Write

K = b"flow-1"


def test_home_entry_then_replicas_on_activation_only():
    replicas = FlowReplicas(["a", "b", "c"])
    assert replicas.on_digest("a", K, 10) is Write.HOME
    assert replicas.on_digest("a", K, 10) is Write.NOTHING            # the switch repeats it
    assert not replicas.is_replicated(K)
    assert replicas.unreplicated_ring_entries(lambda key: 7) == {7}    # rule 5: leave entry 7 alone
    assert replicas.on_activated("b", K) == []                          # only the home's activation counts
    due = replicas.on_activated("a", K)
    assert due == ["b", "c"]
    replicas.replicated(K, due)
    assert replicas.is_replicated(K) and replicas.unreplicated_ring_entries(lambda key: 7) == set()
    # A digest from b sent before its replica landed: a duplicate.
    assert replicas.on_digest("b", K, 10) is Write.NOTHING


def test_a_flow_that_moved_before_its_replica_gets_an_entry_of_its_own_there():
    replicas = FlowReplicas(["a", "b"])
    replicas.on_digest("a", K, 10)
    assert replicas.on_digest("b", K, 10) is Write.OWN and replicas.cross_switch_splits == 0
    assert replicas.on_activated("a", K) == []                          # b holds its own entry
    assert replicas.on_digest("b", b"flow-2", 11) is Write.HOME
    assert replicas.on_digest("a", b"flow-2", 12) is Write.OWN
    assert replicas.cross_switch_splits == 1                            # the move split flow-2: counted


def test_deleted_only_when_idle_on_every_holder_recently():
    replicas = FlowReplicas(["a", "b"], idle_window_s=2.0)
    replicas.on_digest("a", K, 10)
    replicas.replicated(K, replicas.on_activated("a", K))
    assert replicas.on_idle("b", K, now=10.0) == []       # the replica idles long before the flow ends
    assert replicas.on_idle("a", K, now=13.0) == []       # b's report is old: b may have been hit since
    assert replicas.on_idle("b", K, now=14.0) == ["a", "b"]


def test_a_holder_hit_since_its_idle_report_keeps_the_flow():
    replicas = FlowReplicas(["a", "b"], idle_window_s=2.0)
    replicas.on_digest("a", K, 10)
    replicas.replicated(K, replicas.on_activated("a", K))
    replicas.on_idle("b", K, now=10.0, packets=0)
    assert replicas.on_idle("a", K, now=10.5, packets=40) == ["a", "b"]
    # Just before the delete b's cell has counted: the flow moved there after b's report.
    assert replicas.hit_since_idle(K, {"a": 40, "b": 3}) == ["b"]
    assert replicas.on_idle("a", K, now=11.0, packets=40) == [], "b's old report still counted"
    assert replicas.on_idle("b", K, now=12.0, packets=3) == ["a", "b"]
    assert replicas.hit_since_idle(K, {"a": 40, "b": 3}) == []


def test_a_lost_switch_and_its_return():
    replicas = FlowReplicas(["a", "b"])
    replicas.on_digest("a", K, 10)
    replicas.replicated(K, replicas.on_activated("a", K))
    replicas.on_digest("a", b"pending", 11)               # home entry on a, never activated
    replicas.on_digest("b", b"waiting", 12)               # home entry on b, not activated yet
    replicas.switch_lost("a")
    assert replicas.in_service == ["b"]
    assert b"pending" not in replicas.flows               # it had no entry left anywhere
    assert replicas.is_replicated(K)                       # b holds the replica
    # Due on the returning switch: what was replicated; "waiting" gets its replica there
    # with the others when b activates it.
    assert replicas.switch_joined("a") == [K]
    assert not replicas.is_replicated(K)
    replicas.replicated(K, ["a"])
    assert replicas.is_replicated(K)
    assert replicas.on_activated("b", b"waiting") == ["a"]
