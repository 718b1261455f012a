"""The emulated cluster's health parts without Mininet: the generated `[health]` and SA2C
configuration, the agents' command lines, and the fault and overload benchmarks' arithmetic
(what counts as after the detection, in the window, broken or refused)."""

from __future__ import annotations

import pytest

from agent.cli import add_arguments
from controller.config import Config
from controller.health.intake import MessageIntake
from controller.health.messages import Codec, Heartbeat, HeartbeatFlag, load_key
from topo.health_bench import (
    FaultOptions,
    FaultResult,
    PlannedFailure,
    RingWrites,
    ServerKilled,
    Timeline,
    TransitionAt,
    _measure,
    bad_datagrams,
)
from topo.overload_bench import OverloadOptions, summarise, wire_bytes
from topo.server_cluster import (
    CONTROLLER_ADDRESS,
    MANAGEMENT,
    ClientRun,
    ClusterHealthSpec,
    ServerCluster,
    ServerClusterSpec,
    Syn,
    controller_config,
)


def health_spec(**extra) -> ServerClusterSpec:
    return ServerClusterSpec(clients=2, capacities_mbit=(10.0, 5.0), health=ClusterHealthSpec(listen_port=9555),
                             **extra)


def test_the_generated_configuration_has_an_agent_per_backend_an_advisor_and_the_key(tmp_path):
    key = tmp_path / "health.key"
    key.write_bytes(b"k" * 32)
    config = Config.model_validate(controller_config(health_spec(), key))
    h = config.health
    assert (h.listen_address, h.listen_port, h.key_file, h.period_s) == (CONTROLLER_ADDRESS, 9555, key, 1.0)
    assert [a.backend for a in h.agents] == ["web1", "web2"]
    (advisor,) = h.advisors
    assert (advisor.service, advisor.kind, advisor.path, advisor.timeout_s) == ("web", "http", "/obj/0", 0.5)
    plan = h.plan(config.services)
    assert plan.hosts == {10: (10,), 11: (11,)}          # host id = backend id
    assert config.services[0].admission is None
    with pytest.raises(ValueError, match="HMAC key"):
        controller_config(health_spec())


def test_sa2c_and_no_advisor(tmp_path):
    key = tmp_path / "health.key"
    key.write_bytes(b"k" * 32)
    spec = ServerClusterSpec(health=ClusterHealthSpec(advisor="none"), admission={"t1": 0.6})
    config = Config.model_validate(controller_config(spec, key))
    assert config.health.advisors == []
    assert config.services[0].admission is not None and config.services[0].admission.t1 == 0.6
    assert "health" not in controller_config(ServerClusterSpec())
    with pytest.raises(ValueError, match="timeout"):
        ClusterHealthSpec(period_s=0.2, advisor_timeout_s=0.5)


def test_the_management_node_and_the_agents_command_line(tmp_path):
    import argparse

    assert MANAGEMENT not in ServerCluster(ServerClusterSpec(), tmp_path).node_names()
    cluster = ServerCluster(health_spec(), tmp_path)
    assert MANAGEMENT in cluster.node_names()
    command = cluster.agent_command("web2", python="python3")
    assert command[:3] == ["python3", "-m", "agent"]
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(command[3:])
    assert (args.controller, args.host_id, args.interface, args.service_port) == \
        (f"{CONTROLLER_ADDRESS}:9555", 11, "web2-eth1", 80)
    assert (args.check, args.check_path, args.cpu) == ("http", "/obj/0", "service")
    assert args.key_file == str(cluster.key_file)
    assert cluster.key_file.stat().st_mode & 0o777 == 0o600 and len(load_key(cluster.key_file)) == 44


def request(start: float, ok: bool = True, connect: float | None = 0.01, elapsed: float = 0.2, error=None) -> dict:
    return {"start": start, "lag": 0.0, "size": 1000, "latency": elapsed if ok else None, "connect": connect,
            "elapsed": elapsed, "bytes": 1000 if ok else 0, "status": 200 if ok else None,
            "error": None if ok else (error or "ConnectionResetError"), "local": "10.0.1.1:1"}


def test_a_fault_is_measured_from_the_controller_s_transitions_the_ring_write_and_the_backend_s_syns():
    """Monotonic 100 = wall 1000. Fault at 100, detected at 100.4, the ring written without the
    backend at 100.45, undone at 106, up at 109."""
    options = FaultOptions(period_s=1.0)
    result = FaultResult(fault="server-killed", backend="web1", period_s=1.0, detected=False)
    detection = TransitionAt(100.4, "up", "down", "advisor failed")
    recovery = TransitionAt(109.0, "recovering", "up", "3 good periods")
    syns = [Syn(999.0, "a:1"), Syn(1000.2, "a:2"), Syn(1000.3, "a:2"),    # before, fault -> detection
            Syn(1000.42, "a:3"),                                             # during the ring write
            Syn(1001.0, "a:2"),                                              # a retransmission, not a new one
            Syn(1003.0, "b:1"), Syn(1003.5, "b:1"),                          # after the write: one connection
            Syn(1007.0, "c:1"), Syn(1010.0, "d:1"), Syn(1011.0, "d:2")]     # undo -> up, after up
    records = [request(990.0), request(999.9, ok=False, elapsed=0.3),         # in flight at the fault
               request(1000.1, ok=False, connect=None, error="ConnectionRefusedError"),
               request(1001.0), request(1002.0, ok=False),                    # in the window (to 1001.4)
               request(1004.0, ok=False), request(1012.0)]
    timeline = Timeline(offset=900.0, fault_at=100.0, undone_at=106.0, detection=detection, recovery=recovery,
                        transitions=[detection, recovery], ring_write=1000.45, switch_packets=(0, 40))
    _measure(result, options, ServerKilled(), {"cl1": ClientRun("cl1", {}, records)}, syns, timeline)
    assert result.detected and result.detection_s == pytest.approx(0.4)
    assert result.detection_periods == pytest.approx(0.4) and result.ring_write_s == pytest.approx(0.05)
    assert (result.new_connections_after_detection, result.syn_packets_after_detection) == (1, 3)
    assert result.new_connections_during_ring_write == 1 and result.new_connections_fault_to_detection == 1
    assert result.recovered and result.recovery_s == pytest.approx(3.0) and result.new_connections_after_recovery == 2
    assert (result.requests, result.failed) == (7, 4)
    assert (result.failed_in_window, result.requests_in_window) == (2, 3)
    assert result.errors_in_window == {"ConnectionResetError (connected)": 1,
                                       "ConnectionRefusedError (never connected)": 1}
    assert result.failed_after_detection == 2          # started at 1002 and 1004, after the write
    assert result.failed_by_phase == {"before the fault": 1, "fault to detection": 1, "detection to undo": 2}
    assert (result.switch_packets_after_detection, result.switch_packets_before_fault) == (0, 40)
    assert (result.slow_in_window, result.max_latency_in_window_s) == (0, 0.2)
    assert result.transitions[0] == {"at_s": 0.4, "old": "up", "new": "down", "reason": "advisor failed"}


def test_a_planned_failure_counts_from_draining_and_reports_when_it_went_down():
    result = FaultResult(fault="planned", backend="web1", period_s=1.0, detected=False)
    draining = TransitionAt(100.5, "up", "draining", "planned failure in 5.0 s")
    down = TransitionAt(105.0, "draining", "down", "planned failure now")
    _measure(result, FaultOptions(), PlannedFailure(), {}, [], Timeline(0.0, 100.0, 110.0, draining, None,
                                                                        [draining, down], None))
    assert (result.detected_as, result.detection_s, result.down_s) == ("draining", 0.5, 5.0)
    assert not result.recovered and result.failed == 0
    assert result.new_connections_after_detection is None and result.notes


def test_ring_writes_are_read_from_the_controller_s_log():
    import logging

    with RingWrites() as rings:
        log = logging.getLogger("controller.rings")
        log.info("service %s: ring rewritten (%d of %d slots): %s", "web", 51, 1024, "web1 30%, web2 35%, web3 35%")
        log.info("service %s: ring rewritten (%d of %d slots): %s", "web", 342, 1024, "web2 50%, web3 50%")
        log.info("something else")
    assert len(rings.writes) == 2
    first, second = rings.writes[0][0], rings.writes[1][0]
    assert rings.first_without("web1", first) == second
    assert rings.first_without("web10", first) == first        # names, not prefixes
    assert rings.first_without("web2", first) is None


def test_overload_capacity_and_what_counts_as_refused_or_broken():
    # 50,000 bytes + 250 of header: 35 segments of overhead and the handshake's three packets.
    assert wire_bytes(50_000) == 50_250 + 35 * 66 + 3 * 66
    options = OverloadOptions(capacities=(3.0, 3.0, 3.0), size=50_000, factor=2.0, duration_s=10.0)
    assert options.capacity_rps == pytest.approx(9e6 / 8 / wire_bytes(50_000))
    assert options.offered_rps == pytest.approx(2 * options.capacity_rps)
    records = [request(0.0, elapsed=1.0), request(1.0, elapsed=9.5),                   # 2nd ends after the window
               request(2.0, ok=False, connect=None, error="timeout"),                  # refused
               request(3.0, ok=False, connect=0.5, error="timeout")]                   # broken
    result = summarise(options, True, records, 0.0, {"admission_new": 5}, {"admission_new": 12}, [
        {"level": "admit_all"}, {"level": "established_only"}, {"level": "established_only"}], {})
    assert (result["requests"], result["completed"], result["completed_per_s"]) == (4, 2, 0.1)
    assert (result["never_connected"], result["broken"]) == (1, 1)
    assert result["broken_errors"] == {"timeout": 1} and result["switch_drops"]["admission_new"] == 7
    assert result["levels_seconds"] == {"admit_all": 1, "established_only": 2}


def test_the_bad_datagrams_are_dropped_for_the_reason_they_are_sent_under():
    key = b"k" * 32
    good = Codec(key)
    genuine = [good.encode(Heartbeat(10, 5, HeartbeatFlag.UP, 0)), good.encode(Heartbeat(11, 9, HeartbeatFlag.UP, 0))]
    intake = MessageIntake(Codec(key), {10, 11, 12})
    assert all(intake.accept(d) is not None for d in genuine)
    batches = bad_datagrams(key, [10, 11, 12], genuine)
    for reason, batch in batches.items():
        before = intake.dropped[reason]
        assert all(intake.accept(d[:513]) is None for d in batch), reason     # the listener reads 513 bytes at most
        assert intake.dropped[reason] - before == len(batch), (reason, intake.last_error)
    assert sum(intake.dropped.values()) == sum(len(b) for b in batches.values())
    # The forged far-ahead numbers moved no window: the real agents' next messages pass.
    assert intake.accept(good.encode(Heartbeat(10, 6, HeartbeatFlag.UP, 0))) is not None

