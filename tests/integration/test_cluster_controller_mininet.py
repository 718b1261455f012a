"""The real controller (controller/cluster_app.py) driving two BMv2 dispatchers behind the
ECMP router (topo/multi_dispatcher.py): it pushes both pipelines, writes one configuration
and one ring to both, home entries where flows are reported, replicas once their home
activates them, and the ECMP group on a switch's failure and return; and a backup controller
that takes the running switches over from a killed primary without reprogramming them.

Needs root, Mininet and simple_switch_grpc; skips with the reason otherwise. The network is
built per test and taken down in a `finally`, failed or not; the controller's thread is
stopped first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest

from controller.cli import api_call
from controller.cluster_app import ClusterController
from controller.config import Config
from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from controller.takeover import RingEntries, read_ring
from topo.controller_testbed import ControllerProcess, RunningController, write_toml
from topo.mininet_support import free_tcp_port
from topo.multi_dispatcher import MininetEcmp, MultiDispatcherCluster
from topo.server_cluster import ClientRun, read_connection_log
from workload.connections import count_connections


@pytest.fixture
def controlled(cluster: MultiDispatcherCluster) -> Iterator[tuple[RunningController, MininetEcmp]]:
    ecmp = cluster.ecmp()
    controller = ClusterController(Config.model_validate(cluster.cluster_config()), ecmp=ecmp)
    running = RunningController(controller)
    running.start()
    try:
        wait_until(lambda: len(controller.switch_set) == cluster.spec.dispatchers, 30, "every switch in service")
        yield running, ecmp
    finally:
        running.stop()


def wait_until(done, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic()


def start_transfers(cluster: MultiDispatcherCluster):
    """3 MB transfers, 2 clients at 2 connections/s for 6 s: under way through every
    dispatcher when a test changes something 2-3 s in."""
    cluster.start_http_servers()
    return cluster.start_clients(rate=2, duration=6, size=3_000_000, request_timeout=80)


def rewrites(controller: ClusterController) -> int:
    """Ring writes the policy made (fb_est, the cluster's default), joins' rings not counted."""
    return sum(ring.rewrites for ring in controller.ring_updater.rings.values())


def served_once(cluster: MultiDispatcherCluster, runs: dict[str, ClientRun]) -> dict[str, list[str]]:
    """Every answered request matched to exactly one server's record: no connection seen by
    two servers, and as many server-side connections from each client "ip:port" as requests
    from it (a client may reuse a port once the server closed first). Returns "ip:port" ->
    the servers that logged it."""
    counted = count_connections({name: read_connection_log(path) for name, path in cluster.server_logs.items()})
    assert counted.split == [], counted.split[:5]
    where: dict[str, list[str]] = {}
    for connection in counted.connections:
        where.setdefault(connection.client, []).extend(connection.servers)
    requests = Counter(r["local"] for run in runs.values() for r in run.records if not r.get("error"))
    wrong = {c: (n, where.get(c, [])) for c, n in requests.items() if len(where.get(c, [])) != n}
    assert wrong == {}, list(wrong.items())[:5]
    return where


@pytest.mark.parametrize("cluster", [2, 3], indirect=True, ids=["2-dispatchers", "3-dispatchers"])
def test_http_through_every_dispatcher_with_the_controller(cluster, controlled):
    running, _ = controlled
    controller: ClusterController = running.controller
    cluster.start_http_servers()
    # Objects up to 1 MB: some connections outlive their entry's install and activate it, so
    # replicas are written (at 50 KB, some runs had none).
    runs = cluster.run_clients(rate=40, requests=60, cdf="fb_hadoop", max_bytes=1_000_000)
    for run in runs.values():
        assert run.summary["failed"] == 0, f"{run.client}: {run.summary['errors']}"
    where = served_once(cluster, runs)
    assert sum(len(servers) for servers in where.values()) == 120
    homes = Counter(p.home for p in controller.replicas.flows.values())
    status = controller.cluster_status()
    print(f"\n120 requests through {cluster.spec.dispatchers} dispatchers: homes {dict(homes)}, "
          f"{status.activations} activations, "
          f"{status.replicas_written} replicas, {status.cross_switch_splits} splits, "
          f"{rewrites(controller)} ring rewrites")
    assert set(homes) == {cluster.spec.dispatcher_name(k) for k in cluster.spec.dispatcher_indices()}, \
        "the router spread the connections"
    assert status.replicas_written > 0 and status.cross_switch_splits == 0


@pytest.mark.parametrize("cluster", [2, 3], indirect=True, ids=["2-dispatchers", "3-dispatchers"])
def test_a_killed_dispatcher_under_load_is_taken_out_and_brought_back(cluster, controlled):
    """disp1 is killed while 3 MB transfers run through every dispatcher; the controller sees
    its stream break, takes it out of the ECMP group and keeps writing to the others; the
    connections disp1 carried continue through them (replicas, or their identical ring).
    Restarted, disp1 is reconnected, given pipeline, configuration, ring and replicas, and put
    back in the group after the freeze.
    No connection that started before the kill fails; every one is served by one server."""
    running, ecmp = controlled
    controller: ClusterController = running.controller
    name1 = cluster.spec.dispatcher_name(1)
    clients = start_transfers(cluster)
    time.sleep(3)
    replicated_before = controller.cluster_status().replicated_flows
    kill_wall, killed = time.time(), time.monotonic()
    cluster.kill_dispatcher(1)
    kill_returned = time.monotonic()      # the kill waits for the process to be reaped
    wait_until(lambda: any(v == "remove" for _, v, _ in ecmp.changes), 10, "disp1 out of the group")
    out_at = next(at for at, verb, _ in ecmp.changes if verb == "remove")
    assert cluster.members == list(range(2, cluster.spec.dispatchers + 1)) and name1 not in controller.switch_set
    time.sleep(2)
    cluster.restart_dispatcher(1)
    restarted = time.monotonic()
    in_service_at = wait_until(lambda: name1 in controller.switch_set, 40, "disp1 back in service")
    back_at = wait_until(lambda: 1 in cluster.members, 20, "disp1 back in the ECMP group (after the freeze)")
    runs = cluster.finish_clients(clients, timeout=120)
    where = served_once(cluster, runs)
    records = [r for run in runs.values() for r in run.records]
    before = [r for r in records if r["start"] < kill_wall]
    failed_before = [r for r in before if r.get("error")]
    status = controller.cluster_status()
    print(f"\nkill, {cluster.spec.dispatchers} dispatchers: {len(records)} requests "
          f"({len(before)} started before the kill), "
          f"{sum(1 for r in records if r.get('error'))} failed ({len(failed_before)} of those before the kill); "
          f"{sum(len(s) for s in where.values())} connections each served by one server; "
          f"{replicated_before} flows replicated at the kill; "
          f"disp1 out of the group {(out_at - killed) * 1e3:.0f} ms after the kill "
          f"(the kill call, SIGKILL and reaping, took {(kill_returned - killed) * 1e3:.0f} ms); back in service "
          f"{in_service_at - restarted:.1f} s after its restart with {status.restored_replicas} replicas, in the "
          f"group {back_at - in_service_at:.1f} s later (the freeze); "
          f"{status.replicas_written} replicas, {status.own_entries} own entries, "
          f"{status.cross_switch_splits} splits in all; {rewrites(controller)} ring rewrites "
          f"({controller.ring_updater.spared_changes} slot changes spared by rule 5)")
    assert before and failed_before == [], failed_before[:3]
    assert sum(len(servers) for servers in where.values()) == len(records)
    assert out_at - killed < 1.0
    assert all(cluster.dispatcher(k).alive() for k in cluster.spec.dispatcher_indices())


def switch_rings(cluster: MultiDispatcherCluster, info: P4InfoIndex) -> dict[str, RingEntries]:
    """Every dispatcher's ring as it is, read without taking part in arbitration."""
    rings = {}
    for k in cluster.spec.dispatcher_indices():
        client = P4RuntimeClient(cluster.spec.grpc_address_of(k), cluster.spec.device_id)
        try:
            client.connect(arbitrate=False)
            rings[cluster.spec.dispatcher_name(k)] = read_ring(client, info)
        finally:
            client.close()
    return rings


def test_the_backup_controller_takes_over_running_switches_under_load(cluster, tmp_path):
    """The primary, a process of its own, serves both dispatchers; a backup (lower election id,
    in this process, driving the ECMP group) waits. 3 MB transfers run through both; the
    primary is SIGKILLed. The backup becomes primary on every switch and adopts them: no
    pipeline push (flow caches, entries and rings stay), the primary's entries and ring become
    its state, replicas it had not written are written, and the flows the primary never
    installed are installed. No transfer fails; every connection is served by one server."""
    config = cluster.cluster_config()
    primary = ControllerProcess(write_toml(config, tmp_path / "primary.toml"), election_id=10,
                                api_port=free_tcp_port(), log_path=tmp_path / "primary.log")
    backup_config = config | {"switches": [s | {"election_id": 5} for s in config["switches"]]}
    ecmp = cluster.ecmp()
    backup = RunningController(ClusterController(Config.model_validate(backup_config), ecmp=ecmp))
    controller: ClusterController = backup.controller
    names = sorted(cluster.spec.dispatcher_name(k) for k in cluster.spec.dispatcher_indices())

    def primary_cluster() -> dict:
        try:
            return api_call(primary.api, "/api/status").get("cluster") or {}
        except Exception:
            return {}

    primary.start()
    try:
        wait_until(lambda: sorted(primary_cluster().get("in_service", [])) == names, 40,
                   "the primary serving both switches")
        backup.start()
        backup.wait_role("backup", 20)
        clients = start_transfers(cluster)
        time.sleep(3)
        at_kill = primary_cluster()
        kill_wall, killed = time.time(), time.monotonic()
        primary.kill()
        rings_at_kill = switch_rings(cluster, controller.info)
        taken_at = wait_until(lambda: len(controller.switch_set) == len(names), 15, "the backup serving both switches")
        adopted_ring = {(1, slot): int(b) for slot, b in enumerate(controller.rings[1].slots)}   # frozen a while
        rings_after = switch_rings(cluster, controller.info)
        runs = cluster.finish_clients(clients, timeout=120)
        status = controller.cluster_status()
        counts = controller.flows.stats
    finally:
        backup.stop()
        primary.stop()
    where = served_once(cluster, runs)
    records = [r for run in runs.values() for r in run.records]
    before = [r for r in records if r["start"] < kill_wall]
    failed = [r for r in records if r.get("error")]
    pushes = sum(s.pipeline_pushes for s in controller.supervisors.values())
    newest: dict[tuple[int, int], tuple[int, int]] = {}
    for ring in rings_at_kill.values():
        for slot, (backend, generation) in ring.items():
            if generation > newest.get(slot, (0, -1))[1]:
                newest[slot] = (backend, generation)
    print(f"\nbackup take-over, {len(names)} dispatchers: the primary had {at_kill.get('recorded_flows')} flows "
          f"recorded ({at_kill.get('replicated_flows')} replicated); the backup served both switches "
          f"{(taken_at - killed) * 1e3:.0f} ms after the SIGKILL with {pushes} pipeline pushes, "
          f"{status.adopted_flows} flows adopted, {status.confirmed_activations} activations confirmed by "
          f"their counters ({status.unconfirmed_flows} left unconfirmed), {counts.inserted} home entries and "
          f"{status.replicas_written + status.restored_replicas} replicas written after it; {len(records)} requests "
          f"({len(before)} started before the kill), {len(failed)} failed; "
          f"{sum(len(s) for s in where.values())} connections each served by one server; "
          f"{status.cross_switch_splits} splits; ring slots the switches differed in at the kill: "
          f"{sum(1 for slot, e in newest.items() if any(r.get(slot, e)[0] != e[0] for r in rings_at_kill.values()))}")
    assert pushes == 0 and status.adopted_switches == names, "the switches were reprogrammed, not adopted"
    assert status.adopted_flows > 0
    # The ring the backup took is the switches': per slot, the newest generation's backend (a
    # switch may lag the primary's last write), and every switch decides with it after the take-over.
    assert {slot: backend for slot, (backend, _) in newest.items()} == adopted_ring
    assert all({slot: b for slot, (b, _) in ring.items()} == adopted_ring for ring in rings_after.values())
    assert before and failed == [], failed[:3]
    assert sum(len(servers) for servers in where.values()) == len(records)


def test_a_dispatcher_taken_out_and_put_back_on_purpose_under_load(cluster, controlled):
    """The operator's maintenance: `switches out` under load waits for the freeze (every flow
    recorded before it replicated), then takes disp1 out of the group; its connections
    continue through disp2 on their backends. `switches in` puts it back after another
    freeze. No transfer fails; every connection is served by one server."""
    running, ecmp = controlled
    controller: ClusterController = running.controller
    name1 = cluster.spec.dispatcher_name(1)
    clients = start_transfers(cluster)
    time.sleep(2.5)
    asked = time.monotonic()
    assert running.call("switch_out", name=name1)["state"] in ("leaving", "out")
    out_at = wait_until(lambda: 1 not in cluster.members, 20, "disp1 out of the group after the freeze")
    time.sleep(1.5)
    asked_in = time.monotonic()
    running.call("switch_in", name=name1)
    in_at = wait_until(lambda: 1 in cluster.members, 20, "disp1 back in the group after the freeze")
    runs = cluster.finish_clients(clients, timeout=120)
    where = served_once(cluster, runs)
    records = [r for run in runs.values() for r in run.records]
    failed = [r for r in records if r.get("error")]
    status = controller.cluster_status()
    print(f"\nplanned out and in, {cluster.spec.dispatchers} dispatchers: out of the group "
          f"{(out_at - asked) * 1e3:.0f} ms after the command (the freeze), back in {(in_at - asked_in) * 1e3:.0f} ms "
          f"after; {len(records)} requests, {len(failed)} failed; {sum(len(s) for s in where.values())} connections "
          f"each served by one server; {status.replicas_written} replicas, {status.own_entries} own entries, "
          f"{status.cross_switch_splits} splits, {status.freezes} freezes")
    assert failed == [], failed[:3]
    assert sum(len(servers) for servers in where.values()) == len(records)
    assert name1 in controller.switch_set and status.held_out == [] and status.cross_switch_splits == 0
    assert out_at - asked >= 1.5, "out of the group before T_c + digest_retry"
