"""One controller driving several switches (issue 15, controller/cluster_app.py), on in-memory
switches (tests/switch_stub.py) fed the digests and idle reports a BMv2 would send. The
serving loop's own turns run here; only the switches are stand-ins.

Checked as a user would: every switch gets the same configuration and ring; a flow's home
entry goes to the switch that reported it and asks for its activation to be reported; the
activation puts the same entry (id 0, same backend and statistics slot) on every other
switch; a flow that moved before its replica gets an entry of its own there (a different
backend is counted as a split); entries go only when every holder reported them idle; a
lost switch leaves the set and the others keep being written; a switch that comes back
empty gets configuration, the same ring backends and every activated flow's replica;
counters are summed over switches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from controller_fakes import digest_list
from finsy.proto import p4r
from signalling_frames import ftp_frames
from switch_stub import InMemorySwitch, program

from controller.__main__ import main
from controller.admin_api import AdminApi
from controller.app import Controller
from controller.cluster_app import ClusterController
from controller.config import Config, ConfigError, load_config
from controller.counter_poller import CounterReading
from controller.dataplane.constants import ENTRY_ID_REPORT_ACTIVATION, DigestFlag, PacketInReason
from controller.dataplane.dispatcher_tables import CounterValue
from controller.p4runtime.encoding import encode_int
from controller.switch_supervisor import Handover

WEB1, WEB2 = 10, 11
ACTIVATED = DigestFlag.DIGEST_FLAG_ACTIVATED


def settings(**extra: Any) -> dict[str, Any]:
    return {"switches": [{"name": "a", "grpc_address": "127.0.0.1:50001"},
                         {"name": "b", "grpc_address": "127.0.0.1:50002"}],
            "services": [{"name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 80,
                          "policy": "round_robin", "ring_size": 64, "ring_threshold": 0.0, "ring_max_change": 1.0,
                          "backends": [{"name": "web1", "id": WEB1, "port": 2, "mac": "02:00:00:00:00:0a"},
                                       {"name": "web2", "id": WEB2, "port": 3, "mac": "02:00:00:00:00:0b"}]}],
            **extra}


class Member(InMemorySwitch):
    """An in-memory switch with what the serving loop asks of a session besides writes."""

    def __init__(self, info, address: str) -> None:
        super().__init__(info)
        self.address = address
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def _apply(self, index, update):
        # The configuration's digest and clone-session entries: taken, not kept.
        if update.entity.WhichOneof("entity") not in ("table_entry", "meter_entry"):
            return None
        if update.entity.table_entry.is_default_action:     # timers: modified in place
            return None
        return super()._apply(index, update)


def flow(i: int, backend: int = WEB1, flags: int = 0) -> dict[str, int]:
    return {"src_addr": (0xFFFF << 32) | (0xC0A80000 + i), "dst_addr": (0xFFFF << 32) | 0x0A000064,
            "protocol": 6, "src_port": 40000 + i, "dst_port": 80, "service_id": 1,
            "backend_id": backend, "flags": flags}


def key_of(i: int) -> tuple[int, int, int, int, int]:
    f = flow(i)
    return (f["src_addr"], f["dst_addr"], 6, f["src_port"], 80)


@pytest.fixture
def cluster(tmp_path) -> Iterator[tuple[ClusterController, dict[str, Member]]]:
    controller = ClusterController(Config.model_validate(settings()), program(tmp_path))
    switches = {name: Member(controller.info, f"127.0.0.1:5000{i}") for i, name in enumerate("ab", start=1)}
    for name, switch in switches.items():
        controller.join(name, switch, poll=False)     # as a supervisor hands them over
    yield controller, switches


def flows_on(switch: Member) -> dict[int, dict[str, int]]:
    """src_port -> the `flows` entry's parameters (backend_id, stats_slot, id)."""
    return {dict(match)["src_port"]: params for match, params in switch.entries("flows").items()}


def report(switch: Member, *flows: dict[str, int]) -> None:
    switch.digests.put((0.0, digest_list(flows)))


def idle(controller: ClusterController, switch: Member, *indices: int) -> None:
    note = p4r.IdleTimeoutNotification()
    for i in indices:
        note.table_entry.append(controller.tables.flow_delete(key_of(i)).entity.table_entry)
    switch.idle_timeouts.put(note)


def settle(controller: ClusterController, turns: int = 3) -> None:
    for _ in range(turns):
        controller.turn(readings={})


# ---- the configuration ---------------------------------------------------------------------------

def test_one_switch_section_keeps_the_single_switch_controller(tmp_path):
    sample = load_config(Path(__file__).resolve().parents[2] / "configs" / "sample.toml")
    assert not sample.several_switches and sample.dispatchers == [sample.switch]
    with pytest.raises(ValueError, match="one `\\[switch\\]` is Controller's"):
        ClusterController(sample, program(tmp_path))
    assert type(Controller(sample, program(tmp_path)).flows).__name__ == "FlowManager"


def test_the_cluster_sample_configuration_drives_two_switches(tmp_path):
    sample = load_config(Path(__file__).resolve().parents[2] / "configs" / "cluster.toml")
    assert sample.several_switches and [s.name for s in sample.switches] == ["disp1", "disp2"]
    controller = ClusterController(sample, program(tmp_path))
    assert sorted(controller.supervisors) == ["disp1", "disp2"]


@pytest.mark.parametrize("change, message", [
    ({"switch": {"grpc_address": "127.0.0.1:9559"}}, "not both"),
    ({"switches": [{"grpc_address": "127.0.0.1:1"}]}, "one is `\\[switch\\]`"),
    ({"switches": [{"grpc_address": "127.0.0.1:1"}, {"grpc_address": "127.0.0.1:1"}]}, "of its own"),
    ({"switches": [{"grpc_address": "127.0.0.1:1"}, {"grpc_address": "127.0.0.1:2", "target": "tofino"}]},
     "same program on the same target"),
])
def test_several_switches_are_checked(tmp_path, change, message):
    path = tmp_path / "c.toml"
    data = settings() | change
    path.write_text(toml(data))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_what_several_switches_do_not_do_yet_is_refused():
    data = settings()
    data["services"][0]["dispatch"] = "reactive"
    with pytest.raises(ValueError, match="reactive dispatch not built for several switches"):
        Config.model_validate(data)


def toml(data: dict[str, Any]) -> str:
    """Enough TOML for these configurations (tables, arrays of tables, scalars)."""
    import json
    lines: list[str] = []

    def value(v: Any) -> str:
        return json.dumps(v)

    def table(prefix: str, d: dict[str, Any], array: bool = False) -> None:
        lines.append(f"[[{prefix}]]" if array else f"[{prefix}]")
        nested = []
        for k, v in d.items():
            if isinstance(v, dict):
                nested.append((k, v, False))
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                nested.append((k, v, True))
            else:
                lines.append(f"{k} = {value(v)}")
        for k, v, is_array in nested:
            for item in (v if is_array else [v]):
                table(f"{prefix}.{k}", item, is_array)

    for k, v in data.items():
        if isinstance(v, dict):
            table(k, v)
        else:
            for item in v:
                table(k, item, array=True)
    return "\n".join(lines) + "\n"


# ---- the cluster ------------------------------------------------------------------------------------

def test_every_switch_gets_the_configuration_and_the_same_ring(cluster):
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    assert a.ring(1) and a.ring(1) == b.ring(1)
    assert sorted(set(a.ring(1).values())) == [WEB1, WEB2]
    assert a.entries("backends") == b.entries("backends") != {}
    assert controller.cluster_status().in_service == ["a", "b"]


def test_home_entry_on_the_reporting_switch_replicas_after_activation(cluster):
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(1, WEB2))
    settle(controller)
    home = flows_on(a)[40001]
    assert home["backend_id"] == WEB2 and home["id"] & ENTRY_ID_REPORT_ACTIVATION
    assert flows_on(b) == {}, "a replica before the home took its entry over"
    report(a, flow(1, WEB2, flags=ACTIVATED))
    settle(controller)
    replica = flows_on(b)[40001]
    assert replica == {"backend_id": WEB2, "stats_slot": home["stats_slot"], "id": 0}
    # The flow's digest from b once its replica is there: nothing more is written.
    writes = len(b.writes)
    report(b, flow(1, WEB2))
    settle(controller)
    assert len(b.writes) == writes
    status = controller.cluster_status()
    assert (status.activations, status.replicas_written, status.replicated_flows) == (1, 1, 1)


def test_a_flow_that_moved_before_its_replica_gets_an_entry_of_its_own(cluster):
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(2, WEB1))
    settle(controller)
    report(b, flow(2, WEB2))     # b decided it itself, with another backend: a split
    settle(controller)
    own = flows_on(b)[40002]
    assert own["backend_id"] == WEB2 and own["id"] != 0 and not own["id"] & ENTRY_ID_REPORT_ACTIVATION
    assert flows_on(a)[40002]["backend_id"] == WEB1
    report(a, flow(2, WEB1, flags=ACTIVATED))
    settle(controller)
    assert flows_on(b)[40002]["backend_id"] == WEB2, "a replica overwrote the switch's own entry"
    assert controller.cluster_status().cross_switch_splits == 1


def test_a_new_connection_reusing_a_recorded_key_on_another_switch_is_rehomed(cluster):
    """b saw the handshake (the digest has its SYN -> ACK RTT): a client port reused, not a
    move. The earlier flow's entries go (its activated home entry on a would take the new
    connection's packets if ECMP moved it there); the new connection's repeated digest then
    makes its own home entry on b. Not a split."""
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(11, WEB1))
    settle(controller)
    assert 40011 in flows_on(a)
    report(b, flow(11, WEB2, flags=DigestFlag.DIGEST_FLAG_RTT_VALID))
    settle(controller)
    assert 40011 not in flows_on(a) and 40011 not in flows_on(b)
    report(b, flow(11, WEB2, flags=DigestFlag.DIGEST_FLAG_RTT_VALID | DigestFlag.DIGEST_FLAG_RETRY))
    settle(controller)
    entry = flows_on(b)[40011]
    assert entry["backend_id"] == WEB2 and entry["id"] & ENTRY_ID_REPORT_ACTIVATION
    assert controller.replicas.flows[next(iter(controller.replicas.flows))].home == "b"
    status = controller.cluster_status()
    assert status.cross_switch_splits == 0 and status.reused_keys == 1


def test_entries_go_only_once_every_holder_reported_them_idle(cluster):
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(3), flow(4))
    settle(controller)
    report(a, flow(3, flags=ACTIVATED), flow(4, flags=ACTIVATED))
    settle(controller)
    assert set(flows_on(b)) == {40003, 40004}
    idle(controller, b, 3, 4)      # the replicas are never hit: b reports them first
    settle(controller)
    assert set(flows_on(a)) == set(flows_on(b)) == {40003, 40004}
    idle(controller, a, 3)         # the flow from port 40003 ended on its home too
    settle(controller)
    assert set(flows_on(a)) == set(flows_on(b)) == {40004}
    assert len(controller.flows.table) == 1


def test_a_flow_that_moved_after_a_holders_idle_report_is_not_deleted(cluster):
    """Rule 4: both switches reported the flow idle, but b's cell for it counted packets
    since b's report (the flow moved to b just then): its entries stay until b reports it
    idle again with nothing counted."""
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(9))
    settle(controller)
    report(a, flow(9, flags=ACTIVATED))
    settle(controller)
    slot = flows_on(a)[40009]["stats_slot"]
    idle(controller, b, 9)
    settle(controller)
    b.counters[("flow_stats", slot)] = 4       # the flow's packets now hit b's replica
    idle(controller, a, 9)
    settle(controller)
    assert 40009 in flows_on(a) and 40009 in flows_on(b)
    assert controller.cluster_status().deletes_spared == 1
    idle(controller, a, 9)
    idle(controller, b, 9)                     # b idle again, its cell as read at this report
    settle(controller)
    assert 40009 not in flows_on(a) and 40009 not in flows_on(b)


def test_a_lost_switch_leaves_and_comes_back_with_ring_and_replicas(cluster, tmp_path):
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    report(a, flow(5), flow(6))
    settle(controller)
    report(a, flow(5, flags=ACTIVATED))       # flow 6 is not activated yet
    settle(controller)
    b.stream_closed.set()                     # b's BMv2 was killed
    settle(controller)
    assert controller.cluster_status().in_service == ["a"]
    deadline = time.monotonic() + 2
    while not b.closed and time.monotonic() < deadline:
        time.sleep(0.01)         # closed off the serving loop's thread
    assert b.closed
    assert "b" in controller.cluster_status().lost
    # The others keep being written: a ring rewrite (an operator's drain) reaches a alone.
    writes_b = len(b.writes)
    controller.submit("drain", name="web2")
    settle(controller)
    assert set(a.ring(1).values()) == {WEB1} and len(b.writes) == writes_b
    back = Member(controller.info, "127.0.0.1:50002")     # restarted: empty, fresh pipeline
    controller.join("b", back, poll=False)
    assert back.ring(1) == a.ring(1)
    assert back.entries("backends") == a.entries("backends")
    assert set(flows_on(back)) == {40005} and flows_on(back)[40005]["id"] == 0
    # The ring written to b is one fresh generation, used on no other switch.
    generations = {p["generation"] for p in back.entries("dispatch_ring").values()}
    assert len(generations) == 1 and generations.pop() == controller.ring_updater.generation
    report(a, flow(6, flags=ACTIVATED))
    settle(controller)
    assert set(flows_on(back)) == {40005, 40006}
    assert controller.cluster_status().restored_replicas == 1


def test_counters_are_summed_over_switches_and_never_go_back(cluster):
    controller, _ = cluster

    def reading(at: float, packets: int) -> CounterReading:
        return CounterReading(at=at, backend_traffic={WEB1: CounterValue(packets, packets * 100)},
                              flow_stats=None, ports={})

    controller.turn(readings={"a": reading(1.0, 10), "b": reading(1.0, 5)})
    controller.turn(readings={"a": reading(2.0, 30), "b": reading(2.0, 2)})   # b restarted: 2 new
    assert controller.counters.reading().backend_traffic[WEB1].packets == 30 + 5 + 2
    status = controller.status()
    assert status.cluster is not None and status.cluster.in_service == ["a", "b"]
    assert status.switch == "127.0.0.1:50001, 127.0.0.1:50002"


class RecordedEcmp:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def add(self, switch: str) -> None:
        self.changes.append(("add", switch))

    def remove(self, switch: str) -> None:
        self.changes.append(("remove", switch))


def two_switches(tmp_path, group: Any = None, **extra: Any) -> tuple[ClusterController, Member, Member]:
    """A ClusterController driving the ECMP `group`, switches a and b joined (as their
    supervisors hand them over); `extra`: configuration settings."""
    controller = ClusterController(Config.model_validate(settings(**extra)), program(tmp_path), ecmp=group)
    a, b = (Member(controller.info, f"127.0.0.1:5000{i}") for i in (1, 2))
    controller.join("a", a, poll=False)
    controller.join("b", b, poll=False)
    return controller, a, b


def test_the_ecmp_group_follows_failure_and_return(tmp_path):
    ecmp = RecordedEcmp()
    controller, a, b = two_switches(tmp_path, ecmp)
    b.stream_closed.set()
    settle(controller)
    back = Member(controller.info, "127.0.0.1:50002")
    controller.join("b", back, poll=False)
    assert ecmp.changes == [("add", "a"), ("add", "b"), ("remove", "b"), ("add", "b")]


def test_the_configurations_ecmp_commands_follow_failure_and_return(tmp_path):
    """`[ecmp]`: the operator's commands, run for real, with the switch's name; a failing
    one is counted and the controller goes on."""
    log = tmp_path / "ecmp.log"
    script = f'echo "$0 $1" >> {log}'
    controller, a, b = two_switches(tmp_path, ecmp={"add": ["sh", "-c", script, "add", "{switch}"],
                                                    "remove": ["sh", "-c", script + "; exit 3", "remove", "{switch}"]})
    b.stream_closed.set()
    settle(controller)
    assert log.read_text().splitlines() == ["add a", "add b", "remove b"]
    assert controller.cluster_status().ecmp_command_failures == 1
    assert controller.cluster_status().in_service == ["a"]


def test_ecmp_commands_need_several_switches():
    with pytest.raises(ValueError, match="`\\[ecmp\\]` is for several switches"):
        Config.model_validate({"ecmp": {"add": ["true"], "remove": ["true"]},
                               "services": settings()["services"]})


def test_ring_rewrites_leave_the_slots_of_unreplicated_flows_alone(cluster):
    """Rule 5: a backend added while flows are recorded but not yet on every switch takes its
    share from other slots; once the flows are replicated, their slots may move again."""
    controller, switches = cluster
    a, b = switches["a"], switches["b"]
    ring_before = a.ring(1)
    flows = [flow(i, ring_before[0]) for i in range(100, 130)]
    report(a, *flows)
    settle(controller)
    kept = controller.unreplicated_slots(1)
    assert len(kept) >= 10
    controller.submit("add", service="web", backend={"name": "web3", "id": 12, "port": 4,
                                                      "mac": "02:00:00:00:00:0c"})
    settle(controller)
    ring_after = a.ring(1)
    assert ring_after == b.ring(1)
    assert all(ring_after[s] == ring_before[s] for s in kept)
    assert controller.ring_updater.spared_changes > 0
    assert sum(1 for v in ring_after.values() if v == 12) == 64 // 3 + 1 or \
        sum(1 for v in ring_after.values() if v == 12) == 64 // 3
    # A home entry still not activated T_c + digest_retry after its write is an ended flow's.
    later = time.monotonic() + 1.0 + 0.5 + 0.1
    assert controller.unreplicated_slots(1, now=later) == set()
    report(a, *[f | {"flags": ACTIVATED} for f in flows])
    settle(controller)
    assert controller.unreplicated_slots(1) == set()


def test_a_returning_switch_waits_for_the_freeze_before_ecmp(tmp_path):
    """Rule 6: with flows recorded, a switch back in service joins the ECMP group only after
    T_c + digest_retry (1 s + 0.5 s here) with no held ring decision for T_c; the policies'
    ring rewrites wait meanwhile."""
    ecmp = RecordedEcmp()
    controller, a, b = two_switches(tmp_path, ecmp)
    report(a, flow(8))
    settle(controller)
    b.stream_closed.set()
    settle(controller)
    begun = time.monotonic()
    controller.join("b", Member(controller.info, "127.0.0.1:50002"), poll=False)
    assert ecmp.changes[-1] == ("remove", "b") and controller.ring_updater.frozen
    assert controller.cluster_status().waiting_for_ecmp == ["b"]
    controller.end_freeze(begun + 1.0)
    assert ecmp.changes[-1] == ("remove", "b"), "in the group before T_c + digest_retry"
    # A switch held a ring decision at an older generation just now: T_c more.
    controller.freeze.held_decisions(CounterValue(0, 0), begun + 1.0)
    controller.freeze.held_decisions(CounterValue(3, 0), begun + 1.2)
    controller.end_freeze(begun + 1.6)
    assert ecmp.changes[-1] == ("remove", "b")
    controller.end_freeze(begun + 2.3)
    assert ecmp.changes[-1] == ("add", "b") and not controller.ring_updater.frozen
    assert controller.cluster_status().waiting_for_ecmp == []


# ---- take-over: a backup, or the controller restarted, finds the switches running -------------

def running_cluster(tmp_path) -> tuple[ClusterController, dict[str, Member]]:
    """What the old controller leaves: flow 1 activated and replicated, flow 2 on its home a
    only (its activation, if any, was reported to the old controller alone)."""
    old = ClusterController(Config.model_validate(settings()), program(tmp_path))
    switches = {name: Member(old.info, f"127.0.0.1:5000{i}") for i, name in enumerate("ab", start=1)}
    for name, switch in switches.items():
        old.join(name, switch, poll=False)
    report(switches["a"], flow(1, WEB2), flow(2, WEB1))
    settle(old)
    report(switches["a"], flow(1, WEB2, flags=ACTIVATED))
    settle(old)
    return old, switches


def taking_over(tmp_path, monkeypatch, ecmp: RecordedEcmp | None = None) -> ClusterController:
    new = ClusterController(Config.model_validate(settings()), program(tmp_path), ecmp=ecmp)
    monkeypatch.setattr(new, "_poller", lambda client: None)     # readings come from the test
    return new


def ring_entries(switch: Member) -> dict[int, tuple[int, int]]:
    """slot -> (backend, generation)."""
    return {dict(m)["slot"]: (p["backend_id"], p["generation"]) for m, p in switch.entries("dispatch_ring").items()}


def test_a_new_controller_adopts_running_switches_and_changes_nothing_they_decide(tmp_path, monkeypatch):
    _, switches = running_cluster(tmp_path)
    a, b = switches["a"], switches["b"]
    entries_before = {name: flows_on(s) for name, s in switches.items()}
    rings_before = {name: ring_entries(s) for name, s in switches.items()}
    ring_writes = len(a.updates_to("dispatch_ring")), len(b.updates_to("dispatch_ring"))
    new = taking_over(tmp_path, monkeypatch)
    new.adopt_running([Handover("a", a, fresh=False), Handover("b", b, fresh=False)])
    settle(new)
    assert {name: flows_on(s) for name, s in switches.items()} == entries_before
    assert {name: ring_entries(s) for name, s in switches.items()} == rings_before
    assert a.ring(1) == b.ring(1) and new.rings[1].slots.tolist() == [a.ring(1)[i] for i in range(64)]
    assert (len(a.updates_to("dispatch_ring")), len(b.updates_to("dispatch_ring"))) == ring_writes
    assert len(new.flows.table) == len(new.replicas.flows) == 2
    status = new.cluster_status()
    assert status.adopted_switches == ["a", "b"] and status.in_service == ["a", "b"]
    assert (status.adopted_flows, status.replicated_flows, status.unconfirmed_flows) == (2, 1, 1)
    # A new flow's home entry: an id after every id found, still asking for its activation report.
    found = max(p["id"] & ~ENTRY_ID_REPORT_ACTIVATION for p in entries_before["a"].values())
    report(b, flow(3))
    settle(new)
    fresh = flows_on(b)[40003]["id"]
    assert fresh & ENTRY_ID_REPORT_ACTIVATION and fresh & ~ENTRY_ID_REPORT_ACTIVATION > found


def test_an_adopted_home_entry_is_replicated_once_its_statistics_cell_grows(tmp_path, monkeypatch):
    """The old controller took flow 2's ACTIVATED report with it: only an activated entry
    counts packets in its flow_stats cell, so growth there is the activation."""
    _, switches = running_cluster(tmp_path)
    a, b = switches["a"], switches["b"]
    slot = flows_on(a)[40002]["stats_slot"]
    a.counters[("flow_stats", slot)] = 7      # counted before the take-over: not evidence
    new = taking_over(tmp_path, monkeypatch)
    new.adopt_running([Handover("a", a, fresh=False), Handover("b", b, fresh=False)])
    time.sleep(0.3)
    settle(new)
    assert 40002 not in flows_on(b), "replicated with no packet counted since the take-over"
    a.counters[("flow_stats", slot)] = 9
    time.sleep(0.3)
    settle(new)
    assert flows_on(b)[40002] == {"backend_id": WEB1, "stats_slot": slot, "id": 0}
    status = new.cluster_status()
    assert (status.confirmed_activations, status.unconfirmed_flows, status.replicated_flows) == (1, 0, 2)


def test_a_switch_that_lagged_the_last_ring_write_is_given_it(tmp_path, monkeypatch):
    old, switches = running_cluster(tmp_path)
    a, b = switches["a"], switches["b"]
    # The old controller's last rewrite reached a, not b: slot 0 to the other backend.
    last = old.ring_updater.generation + 1
    moved_to = WEB2 if a.ring(1)[0] == WEB1 else WEB1
    a.write([old.tables.ring_slot(1, 0, moved_to, last)])
    new = taking_over(tmp_path, monkeypatch)
    new.adopt_running([Handover("a", a, fresh=False), Handover("b", b, fresh=False)])
    assert b.ring(1) == a.ring(1) and ring_entries(b)[0] == (moved_to, last)
    assert new.ring_updater.generation == last and new.rings[1].slots[0] == moved_to


def test_the_take_over_gathers_the_switches_and_reprograms_one_that_comes_late(tmp_path, monkeypatch):
    _, switches = running_cluster(tmp_path)
    a, b = switches["a"], switches["b"]
    ecmp = RecordedEcmp()
    new = taking_over(tmp_path, monkeypatch, ecmp)
    new._arrivals.put(Handover("a", a, fresh=False))
    new.take_arrivals(now=100.0)
    assert len(new.switch_set) == 0, "adopted before the other switch had a chance to arrive"
    new.take_arrivals(now=100.0 + 2.1)      # b does not come within ADOPTION_WAIT_S
    assert new.cluster_status().adopted_switches == ["a"]
    late = Handover("b", b, fresh=False)
    new._arrivals.put(late)
    new.take_arrivals()
    assert "b" not in new.switch_set and b.closed and late.released.is_set()
    assert ("remove", "b") in ecmp.changes, "a switch about to be wiped left ECMP first"
    assert not new.supervisors["b"].may_adopt()


def test_an_adopted_switch_counts_from_its_first_reading(tmp_path, monkeypatch):
    _, switches = running_cluster(tmp_path)
    new = taking_over(tmp_path, monkeypatch)
    new.adopt_running([Handover("a", switches["a"], fresh=False), Handover("b", switches["b"], fresh=False)])

    def reading(at: float, packets: int) -> CounterReading:
        return CounterReading(at=at, backend_traffic={WEB1: CounterValue(packets, packets * 100)},
                              flow_stats=None, ports={})

    new.turn(readings={"a": reading(1.0, 5000), "b": reading(1.0, 300)})
    new.turn(readings={"a": reading(2.0, 5010), "b": reading(2.0, 302)})
    assert new.counters.reading().backend_traffic[WEB1].packets == 12


# ---- the operator's planned changes ------------------------------------------------------------

def test_a_switch_taken_out_on_purpose_leaves_ecmp_after_the_freeze_and_comes_back(tmp_path):
    """Rule 6 for the operator's changes: out of the group only once the flows recorded
    before are replicated and T_c + digest_retry has passed; it stays in sync meanwhile and
    after, and goes back in after another freeze. A held-out switch that restarts is not
    put back by its return."""
    ecmp = RecordedEcmp()
    controller, a, b = two_switches(tmp_path, ecmp)
    report(b, flow(20))
    settle(controller)
    begun = time.monotonic()
    assert controller.take_out("b") == {"switch": "b", "state": "leaving"}
    assert controller.cluster_status().leaving_ecmp == ["b"] and controller.ring_updater.frozen
    report(b, flow(20, flags=ACTIVATED))
    settle(controller)
    assert flows_on(a)[40020]["id"] == 0, "replicated while leaving"
    controller.end_freeze(begun + 1.0)
    assert ecmp.changes[-1] == ("add", "b"), "out before T_c + digest_retry"
    controller.end_freeze(begun + 1.6)
    assert ecmp.changes[-1] == ("remove", "b") and not controller.ring_updater.frozen
    status = controller.cluster_status()
    assert status.held_out == ["b"] and status.in_service == ["a", "b"] and status.leaving_ecmp == []
    with pytest.raises(ValueError, match="out of the ECMP group already"):
        controller.take_out("b")
    with pytest.raises(ValueError, match="no switch named 'c'"):
        controller.take_out("c")
    # Restarted while held out: back in service, not in the group.
    b.stream_closed.set()
    settle(controller)
    controller.join("b", Member(controller.info, "127.0.0.1:50002"), poll=False)
    assert ecmp.changes[-1] == ("remove", "b") and controller.cluster_status().waiting_for_ecmp == []
    begun = time.monotonic()
    assert controller.put_in("b") == {"switch": "b", "state": "joining"}
    controller.end_freeze(begun + 1.6)
    assert ecmp.changes[-1] == ("add", "b") and controller.cluster_status().held_out == []


def test_the_operator_takes_a_switch_out_through_the_api_and_the_cli(tmp_path, capsys):
    ecmp = RecordedEcmp()
    controller = ClusterController(Config.model_validate(settings()), program(tmp_path), ecmp=ecmp)
    for i, name in enumerate("ab", start=1):
        controller.join(name, Member(controller.info, f"127.0.0.1:5000{i}"), poll=False)
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            controller.turn(readings={})
            time.sleep(0.002)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    api = AdminApi(controller, "127.0.0.1", 0, token=None)
    api.start()
    try:
        assert main(["switches", "out", "b", "--api", api.url]) == 0
        assert '"state": "out"' in capsys.readouterr().out       # no flow recorded: at once
        assert ecmp.changes[-1] == ("remove", "b")
        assert main(["switches", "out", "nope", "--api", api.url]) == 1
        assert "no switch named 'nope'" in capsys.readouterr().err
        assert main(["switches", "in", "b", "--api", api.url]) == 0
        assert ecmp.changes[-1] == ("add", "b")
    finally:
        api.stop()
        stop.set()
        thread.join(timeout=5)


# ---- session affinity with several switches ----------------------------------------------------

FTP_SERVICE = {"name": "ftp", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 21, "policy": "round_robin",
               "ring_size": 64, "sessions": {"ftp": [21]}, "session_ports": ["50000-50099"],
               "backends": settings()["services"][0]["backends"]}


def signalling_copy(controller: ClusterController, frame: bytes, backend: int) -> p4r.PacketIn:
    """What a switch sends the controller for a signalling packet it dispatched to `backend`."""
    values = {"ingress_port": 1, "reason": PacketInReason.SIGNALLING, "backend_id": backend}
    packet = p4r.PacketIn(payload=frame)
    for m in controller.info.packet_metadata("packet_in").metadata:
        packet.metadata.add(metadata_id=m.id, value=encode_int(values.get(m.name, 0), m.bitwidth))
    return packet


def test_a_sessions_entries_go_to_every_switch_and_to_one_that_comes_back(tmp_path):
    """The signalling copy comes from the switch that carried it; the session's announced
    entries go to every switch, since ECMP may send its other connections through any; a
    switch that comes back empty gets them; the session's end deletes them everywhere."""
    controller, a, b = two_switches(tmp_path, services=[FTP_SERVICE])
    if "announced_flows" not in {t.preamble.alias for t in controller.info.p4info.tables}:
        pytest.skip("the dispatcher program is not built (p4c): the stand-in P4Info has no announced_flows")
    frames = ftp_frames("192.0.2.10", "10.0.0.100", pasv_port=50007)
    a.packet_ins.put(signalling_copy(controller, frames[0], WEB2))    # the control connection's SYN
    settle(controller)
    on_a, on_b = a.entries("announced_flows"), b.entries("announced_flows")
    assert len(on_a) == 1 and on_a == on_b and next(iter(on_a.values()))["backend_id"] == WEB2
    b.stream_closed.set()
    settle(controller)
    back = Member(controller.info, "127.0.0.1:50002")
    controller.join("b", back, poll=False)
    assert back.entries("announced_flows") == on_a
    for frame in frames[1:]:          # PASV, 227, QUIT, 221, the client's FIN: the session ends
        a.packet_ins.put(signalling_copy(controller, frame, WEB2))
    settle(controller)
    assert a.entries("announced_flows") == back.entries("announced_flows") == {}
