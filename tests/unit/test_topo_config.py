"""The emulated clusters' address and port plans and the controller configurations they
generate: valid for controller/config.py, consistent with the topology. Needs no Mininet."""

from __future__ import annotations

from collections import Counter

import pytest

from controller.config import Config
from controller.dataplane.constants import CPU_PORT
from topo.capture_cluster import CaptureClusterSpec
from topo.capture_cluster import controller_config as capture_config
from topo.server_cluster import VIP_MAC, ServerClusterSpec
from topo.server_cluster import controller_config as server_config
from topo.toolchain import BUILD_DIR


@pytest.mark.parametrize("clients,capacities", [(1, (10.0,)), (2, (20.0, 10.0, 5.0)), (30, (1.0,) * 40)])
def test_server_cluster_config_is_valid_and_matches_the_plan(clients, capacities):
    spec = ServerClusterSpec(clients=clients, capacities_mbit=capacities, grpc_port=50001)
    config = Config.model_validate(server_config(spec))
    assert config.switch.grpc_address == "127.0.0.1:50001"
    (service,) = config.services
    assert (service.mode, service.vip, service.port, service.forwarding) == ("vip", "10.0.0.100", 80, "dsr")
    assert [b.name for b in service.backends] == [f"web{j}" for j in range(1, len(capacities) + 1)]
    assert [b.capacity_mbps for b in service.backends] == list(capacities)
    # weighted_round_robin in the demo weighs by capacity, as an operator would configure it
    assert [b.weight for b in service.backends] == list(capacities)
    client_ports = [spec.client_port(i) for i in spec.client_indices()]
    backend_ports = [b.port for b in service.backends]
    # Every host on its own switch port, none the CPU port.
    assert len(set(client_ports + backend_ports)) == clients + len(capacities)
    assert CPU_PORT not in client_ports + backend_ports
    # DSR rewrites the destination MAC to the backend's dispatcher-facing interface.
    assert [b.mac for b in service.backends] == [spec.backend_mac(j, 0) for j in spec.backend_indices()]
    macs = ([spec.client_mac(i, s) for i in spec.client_indices() for s in (0, 1)]
            + [spec.backend_mac(j, s) for j in spec.backend_indices() for s in (0, 1)] + [VIP_MAC])
    assert len(set(macs)) == len(macs)
    assert all(int(m.split(":")[0], 16) & 0x03 == 0x02 for m in macs), "locally administered unicast"


def test_server_cluster_addresses_stay_out_of_the_vip():
    spec = ServerClusterSpec(clients=250, capacities_mbit=(1.0,) * 250)
    addresses = {spec.client_address(i) for i in spec.client_indices()} | \
                {spec.backend_address(j) for j in spec.backend_indices()}
    assert len(addresses) == 500 and spec.vip not in addresses


def test_minimal_forward_ties_each_client_to_one_backend():
    spec = ServerClusterSpec(clients=5, capacities_mbit=(10.0, 10.0), program="minimal_forward")
    assert spec.minimal_forward_ports() == {1: 6, 2: 7, 3: 6, 4: 7, 5: 6}
    # The frame is not rewritten, so the client addresses the VIP to its backend's MAC.
    assert spec.vip_mac_for_client(2) == spec.backend_mac(2, 0)
    assert ServerClusterSpec().vip_mac_for_client(1) == VIP_MAC


def test_bad_specs_are_refused():
    with pytest.raises(ValueError):
        ServerClusterSpec(clients=0)
    with pytest.raises(ValueError):
        ServerClusterSpec(capacities_mbit=(10.0, 2000.0))
    with pytest.raises(ValueError):
        CaptureClusterSpec(probes=0)


def test_capture_cluster_config_is_valid_and_matches_the_plan():
    spec = CaptureClusterSpec(probes=4, grpc_port=50002)
    config = Config.model_validate(capture_config(spec))
    (service,) = config.services
    assert (service.mode, service.tap_ports, service.forwarding) == ("capture", [1], "capture")
    assert [(b.name, b.port) for b in service.backends] == [(f"probe{k}", k + 1) for k in range(1, 5)]
    assert spec.tap_port not in [b.port for b in service.backends]


@pytest.mark.skipif(not (BUILD_DIR / "dispatcher.p4info.txtpb").exists(),
                    reason="build/dispatcher.p4info.txtpb not built")
def test_static_configuration_weights_the_ring_by_configured_weight():
    from controller.dataplane.dispatcher_tables import DispatcherTables
    from controller.p4runtime import P4InfoIndex
    from controller.p4runtime import entities as ent
    from topo.static_pipeline import dispatcher_updates

    info = P4InfoIndex.load(BUILD_DIR / "dispatcher.p4info.txtpb")
    spec = ServerClusterSpec(capacities_mbit=(20.0, 10.0, 5.0), ring_size=1024)
    updates = dispatcher_updates(DispatcherTables(info), Config.model_validate(server_config(spec)))
    ring_table = info.table("dispatch_ring").preamble.id
    ring = Counter()
    for u in updates:
        entry = u.entity.table_entry
        if u.entity.WhichOneof("entity") == "table_entry" and entry.table_id == ring_table:
            ring[ent.decode_action(info, entry)[1]["backend_id"]] += 1
    assert sum(ring.values()) == 1024
    assert ring[10] == pytest.approx(1024 * 4 / 7, abs=1)
    assert ring[11] == pytest.approx(1024 * 2 / 7, abs=1)
    assert ring[12] == pytest.approx(1024 * 1 / 7, abs=1)
