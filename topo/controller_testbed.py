"""The BMv2 testbed (topo/bmv2_testbed.py), the real controller, raw-socket clients and backends.

For the controller's tests and benchmarks: port 1 is the client side, ports 2.. are
backends. `Wire` sends TCP/UDP flows into port 1 and records, on every backend port, which
flow each packet came out on, so a test can check that no flow ever used two backends.
Everything (controller threads or processes, switch, veths) is stopped on exit.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from controller.config import Config
from controller.dataplane.flow_key import flow_key
from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason
from topo.lifetime import tied
from topo.toolchain import REPO
from topo.veth_pairs import VethPairs

VIP = "10.0.0.100"
CLIENT_PORT = 1
ETH_P_ALL = 0x0003


def backend_port(index: int) -> int:
    return 2 + index


def backend_mac(index: int) -> str:
    return f"02:00:00:00:01:{index:02x}"


def dispatcher_config(backends: int = 3, *, grpc_port: int, api_port: int = 0, policy: str = "round_robin",
                   ring_size: int = 256, idle_timeout_s: float = 10.0, dispatch: str = "ring",
                   program: str = "dispatcher", protocol: str = "tcp", election_id: int = 1,
                   poll_interval_ms: int = 100, capacities: list[float] | None = None,
                   cache_timeout_ms: int = 1000) -> dict[str, Any]:
    """A controller configuration (as the TOML would load) for a VIP service on this testbed."""
    return {
        "switch": {"grpc_address": f"127.0.0.1:{grpc_port}", "election_id": election_id,
                   "program": program},
        "timers": {"flow_idle_timeout_s": idle_timeout_s, "poll_interval_ms": poll_interval_ms,
                   "cache_timeout_ms": cache_timeout_ms},
        "api": {"address": "127.0.0.1", "port": api_port},
        "services": [{
            "name": "web", "id": 1, "mode": "vip", "vip": VIP, "protocol": protocol, "port": 80,
            "policy": policy, "dispatch": dispatch, "ring_size": ring_size, "ring_threshold": 0.0,
            "ring_max_change": 1.0,
            "backends": [{"name": f"b{i}", "id": 10 + i, "port": backend_port(i), "mac": backend_mac(i),
                          "capacity_mbps": (capacities or [100.0] * backends)[i]}
                         for i in range(backends)],
        }],
    }


def write_toml(config: dict[str, Any], path: Path) -> Path:
    """The configuration as the TOML file `python -m controller run --config` reads."""
    path.write_text(tomli_w.dumps(config))
    return path


def client_flow(i: int, seed: int = 0) -> tuple[str, int]:
    """Scattered client addresses and ephemeral ports, as real clients have."""
    rng = random.Random(seed * 1_000_003 + i)
    return f"192.168.{rng.randrange(256)}.{rng.randrange(1, 255)}", rng.randrange(1024, 65000)


def tcp_frame(src: str, sport: int, flags: str, payload: bytes = b"", dst: str = VIP) -> bytes:
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:fe")
                 / IP(src=src, dst=dst) / TCP(sport=sport, dport=80, flags=flags) / payload)


def udp_frame(src: str, sport: int, payload: bytes = b"x", dst: str = VIP) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    return bytes(Ether(src="00:00:00:00:00:01", dst="00:00:00:00:00:fe")
                 / IP(src=src, dst=dst) / UDP(sport=sport, dport=80) / payload)


class Wire:
    """Sends into the client port; records (flow key -> ports, packets) on backend ports."""

    def __init__(self, veths: VethPairs, backend_ports: list[int]) -> None:
        self.sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        self.sender.bind((veths.host_side(CLIENT_PORT), 0))
        self.sent = 0
        self.seen: dict[tuple, Counter] = defaultdict(Counter)   # flow key -> port -> packets
        self.first_seen: dict[tuple, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = []
        for port in backend_ports:
            # Protocol 0 at creation (receives nothing), ETH_P_ALL only with the bind: a socket
            # created with ETH_P_ALL captures every interface until bound, and what it queued
            # there (another run's traffic, loopback) would be counted as this port's.
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            s.bind((veths.host_side(port), ETH_P_ALL))
            s.settimeout(0.1)
            t = threading.Thread(target=self._receive, args=(s, port), daemon=True)
            t.start()
            self._threads.append((t, s))

    def send(self, frame: bytes) -> None:
        self.sender.send(frame)
        self.sent += 1

    def _receive(self, sock: socket.socket, port: int) -> None:
        while not self._stop.is_set():
            try:
                frame = sock.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            key = flow_key(frame)
            if key is None or key[2] not in (6, 17):
                continue   # not test traffic (e.g. stray IPv6/ARP)
            now = time.monotonic()
            with self._lock:
                self.seen[key][port] += 1
                self.first_seen.setdefault(key, now)

    def received(self) -> int:
        with self._lock:
            return sum(sum(c.values()) for c in self.seen.values())

    def wait_received(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.received() < count:
            time.sleep(0.05)
        return self.received()

    def split_flows(self) -> dict[tuple, Counter]:
        """Flows seen on more than one backend port: per-connection consistency broken."""
        with self._lock:
            return {k: c for k, c in self.seen.items() if len(c) > 1}

    def port_of(self, key: tuple) -> int | None:
        with self._lock:
            ports = self.seen.get(key)
            return next(iter(ports)) if ports and len(ports) == 1 else None

    def close(self) -> None:
        self._stop.set()
        for t, s in self._threads:
            t.join(timeout=1)
            s.close()
        self.sender.close()


@dataclass
class ControllerProcess:
    """`python -m controller run` in its own process (to kill it as a real failure would)."""
    config_path: Path
    election_id: int
    api_port: int
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        self._log = self.log_path.open("w")
        # Tied to the test (it dies if the test run is killed) and with SIGINT and SIGTERM at
        # their defaults whatever the test run inherited: stop() relies on SIGTERM.
        self.process = subprocess.Popen(
            tied([sys.executable, "-m", "controller", "run", "--config", str(self.config_path),
                  "--election-id", str(self.election_id), "--api-port", str(self.api_port)]),
            cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def kill(self) -> None:
        """SIGKILL: no goodbye to the switch, as a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if hasattr(self, "_log"):
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class ControllerTestbed(Bmv2Testbed):
    """The BMv2 testbed with a client port and `backends` backend ports, and a Wire on them;
    controllers are started by the test (in-process or as processes) and stopped on exit."""
    backends: int = 3
    prefix: str = field(default_factory=lambda: f"c{os.getpid() % 100_000}")
    work_dir: Path = Path("/tmp/fd-controller-testbed")
    wire: Wire | None = None
    _controllers: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ports = [CLIENT_PORT] + [backend_port(i) for i in range(self.backends)]

    def config(self, **overrides: Any) -> Config:
        return Config.model_validate(dispatcher_config(self.backends, grpc_port=self.grpc_port, **overrides))

    def __enter__(self) -> ControllerTestbed:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        super().__enter__()
        try:
            assert self.veths is not None   # Bmv2Testbed.__enter__ created them
            self.wire = Wire(self.veths, self.ports[1:])
        except BaseException:
            self.__exit__()
            raise
        return self

    def run_controller(self, config: Config) -> RunningController:
        from controller.app import Controller
        running = RunningController(Controller(config))
        running.start()
        self._controllers.append(running)
        return running

    def controller_process(self, config: dict[str, Any], election_id: int, api_port: int,
                           name: str) -> ControllerProcess:
        path = write_toml(config, self.work_dir / f"{name}.toml")
        proc = ControllerProcess(path, election_id, api_port, self.work_dir / f"{name}.log")
        proc.start()
        self._controllers.append(proc)
        return proc

    def __exit__(self, *exc: object) -> None:
        """Controllers, the wire, then switch and veths: each step even if one before failed
        (the first error is raised at the end), so one failed test leaves nothing running."""
        try:
            error: BaseException | None = None
            for c in reversed(self._controllers):
                try:
                    c.stop()
                except BaseException as stop_error:     # re-raised below, once all were stopped
                    error = error or stop_error
            self._controllers.clear()
            if self.wire is not None:
                self.wire.close()
                self.wire = None
            if error is not None:
                raise error
        finally:
            super().__exit__(*exc)


class RunningController:
    """A Controller serving in a thread of this process."""

    def __init__(self, controller) -> None:
        self.controller = controller
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=controller.run, args=(self.stop_event,), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def wait_role(self, role: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while self.controller.role != role:
            if time.monotonic() > deadline:
                raise TimeoutError(f"controller is {self.controller.role}, not {role}, after {timeout} s")
            time.sleep(0.02)

    def wait_flows(self, count: int, timeout: float = 10.0) -> int:
        deadline = time.monotonic() + timeout
        while len(self.controller.flows.table) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return len(self.controller.flows.table)

    def call(self, command: str, **args: Any) -> Any:
        return self.controller.submit(command, **args).result(timeout=10)

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread.ident is not None:     # started
            self.thread.join(timeout=10)


def missing_reason() -> str | None:
    return missing_testbed_reason()
