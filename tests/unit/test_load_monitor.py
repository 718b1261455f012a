"""Counters in, policy view out: what the controller's policies are told about the cluster."""

from __future__ import annotations

import numpy as np
import pytest

from controller.backend_pool import BackendPool, BackendState
from controller.config import Config
from controller.dataplane.dispatcher_tables import CounterValue
from controller.dataplane.flow_digest import FlowDigest
from controller.flow_manager import InstallEvent
from controller.load_monitor import LoadMonitor

CONFIG = Config.model_validate({"services": [{
    "name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 80, "policy": "fb_est",
    "backends": [{"name": "a", "id": 10, "port": 2, "mac": "02:00:00:00:00:0a", "capacity_mbps": 80},
                 {"name": "b", "id": 11, "port": 3, "mac": "02:00:00:00:00:0b", "capacity_mbps": 8}]}]})


def installed(slot: int, backend: int, rtt_us: int = 2000) -> InstallEvent:
    digest = FlowDigest(slot, 5, 6, 1000 + slot, 80, 1, backend, 0, 0, 0x10, rtt_us, 0x04)
    return InstallEvent(b"k%d" % slot, backend, slot, digest)


def test_per_flow_bytes_become_per_backend_load_and_removed_flows_leave_it():
    monitor = LoadMonitor(stats_slots=64, track_flows=True)
    monitor.update(0.0, {}, {})
    for slot, backend in ((1, 10), (2, 10), (3, 11)):
        monitor.flow_installed(installed(slot, backend))
    monitor.flow_installed(installed(4, 11))
    monitor.flow_removed(b"k4", 11, 4)          # ended before any poll saw it
    # 1 s later: slots 1 and 2 sent 100 kB each, slot 3 sent 10 kB.
    stats = {1: CounterValue(70, 100_000), 2: CounterValue(70, 100_000), 3: CounterValue(7, 10_000)}
    monitor.update(1.0, {10: CounterValue(140, 200_000), 11: CounterValue(7, 10_000)}, stats)
    load = monitor.estimates.server_load()
    assert load[10] > 5 * load[11] > 0
    assert monitor.backend_rate[10] == pytest.approx(200_000)
    assert monitor.new_flows[10] == 2 and monitor.new_flows[11] == 2
    monitor.flow_removed(b"k1", 10, 1)
    monitor.flow_removed(b"k2", 10, 2)
    assert monitor.estimates.server_load()[10] == 0


def test_view_scales_capacity_to_what_the_switch_sees_and_expects_new_load():
    pool = BackendPool(CONFIG)
    service = CONFIG.services[0]
    monitor = LoadMonitor(stats_slots=64, track_flows=False)
    monitor.update(0.0, {}, None)
    for slot in range(1, 5):
        monitor.flow_installed(installed(slot, 10))
    monitor.update(0.1, {10: CounterValue(10, 4_000)}, None)
    active = np.zeros(1024, dtype=np.int64)
    active[10] = 4
    view = monitor.view(pool.of_service(1), active, 0.1, service.load_visibility)
    assert view.capacity[0] == pytest.approx(80 * 125_000 * 66 / 2896)   # DSR: ACK bytes
    assert view.incoming_flows == 4
    assert view.incoming_rate == pytest.approx(4 * 40_000 / 4)   # 4 new flows x mean per flow


def test_view_takes_per_backend_ratios_health_and_the_agents_metrics():
    """Issue 11: capacities scaled per backend (learned ratios), health anded with the operator's
    state, nd's host and forward metrics passed through."""
    pool = BackendPool(CONFIG)
    monitor = LoadMonitor(stats_slots=64, track_flows=False)
    monitor.update(0.0, {}, None)
    active = np.zeros(1024, dtype=np.int64)
    view = monitor.view(pool.of_service(1), active, 0.1, visibility=np.array([0.02, 0.5]),
                        healthy=np.array([False, True]), host_metric=np.array([0.3, np.nan]),
                        response_time=np.array([0.01, 0.2]))
    assert view.capacity.tolist() == pytest.approx([80 * 125_000 * 0.02, 8 * 125_000 * 0.5])
    assert view.available.tolist() == [False, True]
    assert view.host_metric is not None and view.host_metric[0] == 0.3 and np.isnan(view.host_metric[1])
    assert view.response_time.tolist() == [0.01, 0.2]
    pool.set_state("b", BackendState.QUIESCED)
    view = monitor.view(pool.of_service(1), active, 0.1, healthy=np.array([True, True]))
    assert view.available.tolist() == [True, False], "healthy does not override the operator's quiesce"
