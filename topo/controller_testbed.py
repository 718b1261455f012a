"""A BMv2 switch on veth pairs, the real controller, and raw-socket clients and backends.

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
import tomllib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.bmv2 import Bmv2Switch
from controller.config import Config
from controller.toolchain import REPO
from controller.traces.flow_keys import flow_key
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
                   poll_interval_ms: int = 100, capacities: list[float] | None = None) -> dict[str, Any]:
    """A controller configuration (as the TOML would load) for a VIP service on this testbed."""
    return {
        "switch": {"grpc_address": f"127.0.0.1:{grpc_port}", "election_id": election_id,
                   "program": program},
        "timers": {"flow_idle_timeout_s": idle_timeout_s, "poll_interval_ms": poll_interval_ms},
        "api": {"address": "127.0.0.1", "port": api_port},
        "services": [{
            "name": "web", "id": 1, "mode": "vip", "vip": VIP, "protocol": protocol, "port": 80,
            "policy": policy, "dispatch": dispatch, "ring_size": ring_size, "ring_threshold": 0.0,
            "backends": [{"name": f"b{i}", "id": 10 + i, "port": backend_port(i), "mac": backend_mac(i),
                          "capacity_mbps": (capacities or [100.0] * backends)[i]}
                         for i in range(backends)],
        }],
    }


def write_toml(config: dict[str, Any], path: Path) -> Path:
    """Just enough TOML for dispatcher_config's shape (tables, arrays of tables, scalars)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    for section in ("switch", "timers", "api"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in config[section].items()]
    for service in config["services"]:
        lines.append("[[services]]")
        lines += [f"{k} = {value(v)}" for k, v in service.items() if k != "backends"]
        for backend in service["backends"]:
            lines.append("[[services.backends]]")
            lines += [f"{k} = {value(v)}" for k, v in backend.items()]
    path.write_text("\n".join(lines) + "\n")
    tomllib.loads(path.read_text())   # what we wrote must parse
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
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            s.bind((veths.host_side(port), 0))
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
            except (TimeoutError, socket.timeout):
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
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--config", str(self.config_path),
             "--election-id", str(self.election_id), "--api-port", str(self.api_port)],
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
class ControllerTestbed:
    """Switch + veths; controllers are started by the test (in-process or as processes)."""
    backends: int = 3
    grpc_port: int = 9659
    thrift_port: int = 9190
    prefix: str = "fc"
    work_dir: Path = Path("/tmp/fd-controller-testbed")
    veths: VethPairs | None = None
    switch: Bmv2Switch | None = None
    wire: Wire | None = None
    _controllers: list = field(default_factory=list)

    @property
    def ports(self) -> list[int]:
        return [CLIENT_PORT] + [backend_port(i) for i in range(self.backends)]

    def config(self, **overrides: Any) -> Config:
        return Config.model_validate(dispatcher_config(self.backends, grpc_port=self.grpc_port, **overrides))

    def __enter__(self) -> "ControllerTestbed":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.veths = VethPairs(self.ports, prefix=self.prefix)
        self.veths.create()
        try:
            self.start_switch()
            self.wire = Wire(self.veths, self.ports[1:])
        except BaseException:
            self.__exit__()
            raise
        return self

    def start_switch(self) -> None:
        assert self.veths is not None
        self.switch = Bmv2Switch({p: self.veths.switch_side(p) for p in self.ports},
                                 grpc_port=self.grpc_port, thrift_port=self.thrift_port)
        self.switch.start()

    def kill_switch(self) -> None:
        assert self.switch is not None and self.switch.process is not None
        self.switch.process.kill()
        self.switch.process.wait(timeout=5)
        self.switch.stop()

    def run_controller(self, config: Config) -> "RunningController":
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
        for c in reversed(self._controllers):
            c.stop()
        if self.wire is not None:
            self.wire.close()
        if self.switch is not None:
            self.switch.stop()
        if self.veths is not None:
            self.veths.destroy()


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
        self.thread.join(timeout=10)


def missing_reason() -> str | None:
    from topo.bmv2_testbed import missing_testbed_reason
    return missing_testbed_reason()
