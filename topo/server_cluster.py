"""A server cluster behind a VIP with direct server return, emulated in Mininet.

    cl1 ... clN ──(eth0)── disp1 (BMv2) ──(eth0)── web1 ... webM
         │                                            │
         └────(eth1)──── ret1 (Linux bridge) ───(eth1)┘      return path, 10.0.0.0/16

Requests go to the VIP through the dispatcher; responses come back over a plain Linux
bridge that bypasses it, as direct server return means. The bridge sits in a network
namespace of its own (topo/mininet_nodes.KernelBridge), so it goes with the run however the
run ends.

Clients (cl<i>, switch port i). The dispatcher-facing eth0 has no IPv4 address: a /32 route
sends the VIP out of it, with the client's own address (10.0.1.<i>, on eth1) as source, and a
permanent neighbour entry gives the VIP the MAC `VIP_MAC`, so no ARP ever crosses the
dispatcher and no gateway is needed (the P4 program classifies by VIP, not by MAC).
Answers arrive on eth1, so reverse-path filtering is off.

Backends (web<j>, switch port N+j, backend id 10+j-1). The VIP sits on lo; arp_ignore=1 and
arp_announce=2 keep them from answering or announcing it. eth0 (dispatcher side) has no
IPv4 address: `forward_dsr` rewrites only the destination MAC, to eth0's MAC, and Linux
takes the VIP packet on any interface. The backend's address 10.0.2.<j> is on eth1, the
return path; the clients' /16 is on-link there, so responses never touch the switch (and
reverse-path filtering is off, as requests from those clients come in on eth0).

Capacity. Each backend's `capacities_mbit` value is a tc token-bucket rate (Mininet's TCIntf,
`bw` with tbf, up to 50 ms queued) on the backend's own end of its return link: its
responses, nearly all its bytes, are limited; its requests, through the dispatcher, are not.
The same value is the backend's `capacity_mbps` in the generated controller configuration.

Other traffic. The dispatcher sees only VIP traffic: nothing else is addressed out of the
clients' and backends' eth0, and no interface has IPv6 (topo/mininet_nodes.py). So no
`l2_forward` entries or flooding are configured; a stray frame is an L2 miss, dropped and
counted in `drops`.

Benchmark baseline. With `program="minimal_forward"` the switch runs p4src/bench/
minimal_forward.p4: one table, ingress port -> output port, no MAC rewrite. Each client is
then tied to one backend (client i -> backend (i-1) mod M, `minimal_forward_ports()`), and
the client's neighbour entry for the VIP is that backend's eth0 MAC, so the unchanged frame
is accepted. Write those entries with static_pipeline.minimal_forward_updates().
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from topo.emulated_cluster import DISPATCHER, EmulatedCluster
from topo.mininet_support import checked_cmd, set_sysctls
from topo.toolchain import REPO

RETURN_BRIDGE = "ret1"
VIP_MAC = "02:00:00:00:00:fe"     # what clients address VIP frames to; the switch ignores it
RETURN_PREFIX_LEN = 16            # 10.0.0.0/16: clients 10.0.1.x, backends 10.0.2.x
MAX_HOSTS = 250


@dataclass(frozen=True)
class ServerClusterSpec:
    clients: int = 2
    capacities_mbit: tuple[float, ...] = (20.0, 10.0, 5.0)   # one backend per value
    shape_backends: bool = True       # apply the capacities with tc (False: unshaped links)
    vip: str = "10.0.0.100"
    vip_port: int = 80
    program: Literal["dispatcher", "minimal_forward"] = "dispatcher"
    grpc_port: int = 9559
    thrift_port: int = 9090
    device_id: int = 0
    switch_log: Path | None = None    # BMv2 packet log (<switch_log>.txt); None: off, fastest
    service_id: int = 1
    first_backend_id: int = 10
    ring_size: int = 1024
    policy: str = "fb_est"

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= MAX_HOSTS or not 1 <= len(self.capacities_mbit) <= MAX_HOSTS:
            raise ValueError(f"1 to {MAX_HOSTS} clients and backends")
        if any(not 0 < c <= 1000 for c in self.capacities_mbit):
            raise ValueError("backend capacities are Mb/s in (0, 1000] (Mininet's tc range)")

    @property
    def backends(self) -> int:
        return len(self.capacities_mbit)

    # ---- the address and port plan: pure functions of the spec ---------------------------

    def client_name(self, i: int) -> str:
        return f"cl{i}"

    def client_port(self, i: int) -> int:
        return i

    def client_address(self, i: int) -> str:
        return f"10.0.1.{i}"

    def client_mac(self, i: int, side: int) -> str:
        """side 0: dispatcher-facing eth0, 1: return-path eth1."""
        return f"02:00:00:01:{side:02x}:{i:02x}"

    def backend_name(self, j: int) -> str:
        return f"web{j}"

    def backend_port(self, j: int) -> int:
        return self.clients + j

    def backend_id(self, j: int) -> int:
        return self.first_backend_id + j - 1

    def backend_address(self, j: int) -> str:
        return f"10.0.2.{j}"

    def backend_mac(self, j: int, side: int) -> str:
        return f"02:00:00:02:{side:02x}:{j:02x}"

    def client_indices(self) -> range:
        return range(1, self.clients + 1)

    def backend_indices(self) -> range:
        return range(1, self.backends + 1)

    def minimal_forward_ports(self) -> dict[int, int]:
        """minimal_forward's `port_forward`: client i's port -> backend ((i-1) mod M)+1's port."""
        return {self.client_port(i): self.backend_port(self._minimal_backend(i)) for i in self.client_indices()}

    def _minimal_backend(self, i: int) -> int:
        return (i - 1) % self.backends + 1

    def vip_mac_for_client(self, i: int) -> str:
        return VIP_MAC if self.program == "dispatcher" else self.backend_mac(self._minimal_backend(i), 0)


def controller_config(spec: ServerClusterSpec) -> dict:
    """The controller configuration for this cluster, as controller/config.py's Config reads it
    (`Config.model_validate(controller_config(spec))`, or written out as TOML). It is for the
    dispatcher program whatever `spec.program` is: the minimal program has no controller."""
    return {
        "switch": {"grpc_address": f"127.0.0.1:{spec.grpc_port}", "device_id": spec.device_id,
                   "election_id": 1, "program": "dispatcher"},
        "timers": {"cache_timeout_ms": 1000, "digest_retry_ms": 500, "flow_idle_timeout_s": 10.0,
                   "poll_interval_ms": 100},
        "services": [{
            "name": "web", "id": spec.service_id, "mode": "vip", "vip": spec.vip, "protocol": "tcp",
            "port": spec.vip_port, "policy": spec.policy, "ring_size": spec.ring_size, "forwarding": "dsr",
            "backends": [{"name": spec.backend_name(j), "id": spec.backend_id(j), "port": spec.backend_port(j),
                          "mac": spec.backend_mac(j, 0), "address": spec.backend_address(j),
                          "capacity_mbps": spec.capacities_mbit[j - 1]}
                         for j in spec.backend_indices()],
        }],
    }


def build_topo(spec: ServerClusterSpec, switch_output: Path | None = None):
    """The Mininet Topo: fixed port numbers and MACs, so controller_config() names them right."""
    from mininet.topo import Topo

    from topo.mininet_bmv2 import Bmv2P4RuntimeSwitch
    from topo.mininet_nodes import KernelBridge, QuietLink, ShapedLink

    topo = Topo()
    topo.addSwitch(DISPATCHER, cls=Bmv2P4RuntimeSwitch, grpc_port=spec.grpc_port,
                   thrift_port=spec.thrift_port, device_id=spec.device_id, log_file=spec.switch_log,
                   output_file=switch_output)
    topo.addSwitch(RETURN_BRIDGE, cls=KernelBridge)
    for i in spec.client_indices():
        name = spec.client_name(i)
        topo.addHost(name, ip=None)
        topo.addLink(name, DISPATCHER, port1=0, port2=spec.client_port(i), cls=QuietLink,
                     addr1=spec.client_mac(i, 0))
        topo.addLink(name, RETURN_BRIDGE, port1=1, cls=QuietLink, addr1=spec.client_mac(i, 1))
    for j in spec.backend_indices():
        name = spec.backend_name(j)
        topo.addHost(name, ip=None)
        topo.addLink(name, DISPATCHER, port1=0, port2=spec.backend_port(j), cls=QuietLink,
                     addr1=spec.backend_mac(j, 0))
        if spec.shape_backends:
            # Token bucket on the backend's end only: its responses, up to 50 ms queued.
            topo.addLink(name, RETURN_BRIDGE, port1=1, cls=ShapedLink, addr1=spec.backend_mac(j, 1),
                         params1={"bw": spec.capacities_mbit[j - 1], "use_tbf": True, "latency_ms": 50})
        else:
            topo.addLink(name, RETURN_BRIDGE, port1=1, cls=QuietLink, addr1=spec.backend_mac(j, 1))
    return topo


@dataclass
class ClientRun:
    client: str
    summary: dict            # workload.load_client's summary
    records: list[dict]      # one per request: start, lag, size, latency, bytes, status, error, local


class ServerCluster(EmulatedCluster):
    """The running cluster: `with ServerCluster(spec, workdir) as cluster:`."""

    def __init__(self, spec: ServerClusterSpec, workdir: Path) -> None:
        super().__init__(workdir)
        self.spec = spec
        self.server_logs: dict[str, Path] = {}

    @property
    def program(self) -> str:
        return self.spec.program

    def node_names(self) -> list[str]:
        s = self.spec
        return ([DISPATCHER, RETURN_BRIDGE] + [s.client_name(i) for i in s.client_indices()]
                + [s.backend_name(j) for j in s.backend_indices()])

    def build_topo(self):
        return build_topo(self.spec, self.workdir / f"{DISPATCHER}-bmv2.out")

    def controller_config(self) -> dict:
        return controller_config(self.spec)

    def configure_hosts(self) -> None:
        s = self.spec
        for i in s.client_indices():
            host = self.host(s.client_name(i))
            eth0, eth1 = f"{host.name}-eth0", f"{host.name}-eth1"
            set_sysctls(host, {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
                               f"net.ipv4.conf.{eth0}.rp_filter": 0, f"net.ipv4.conf.{eth1}.rp_filter": 0})
            checked_cmd(host, f"ip addr add {s.client_address(i)}/{RETURN_PREFIX_LEN} dev {eth1}")
            checked_cmd(host, f"ip route add {s.vip}/32 dev {eth0} src {s.client_address(i)}")
            checked_cmd(host, f"ip neigh replace {s.vip} lladdr {s.vip_mac_for_client(i)} "
                              f"dev {eth0} nud permanent")
        for j in s.backend_indices():
            host = self.host(s.backend_name(j))
            eth0, eth1 = f"{host.name}-eth0", f"{host.name}-eth1"
            sysctls: dict[str, int] = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
            for scope in ("all", eth0, eth1):
                sysctls |= {f"net.ipv4.conf.{scope}.arp_ignore": 1, f"net.ipv4.conf.{scope}.arp_announce": 2,
                            f"net.ipv4.conf.{scope}.rp_filter": 0}
            set_sysctls(host, sysctls)
            checked_cmd(host, f"ip addr add {s.vip}/32 dev lo")
            checked_cmd(host, f"ip addr add {s.backend_address(j)}/{RETURN_PREFIX_LEN} dev {eth1}")

    # ---- workload ------------------------------------------------------------------------

    def start_http_servers(self, python: str = sys.executable) -> dict[str, Path]:
        """workload.http_server on every backend, on the VIP port; returns name -> connection log."""
        for j in self.spec.backend_indices():
            name = self.spec.backend_name(j)
            log = self.workdir / f"{name}-connections.jsonl"
            log.unlink(missing_ok=True)
            self.processes.start(self.host(name),
                                 [python, "-m", "workload.http_server", "--port", str(self.spec.vip_port),
                                  "--name", name, "--log", str(log)],
                                 f"http server {name}", output=self.workdir / f"{name}-server.out",
                                 cwd=str(REPO))
            self.server_logs[name] = log
        for j in self.spec.backend_indices():
            self.wait_for_listener(self.host(self.spec.backend_name(j)), self.spec.vip_port)
        return self.server_logs

    def run_clients(self, rate: float, requests: int, cdf: str = "fb_hadoop", max_bytes: int | None = None,
                    python: str = sys.executable, timeout: float = 120.0) -> dict[str, ClientRun]:
        """workload.load_client on every client at once, `rate` requests/s and `requests` each,
        to the VIP; waits for all and returns each client's summary and records."""
        runs: dict[str, ClientRun] = {}
        procs = {}
        for i in self.spec.client_indices():
            name = self.spec.client_name(i)
            out = self.workdir / f"{name}-requests.jsonl"
            args = [python, "-m", "workload.load_client", "--target", f"{self.spec.vip}:{self.spec.vip_port}",
                    "--rate", str(rate), "--requests", str(requests), "--cdf", cdf, "--seed", str(i),
                    "--out", str(out)]
            if max_bytes is not None:
                args += ["--max-bytes", str(max_bytes)]
            procs[name] = (out, self.processes.start(self.host(name), args, f"load client {name}",
                                                     cwd=str(REPO), stdout=subprocess.PIPE,
                                                     stderr=subprocess.PIPE))
        for name, (out, proc) in procs.items():
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.processes.stop(proc)
                raise TimeoutError(f"load client in {name} did not finish in {timeout:.0f} s") from None
            lines = stdout.decode(errors="replace").strip().splitlines()
            if not lines:
                raise RuntimeError(f"load client in {name} printed no summary:\n"
                                   f"{stderr.decode(errors='replace')[-2000:]}")
            records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            runs[name] = ClientRun(name, json.loads(lines[-1]), records)
        return runs


def read_connection_log(path: Path) -> list[dict]:
    """workload.http_server's log: one JSON object per connection."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
