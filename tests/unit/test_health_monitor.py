"""The health state machine with hand-made times: when a backend goes down, drains, recovers."""

import pytest

from controller.health.messages import Heartbeat, HeartbeatFlag
from controller.health.monitor import HealthMonitor, HealthState, MonitorSettings

UP, DRAINING, DOWN, RECOVERING = HealthState.UP, HealthState.DRAINING, HealthState.DOWN, HealthState.RECOVERING


class Host:
    """An agent's heartbeats with increasing sequence numbers."""

    def __init__(self, monitor: HealthMonitor, host_id: int) -> None:
        self.monitor, self.host_id, self.seq = monitor, host_id, 0

    def beat(self, at: float, flag=HeartbeatFlag.UP, timestamp_ms: int = 0):
        self.seq += 1
        return self.monitor.heartbeat(Heartbeat(self.host_id, self.seq, flag, timestamp_ms), at)


def make(settings=None, hosts=None, advisors=None):
    monitor = HealthMonitor(settings or MonitorSettings(period_s=1.0, missed_limit=3, recovery_periods=3),
                            hosts if hosts is not None else {1: [11]}, advisors or {}, now=0.0)
    return monitor, Host(monitor, 1)


def test_down_after_three_missed_periods_with_half_a_period_of_tolerance():
    monitor, host = make()
    for t in range(6):
        assert host.beat(float(t)) == []
    assert monitor.tick(8.49) == []                   # 3.49 periods since the last: the 3rd is just late
    assert monitor.state(11) == UP
    [change] = monitor.tick(8.51)
    assert (change.backend_id, change.old, change.new, change.time) == (11, UP, DOWN, 8.51)
    assert "3 periods missed" in change.reason
    assert not monitor.takes_new_flows(11)
    assert monitor.tick(20.0) == []                   # down once, not again


def test_never_heard_goes_down_after_the_start_grace():
    monitor, _ = make()
    assert monitor.tick(3.4) == []
    [change] = monitor.tick(3.6)
    assert change.new == DOWN and "since the controller started" in change.reason


def test_recovery_needs_k_good_periods_in_a_row():
    monitor, host = make()
    monitor.tick(10.0)                                # silent since start: down
    assert monitor.state(11) == DOWN
    [change] = host.beat(10.0)
    assert change.new == RECOVERING and "1 of 3" in change.reason
    assert host.beat(10.2) == []                      # same period: counts once
    assert host.beat(11.0) == []
    assert monitor.snapshot(11.0)[11].good_periods == 2
    [change] = host.beat(12.0)
    assert (change.new, change.time) == (UP, 12.0) and monitor.takes_new_flows(11)


def test_a_late_heartbeat_restarts_the_recovery_count():
    monitor, host = make()
    monitor.tick(10.0)
    host.beat(10.0)
    host.beat(11.0)
    assert host.beat(12.6) == []                      # 1.6 periods: one was missed -> count 1 again
    assert monitor.state(11) == RECOVERING
    assert monitor.snapshot(12.6)[11].good_periods == 1
    host.beat(13.6)
    assert host.beat(14.6)[0].new == UP


def test_recovering_goes_down_again_on_silence():
    monitor, host = make()
    monitor.tick(10.0)
    host.beat(10.0)
    [change] = monitor.tick(13.6)
    assert (change.old, change.new) == (RECOVERING, DOWN)


def test_application_down_flag_is_immediate_and_recovery_counts_from_it():
    monitor, host = make()
    host.beat(0.5)
    [change] = host.beat(1.5, HeartbeatFlag.APPLICATION_DOWN)
    assert (change.new, change.time) == (DOWN, 1.5) and "application down" in change.reason
    assert host.beat(2.5, HeartbeatFlag.APPLICATION_DOWN) == []
    assert host.beat(3.5)[0].new == RECOVERING
    host.beat(4.5)
    assert host.beat(5.5)[0].new == UP


def test_planned_failure_drains_then_goes_down_at_its_time():
    monitor, host = make()
    [change] = host.beat(1.0, HeartbeatFlag.PLANNED_FAILURE, timestamp_ms=5000)
    assert (change.new, change.reason) == (DRAINING, "planned failure in 5.0 s")
    assert not monitor.takes_new_flows(11)
    assert host.beat(2.0, HeartbeatFlag.PLANNED_FAILURE, timestamp_ms=4000) == []
    assert monitor.snapshot(2.0)[11].planned_failure_in == pytest.approx(4.0)
    for t in (3.0, 4.0, 5.0):
        assert host.beat(t, HeartbeatFlag.PLANNED_FAILURE, timestamp_ms=round((6.0 - t) * 1000)) == []
    assert monitor.tick(5.99) == []
    [change] = monitor.tick(6.0)
    assert (change.old, change.new, change.reason) == (DRAINING, DOWN, "planned failure")
    # The agent keeps announcing (0 ms left): still down, and those beats do not count as good.
    assert host.beat(6.5, HeartbeatFlag.PLANNED_FAILURE, 0) == []
    assert host.beat(7.5)[0].new == RECOVERING


def test_a_withdrawn_planned_failure_goes_straight_back_up():
    monitor, host = make()
    host.beat(1.0)
    host.beat(2.0, HeartbeatFlag.PLANNED_FAILURE, 10_000)
    [change] = host.beat(3.0)
    assert (change.old, change.new, change.reason) == (DRAINING, UP, "planned failure withdrawn")


def test_planned_failure_now_is_down_at_once():
    monitor, host = make()
    [change] = host.beat(1.0, HeartbeatFlag.PLANNED_FAILURE, 0)
    assert change.new == DOWN


def test_advisor_failure_takes_down_and_k_successes_bring_back():
    monitor, _ = make(hosts={}, advisors={12: ["http:80/"]})
    assert monitor.advisor_result(12, "http:80/", True, 1.0, 0.004) == []
    assert monitor.forward_metric(12) == 0.004
    [change] = monitor.advisor_result(12, "http:80/", False, 2.0, None, "GET /: status 500, expected 200")
    assert change.new == DOWN and change.reason == "advisor http:80/: GET /: status 500, expected 200"
    assert monitor.advisor_result(12, "http:80/", True, 3.0, 0.002)[0].new == RECOVERING
    monitor.advisor_result(12, "http:80/", True, 4.0, 0.002)
    assert monitor.advisor_result(12, "http:80/", True, 5.0, 0.003)[0].new == UP
    assert monitor.tick(100.0) == []                  # no agent: silence means nothing
    assert monitor.advisor_result(12, "unknown advisor", False, 6.0) == []


def test_advisor_fail_limit():
    settings = MonitorSettings(period_s=1.0, advisor_fail_limit=2)
    monitor, _ = make(settings, hosts={}, advisors={12: ["tcp:80"]})
    assert monitor.advisor_result(12, "tcp:80", False, 1.0) == []
    assert monitor.advisor_result(12, "tcp:80", False, 2.0)[0].new == DOWN


def test_agent_and_advisor_both_must_recover():
    monitor, host = make(hosts={1: [11]}, advisors={11: ["tcp:80"]})
    host.beat(0.5)
    monitor.advisor_result(11, "tcp:80", False, 1.0)
    for t in (1.5, 2.5, 3.5, 4.5):
        host.beat(t)
    assert monitor.state(11) == DOWN                  # the advisor still fails
    assert monitor.advisor_result(11, "tcp:80", True, 4.6, 0.001)[0].new == RECOVERING
    monitor.advisor_result(11, "tcp:80", True, 5.6, 0.001)
    assert monitor.advisor_result(11, "tcp:80", True, 6.6, 0.001)[0].new == UP


def test_one_host_speaks_for_several_backends_and_others_are_untouched():
    monitor, host = make(hosts={1: [11, 21], 2: [12]})
    host.beat(1.0)
    changes = host.beat(2.0, HeartbeatFlag.APPLICATION_DOWN)
    assert sorted(c.backend_id for c in changes) == [11, 21]
    assert monitor.state(12) == UP
    assert monitor.takes_new_flows(99)                 # not watched: always up


def test_snapshot_reports_state_reason_and_history():
    monitor, host = make()
    host.beat(1.0)
    host.beat(2.0, HeartbeatFlag.APPLICATION_DOWN)
    snap = monitor.snapshot(2.5)[11]
    assert (snap.state, snap.since, snap.flag, snap.has_agent) == (DOWN, 2.0, HeartbeatFlag.APPLICATION_DOWN, True)
    assert snap.last_heartbeat_age == pytest.approx(0.5)
    assert [(t.old, t.new) for t in snap.transitions] == [(UP, DOWN)]
    assert not snap.takes_new_flows


def test_settings_are_checked():
    with pytest.raises(ValueError):
        MonitorSettings(period_s=0)
    with pytest.raises(ValueError, match="late_tolerance"):
        MonitorSettings(late_tolerance=1.0)
