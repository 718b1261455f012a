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

Health (issue 11, `ServerClusterSpec.health`). Every backend runs the agent (`python -m
agent`), and the controller, in the root namespace, listens for it and probes the servers
(advisors) over a management path: a veth from the root namespace (`ctl1-eth0`, address
10.0.9.1/32, a route to the backends' 10.0.2.0/24 and nothing else) into the return bridge.
Agents' datagrams and the advisors' probes therefore share each backend's eth1 with its
responses, as on a server with one interface: a link that goes down takes them too, and a
server sending at its capacity queues them behind its responses (the token bucket holds at
most 50 ms). The generated configuration then has `[health]` (HMAC key in the work
directory, `[[health.agents]]` for every backend, an advisor per `health.advisor`) and, with
`admission`, SA2C for the service (`[services.admission]`).

Benchmark baseline. With `program="minimal_forward"` the switch runs p4src/bench/
minimal_forward.p4: one table, ingress port -> output port, no MAC rewrite. Each client is
then tied to one backend (client i -> backend (i-1) mod M, `minimal_forward_ports()`), and
the client's neighbour entry for the VIP is that backend's eth0 MAC, so the unchanged frame
is accepted. Write those entries with static_pipeline.minimal_forward_updates().
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from topo.emulated_cluster import DISPATCHER, EmulatedCluster
from topo.mininet_support import checked_cmd, set_sysctls
from topo.toolchain import REPO

RETURN_BRIDGE = "ret1"
MANAGEMENT = "ctl1"               # the root namespace's end of the management path (health only)
CONTROLLER_ADDRESS = "10.0.9.1"   # the controller's address there: agents send to it, advisors from it
MANAGEMENT_MAC = "02:00:00:09:00:01"
BACKEND_PREFIX = "10.0.2.0/24"    # what the root namespace routes over the management path
VIP_MAC = "02:00:00:00:00:fe"     # what clients address VIP frames to; the switch ignores it
RETURN_PREFIX_LEN = 16            # 10.0.0.0/16: clients 10.0.1.x, backends 10.0.2.x
MAX_HOSTS = 250


@dataclass(frozen=True)
class ClusterHealthSpec:
    """Issue 11 in the emulated cluster: what the agents run with and the `[health]` section."""
    period_s: float = 1.0
    missed_limit: int = 3
    recovery_periods: int = 3
    agent_check: Literal["none", "tcp", "http"] = "http"    # the agent's application check
    check_path: str = "/obj/0"
    advisor: Literal["none", "tcp", "http"] = "http"        # the controller's probe of every backend
    advisor_timeout_s: float = 0.5
    # Every Mininet host reads the same machine's /proc/stat, so a host-wide CPU figure would
    # be the whole emulation's; "service" reports the HTTP server process's own CPU instead.
    agent_cpu: Literal["host", "service"] = "service"
    planned_notice_s: float = 10.0                          # how far ahead SIGUSR1 announces
    listen_port: int = 9190                                 # UDP, on CONTROLLER_ADDRESS

    def __post_init__(self) -> None:
        if self.advisor != "none" and self.advisor_timeout_s > self.period_s:
            raise ValueError("the advisor's timeout must not exceed the period")


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
    health: ClusterHealthSpec | None = None     # agents, management path, [health]; None: none
    admission: Mapping[str, Any] | None = field(default=None, hash=False)   # [services.admission]
    max_connections: int | None = None  # every backend's connection limit (SA2C's connections component)

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

    def backend_index(self, name: str) -> int:
        """j of backend `web<j>`."""
        for j in self.backend_indices():
            if self.backend_name(j) == name:
                return j
        raise KeyError(f"no backend named {name!r}")


def controller_config(spec: ServerClusterSpec, key_file: Path | None = None) -> dict:
    """The controller configuration for this cluster, as controller/config.py's Config reads it
    (`Config.model_validate(controller_config(spec))`, or written out as TOML). It is for the
    dispatcher program whatever `spec.program` is: the minimal program has no controller.
    With `spec.health`, `key_file` is the agents' HMAC key (ServerCluster writes one)."""
    config: dict[str, Any] = {
        "switch": {"grpc_address": f"127.0.0.1:{spec.grpc_port}", "device_id": spec.device_id,
                   "election_id": 1, "program": "dispatcher"},
        "timers": {"cache_timeout_ms": 1000, "digest_retry_ms": 500, "flow_idle_timeout_s": 10.0,
                   "poll_interval_ms": 100},
        "services": [{
            "name": "web", "id": spec.service_id, "mode": "vip", "vip": spec.vip, "protocol": "tcp",
            "port": spec.vip_port, "policy": spec.policy, "ring_size": spec.ring_size, "forwarding": "dsr",
            "backends": [{"name": spec.backend_name(j), "id": spec.backend_id(j), "port": spec.backend_port(j),
                          "mac": spec.backend_mac(j, 0), "address": spec.backend_address(j),
                          # weighted_round_robin reads `weight`: the operator's weights are the capacities
                          "capacity_mbps": spec.capacities_mbit[j - 1], "weight": spec.capacities_mbit[j - 1]}
                         | ({} if spec.max_connections is None else {"max_connections": spec.max_connections})
                         for j in spec.backend_indices()],
        }],
    }
    if spec.admission is not None:
        config["services"][0]["admission"] = dict(spec.admission)
    if spec.health is not None:
        if key_file is None:
            raise ValueError("a cluster with agents needs the HMAC key file")
        config["health"] = health_config(spec, spec.health, key_file)
    return config


def health_config(spec: ServerClusterSpec, h: ClusterHealthSpec, key_file: Path) -> dict:
    """`[health]`: every backend's agent, and an advisor on every backend unless h.advisor is none."""
    section: dict[str, Any] = {
        "period_s": h.period_s, "missed_limit": h.missed_limit, "recovery_periods": h.recovery_periods,
        "key_file": str(key_file), "listen_address": CONTROLLER_ADDRESS, "listen_port": h.listen_port,
        "agents": [{"backend": spec.backend_name(j)} for j in spec.backend_indices()],
    }
    if h.advisor != "none":
        advisor: dict[str, Any] = {"service": "web", "kind": h.advisor, "timeout_s": h.advisor_timeout_s}
        if h.advisor == "http":
            advisor["path"] = h.check_path
        section["advisors"] = [advisor]
    return section


def build_topo(spec: ServerClusterSpec, switch_output: Path | None = None):
    """The Mininet Topo: fixed port numbers and MACs, so controller_config() names them right."""
    from mininet.topo import Topo

    from topo.mininet_bmv2 import Bmv2P4RuntimeSwitch
    from topo.mininet_nodes import KernelBridge, QuietLink, ShapedLink

    topo = Topo()
    if spec.health is not None:
        # In the root namespace (where the controller runs), one veth into the return bridge.
        topo.addHost(MANAGEMENT, ip=None, inNamespace=False)
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
    if spec.health is not None:
        topo.addLink(MANAGEMENT, RETURN_BRIDGE, port1=0, cls=QuietLink, addr1=MANAGEMENT_MAC)
    return topo


@dataclass
class ClientRun:
    client: str
    summary: dict            # workload.load_client's summary
    records: list[dict]      # one per request: start, lag, size, latency, connect, bytes, status, error, local


@dataclass
class ClientsRunning:
    """Load clients started by ServerCluster.start_clients(); finish_clients() waits for them."""
    procs: dict[str, tuple[Path, Path, subprocess.Popen]]   # client -> (records, summary, process)


SYN_LINE = re.compile(r"^(\d+\.\d+)\s.*?IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > ")


@dataclass(frozen=True)
class Syn:
    """A connection attempt (a SYN without ACK) a backend's interfaces received."""
    time: float              # wall clock, as tcpdump stamped it
    client: str              # "ip:port"


class ServerCluster(EmulatedCluster):
    """The running cluster: `with ServerCluster(spec, workdir) as cluster:`."""

    def __init__(self, spec: ServerClusterSpec, workdir: Path) -> None:
        super().__init__(workdir)
        self.spec = spec
        self.server_logs: dict[str, Path] = {}
        self.servers: dict[str, subprocess.Popen] = {}     # backend -> its HTTP server (the latest)
        self.agents: dict[str, subprocess.Popen] = {}      # backend -> its agent (the latest)
        self.syn_files: dict[str, Path] = {}
        self._starts: Counter[str] = Counter()              # output files: web1-server.out, web1-server.1.out, ...

    @property
    def program(self) -> str:
        return self.spec.program

    @property
    def key_file(self) -> Path:
        """The agents' HMAC key: 32 random bytes in base64 (the controller and the agents strip
        whitespace around a key, so raw random bytes could lose some), written on first use,
        mode 0600."""
        path = self.workdir / "health.key"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(base64.b64encode(os.urandom(32)) + b"\n")
        return path

    def node_names(self) -> list[str]:
        s = self.spec
        return ([DISPATCHER, RETURN_BRIDGE] + ([MANAGEMENT] if s.health is not None else [])
                + [s.client_name(i) for i in s.client_indices()]
                + [s.backend_name(j) for j in s.backend_indices()])

    def build_topo(self):
        return build_topo(self.spec, self.workdir / f"{DISPATCHER}-bmv2.out")

    def controller_config(self) -> dict:
        return controller_config(self.spec, self.key_file if self.spec.health is not None else None)

    def configure_client(self, i: int) -> None:
        """Client i: its address on the return path, the VIP out of eth0 to `vip_mac_for_client`."""
        s = self.spec
        host = self.host(s.client_name(i))
        eth0, eth1 = f"{host.name}-eth0", f"{host.name}-eth1"
        set_sysctls(host, {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
                           f"net.ipv4.conf.{eth0}.rp_filter": 0, f"net.ipv4.conf.{eth1}.rp_filter": 0})
        checked_cmd(host, f"ip addr add {s.client_address(i)}/{RETURN_PREFIX_LEN} dev {eth1}")
        checked_cmd(host, f"ip route add {s.vip}/32 dev {eth0} src {s.client_address(i)}")
        checked_cmd(host, f"ip neigh replace {s.vip} lladdr {s.vip_mac_for_client(i)} "
                          f"dev {eth0} nud permanent")

    def configure_hosts(self) -> None:
        s = self.spec
        for i in s.client_indices():
            self.configure_client(i)
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
        if s.health is not None:
            # The root namespace: one address, one route to the backends, nothing else (the
            # clients' addresses and the VIP stay unreachable from here).
            root = self.host(MANAGEMENT)
            intf = f"{MANAGEMENT}-eth0"
            checked_cmd(root, f"ip addr add {CONTROLLER_ADDRESS}/32 dev {intf}")
            checked_cmd(root, f"ip route add {BACKEND_PREFIX} dev {intf} src {CONTROLLER_ADDRESS}")

    # ---- servers and agents ----------------------------------------------------------------

    def start_http_servers(self, python: str = sys.executable) -> dict[str, Path]:
        """workload.http_server on every backend, on the VIP port; returns name -> connection log."""
        for j in self.spec.backend_indices():
            name = self.spec.backend_name(j)
            self.server_logs[name] = self.workdir / f"{name}-connections.jsonl"
            self.server_logs[name].unlink(missing_ok=True)
            self.start_http_server(name, python=python, wait=False)
        for j in self.spec.backend_indices():
            self.wait_for_listener(self.host(self.spec.backend_name(j)), self.spec.vip_port)
        return self.server_logs

    def start_http_server(self, name: str, python: str = sys.executable, wait: bool = True) -> subprocess.Popen:
        """(Re)start one backend's HTTP server; its connection log is appended to."""
        log = self.server_logs.setdefault(name, self.workdir / f"{name}-connections.jsonl")
        out = self._output_file(f"{name}-server")
        proc = self.processes.start(self.host(name),
                                    [python, "-m", "workload.http_server", "--port", str(self.spec.vip_port),
                                     "--name", name, "--log", str(log)],
                                    f"http server {name}", output=out, cwd=str(REPO))
        self.servers[name] = proc
        if wait:
            self.wait_for_listener(self.host(name), self.spec.vip_port)
        return proc

    def signal_server(self, name: str, signum: int) -> None:
        """A signal to a backend's HTTP server (SIGKILL, SIGSTOP, SIGCONT: the faults)."""
        os.kill(self.servers[name].pid, signum)
        if signum == signal.SIGKILL:
            self.servers[name].wait(timeout=5)

    def start_agents(self, python: str = sys.executable) -> dict[str, subprocess.Popen]:
        """`python -m agent` on every backend (needs spec.health), sending to the controller."""
        for j in self.spec.backend_indices():
            self.start_agent(self.spec.backend_name(j), python=python)
        return self.agents

    def agent_command(self, name: str, python: str = sys.executable) -> list[str]:
        h = self.spec.health
        if h is None:
            raise RuntimeError("this cluster has no health section (ServerClusterSpec.health)")
        j = self.spec.backend_index(name)
        args = [python, "-m", "agent", "--controller", f"{CONTROLLER_ADDRESS}:{h.listen_port}",
                "--host-id", str(self.spec.backend_id(j)), "--period", str(h.period_s),
                "--key-file", str(self.key_file), "--interface", f"{name}-eth1",
                "--service-port", str(self.spec.vip_port), "--check", h.agent_check,
                "--cpu", h.agent_cpu, "--planned-notice", str(h.planned_notice_s)]
        if h.agent_check == "http":
            args += ["--check-path", h.check_path]
        return args

    def start_agent(self, name: str, python: str = sys.executable) -> subprocess.Popen:
        out = self._output_file(f"{name}-agent")
        proc = self.processes.start(self.host(name), self.agent_command(name, python), f"agent {name}",
                                    output=out, cwd=str(REPO))
        self.agents[name] = proc
        return proc

    def _output_file(self, stem: str) -> Path:
        """<stem>.out for a process's first start here, <stem>.<n>.out for its n-th restart."""
        runs = self._starts[stem]
        self._starts[stem] += 1
        return self.workdir / (f"{stem}.out" if runs == 0 else f"{stem}.{runs}.out")

    def signal_agent(self, name: str, signum: int) -> None:
        """SIGKILL (a fault), SIGUSR1 (announce a planned failure), SIGUSR2 (withdraw it)."""
        os.kill(self.agents[name].pid, signum)
        if signum == signal.SIGKILL:
            self.agents[name].wait(timeout=5)

    def set_backend_links(self, name: str, up: bool) -> None:
        """Both of a backend's interfaces down (its cable pulled: requests, responses, the
        agent's datagrams and the advisors' probes) or up again."""
        host = self.host(name)
        for intf in (f"{name}-eth0", f"{name}-eth1"):
            checked_cmd(host, f"ip link set {intf} {'up' if up else 'down'}")

    # ---- observation ---------------------------------------------------------------------

    def start_syn_captures(self) -> dict[str, Path]:
        """tcpdump in every backend: each client connection attempt (SYN, no ACK, to the VIP
        port) as a line with its time. On `any`, so a capture survives its interfaces going
        down and up; the advisors' and the agent's own probes go to other addresses."""
        for j in self.spec.backend_indices():
            name = self.spec.backend_name(j)
            path = self.workdir / f"{name}-syns.txt"
            flt = (f"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and dst host {self.spec.vip} "
                   f"and dst port {self.spec.vip_port}")
            self.processes.start(self.host(name), ["tcpdump", "-i", "any", "-n", "-tt", "-l", flt],
                                 f"tcpdump {name}", output=path)
            self.syn_files[name] = path
        return self.syn_files

    def syns(self, name: str) -> list[Syn]:
        """The SYNs captured so far on a backend (start_syn_captures first)."""
        path = self.syn_files.get(name)
        if path is None or not path.exists():
            return []
        found = []
        for line in path.read_text(errors="replace").splitlines():
            m = SYN_LINE.match(line)
            if m:
                found.append(Syn(float(m.group(1)), f"{m.group(2)}:{m.group(3)}"))
        return found

    # ---- workload ------------------------------------------------------------------------

    def start_clients(self, rate: float, requests: int | None = None, duration: float | None = None,
                      cdf: str = "fb_hadoop", max_bytes: int | None = None, size: int | None = None,
                      request_timeout: float | None = None, python: str = sys.executable) -> ClientsRunning:
        """workload.load_client on every client at once, `rate` requests/s each to the VIP, for
        `requests` requests or `duration` seconds of arrivals; finish_clients() waits."""
        if (requests is None) == (duration is None):
            raise ValueError("give requests or duration")
        procs = {}
        for i in self.spec.client_indices():
            name = self.spec.client_name(i)
            out = self.workdir / f"{name}-requests.jsonl"
            summary = self.workdir / f"{name}-summary.json"
            for stale in (out, summary):
                stale.unlink(missing_ok=True)
            args = [python, "-m", "workload.load_client", "--target", f"{self.spec.vip}:{self.spec.vip_port}",
                    "--rate", str(rate), "--cdf", cdf, "--seed", str(i), "--out", str(out),
                    "--summary", str(summary)]
            args += ["--requests", str(requests)] if requests is not None else ["--duration", str(duration)]
            if max_bytes is not None:
                args += ["--max-bytes", str(max_bytes)]
            if size is not None:
                args += ["--size", str(size)]
            if request_timeout is not None:
                args += ["--timeout", str(request_timeout)]
            procs[name] = (out, summary, self.processes.start(self.host(name), args, f"load client {name}",
                                                              output=self.workdir / f"{name}-client.out",
                                                              cwd=str(REPO)))
        return ClientsRunning(procs)

    def finish_clients(self, running: ClientsRunning, timeout: float) -> dict[str, ClientRun]:
        """Wait for the clients (all within `timeout` s) and read their records and summaries."""
        runs: dict[str, ClientRun] = {}
        for name, (out, summary, proc) in running.procs.items():
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.processes.stop(proc)
                raise TimeoutError(f"load client in {name} did not finish in {timeout:.0f} s") from None
            if not summary.exists():
                tail = (self.workdir / f"{name}-client.out").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"load client in {name} wrote no summary:\n{tail}")
            records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
            runs[name] = ClientRun(name, json.loads(summary.read_text()), records)
        return runs

    def run_clients(self, rate: float, requests: int, cdf: str = "fb_hadoop", max_bytes: int | None = None,
                    python: str = sys.executable, timeout: float = 120.0) -> dict[str, ClientRun]:
        """workload.load_client on every client at once, `rate` requests/s and `requests` each,
        to the VIP; waits for all and returns each client's summary and records."""
        return self.finish_clients(self.start_clients(rate, requests=requests, cdf=cdf, max_bytes=max_bytes,
                                                      python=python), timeout)


def read_connection_log(path: Path) -> list[dict]:
    """workload.http_server's log: one JSON object per connection."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
