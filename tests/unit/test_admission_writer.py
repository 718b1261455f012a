"""SA2C's writer against the in-memory switch: which write each decision needs, the load
vectors, reading the table back at a take-over (stale entries of services without SA2C
deleted), and recovering from a refused write. And the health enforcer's take-over step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from finsy.proto import p4r
from switch_stub import InMemorySwitch, program

from controller.admission_control import AdmissionDecision, AdmissionSettings, cluster_load, server_utilisation
from controller.admission_writer import AdmissionEntry, entry_update, load_components, load_vectors
from controller.app import Controller
from controller.config import Config
from controller.dataplane.constants import AdmissionLevel as L
from controller.dataplane.constants import DropReason
from controller.dataplane.dispatcher_tables import CounterValue
from controller.health.host_metrics import HostSample
from controller.health.monitor import HealthState


def decision(level: L, p: float = 0.0) -> AdmissionDecision:
    return AdmissionDecision(level, p, load=0.5, raw_load=0.5, t2=0.8, t3=0.9, wanted=level)


@pytest.mark.parametrize("on_switch, new, write", [
    (None, decision(L.ADMIT_ALL), None),                              # no entry is admit-all
    (AdmissionEntry(L.DROP_NEW_PROB, 0.3), decision(L.ADMIT_ALL), "delete"),
    (None, decision(L.DROP_NEW_PROB, 0.3), "insert"),
    (AdmissionEntry(L.DROP_NEW_PROB, 0.3), decision(L.DROP_NEW_PROB, 0.305), None),   # moved < 0.01
    (AdmissionEntry(L.DROP_NEW_PROB, 0.3), decision(L.DROP_NEW_PROB, 0.31), "modify"),
    (AdmissionEntry(L.DROP_NEW_PROB, 0.3), decision(L.ESTABLISHED_ONLY), "modify"),
    (AdmissionEntry(L.ESTABLISHED_ONLY, 0.0), decision(L.ESTABLISHED_ONLY), None),
])
def test_the_write_each_decision_needs(on_switch, new, write):
    assert entry_update(on_switch, new) == write


def components(**overrides) -> dict:
    args = dict(cpu=np.array([0.5, math.nan]), served_rate=np.array([50.0, math.nan]),
                switch_rate=np.array([1.0, 2.0]), ratio=np.array([0.02, 0.04]), capacity=np.array([100.0, 200.0]),
                connections=np.array([30.0, 4.0]), max_connections=np.array([20.0, math.nan]))
    return load_components(**(args | overrides))


def test_load_vectors_put_every_measure_in_capacity_units():
    v = load_vectors(components(), ("cpu", "served", "switch", "connections"))
    assert v[0].tolist() == pytest.approx([0.5, 0.5, 0.5, 1.5])
    # Unknown where there is no agent, or no connection limit configured
    assert np.isnan(v[1][[0, 1, 3]]).all() and v[1][2] == pytest.approx(0.25)


def test_load_vectors_hold_only_the_components_asked_for_in_that_order():
    v = load_vectors(components(), ("connections", "cpu"))
    assert v[0].tolist() == pytest.approx([1.5, 0.5])


def test_the_connection_backlog_sees_an_overload_the_bytes_cannot():
    """Two servers both sending at capacity, one with three times the connections it serves
    well: bytes say 1.0 (full links), connections say how far over it the cluster is."""
    full = components(cpu=np.array([0.2, 0.2]), served_rate=np.array([100.0, 200.0]), switch_rate=np.array([2.0, 8.0]),
                      connections=np.array([60.0, 20.0]), max_connections=np.array([20.0, 20.0]))
    capacity, up = np.array([100.0, 200.0]), [True, True]
    by_bytes = cluster_load(server_utilisation(load_vectors(full, ("cpu", "served", "switch"))), capacity, up)
    by_backlog = cluster_load(server_utilisation(load_vectors(full, ("connections",))), capacity, up)
    assert by_bytes == pytest.approx(1.0)
    assert by_backlog == pytest.approx((100 * 3.0 + 200 * 1.0) / 300)


def config(admission_on: tuple[int, ...] = (1,)) -> Config:
    def service(sid: int) -> dict:
        s = {"name": f"s{sid}", "id": sid, "mode": "vip", "vip": f"10.0.0.{sid}", "port": 80,
             "backends": [{"name": f"b{sid}", "id": 10 * sid, "port": sid, "mac": "02:00:00:00:00:01",
                           "capacity_mbps": 8}]}
        if sid in admission_on:
            s["admission"] = {"smoothing": 1.0}
        return s
    return Config.model_validate({"health": {"period_s": 1.0}, "services": [service(1), service(2)]})


def test_a_take_over_reads_the_table_and_deletes_entries_of_services_without_sa2c(tmp_path):
    controller = Controller(config(), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    tables = controller.tables
    switch.write([tables.admission(1, L.DROP_NEW_PROB, 0.5), tables.admission(2, L.REJECT_ALL, 1.0)])
    controller.admission.adopt(switch)
    assert controller.admission.on_switch == {1: AdmissionEntry(L.DROP_NEW_PROB, 0.5)}
    assert set(dict(m)["service_id"] for m in switch.entries("admission")) == {1}
    # Service 1's load is 0.75 of its 1 MB/s: the entry there says so already, nothing is written.
    controller.monitor.backend_rate[10] = 0.75 * 1e6 * controller.config.services[0].load_visibility
    writes = len(switch.updates_to("admission"))
    controller.admission.turn(switch, now=100.0)
    assert controller.admission.decisions[1].level == L.DROP_NEW_PROB
    assert controller.admission.decisions[1].drop_prob == pytest.approx(0.5)
    assert len(switch.updates_to("admission")) == writes
    # No budget (no connection limits): the new-flow meter is set to its default, unlimited,
    # in case an earlier controller left a rate there.
    assert switch.meters == {("new_flow_meter", 1): None}


def test_a_refused_write_is_followed_by_reading_the_table_again(tmp_path):
    controller = Controller(config(), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    writer = controller.admission
    writer.adopt(switch)
    controller.monitor.backend_rate[10] = 0.75 * 1e6 * controller.config.services[0].load_visibility
    writer.turn(switch, now=100.0)
    assert switch.entries("admission")
    # Someone deleted the entry behind the controller's back: its modify is refused ...
    switch.write([controller.tables.admission_delete(1)])
    controller.monitor.backend_rate[10] = 0.85 * 1e6 * controller.config.services[0].load_visibility
    writer.turn(switch, now=101.0)
    assert not switch.entries("admission") and not writer._synced
    # ... and the next period reads the table and inserts.
    writer.turn(switch, now=102.0)
    assert [u.type for u in switch.updates_to("admission")][-2:] == [p4r.Update.MODIFY, p4r.Update.INSERT]
    [params] = switch.entries("admission").values()
    assert params["level"] == L.ESTABLISHED_ONLY


def test_sa2c_steps_once_per_period(tmp_path):
    controller = Controller(config(), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    controller.admission.turn(switch, now=10.0)
    controller.admission.turn(switch, now=10.5)
    controller.admission.turn(switch, now=10.99)
    assert controller.admission.controls[1].load == 0.0
    controller.monitor.backend_rate[10] = 1e6
    controller.admission.turn(switch, now=10.99)
    assert controller.admission.controls[1].load == 0.0, "not yet a period"
    controller.admission.turn(switch, now=11.0)
    assert controller.admission.controls[1].load > 0


def test_after_a_take_over_a_down_backend_s_adopted_entries_go(tmp_path):
    """Backends that went down while this controller was a backup: entries adopted from the
    switch are deleted at the take-over where their service deletes (VIP), kept where it keeps
    (capture)."""
    cfg = Config.model_validate({
        "health": {"period_s": 0.1, "agents": [{"backend": "web"}, {"backend": "probe"}], "listen_port": 0},
        "services": [
            {"name": "s1", "id": 1, "mode": "vip", "vip": "10.0.0.1", "port": 80,
             "backends": [{"name": "web", "id": 10, "port": 1, "mac": "02:00:00:00:00:01"}]},
            {"name": "s2", "id": 2, "mode": "capture", "tap_ports": [5], "forwarding": "capture",
             "backends": [{"name": "probe", "id": 20, "port": 2, "mac": "02:00:00:00:00:02"}]}]})
    controller = Controller(cfg, program(tmp_path))
    removed: list[int] = []

    def remove_backend_flows(backend_id: int) -> int:
        removed.append(backend_id)
        return 7

    controller.flows.remove_backend_flows = remove_backend_flows      # type: ignore[method-assign]
    health = controller.health
    changes = health.poll(health.snapshot(0)[10].since + 1.0)     # as a backup: no heartbeat for 10 periods
    assert changes is not None and changes.delete_entries == [10]
    assert health.state(10) == health.state(20) == HealthState.DOWN and removed == []
    controller.health_enforcer.after_take_over()
    assert removed == [10]
    assert controller.health_enforcer.entries_deleted == 7


def test_a_service_reading_connections_takes_them_from_its_agents_reports(tmp_path, monkeypatch):
    cfg = config().model_dump()
    cfg["services"][0]["admission"] = {"smoothing": 1.0, "load_components": ["connections"]}
    cfg["services"][0]["backends"][0]["max_connections"] = 20
    controller = Controller(Config.model_validate(cfg), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    sample = HostSample(host_id=1, received_at=99.0, cpu=0.1, memory=0.1, run_queue_per_cpu=0.1, connections=17,
                        custom=None, tx_bytes=0, uptime_s=1.0, tx_rate=1e6, tx_packet_rate=None)
    monkeypatch.setattr(controller.health, "host_sample", lambda backend_id, now: sample)
    controller.admission.turn(switch, now=100.0)
    d = controller.admission.decisions[1]
    assert d.raw_load == pytest.approx(17 / 20)       # the link at capacity (1e6 B/s) does not count
    assert d.level == L.ESTABLISHED_ONLY
    assert controller.admission.components[1] == {"connections": pytest.approx(0.85)}


def test_load_components_are_named_once_and_at_least_one():
    with pytest.raises(ValueError, match="twice"):
        AdmissionSettings(load_components=("cpu", "cpu"))
    with pytest.raises(ValueError):
        AdmissionSettings(load_components=())
    with pytest.raises(ValueError):
        AdmissionSettings(load_components=("bytes",))


def test_the_writer_gives_sa2c_the_new_flow_budget_from_the_agents_and_the_digests(tmp_path, monkeypatch):
    """One backend of 20 connections, T2 0.8: the budget is the room under 16 less the new
    flows digested last period (the reports may not count them yet)."""
    cfg = config().model_dump()
    cfg["services"][0]["admission"] = {"smoothing": 1.0, "load_components": ["connections"]}
    cfg["services"][0]["backends"][0]["max_connections"] = 20
    controller = Controller(Config.model_validate(cfg), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    reported = {"connections": 12}

    def sample(backend_id, now):
        return HostSample(host_id=1, received_at=now, cpu=0.1, memory=0.1, run_queue_per_cpu=0.1,
                          connections=reported["connections"], custom=None, tx_bytes=0, uptime_s=1.0,
                          tx_rate=None, tx_packet_rate=None)
    monkeypatch.setattr(controller.health, "host_sample", sample)
    writer = controller.admission
    writer.metered = False          # a program without the new-flow meter: the budget caps the share

    def period(now: float, digested: int, connections: int, drops: int | None = None):
        controller.monitor.new_flows_total[10] += digested
        reported["connections"] = connections
        counters = None if drops is None else {int(DropReason.ADMISSION_NEW): CounterValue(packets=drops, bytes=0)}
        writer.turn(switch, now=now, drops=counters)
        return writer.budgets[1], writer.decisions[1]

    budget, d = period(100.0, 0, 12)
    assert budget == pytest.approx(4) and d.level == L.ADMIT_ALL
    budget, d = period(101.0, 2, 10)              # 16 - 10 - 2 on the way
    assert budget == pytest.approx(4) and d.level == L.ADMIT_ALL
    budget, d = period(102.0, 8, 13)              # 16 - 13 - 8 < 0: nothing more this period
    assert budget == 0 and d.wanted == L.ADMIT_ALL and d.level == L.ESTABLISHED_ONLY
    # Refused at a = 0, nothing digested: the estimate from the admitted share knows nothing,
    # SA2C decides again (0.5 < T1)
    budget, d = period(103.0, 0, 10, drops=100)
    assert budget == pytest.approx(6) and d.level == L.ADMIT_ALL
    # With the switch's drop counters the offered new flows are counted: 30 refused, 5 in:
    # budget 16 - 8 - 5 = 3 of 35 offered.
    writer.decisions[1] = AdmissionDecision(L.DROP_NEW_PROB, 0.5, 0.5, 0.5, 0.8, 0.9, L.DROP_NEW_PROB)
    control = writer.controls[1]
    control.admitted = 0.5
    budget, d = period(104.0, 5, 8, drops=130)
    assert budget == pytest.approx(3)
    assert (d.level, d.drop_prob) == (L.DROP_NEW_PROB, pytest.approx(1 - 3 / 35))


def test_with_the_meter_the_budget_is_the_switchs_new_flow_rate(tmp_path, monkeypatch):
    """The program's new-flow meter gets budget / period new flows/s (burst a quarter of it, at
    least 1 flow per period), rewritten only when it moves by 10 %; SA2C's share is then its own."""
    cfg = config().model_dump()
    cfg["services"][0]["admission"] = {"smoothing": 1.0, "load_components": ["connections"]}
    cfg["services"][0]["backends"][0]["max_connections"] = 20
    cfg["health"]["period_s"] = 0.5
    controller = Controller(Config.model_validate(cfg), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    reported = {"connections": 8}
    monkeypatch.setattr(controller.health, "host_sample", lambda backend_id, now: HostSample(
        host_id=1, received_at=now, cpu=0.1, memory=0.1, run_queue_per_cpu=0.1, connections=reported["connections"],
        custom=None, tx_bytes=0, uptime_s=1.0, tx_rate=None, tx_packet_rate=None))
    writer = controller.admission
    assert writer.metered
    writer.turn(switch, now=100.0)
    meter = switch.meters[("new_flow_meter", 1)]
    assert (meter.cir, meter.pir, meter.cburst) == (16, 16, 2)        # budget 0.8 x 20 - 8 = 8 per 0.5 s
    meter_writes = len(switch.writes)
    reported["connections"] = 8
    writer.turn(switch, now=100.5)                                      # same budget: nothing written
    assert len(switch.writes) == meter_writes
    controller.monitor.new_flows_total[10] += 30                        # a herd got in: 30 admitted
    reported["connections"] = 30                                        # 16 - 30 - 30 < 0
    writer.turn(switch, now=101.0)
    meter = switch.meters[("new_flow_meter", 1)]
    assert (meter.cir, meter.cburst) == (2, 1)                          # the floor: 1 per period
    d = writer.decisions[1]
    assert d.level == L.DEGRADE_ESTABLISHED and d.wanted == L.REJECT_ALL   # 1.5: SA2C's own decision
