"""The controller against a real BMv2 switch: flow lifecycle, rings under load, failures.

Each test gets a fresh simple_switch_grpc on veth pairs (topo/controller_testbed.py);
packets are sent into the client port and read on every backend port, so "no flow
remapped" means: no flow was ever seen on two backend ports.
"""

from __future__ import annotations

import random
import time

import pytest
from controller_fakes import agent_thread

from controller.app import Controller
from controller.cli import api_call
from controller.config import Config
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.dataplane.flow_key import flow_key
from controller.flow_table import pack_key
from controller.health.config import AgentHost, HealthConfig
from controller.p4runtime import P4RuntimeClient
from topo.controller_testbed import (
    ControllerTestbed,
    backend_port,
    client_flow,
    dispatcher_config,
    missing_reason,
    tcp_frame,
    udp_frame,
)

pytestmark = pytest.mark.skipif(missing_reason() is not None, reason=str(missing_reason()))
PORT_OF_BACKEND = {10 + i: backend_port(i) for i in range(3)}


@pytest.fixture
def testbed():
    with ControllerTestbed() as tb:
        yield tb


def open_flows(tb: ControllerTestbed, flows: range, seed: int = 0) -> list[tuple]:
    """SYN then ACK for each flow (the ACK confirms it: digest). Returns their keys."""
    keys = []
    for i in flows:
        src, sport = client_flow(i, seed)
        syn = tcp_frame(src, sport, "S")
        tb.wire.send(syn)
        tb.wire.send(tcp_frame(src, sport, "A"))
        keys.append(flow_key(syn))
    return keys


def data_round(tb: ControllerTestbed, flows: list[int], seed: int = 0) -> None:
    for i in flows:
        src, sport = client_flow(i, seed)
        tb.wire.send(tcp_frame(src, sport, "PA", b"data"))


def switch_flows(tb: ControllerTestbed, config: Config) -> dict[tuple, int]:
    """The `flows` table as the switch has it: key -> backend id (read by a second client)."""
    controller = Controller(config)
    client = P4RuntimeClient(config.switch.grpc_address)
    client.connect(arbitrate=False)
    try:
        return {f.key: f.backend_id for f in DispatcherTables(controller.info).read_flows(client)}
    finally:
        client.close()


def assert_consistent(tb: ControllerTestbed, expected_packets: int) -> None:
    received = tb.wire.wait_received(expected_packets)
    assert received == expected_packets, f"sent {expected_packets} packets, backends got {received}"
    split = tb.wire.split_flows()
    assert not split, f"{len(split)} flows went to two backends, e.g. {next(iter(split.values()))}"


def test_new_flows_get_entries_with_the_backend_the_switch_chose(testbed):
    config = testbed.config()
    running = testbed.run_controller(config)
    running.wait_role("primary")
    keys = open_flows(testbed, range(60))
    assert running.wait_flows(60) == 60
    assert_consistent(testbed, 120)
    installed = switch_flows(testbed, config)
    assert set(installed) == set(keys)
    for key in keys:   # the entry names the backend whose port the SYN already went to
        assert PORT_OF_BACKEND[installed[key]] == testbed.wire.port_of(key)
    assert running.controller.flows.stats.inserted == 60
    assert len(set(installed.values())) == 3, "round robin used every backend"


def test_ring_rewrites_under_load_move_no_flow(testbed):
    config = testbed.config(policy="round_robin", ring_size=64)
    running = testbed.run_controller(config)
    running.wait_role("primary")
    rng = random.Random(7)
    live: list[int] = []
    sent = 0
    names = ["b0", "b1", "b2"]
    rewrites_before = running.controller.rings[1].rewrites
    for step in range(12):
        # New flows arrive, established ones send, and the ring is rewritten meanwhile.
        new = list(range(step * 25, step * 25 + 25))
        open_flows(testbed, new)
        sent += 2 * len(new)
        live += new
        rng.shuffle(live)
        data_round(testbed, live)
        sent += len(live)
        target = names[step % 3]
        running.call("quiesce" if step % 2 == 0 else "activate", name=target)
        if step % 2 == 1:
            running.call("activate", name=names[(step - 1) % 3])
    assert running.controller.rings[1].rewrites - rewrites_before >= 10
    assert_consistent(testbed, sent)
    assert running.wait_flows(len(live)) == len(live)
    installed = switch_flows(testbed, config)
    for i in live:   # every entry agrees with where the flow's packets went all along
        key = flow_key(tcp_frame(*client_flow(i), "S"))
        assert PORT_OF_BACKEND[installed[key]] == testbed.wire.port_of(key)


def test_with_every_new_flow_colliding_no_flow_moves(testbed):
    """The one-set cache build: four half-open flows hold the only set, so every flow after
    them is stateless until its entry exists, while fb_est rewrites the ring at every poll
    and backends are quiesced and re-activated (docs/consistency.md)."""
    # Equal capacities: fb_est gives every backend slots, so each quiesce and activate moves some.
    # The fillers' SYNs come every step: a cache timeout longer than any step keeps them one
    # flow each (a silence of T_c would end them, by definition, and start new ones).
    config = testbed.config(policy="fb_est", ring_size=64, program="dispatcher_tinycache", poll_interval_ms=50,
                            cache_timeout_ms=10_000)
    running = testbed.run_controller(config)
    running.wait_role("primary")
    fillers = [tcp_frame(*client_flow(10_000 + i), "S") for i in range(4)]
    for frame in fillers:   # half-open: cached, never digested, so they hold their ways
        testbed.wire.send(frame)
    sent = len(fillers)
    generation0 = running.controller.ring_updater.generation
    live: list[int] = []
    names = ["b0", "b1", "b2"]
    for step in range(16):
        new = list(range(step * 20, step * 20 + 20))
        for i in new:   # SYN now, ACK after the next ring change: decided without state twice
            src, sport = client_flow(i)
            testbed.wire.send(tcp_frame(src, sport, "S"))
        sent += len(new)
        running.call("quiesce" if step % 2 == 0 else "activate", name=names[(step // 2) % 3])
        for i in new:
            src, sport = client_flow(i)
            testbed.wire.send(tcp_frame(src, sport, "A"))
        sent += len(new)
        live += new
        data_round(testbed, live)
        sent += len(live)
        for frame in fillers:
            testbed.wire.send(frame)
        sent += len(fillers)
        # Every packet decided without state is slow on BMv2: let it catch up (a burst beyond
        # its queue is lost before the pipeline, uncounted), and let a poll pass.
        testbed.wire.wait_received(sent, timeout=5)
        time.sleep(0.06)
    assert running.controller.ring_updater.generation - generation0 >= 8, "the ring changed under the flows"
    time.sleep(0.3)   # one more poll: the status' drop counters
    drops = {k: v for k, v in running.controller.status().drops.items() if v}
    assert drops == {}, f"the switch dropped packets: {drops}"
    assert_consistent(testbed, sent)
    events = running.controller.status().events
    assert events["cache_collision"] >= len(live) * 2, "the new flows were served without cache state"
    assert events["generation_held"] > 0
    assert running.wait_flows(len(live)) == len(live)


def test_idle_entries_are_deleted(testbed):
    config = testbed.config(idle_timeout_s=1.0)
    running = testbed.run_controller(config)
    running.wait_role("primary")
    open_flows(testbed, range(30))
    assert running.wait_flows(30) == 30
    deadline = time.monotonic() + 10
    while len(running.controller.flows.table) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(running.controller.flows.table) == 0
    assert switch_flows(testbed, config) == {}
    stats = running.controller.flows.stats
    assert stats.deleted == 30
    assert running.controller.flows.table.free_slots == running.controller.flows.table.stats_slots - 1


def test_a_restarted_controller_adopts_what_is_installed(testbed):
    config = testbed.config()
    first = testbed.run_controller(config)
    first.wait_role("primary")
    keys = open_flows(testbed, range(40))
    assert first.wait_flows(40) == 40
    first.stop()
    second = testbed.run_controller(config)
    second.wait_role("primary")
    c = second.controller
    assert c.counts.pipeline_pushes == 0, "the running pipeline is kept"
    assert c.flows.stats.adopted == 40 and len(c.flows.table) == 40
    data_round(testbed, list(range(40)))
    open_flows(testbed, range(40, 50))
    assert second.wait_flows(50) == 50
    assert c.flows.stats.inserted == 10, "only the new flows were written"
    assert_consistent(testbed, 80 + 40 + 20)
    assert {k: PORT_OF_BACKEND[b] for k, b in switch_flows(testbed, config).items() if k in keys} == \
        {k: testbed.wire.port_of(k) for k in keys}


def test_the_backup_takes_over_within_two_seconds_with_no_flow_remapped(testbed):
    config = dispatcher_config(3, grpc_port=testbed.grpc_port)
    primary = testbed.controller_process(config, election_id=10, api_port=9181, name="primary")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if api_call(primary.api, "/api/status").get("role") == "primary":
                break
        except Exception:
            pass
        time.sleep(0.1)
    else:
        pytest.fail(f"primary never came up:\n{primary.log()[-2000:]}")
    backup = testbed.controller_process(config, election_id=5, api_port=9182, name="backup")
    while api_call_quiet(backup.api).get("role") != "backup":
        assert time.monotonic() < deadline + 20, f"backup never came up:\n{backup.log()[-2000:]}"
        time.sleep(0.1)
    open_flows(testbed, range(80))
    while api_call(primary.api, "/api/status").get("flows", {}).get("active", 0) < 80:
        assert time.monotonic() < deadline + 30, "primary did not install the flows"
        time.sleep(0.1)
    primary.kill()
    killed = time.monotonic()
    while api_call_quiet(backup.api).get("role") != "primary":
        assert time.monotonic() - killed < 5, f"no take-over:\n{backup.log()[-2000:]}"
        time.sleep(0.02)
    takeover = time.monotonic() - killed
    assert takeover <= 2.0, f"take-over took {takeover:.2f} s"
    # Old flows keep their backends; new flows are installed by the new primary.
    data_round(testbed, list(range(80)))
    open_flows(testbed, range(80, 120))
    time.sleep(1.5)
    status = api_call(backup.api, "/api/status")
    assert status["flows"]["adopted"] == 80
    assert status["flows"]["active"] == 120
    assert status["controller"]["pipeline_pushes"] == 0
    assert_consistent(testbed, 160 + 80 + 80)


def api_call_quiet(url: str) -> dict:
    try:
        return api_call(url, "/api/status")
    except Exception:
        return {}


def test_a_full_table_drops_nothing_and_entries_follow_when_room_appears():
    with ControllerTestbed() as tb:
        # 64 entries and 64 statistics slots; slot 0 is shared, and an entry needs one of its
        # own (its activation lives there), so 63 flows get entries.
        config = tb.config(program="dispatcher_small", idle_timeout_s=2.0)
        running = tb.run_controller(config)
        running.wait_role("primary")
        open_flows(tb, range(100))
        assert_consistent(tb, 200)
        assert running.wait_flows(63) == 63
        fm = running.controller.flows
        deadline = time.monotonic() + 5
        while fm.overflow < 37 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(fm.table) == 63 and fm.overflow == 37, "63 installed, 37 waiting for room"
        assert fm.stats.table_full >= 1 and fm.stats.write_failures == 0
        # Keep only the overflowed flows alive: the others idle out, room appears, and the
        # waiting flows (still digesting from their cache slots) get their entries.
        waiting = [i for i in range(100)
                   if pack_key(flow_key(tcp_frame(*client_flow(i), "S"))) not in running.controller.flows.table]
        sent = 200
        for _ in range(15):
            data_round(tb, waiting)
            sent += len(waiting)
            time.sleep(0.4)
        keys = {pack_key(flow_key(tcp_frame(*client_flow(i), "S"))) for i in waiting}
        assert keys <= set(k for k, _, _ in running.controller.flows.table.items())
        assert_consistent(tb, sent)


def test_a_restarted_switch_gets_pipeline_and_entries_back(testbed):
    config = testbed.config()
    running = testbed.run_controller(config)
    running.wait_role("primary")
    keys = open_flows(testbed, range(40))
    assert running.wait_flows(40) == 40
    before = switch_flows(testbed, config)
    testbed.kill_switch()
    time.sleep(0.5)
    testbed.start_switch()
    running.wait_role("primary", timeout=20)
    c = running.controller
    assert c.counts.pipeline_pushes == 2 and c.counts.restored_flows == 40
    assert switch_flows(testbed, config) == before
    data_round(testbed, list(range(40)))
    assert_consistent(testbed, 80 + 40)
    assert {k: testbed.wire.port_of(k) for k in keys} == {k: PORT_OF_BACKEND[b] for k, b in before.items()}


def test_reactive_mode_sends_first_packets_through_the_controller(testbed):
    config = testbed.config(dispatch="reactive", protocol="udp")
    running = testbed.run_controller(config)
    running.wait_role("primary")
    for i in range(20):
        testbed.wire.send(udp_frame(*client_flow(i)))
    assert_consistent(testbed, 20)
    c = running.controller
    assert c.counts.reactive_packets == 20 and c.counts.reactive_failures == 0
    assert len(c.flows.table) == 20
    for i in range(20):   # later packets hit the entry: no more punts
        testbed.wire.send(udp_frame(*client_flow(i)))
    assert_consistent(testbed, 40)
    assert c.counts.reactive_packets == 20


def test_api_cli_and_metrics(testbed):
    config = testbed.config(api_port=9183)
    from controller.admin_api import AdminApi
    running = testbed.run_controller(config)
    api = AdminApi(running.controller, "127.0.0.1", 9183)
    api.start()
    try:
        running.wait_role("primary")
        open_flows(testbed, range(10))
        running.wait_flows(10)
        time.sleep(0.3)
        status = api_call(api.url, "/api/status")
        assert status["role"] == "primary" and status["flows"]["active"] == 10
        assert sum(b["flows"] for b in status["services"][0]["backends"]) == 10
        assert api_call(api.url, "/api/backends/b1/quiesce", {}) == {"backend": "b1", "state": "quiesced"}
        time.sleep(0.3)
        shares = {b["name"]: b["ring_share"] for b in api_call(api.url, "/api/status")["services"][0]["backends"]}
        assert shares["b1"] == 0 and abs(shares["b0"] - 0.5) < 0.01
        with pytest.raises(Exception, match="no backend named 'nope'"):
            api_call(api.url, "/api/backends/nope/drain", {})
        added = api_call(api.url, "/api/backends", {"service": "web", "backend": {
            "name": "b9", "id": 19, "port": 9, "mac": "02:00:00:00:01:09"}})
        assert added == {"added": "b9"}
        flows = api_call(api.url, "/api/flows?limit=5")
        assert len(flows) == 5 and all(f["dst"] == "10.0.0.100:80" for f in flows)
        import urllib.request
        metrics = urllib.request.urlopen(f"{api.url}/metrics").read().decode()
        assert "dispatcher_active_flows 10.0" in metrics
        assert 'dispatcher_ring_share{backend="b1",service="web"} 0.0' in metrics
        # 10 SYNs and 10 ACKs came in on the client port
        assert 'dispatcher_port_packets_total{direction="in",port="1"} 20.0' in metrics
    finally:
        api.stop()


def test_a_draining_backend_keeps_its_flows_and_leaves_after_the_last(testbed):
    config = testbed.config(idle_timeout_s=1.0)
    running = testbed.run_controller(config)
    running.wait_role("primary")
    keys = open_flows(testbed, range(30))
    assert running.wait_flows(30) == 30
    on_b0 = [i for i, k in enumerate(keys) if testbed.wire.port_of(k) == backend_port(0)]
    assert on_b0, "round robin gave b0 some flows"
    assert running.call("drain", name="b0") == {"backend": "b0", "state": "draining"}
    for _ in range(3):   # b0's flows go on reaching b0; new flows avoid it
        data_round(testbed, on_b0)
        time.sleep(0.3)
    new_keys = open_flows(testbed, range(100, 130))
    assert_consistent(testbed, 60 + 3 * len(on_b0) + 60)
    assert all(testbed.wire.port_of(k) != backend_port(0) for k in new_keys)
    assert "b0" in [b.name for b in running.controller.pool]
    deadline = time.monotonic() + 10      # no more traffic: entries idle out, b0 goes
    while "b0" in [b.name for b in running.controller.pool] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "b0" not in [b.name for b in running.controller.pool]
    assert 10 not in switch_flows(testbed, config).values()


def test_a_backend_whose_agent_stops_gets_no_new_flow(testbed):
    """Issue 11 on the switch: b0's agent stops; once the controller has seen it down, no new
    flow's packet reaches b0's port, its VIP entries are deleted, and after its agent is back
    (k good periods) new flows reach it again."""
    from controller.health.monitor import HealthState
    period = 0.2
    config = testbed.config().model_copy(update={"health": HealthConfig(
        period_s=period, recovery_periods=2, listen_port=0, agents=[AgentHost(backend="b0")])})
    running = testbed.run_controller(config)
    running.wait_role("primary")
    c = running.controller
    port = c.health.cluster.listener.port
    with agent_thread(port, 10, period) as stop:
        deadline = time.monotonic() + 5
        while c.health.counts()["accepted_heartbeat"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        keys = open_flows(testbed, range(30))
        assert running.wait_flows(30) == 30
        assert any(testbed.wire.port_of(k) == backend_port(0) for k in keys), "b0 took flows while up"
        stop.set()
        deadline = time.monotonic() + 10 * period
        while c.health.state(10) != HealthState.DOWN and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.health.state(10) == HealthState.DOWN
        time.sleep(0.1)    # the loop's turn that saw the transition has written the ring
        new_keys = open_flows(testbed, range(100, 160))
        assert_consistent(testbed, 60 + 120)
        assert not [k for k in new_keys if testbed.wire.port_of(k) == backend_port(0)], \
            "a new flow reached the down backend"
        assert running.wait_flows(60) >= 60
        deadline = time.monotonic() + 5
        while 10 in switch_flows(testbed, config).values() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 10 not in switch_flows(testbed, config).values(), "its VIP entries are deleted"
    with agent_thread(port, 10, period):
        deadline = time.monotonic() + 20 * period
        while c.health.state(10) != HealthState.UP and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.health.state(10) == HealthState.UP
        time.sleep(0.1)
        back = open_flows(testbed, range(200, 230))
        assert_consistent(testbed, 180 + 60)
        assert any(testbed.wire.port_of(k) == backend_port(0) for k in back), "b0 takes new flows again"
