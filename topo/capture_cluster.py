"""A packet-capture cluster fed from a tap, emulated in Mininet.

    tap1 ──(port 1, tap port)── disp1 (BMv2, capture mode) ──(ports 2..K+1)── probe1 ... probeK

The tap host replays captures with tcpreplay into the switch's tap port, as a network tap
or mirror port would deliver a link's traffic. The switch's capture service sends each flow,
both directions, to one capture node (`forward_capture`: the frame unchanged). Each node
runs tcpdump -w on its interface, so what it stored can be read back and checked: how many
packets each node got, and that no connection was split between nodes.

No host has an IPv4 address or IPv6 (topo/mininet_nodes.py): nothing but the replayed frames
crosses the switch.
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
    from topo.mininet_nodes import QuietLink

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
        self.capture_files: dict[str, Path] = {}
        self._tcpdumps: dict[str, subprocess.Popen] = {}

    def node_names(self) -> list[str]:
        return [DISPATCHER, TAP_HOST] + [self.spec.probe_name(k) for k in self.spec.probe_indices()]

    def build_topo(self):
        return build_topo(self.spec, self.workdir / f"{DISPATCHER}-bmv2.out")

    def controller_config(self) -> dict:
        return controller_config(self.spec)

    def configure_hosts(self) -> None:
        """Nothing to do: the hosts need no address, and their links were made quiet."""

    # ---- capture nodes ---------------------------------------------------------------------

    def start_captures(self, timeout: float = 10.0) -> dict[str, Path]:
        """tcpdump -w on every capture node; returns once each is listening."""
        for k in self.spec.probe_indices():
            name = self.spec.probe_name(k)
            path = self.workdir / f"{name}.pcap"
            path.unlink(missing_ok=True)
            # -U: write each packet at once; -Z root: keep writing as root (tcpdump would
            # otherwise drop to its own user, who may not write here); -Q in: only arrivals.
            self._tcpdumps[name] = self.processes.start(
                self.host(name), ["tcpdump", "-i", f"{name}-eth0", "-Q", "in", "-U", "-s", "0", "-Z", "root",
                                  "-w", str(path)], f"tcpdump {name}", output=self._tcpdump_output(name))
            self.capture_files[name] = path
        deadline = time.monotonic() + timeout
        for name in self._tcpdumps:
            err = self._tcpdump_output(name)
            while "listening on" not in err.read_text(errors="replace"):
                if self._tcpdumps[name].poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tcpdump in {name} did not start: {err.read_text(errors='replace')}")
                time.sleep(0.05)
        return self.capture_files

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
