"""The several-dispatcher cluster's address and port plan (topo/multi_dispatcher.py): one
controller configuration fits every switch, ports and MACs never collide, the ECMP group
command names the right next hops. Needs no Mininet."""

from __future__ import annotations

import pytest

from controller.config import Config
from controller.dataplane.constants import CPU_PORT
from topo.multi_dispatcher import (
    ROUTER_CLIENT_PORT_BASE,
    MultiDispatcherSpec,
    nexthop_group_command,
    per_process_prefix,
)
from topo.server_cluster import VIP_MAC, controller_config


@pytest.mark.parametrize("dispatchers,clients,backends", [(1, 1, 1), (2, 2, 3), (3, 4, 3), (8, 30, 40)])
def test_one_configuration_fits_every_switch(dispatchers, clients, backends):
    spec = MultiDispatcherSpec(dispatchers=dispatchers, clients=clients, capacities_mbit=(10.0,) * backends)
    config = Config.model_validate(controller_config(spec))
    (service,) = config.services
    ports = [b.port for b in service.backends]
    assert ports == [spec.backend_port(j) for j in spec.backend_indices()]
    # The uplink and the backends on distinct ports, none the CPU port, the same on every switch.
    assert len(set(ports + [spec.UPLINK_PORT])) == backends + 1
    assert CPU_PORT not in ports + [spec.UPLINK_PORT]
    assert {spec.client_port(i) for i in spec.client_indices()} == {spec.UPLINK_PORT}
    # A backend's interface towards each dispatcher: distinct, and never its return path eth1.
    for j in spec.backend_indices():
        intfs = [spec.backend_dispatcher_intf(j, k) for k in spec.dispatcher_indices()]
        assert len(set(intfs)) == dispatchers and 1 not in intfs
        assert intfs[0] == 0
    # The router's interfaces and MACs: one per dispatcher and per client, no two alike.
    router_ports = ([spec.router_dispatcher_port(k) for k in spec.dispatcher_indices()]
                    + [spec.router_client_port(i) for i in spec.client_indices()])
    assert len(set(router_ports)) == len(router_ports)
    assert all(len(f"ecmp1-eth{p}") <= 15 for p in router_ports), "Linux interface names"
    macs = ([spec.router_mac(p) for p in router_ports]
            + [spec.client_mac(i, s) for i in spec.client_indices() for s in (0, 1)]
            + [spec.backend_mac(j, s) for j in spec.backend_indices() for s in (0, 1)] + [VIP_MAC])
    assert len(set(macs)) == len(macs)
    assert all(int(m.split(":")[0], 16) & 0x03 == 0x02 for m in macs), "locally administered unicast"
    # Clients address the VIP to their router interface.
    assert spec.vip_mac_for_client(1) == spec.router_mac(ROUTER_CLIENT_PORT_BASE + 1)


def test_every_switch_has_ports_of_its_own():
    spec = MultiDispatcherSpec(dispatchers=3, grpc_port=50001, thrift_port=51001)
    assert [spec.grpc_address_of(k) for k in (1, 2, 3)] == [f"127.0.0.1:{50001 + k}" for k in range(3)]
    assert [spec.thrift_port_of(k) for k in (1, 2, 3)] == [51001, 51002, 51003]
    given = MultiDispatcherSpec(dispatchers=2, switch_ports=((6001, 7001), (6002, 7002)))
    assert given.grpc_port_of(2) == 6002 and given.thrift_port_of(1) == 7001
    with pytest.raises(ValueError, match="one .grpc, thrift. pair per dispatcher"):
        MultiDispatcherSpec(dispatchers=3, switch_ports=((6001, 7001),))
    with pytest.raises(ValueError, match="ports of its own"):
        MultiDispatcherSpec(dispatchers=2, switch_ports=((6001, 7001), (6001, 7002)))


def test_switch_names_of_the_process_own_fit_interface_names():
    spec = MultiDispatcherSpec(dispatchers=8, capacities_mbit=(1.0,) * 40, switch_prefix=per_process_prefix())
    names = [spec.dispatcher_name(k) for k in spec.dispatcher_indices()]
    assert len(set(names)) == 8 and all(n.startswith(per_process_prefix()) for n in names)
    assert all(len(f"{n}-eth{spec.backend_port(40)}") <= 15 for n in names)
    assert MultiDispatcherSpec().dispatcher_name(2) == "disp2"


@pytest.mark.parametrize("bad", [{"dispatchers": 0}, {"dispatchers": 9}, {"program": "minimal_forward"},
                                 {"switch_prefix": "averylongprefix"}])
def test_specs_it_cannot_build_are_refused(bad):
    with pytest.raises(ValueError):
        MultiDispatcherSpec(**bad)


def test_the_ecmp_group_command():
    spec = MultiDispatcherSpec(dispatchers=3)
    assert nexthop_group_command(spec, [3, 1, 2], create=True) == (
        "ip nexthop add id 100 group 1/2/3 type resilient buckets 64 idle_timer 0")
    assert nexthop_group_command(spec, [2], create=False).startswith("ip nexthop replace id 100 group 2 ")
    with pytest.raises(ValueError, match="at least one"):
        nexthop_group_command(spec, [], create=False)
    with pytest.raises(ValueError, match="no such"):
        nexthop_group_command(spec, [4], create=False)


def test_one_controller_configuration_names_every_dispatcher(tmp_path):
    from topo.multi_dispatcher import MultiDispatcherCluster
    spec = MultiDispatcherSpec(dispatchers=3, clients=2, capacities_mbit=(10.0, 10.0))
    config = Config.model_validate(MultiDispatcherCluster(spec, tmp_path).cluster_config())
    assert config.several_switches
    assert [(s.name, s.grpc_address) for s in config.dispatchers] == \
           [(spec.dispatcher_name(k), spec.grpc_address_of(k)) for k in (1, 2, 3)]
