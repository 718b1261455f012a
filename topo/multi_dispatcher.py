"""Several BMv2 dispatchers behind an ECMP stage, sharing one server cluster (issue 15).

    cl1 ... clC ──(eth0)── ecmp1 ──(eth<k>)── disp<k> (BMv2, k = 1..N) ──── web1 ... webM
         │               (Linux router,         port 1: from ecmp1           │
         │                resilient multipath)  port 1+j: web<j>              │
         └────(eth1)──── ret1 (Linux bridge) ───────────────────────(eth1)────┘   return path

The ECMP stage is a Linux router in a namespace of its own (a Mininet host): one /32 route
to the VIP through a *resilient* next-hop group with one next hop per dispatcher, hashing
on the 5-tuple (`fib_multipath_hash_policy=1`). Resilient, because a plain multipath route
rehashes every flow when a member goes or comes back (hash-threshold: the boundaries
between members shift), while a resilient group moves only the buckets of the member that
changed; docs/multiswitch.md counts on moves being few, not on their absence.

Every dispatcher has the same port plan (port 1 from the router, port 1+j to backend j),
and backend j has the same MAC on every dispatcher-facing interface, so one controller
configuration fits every switch: same services, same backends, same ports, same rings.
Backends keep eth0 (towards disp1) and eth1 (return path) as in topo/server_cluster.py and
get eth<k> towards disp<k> for k >= 2; the VIP on lo takes packets on any of them.

Clients address VIP frames to the router's MAC (a permanent neighbour entry, no ARP), the
router addresses them to `VIP_MAC` on every dispatcher-facing interface (permanent too);
the dispatchers rewrite the destination MAC to the backend's, as in the single-switch
cluster. Responses go back over the return bridge and never touch the router or a switch.

Taking a dispatcher out of the group (`set_ecmp_members`) is how the controller, or a
test, moves its share of traffic to the others; killing its process alone does not (the
veth stays up, and Linux would keep sending to it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from topo.mininet_support import checked_cmd, set_sysctls
from topo.server_cluster import (
    RETURN_BRIDGE,
    RETURN_PREFIX_LEN,
    VIP_MAC,
    ServerCluster,
    ServerClusterSpec,
    controller_config,
)
from topo.static_pipeline import push_pipeline

log = logging.getLogger(__name__)

ROUTER = "ecmp1"
ROUTER_CLIENT_PORT_BASE = 100       # client i on the router's eth<100+i>; dispatcher k on eth<k>
GROUP_ID = 100                      # the next-hop group; members are next hops 1..N
RESILIENT_BUCKETS = 64
MAX_DISPATCHERS = 8
IFNAMSIZ = 15                       # Linux interface names: at most 15 characters


def per_process_prefix() -> str:
    """Switch names of this process's own (`m<pid>d1`, ...), as topo/bmv2_testbed.py does."""
    return f"m{os.getpid() % 100_000}d"


@dataclass(frozen=True)
class MultiDispatcherSpec(ServerClusterSpec):
    """A ServerClusterSpec with N dispatchers; the backends, clients, VIP and controller
    configuration are the single-switch cluster's, except the ports (one plan for every
    switch) and one (gRPC, thrift) port pair per switch."""
    dispatchers: int = 2
    switch_ports: tuple[tuple[int, int], ...] = ()    # (grpc, thrift) per dispatcher; () -> 9559+k-1, 9090+k-1
    # The switches' ports are veth ends in the root namespace, named after the switch
    # (`<name>-eth<port>`): a prefix of the run's own (per_process_prefix()) keeps two runs,
    # or this one and a demo, from meeting on a name. Hosts' interfaces are in their own
    # namespaces and need none.
    switch_prefix: str = "disp"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.dispatchers <= MAX_DISPATCHERS:
            raise ValueError(f"1 to {MAX_DISPATCHERS} dispatchers")
        if self.switch_ports and len(self.switch_ports) != self.dispatchers:
            raise ValueError("switch_ports needs one (grpc, thrift) pair per dispatcher")
        ports = [p for pair in self.all_switch_ports() for p in pair]
        if len(set(ports)) != len(ports):
            raise ValueError(f"every switch needs gRPC and thrift ports of its own: {ports}")
        if self.program != "dispatcher":
            raise ValueError("several dispatchers run the dispatcher program only")
        if self.health is not None:
            raise ValueError("health (agents, management path) is not built for several dispatchers yet")
        longest = f"{self.dispatcher_name(self.dispatchers)}-eth{self.backend_port(self.backends)}"
        if len(longest) > IFNAMSIZ:
            raise ValueError(f"switch prefix {self.switch_prefix!r}: interface names like {longest!r} must fit "
                             f"Linux's {IFNAMSIZ} characters")

    # ---- switches ------------------------------------------------------------------------

    def dispatcher_indices(self) -> range:
        return range(1, self.dispatchers + 1)

    def dispatcher_name(self, k: int) -> str:
        return f"{self.switch_prefix}{k}"

    def all_switch_ports(self) -> list[tuple[int, int]]:
        if self.switch_ports:
            return list(self.switch_ports)
        return [(self.grpc_port + k - 1, self.thrift_port + k - 1) for k in self.dispatcher_indices()]

    def grpc_port_of(self, k: int) -> int:
        return self.all_switch_ports()[k - 1][0]

    def thrift_port_of(self, k: int) -> int:
        return self.all_switch_ports()[k - 1][1]

    def grpc_address_of(self, k: int) -> str:
        return f"127.0.0.1:{self.grpc_port_of(k)}"

    # ---- the port plan, the same on every dispatcher ----------------------------------------

    UPLINK_PORT = 1                   # every dispatcher's port from the router

    def client_port(self, i: int) -> int:
        """Every client enters every dispatcher through the router's link."""
        return self.UPLINK_PORT

    def backend_port(self, j: int) -> int:
        return self.UPLINK_PORT + j

    def backend_dispatcher_intf(self, j: int, k: int) -> int:
        """Backend j's interface number towards dispatcher k: eth0 for disp1 (as in the
        single-switch cluster, eth1 being the return path), eth<k> for the others."""
        return 0 if k == 1 else k

    # ---- the router ------------------------------------------------------------------------

    def router_client_port(self, i: int) -> int:
        return ROUTER_CLIENT_PORT_BASE + i

    def router_dispatcher_port(self, k: int) -> int:
        return k

    def router_mac(self, port: int) -> str:
        return f"02:00:00:03:{port >> 8:02x}:{port & 0xff:02x}"

    def vip_mac_for_client(self, i: int) -> str:
        return self.router_mac(self.router_client_port(i))


def nexthop_group_command(spec: MultiDispatcherSpec, members: Sequence[int], create: bool) -> str:
    """The `ip nexthop` command that makes the VIP's group the dispatchers `members`."""
    if not members:
        raise ValueError("an ECMP group needs at least one dispatcher")
    if any(k not in spec.dispatcher_indices() for k in members):
        raise ValueError(f"no such dispatchers: {sorted(set(members) - set(spec.dispatcher_indices()))}")
    group = "/".join(str(spec.router_dispatcher_port(k)) for k in sorted(set(members)))
    verb = "add" if create else "replace"
    return (f"ip nexthop {verb} id {GROUP_ID} group {group} type resilient "
            f"buckets {RESILIENT_BUCKETS} idle_timer 0")


def build_topo(spec: MultiDispatcherSpec, workdir: Path):
    from mininet.topo import Topo

    from topo.mininet_bmv2 import Bmv2P4RuntimeSwitch
    from topo.mininet_nodes import KernelBridge, QuietLink, ShapedLink

    topo = Topo()
    topo.addHost(ROUTER, ip=None)
    topo.addSwitch(RETURN_BRIDGE, cls=KernelBridge)
    for k in spec.dispatcher_indices():
        name = spec.dispatcher_name(k)
        topo.addSwitch(name, cls=Bmv2P4RuntimeSwitch, grpc_port=spec.grpc_port_of(k),
                       thrift_port=spec.thrift_port_of(k), device_id=spec.device_id,
                       output_file=workdir / f"{name}-bmv2.out")
        port = spec.router_dispatcher_port(k)
        topo.addLink(ROUTER, name, port1=port, port2=spec.UPLINK_PORT, cls=QuietLink,
                     addr1=spec.router_mac(port))
    for i in spec.client_indices():
        name = spec.client_name(i)
        port = spec.router_client_port(i)
        topo.addHost(name, ip=None)
        topo.addLink(name, ROUTER, port1=0, port2=port, cls=QuietLink, addr1=spec.client_mac(i, 0),
                     addr2=spec.router_mac(port))
        topo.addLink(name, RETURN_BRIDGE, port1=1, cls=QuietLink, addr1=spec.client_mac(i, 1))
    for j in spec.backend_indices():
        name = spec.backend_name(j)
        topo.addHost(name, ip=None)
        for k in spec.dispatcher_indices():
            # One MAC on every dispatcher-facing interface: the same `backends` entry fits all switches.
            topo.addLink(name, spec.dispatcher_name(k), port1=spec.backend_dispatcher_intf(j, k),
                         port2=spec.backend_port(j), cls=QuietLink, addr1=spec.backend_mac(j, 0))
        if spec.shape_backends:
            topo.addLink(name, RETURN_BRIDGE, port1=1, cls=ShapedLink, addr1=spec.backend_mac(j, 1),
                         params1={"bw": spec.capacities_mbit[j - 1], "use_tbf": True, "latency_ms": 50})
        else:
            topo.addLink(name, RETURN_BRIDGE, port1=1, cls=QuietLink, addr1=spec.backend_mac(j, 1))
    return topo


class MultiDispatcherCluster(ServerCluster):
    """The running cluster: `with MultiDispatcherCluster(spec, workdir) as cluster:`. Servers,
    clients and their records are ServerCluster's; what differs is the network and that
    there are several switches."""

    spec: MultiDispatcherSpec

    def __init__(self, spec: MultiDispatcherSpec, workdir: Path) -> None:
        super().__init__(spec, workdir)
        self.members: list[int] = []          # dispatchers in the ECMP group now

    def node_names(self) -> list[str]:
        s = self.spec
        return ([s.dispatcher_name(k) for k in s.dispatcher_indices()] + [ROUTER, RETURN_BRIDGE]
                + [s.client_name(i) for i in s.client_indices()]
                + [s.backend_name(j) for j in s.backend_indices()])

    def build_topo(self):
        return build_topo(self.spec, self.workdir)

    def controller_config(self) -> dict:
        """The configuration of every switch (the `[switch]` address names disp1's)."""
        return controller_config(self.spec)

    def switch_config(self, k: int) -> dict:
        """controller_config() addressed to dispatcher k."""
        config = self.controller_config()
        config["switch"] = config["switch"] | {"grpc_address": self.spec.grpc_address_of(k)}
        return config

    def cluster_config(self) -> dict:
        """One controller for every dispatcher: `[[switches]]` named after them, in place of `[switch]`."""
        config = self.controller_config()
        del config["switch"]
        config["switches"] = [{"name": self.spec.dispatcher_name(k), "grpc_address": self.spec.grpc_address_of(k),
                               "device_id": self.spec.device_id, "program": "dispatcher"}
                              for k in self.spec.dispatcher_indices()]
        return config

    def ecmp(self) -> MininetEcmp:
        """The ECMP group for a controller to drive, its switches named as cluster_config() names them."""
        return MininetEcmp(self, {self.spec.dispatcher_name(k): k for k in self.spec.dispatcher_indices()})

    def configure_hosts(self) -> None:
        s = self.spec
        for i in s.client_indices():
            self.configure_client(i)      # the VIP to the router's MAC (spec.vip_mac_for_client)
        for j in s.backend_indices():
            host = self.host(s.backend_name(j))
            intfs = [f"{host.name}-eth{s.backend_dispatcher_intf(j, k)}" for k in s.dispatcher_indices()]
            sysctls: dict[str, int] = {"net.ipv4.conf.default.rp_filter": 0}
            for scope in ("all", f"{host.name}-eth1", *intfs):
                sysctls |= {f"net.ipv4.conf.{scope}.arp_ignore": 1, f"net.ipv4.conf.{scope}.arp_announce": 2,
                            f"net.ipv4.conf.{scope}.rp_filter": 0}
            set_sysctls(host, sysctls)
            checked_cmd(host, f"ip addr add {s.vip}/32 dev lo")
            checked_cmd(host, f"ip addr add {s.backend_address(j)}/{RETURN_PREFIX_LEN} dev {host.name}-eth1")
        self._configure_router()

    def _configure_router(self) -> None:
        s = self.spec
        router = self.host(ROUTER)
        intfs = [f"{ROUTER}-eth{s.router_dispatcher_port(k)}" for k in s.dispatcher_indices()]
        intfs += [f"{ROUTER}-eth{s.router_client_port(i)}" for i in s.client_indices()]
        sysctls: dict[str, int] = {"net.ipv4.ip_forward": 1, "net.ipv4.fib_multipath_hash_policy": 1,
                                   "net.ipv4.conf.default.rp_filter": 0}
        for scope in ("all", *intfs):
            # No redirects: the clients' next hop is deliberately this router, whatever their subnet.
            sysctls |= {f"net.ipv4.conf.{scope}.rp_filter": 0, f"net.ipv4.conf.{scope}.send_redirects": 0,
                        f"net.ipv4.conf.{scope}.forwarding": 1}
        set_sysctls(router, sysctls)
        for k in s.dispatcher_indices():
            intf = f"{ROUTER}-eth{s.router_dispatcher_port(k)}"
            checked_cmd(router, f"ip neigh replace {s.vip} lladdr {VIP_MAC} dev {intf} nud permanent")
            checked_cmd(router, f"ip nexthop add id {s.router_dispatcher_port(k)} dev {intf}")
        checked_cmd(router, nexthop_group_command(s, list(s.dispatcher_indices()), create=True))
        checked_cmd(router, f"ip route add {s.vip}/32 nhid {GROUP_ID}")
        self.members = list(s.dispatcher_indices())

    # ---- the ECMP group and the switches ------------------------------------------------------

    def set_ecmp_members(self, members: Sequence[int]) -> None:
        """Send the VIP's traffic to these dispatchers only (a resilient group: the buckets of
        the others move; the members' buckets stay where they are)."""
        checked_cmd(self.host(ROUTER), nexthop_group_command(self.spec, members, create=False))
        self.members = sorted(set(members))

    def ecmp_buckets(self) -> dict[int, int]:
        """Dispatcher -> how many of the group's buckets point at it (the router's own view)."""
        out = self.host(ROUTER).cmd(f"ip nexthop bucket show id {GROUP_ID}")
        by_port = {self.spec.router_dispatcher_port(k): k for k in self.spec.dispatcher_indices()}
        counts = dict.fromkeys(self.spec.dispatcher_indices(), 0)
        for line in out.splitlines():
            fields = line.split()
            if "nhid" in fields:
                port = int(fields[fields.index("nhid") + 1])
                if port in by_port:
                    counts[by_port[port]] += 1
        return counts

    @property
    def switch(self):
        """The first dispatcher (what single-switch helpers such as connect() address)."""
        return self.dispatcher(1)

    def dispatcher(self, k: int):
        """Dispatcher k's Mininet node (a topo.mininet_bmv2.Bmv2P4RuntimeSwitch)."""
        return self.net.get(self.spec.dispatcher_name(k))

    def connect_switch(self, k: int, election_id: int = 1) -> tuple[P4RuntimeClient, P4InfoIndex]:
        """A primary session to dispatcher k with the dispatcher program pushed."""
        return push_pipeline(self.spec.grpc_address_of(k), self.program, self.spec.device_id, election_id)

    def kill_dispatcher(self, k: int) -> None:
        """SIGKILL dispatcher k's simple_switch_grpc (a switch failure; its links stay up)."""
        node = self.dispatcher(k)
        if node.process is not None:
            os.kill(node.process.pid, signal.SIGKILL)
            node.stop_process()

    def restart_dispatcher(self, k: int) -> None:
        """Start dispatcher k's process again, empty (no pipeline), on the same ports."""
        self.dispatcher(k).start([])


class MininetEcmp:
    """The ECMP group as the controller drives it (controller/cluster_app.py EcmpGroup):
    switch names -> dispatcher numbers, and `ip nexthop replace` in the router's namespace
    through nsenter, not the router's Mininet shell, which the test's thread may be using
    at the same moment. Each change is recorded with its time (the tests measure with them).
    The group never becomes empty: the last dispatcher stays in it (the router would
    otherwise drop the VIP's packets with no route; nothing better is left to send them to)."""

    def __init__(self, cluster: MultiDispatcherCluster, names: dict[str, int]) -> None:
        self.cluster = cluster
        self.names = names
        self.members = set(cluster.members)
        self.changes: list[tuple[float, str, int]] = []     # (monotonic time, "add"/"remove", dispatcher)
        self._lock = threading.Lock()
        self._pid = cluster.host(ROUTER).pid

    def add(self, switch: str) -> None:
        self._change("add", self.names[switch])

    def remove(self, switch: str) -> None:
        self._change("remove", self.names[switch])

    def _change(self, verb: str, k: int) -> None:
        with self._lock:
            members = self.members | {k} if verb == "add" else self.members - {k}
            if not members:
                log.warning("ECMP: dispatcher %d is the last one; it stays in the group", k)
                return
            command = nexthop_group_command(self.cluster.spec, sorted(members), create=False)
            subprocess.run(["nsenter", f"--net=/proc/{self._pid}/ns/net", *command.split()],
                           check=True, capture_output=True, timeout=5)
            self.members = members
            self.cluster.members = sorted(members)
            self.changes.append((time.monotonic(), verb, k))
