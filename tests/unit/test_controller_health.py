"""Issue 11 integrated: backend agents send real UDP heartbeats and load reports on 127.0.0.1
to a Controller built without a switch (tests/switch_stub.py's in-memory switch), whose
serving-loop turns (`Controller._turn`) are run here as the loop runs them.

Checked: a backend whose heartbeats stop leaves its service's ring at the next ring write;
its `flows` entries are deleted in a VIP service and kept in a capture service; it comes
back after k good periods, regaining its ring share at most `ring_max_change` per write
(issue 10's cap), while leaving costs it every slot in one write; the switch-to-served ratio
is learned from the reports; SA2C writes, rewrites and deletes the service's `admission`
entry only when its decision changes.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from controller_fakes import agent_thread, digest_list
from finsy.proto import p4r
from rich.console import Console
from switch_stub import InMemorySwitch, program

from agent.host_sampler import Sample
from controller.app import Controller
from controller.cli import status_table
from controller.config import Config
from controller.counter_poller import CounterReading
from controller.dataplane.constants import AdmissionLevel
from controller.dataplane.dispatcher_tables import CounterValue
from controller.health.monitor import HealthState
from controller.health_control import HealthChanges

PERIOD = 0.2
RECOVERY = 2
POLL_S = 0.05
WEB1, WEB2, WEB3, PROBE1, PROBE2 = 10, 11, 12, 20, 21


def config(agents: list[str], admission: dict[str, Any] | None = None, ring_max_change: float = 0.05) -> Config:
    web: dict[str, Any] = {
        "name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 80, "policy": "round_robin",
        "ring_size": 64, "ring_threshold": 0.0, "ring_max_change": ring_max_change,
        "backends": [{"name": "web1", "id": WEB1, "port": 2, "mac": "02:00:00:00:00:0a", "capacity_mbps": 200},
                     {"name": "web2", "id": WEB2, "port": 3, "mac": "02:00:00:00:00:0b", "capacity_mbps": 100},
                     {"name": "web3", "id": WEB3, "port": 4, "mac": "02:00:00:00:00:0c", "capacity_mbps": 50}]}
    if admission is not None:
        web["admission"] = admission
    tap = {"name": "tap", "id": 2, "mode": "capture", "tap_ports": [5], "forwarding": "capture",
           "policy": "round_robin", "ring_size": 64, "ring_threshold": 0.0,
           "backends": [{"name": "probe1", "id": PROBE1, "port": 6, "mac": "02:00:00:00:00:14"},
                        {"name": "probe2", "id": PROBE2, "port": 7, "mac": "02:00:00:00:00:15"}]}
    return Config.model_validate({
        "timers": {"poll_interval_ms": int(POLL_S * 1000)},
        "health": {"period_s": PERIOD, "missed_limit": 3, "recovery_periods": RECOVERY, "listen_port": 0,
                   "agents": [{"backend": name} for name in agents]},
        "services": [web, tap]})


# ---- the serving loop, without a switch ---------------------------------------------------------

@dataclass
class Served:
    """A primary Controller on an in-memory switch; `turns()` runs its loop as _serve does."""
    controller: Controller
    switch: InMemorySwitch
    switch_bytes: Callable[[int, float], float] = lambda backend, t: 0.0   # per-backend counter at t
    _last_reading: float = 0.0

    def turn(self) -> None:
        now = time.monotonic()
        reading = None
        if now - self._last_reading >= POLL_S:
            self._last_reading = now
            reading = CounterReading(at=now, flow_stats=None, ports={}, backend_traffic={
                b.id: CounterValue(0, int(self.switch_bytes(b.id, now))) for b in self.controller.pool})
        self.controller._turn(self.switch, reading)

    def run_until(self, done: Callable[[], bool], timeout: float = 5.0, what: str = "") -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.turn()
            if done():
                return time.monotonic()
            time.sleep(0.005)
        pytest.fail(f"timed out waiting for {what or done}; health: {self.states()}")

    def run_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.turn()
            time.sleep(0.005)

    def state(self, backend_id: int) -> HealthState:
        return self.controller.health.state(backend_id)

    def states(self) -> dict[int, str]:
        return {b.id: self.state(b.id).value for b in self.controller.pool}


@contextmanager
def served(cfg: Config, tmp_path) -> Iterator[Served]:
    controller = Controller(cfg, program(tmp_path))
    switch = InMemorySwitch(controller.info)
    controller.flows.writer = switch
    controller._set_role("primary")
    controller.health.start()
    try:
        yield Served(controller, switch)
    finally:
        controller.health.stop()


@dataclass
class FakeHost:
    """What an agent's sampler reports: CPU as set by the test, bytes sent growing at `tx_rate`."""
    cpu_percent: float = 10.0
    tx_rate: float = 0.0                 # bytes/s
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        sent = int(self.tx_rate * (time.monotonic() - self.started))
        return Sample(tx_bytes=sent, tx_packets=sent // 1448, cpu_percent=self.cpu_percent, memory_percent=20.0,
                      load_average=0.1, cpus=2, connections=0)


def agent(port: int, host_id: int, host: FakeHost | None = None):
    """`p4dispatch agent` as a thread: heartbeats and reports over UDP to 127.0.0.1:port."""
    return agent_thread(port, host_id, PERIOD, (host or FakeHost()).sample)


def install_flows(s: Served, per_backend: int = 4) -> Counter[int]:
    """Flows of every backend installed through the flow manager, as digests bring them."""
    flows = []
    for n, (service, backend) in enumerate([(1, WEB1), (1, WEB2), (1, WEB3), (2, PROBE1), (2, PROBE2)]):
        for i in range(per_backend):
            flows.append({"src_addr": (0xFFFF << 32) | (0xC0A80000 + 256 * n + i), "protocol": 6,
                          "dst_addr": (0xFFFF << 32) | 0x0A000064, "src_port": 40000 + i, "dst_port": 80,
                          "service_id": service, "backend_id": backend})
    s.controller.flows.on_digest_list(digest_list(flows), time.monotonic())
    s.controller.flows.settle()
    return Counter(s.switch.flow_backends())


# ---- health -> rings and entries -------------------------------------------------------------------

def test_a_silent_backend_leaves_the_ring_its_vip_entries_go_capture_entries_stay_and_it_comes_back(tmp_path):
    with served(config(["web1", "web2", "probe1"]), tmp_path) as s:
        port = s.controller.health.cluster.listener.port
        installed = install_flows(s)
        assert installed == {WEB1: 4, WEB2: 4, WEB3: 4, PROBE1: 4, PROBE2: 4}
        with agent(port, WEB1) as web1, agent(port, WEB2), agent(port, PROBE1) as probe1:
            s.run_until(lambda: s.controller.health.counts()["accepted_heartbeat"] >= 6, what="agents heard")
            assert set(s.switch.ring(1).values()) == {WEB1, WEB2, WEB3}
            assert set(s.switch.ring(2).values()) == {PROBE1, PROBE2}

            web1.set()                                          # web1's and probe1's agents stop
            probe1.set()
            stopped = time.monotonic()
            down_at = s.run_until(lambda: s.state(WEB1) == s.state(PROBE1) == HealthState.DOWN, what="down")
            # 3 missed periods (+ the half-period tolerance) after the last heartbeat.
            assert 2.5 * PERIOD <= down_at - stopped <= 4.5 * PERIOD
            # The ring write in the very turn that saw the transition left them out ...
            assert set(s.switch.ring(1).values()) == {WEB2, WEB3}
            assert set(s.switch.ring(2).values()) == {PROBE2}
            s.run_for(0.05)                                     # the flow manager's deletes go out
            after = Counter(s.switch.flow_backends())
            # ... the VIP backend's entries are deleted, the capture node's kept, nobody else's touched.
            assert after == {WEB2: 4, WEB3: 4, PROBE1: 4, PROBE2: 4}
            assert s.controller.health_enforcer.entries_deleted == 4
            assert s.controller.pool.get(WEB1) is not None, "the backend stays configured"

            s.run_for(POLL_S * 2)
            status = s.controller.status()
            web = {b.name: b for b in status.services[0].backends}
            h = web["web1"].health
            assert h is not None and h.state == "down" and "periods missed" in h.reason
            assert h.transitions_total == {"down": 1} and web["web1"].ring_share == 0
            assert web["web3"].health is not None and not web["web3"].health.watched
            assert status.services[0].down_entries == "delete" and status.services[1].down_entries == "keep"
            assert status.health is not None and status.health.entries_deleted == 4
            table = rendered(status_table(status))          # what `p4dispatch status` prints
            assert "down" in table and "no heartbeat" in table and "fallback" in table

            with agent(port, WEB1):                             # web1's agent is back
                seen = []
                s.run_until(lambda: s.state(WEB1) == HealthState.UP, what="web1 up again")
                seen = [t for t in s.controller.health.snapshot(time.monotonic())[WEB1].transitions
                        if t.time > down_at]
                assert [t.new for t in seen] == [HealthState.RECOVERING, HealthState.UP]
                # k = 2 good periods: up one period after the first good heartbeat.
                assert seen[1].time - seen[0].time == pytest.approx((RECOVERY - 1) * PERIOD, abs=0.1)
                assert WEB1 in s.switch.ring(1).values(), "back in the ring at once"
            assert s.state(PROBE1) == HealthState.DOWN and PROBE1 not in s.switch.ring(2).values()


def test_health_changes_meet_the_ring_churn_cap(tmp_path, monkeypatch):
    """Issue 11's health and issue 10's cap per ring write (ring_max_change) together: a
    backend that leaves UP loses every slot in the enforcer's one forced write, whatever the
    cap; one that comes back skips the hysteresis (forced) but regains its share at most the
    cap per write, over the next ring updates."""
    controller = Controller(config([], ring_max_change=0.1), program(tmp_path))   # 64 slots: <= 6 per write
    switch = InMemorySwitch(controller.info)
    controller._set_role("primary")
    up = {b.id: True for b in controller.pool}
    polls: list[HealthChanges] = []
    monkeypatch.setattr(controller.health, "healthy", lambda backends: np.array([up[b.id] for b in backends]))
    monkeypatch.setattr(controller.health, "poll", lambda now: polls.pop() if polls else None)

    def ring_writes() -> list[int]:
        """Slots written by each ring write so far."""
        return [len(batch) for batch in switch.writes
                if controller.info.table_by_id(batch[0].entity.table_entry.table_id).preamble.alias == "dispatch_ring"]

    controller.ring_updater.update(switch)            # empty slots always go: the whole ring at once
    assert Counter(switch.ring(1).values()) == {WEB1: 22, WEB2: 21, WEB3: 21}

    up[WEB1] = False                                  # web1 leaves UP
    polls.append(HealthChanges(availability_changed=True))
    controller.health_enforcer.turn(switch, time.monotonic())
    assert WEB1 not in switch.ring(1).values() and ring_writes()[-1] == 22, "all its slots in one write"

    up[WEB1] = True                                   # and comes back
    polls.append(HealthChanges(availability_changed=True))
    controller.health_enforcer.turn(switch, time.monotonic())
    assert Counter(switch.ring(1).values())[WEB1] == 6 and ring_writes()[-1] == 6, "no more than the cap"
    for _ in range(5):                                # the next polls continue, each within the cap
        controller.ring_updater.update(switch)
    assert max(ring_writes()[3:]) <= 6
    assert sorted(Counter(switch.ring(1).values()).values()) == [21, 21, 22], "its share back, step by step"


def test_the_visibility_ratio_is_learned_from_the_agents_reports(tmp_path):
    """web1 sends 1 MB/s and the switch counts 20 kB/s of it (DSR: the clients' side): the
    policies' capacity for web1 is scaled by the learned 0.02, not the configured 0.023."""
    with served(config(["web1", "web2"]), tmp_path) as s:
        t0 = time.monotonic()
        s.switch_bytes = lambda backend, t: 20_000 * (t - t0) if backend == WEB1 else 0.0
        with agent(s.controller.health.cluster.listener.port, WEB1, FakeHost(tx_rate=1e6, started=t0)), \
                agent(s.controller.health.cluster.listener.port, WEB2):
            s.run_until(lambda: s.controller.health.load_source(WEB1, time.monotonic()).value == "measured",
                        timeout=5, what="web1's ratio learned")
            s.run_for(2 * POLL_S)
        web = {b.name: b for b in s.controller.status().services[0].backends}
        assert web["web1"].load_source == "measured"
        assert web["web1"].visibility_ratio == pytest.approx(0.02, rel=0.25)
        assert web["web1"].health is not None and web["web1"].health.host is not None
        # web2's agent reports, but its server sends nothing: no window closes, the fallback stays.
        assert (web["web2"].load_source, web["web3"].load_source) == ("fallback", "fallback")
        assert web["web3"].visibility_ratio == pytest.approx(66 / 2896)
        assert s.controller.status().health.on_fallback == ["web2", "web3", "probe1", "probe2"]
        view = s.controller.ring_updater._view(s.controller.pool.services[1], s.controller.pool.of_service(1),
                                               time.monotonic())
        assert view.capacity[0] == pytest.approx(200 * 125_000 * web["web1"].visibility_ratio)
        assert view.capacity[2] == pytest.approx(50 * 125_000 * 66 / 2896)
        assert view.host_metric is not None and view.host_metric[0] == pytest.approx(0.10)


# ---- SA2C ----------------------------------------------------------------------------------------

def test_sa2c_writes_the_admission_entry_only_when_its_decision_changes(tmp_path):
    # smoothing 1: the smoothed load is this period's, so the levels are exact.
    with served(config(["web1", "web2"], admission={"smoothing": 1.0}), tmp_path) as s:
        web1, web2 = FakeHost(cpu_percent=87.5), FakeHost(cpu_percent=87.5)
        port = s.controller.health.cluster.listener.port
        with agent(port, WEB1, web1), agent(port, WEB2, web2):
            # (200 x 0.875 + 100 x 0.875 + 50 x 0) / 350 = 0.75: T1 <= load < T2, p = 0.05 / 0.1.
            s.run_until(lambda: s.switch.entries("admission"), what="an admission entry")
            s.run_until(lambda: s.controller.admission.decisions[1].raw_load == pytest.approx(0.75),
                        what="both agents' reports in the load")
            s.run_until(lambda: _admission(s) == (AdmissionLevel.DROP_NEW_PROB, 32768), what="p = 0.5")
            writes = len(s.switch.updates_to("admission"))
            s.run_for(3 * PERIOD)                               # the same decision: nothing written
            assert len(s.switch.updates_to("admission")) == writes
            status = s.controller.status().services[0].admission
            assert status is not None and (status.level, status.on_switch) == ("drop_new_prob", "drop_new_prob")
            assert status.drop_prob == pytest.approx(0.5) and status.load == pytest.approx(0.75)
            assert "web admission drop_new_prob p 0.50" in rendered(status_table(s.controller.status()))

            web1.cpu_percent = web2.cpu_percent = 95.0          # 0.814 >= T2: established only
            s.run_until(lambda: _admission(s) == (AdmissionLevel.ESTABLISHED_ONLY, 0), what="established only")
            kinds = [u.type for u in s.switch.updates_to("admission")]
            assert kinds[-1] == p4r.Update.MODIFY

            web1.cpu_percent = web2.cpu_percent = 10.0          # below T1: the entry goes
            s.run_until(lambda: not s.switch.entries("admission"), what="the entry deleted")
            assert s.switch.updates_to("admission")[-1].type == p4r.Update.DELETE
            s.run_for(3 * PERIOD)
            assert not s.switch.entries("admission")
            decision = s.controller.admission.decisions[1]
            assert decision.level == AdmissionLevel.ADMIT_ALL and (decision.t2, decision.t3) == (0.8, 0.9)
        kinds = [u.type for u in s.switch.updates_to("admission")]
        assert kinds.count(p4r.Update.INSERT) == 1 and kinds.count(p4r.Update.DELETE) == 1
        assert s.controller.admission.writes[1] == len(kinds)


def test_a_down_server_leaves_sa2c_s_cluster_load(tmp_path):
    """A server that is down carries no capacity: the others' load is the cluster's."""
    with served(config(["web1", "web2"], admission={"smoothing": 1.0}), tmp_path) as s:
        port = s.controller.health.cluster.listener.port
        with agent(port, WEB1, FakeHost(cpu_percent=5.0)) as web1, agent(port, WEB2, FakeHost(cpu_percent=90.0)):
            both = (200 * 0.05 + 100 * 0.9) / 350
            s.run_until(lambda: 1 in s.controller.admission.decisions
                        and s.controller.admission.decisions[1].raw_load == pytest.approx(both), what="load")
            web1.set()
            s.run_until(lambda: s.state(WEB1) == HealthState.DOWN, what="web1 down")
            # web2 at 0.9 and web3 (no agent, no traffic) at 0, over their 150 Mbit/s.
            s.run_until(lambda: s.controller.admission.decisions[1].raw_load == pytest.approx(90 / 150),
                        what="load without web1")


def rendered(table: Any) -> str:
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def _admission(s: Served) -> tuple[AdmissionLevel, int] | None:
    entries = list(s.switch.entries("admission").values())
    if not entries:
        return None
    return AdmissionLevel(entries[0]["level"]), entries[0]["drop_prob"]


def test_a_silent_agent_does_not_cut_the_connections_of_a_server_that_answers_its_advisor(tmp_path, monkeypatch):
    """The agent dies, the server does not: down (no new flows) on the missed heartbeats, but
    its entries stay while its advisor passes; they go when the advisor fails too."""
    cfg = Config.model_validate({
        "health": {"period_s": 0.1, "listen_port": 0, "agents": [{"backend": "web"}],
                   "advisors": [{"service": "s1", "kind": "tcp", "timeout_s": 0.05}]},
        "services": [{"name": "s1", "id": 1, "mode": "vip", "vip": "10.0.0.1", "port": 80,
                      "backends": [{"name": "web", "id": 10, "port": 1, "mac": "02:00:00:00:00:01",
                                    "address": "10.0.2.10"}]}]})
    controller = Controller(cfg, program(tmp_path))
    health = controller.health
    monitor = health.cluster.monitor
    # The advisor's results are the test's, not real probes of an address nobody has
    monkeypatch.setattr(health.cluster.advisors, "run_due", lambda now: None)
    (advisor,) = health.plan.advisor_names[10]
    start = health.snapshot(0)[10].since
    monitor.advisor_result(10, advisor, True, start + 0.05, response_time=0.001)
    changes = health.poll(start + 1.0)                      # no heartbeat for 10 periods
    assert changes is not None and [t.new for t in changes.transitions] == [HealthState.DOWN]
    assert changes.delete_entries == [] and health.entries_kept == {10}
    assert health.down_deleting() == []                    # a take-over keeps them too
    monitor.advisor_result(10, advisor, False, start + 1.05, detail="connection refused")
    changes = health.poll(start + 1.1)                      # now the server is gone as well
    assert changes is not None and changes.delete_entries == [10] and health.entries_kept == set()
