"""A packet-capture cluster fed from a tap, emulated in Mininet.

    tap1 ──(port 1, tap port)── disp1 (BMv2, capture mode) ──(ports 2..K+1)── probe1 ... probeK

The tap host replays captures with tcpreplay into the switch's tap port, as a network tap
or mirror port would deliver a link's traffic. The switch's capture service sends each flow,
both directions, to one capture node (`forward_capture`: the frame unchanged). Each node
runs tcpdump -w on its interface, so what it stored can be read back and checked: how many
packets each node got, and that no connection was split between nodes.

No host has an IPv4 address on the switch's side, nor IPv6 (topo/mininet_nodes.py): nothing
but the replayed frames crosses the switch.

With `query_network`, a second network that bypasses the switch joins the capture nodes
(each on its eth1, 10.0.250.K) and a query host `qry1` (10.0.250.254) on a kernel bridge:
the network a Dask scheduler (on qry1) and a worker on each capture node use to query what
the nodes stored (topo/capture_query_nodes.py).
The probes' tcpdump puts their interface in promiscuous mode, since the frames keep the
MACs they were captured with.
"""

from __future__ import annotations

import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from topo.emulated_cluster import DISPATCHER, EmulatedCluster

TAP_HOST = "tap1"
MAX_PROBES = 250
QUERY_HOST = "qry1"              # the query network's scheduler and client
QUERY_BRIDGE = "qbr1"
QUERY_NET = "10.0.250"           # probe K is .K, the query host .254 (/24)
QUERY_HOST_ADDRESS = f"{QUERY_NET}.254"


@dataclass(frozen=True)
class CaptureClusterSpec:
    probes: int = 3
    grpc_port: int = 9559
    thrift_port: int = 9090
    device_id: int = 0
    switch_log: Path | None = None    # BMv2 packet log (<switch_log>.txt); None: off
    tap_port: int = 1
    service_id: int = 2
    first_backend_id: int = 20
    ring_size: int = 256
    policy: str = "fb_est"
    truncate_bytes: int = 0           # capture only this many bytes of each frame (0: all)
    query_network: bool = False       # a network beside the switch for querying the nodes

    def __post_init__(self) -> None:
        if not 1 <= self.probes <= MAX_PROBES:
            raise ValueError(f"1 to {MAX_PROBES} capture nodes")

    def probe_name(self, k: int) -> str:
        return f"probe{k}"

    def probe_port(self, k: int) -> int:
        """Ports after the tap port, which is 1 by default."""
        return self.tap_port + k

    def probe_id(self, k: int) -> int:
        return self.first_backend_id + k - 1

    def probe_mac(self, k: int) -> str:
        return f"02:00:00:03:00:{k:02x}"

    def probe_query_mac(self, k: int) -> str:
        return f"02:00:00:03:02:{k:02x}"

    def probe_query_address(self, k: int) -> str:
        return f"{QUERY_NET}.{k}"

    def tap_mac(self) -> str:
        return "02:00:00:03:01:01"

    def probe_indices(self) -> range:
        return range(1, self.probes + 1)


def controller_config(spec: CaptureClusterSpec) -> dict:
    """The controller configuration for this cluster (controller/config.py's Config), a capture
    service on the tap port with the capture nodes as its backends."""
    return {
        "switch": {"grpc_address": f"127.0.0.1:{spec.grpc_port}", "device_id": spec.device_id,
                   "election_id": 1, "program": "dispatcher"},
        "timers": {"cache_timeout_ms": 1000, "digest_retry_ms": 500, "flow_idle_timeout_s": 10.0,
                   "poll_interval_ms": 100},
        "services": [{
            "name": "tap", "id": spec.service_id, "mode": "capture", "tap_ports": [spec.tap_port],
            "policy": spec.policy, "ring_size": spec.ring_size, "forwarding": "capture",
            "truncate_bytes": spec.truncate_bytes,
            "backends": [{"name": spec.probe_name(k), "id": spec.probe_id(k), "port": spec.probe_port(k),
                          "mac": spec.probe_mac(k)}
                         for k in spec.probe_indices()],
        }],
    }


def build_topo(spec: CaptureClusterSpec, switch_output: Path | None = None):
    from mininet.topo import Topo

    from topo.mininet_bmv2 import Bmv2P4RuntimeSwitch
    from topo.mininet_nodes import KernelBridge, QuietLink

    topo = Topo()
    topo.addSwitch(DISPATCHER, cls=Bmv2P4RuntimeSwitch, grpc_port=spec.grpc_port,
                   thrift_port=spec.thrift_port, device_id=spec.device_id, log_file=spec.switch_log,
                   output_file=switch_output)
    topo.addHost(TAP_HOST, ip=None)
    topo.addLink(TAP_HOST, DISPATCHER, port1=0, port2=spec.tap_port, cls=QuietLink, addr1=spec.tap_mac())
    for k in spec.probe_indices():
        topo.addHost(spec.probe_name(k), ip=None)
        topo.addLink(spec.probe_name(k), DISPATCHER, port1=0, port2=spec.probe_port(k), cls=QuietLink,
                     addr1=spec.probe_mac(k))
    if spec.query_network:
        topo.addSwitch(QUERY_BRIDGE, cls=KernelBridge)
        topo.addHost(QUERY_HOST, ip=None)
        topo.addLink(QUERY_HOST, QUERY_BRIDGE, port1=0, cls=QuietLink, addr1="02:00:00:03:02:fe")
        for k in spec.probe_indices():
            topo.addLink(spec.probe_name(k), QUERY_BRIDGE, port1=1, cls=QuietLink, addr1=spec.probe_query_mac(k))
    return topo


@dataclass
class ReplayResult:
    capture: Path
    sent: int            # tcpreplay's "Successful packets"
    failed: int          # tcpreplay's "Failed packets" (e.g. larger than the link MTU)
    output: str


class CaptureCluster(EmulatedCluster):
    """The running cluster: `with CaptureCluster(spec, workdir) as cluster:`."""

    def __init__(self, spec: CaptureClusterSpec, workdir: Path) -> None:
        super().__init__(workdir)
        self.spec = spec
        self.capture_files: dict[str, Path] = {}     # a strftime pattern when rotating
        self._rotating = False
        self._tcpdumps: dict[str, subprocess.Popen] = {}

    def node_names(self) -> list[str]:
        query = [QUERY_BRIDGE, QUERY_HOST] if self.spec.query_network else []
        return [DISPATCHER, TAP_HOST, *query] + [self.spec.probe_name(k) for k in self.spec.probe_indices()]

    def build_topo(self):
        return build_topo(self.spec, self.workdir / f"{DISPATCHER}-bmv2.out")

    def controller_config(self) -> dict:
        return controller_config(self.spec)

    def configure_hosts(self) -> None:
        """The switch's side needs no address (its links were made quiet); the query network's
        ends get theirs."""
        if not self.spec.query_network:
            return
        ends = [(self.host(QUERY_HOST), f"{QUERY_HOST}-eth0", QUERY_HOST_ADDRESS)]
        ends += [(self.host(self.spec.probe_name(k)), f"{self.spec.probe_name(k)}-eth1",
                  self.spec.probe_query_address(k)) for k in self.spec.probe_indices()]
        for host, intf, address in ends:
            for command in (f"ip addr add {address}/24 dev {intf}", f"ip link set {intf} up", "ip link set lo up"):
                output = host.cmd(command).strip()
                if output:
                    raise RuntimeError(f"{host.name}: `{command}` failed: {output}")

    # ---- capture nodes ---------------------------------------------------------------------

    def start_captures(self, timeout: float = 10.0, rotate_seconds: int = 0) -> dict[str, Path]:
        """tcpdump -w on every capture node; returns once each is listening. With
        `rotate_seconds`, each node writes a new file when that many seconds have passed
        (tcpdump -G), in a directory of its own (`written_files`)."""
        self._rotating = rotate_seconds > 0
        for k in self.spec.probe_indices():
            name = self.spec.probe_name(k)
            path = self.workdir / f"{name}.pcap"
            path.unlink(missing_ok=True)
            rotation: list[str] = []
            if self._rotating:
                folder = self.workdir / f"{name}-captures"
                for old in folder.glob("*.pcap"):
                    old.unlink()
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / f"{name}-%Y%m%d-%H%M%S.pcap"
                rotation = ["-G", str(rotate_seconds)]
            # -U: write each packet at once; -Z root: keep writing as root (tcpdump would
            # otherwise drop to its own user, who may not write here); -Q in: only arrivals.
            self._tcpdumps[name] = self.processes.start(
                self.host(name), ["tcpdump", "-i", f"{name}-eth0", "-Q", "in", "-U", "-s", "0", "-Z", "root",
                                  *rotation, "-w", str(path)], f"tcpdump {name}", output=self._tcpdump_output(name))
            self.capture_files[name] = path
        deadline = time.monotonic() + timeout
        for name in self._tcpdumps:
            err = self._tcpdump_output(name)
            while "listening on" not in err.read_text(errors="replace"):
                if self._tcpdumps[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump in {name} did not start: {err.read_text(errors='replace')}")
                time.sleep(0.05)
        return self.capture_files

    def written_files(self, name: str) -> list[Path]:
        """The files node `name`'s tcpdump wrote, in the order it wrote them."""
        path = self.capture_files[name]
        if not self._rotating:
            return [path] if path.exists() else []
        return sorted(path.parent.glob(f"{name}-*.pcap"))

    def _tcpdump_output(self, name: str) -> Path:
        return self.workdir / f"{name}-tcpdump.out"

    def stop_captures(self) -> dict[str, Path]:
        """Interrupt every tcpdump (it then flushes and closes its file)."""
        for proc in self._tcpdumps.values():
            self.processes.stop(proc)
        self._tcpdumps.clear()
        return self.capture_files

    # ---- the tap -----------------------------------------------------------------------------

    def replay(self, capture: Path, pps: int = 1000, timeout: float = 120.0) -> ReplayResult:
        """tcpreplay one capture into the tap port at `pps` packets/s (BMv2 drops beyond its rate).

        tcpreplay sends the file's frames as they are, so the capture must be Ethernet
        (a Linux-cooked or raw-IP capture would arrive as garbage).
        """
        result = self.run_in(self.host(TAP_HOST), ["tcpreplay", "-i", f"{TAP_HOST}-eth0", f"--pps={pps}",
                                                   str(capture)], f"tcpreplay {capture.name}", timeout)
        if result.returncode != 0:
            raise RuntimeError(f"tcpreplay {capture} failed ({result.returncode}):\n{result.stderr[-2000:]}")
        return ReplayResult(capture, _count(result.stdout, "Successful packets"),
                            _count(result.stdout, "Failed packets"), result.stdout)


def _count(tcpreplay_output: str, label: str) -> int:
    match = re.search(rf"{label}:\s+(\d+)", tcpreplay_output)
    return int(match.group(1)) if match else 0
