"""A client and a server in two network namespaces, joined by a wire with a delay and a tap:
every frame on the server's side of the wire is copied, as it passes, into a switch's tap port.

    client ns --veth-- [ DelayedTapWire: delay each way, copy at the server's side ] --veth-- server ns
                                              |
                                              +--> tap interface (a switch's tap port)

For the session-affinity tests (issue 13): real clients and servers (ftplib / pyftpdlib,
SIPp) talk across the wire; the capture service sees their signalling and data as a tap at
the server's link would, with the client `delay_ms` away: the time the controller has between
an announcement and the flow it announces. The wire is user space (AF_PACKET sockets) because
this kernel has neither netem nor tc's matchall classifier. Everything is removed on exit,
even after a failure: processes, wire threads, namespaces (their veths go with them).
"""

from __future__ import annotations

import heapq
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field

from topo.lifetime import tied

CLIENT_ADDRESS = "10.77.0.1"
SERVER_ADDRESS = "10.77.0.2"
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def _raw_socket(interface: str) -> socket.socket:
    # Protocol 0 at creation (receives nothing), ETH_P_ALL only with the bind: see
    # topo/controller_testbed.py's Wire.
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sock.bind((interface, ETH_P_ALL))
    return sock


class DelayedTapWire:
    """Frames between two interfaces, each delayed `delay_s`; a copy of each goes to `tap` at
    the moment it passes the server's side (server -> client: when sent; client -> server:
    when delivered)."""

    def __init__(self, client_side: str, server_side: str, tap: str, delay_s: float) -> None:
        self.delay_s = delay_s
        self.client = _raw_socket(client_side)
        self.server = _raw_socket(server_side)
        self.tap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        self.tap.bind((tap, 0))
        self.copied = 0
        self._queue: list[tuple[float, int, socket.socket, bytes, bool]] = []
        self._order = 0
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._receive, daemon=True),
                         threading.Thread(target=self._deliver, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _receive(self) -> None:
        sockets = [self.client, self.server]
        while not self._stop.is_set():
            ready, _, _ = select.select(sockets, [], [], 0.1)
            for sock in ready:
                try:
                    frame, address = sock.recvfrom(65535)
                except OSError:
                    return
                if address[2] == PACKET_OUTGOING:
                    continue    # the wire's own delivery, seen leaving
                due = time.monotonic() + self.delay_s
                if sock is self.server:
                    self._copy(frame)
                    self._schedule(due, self.client, frame, copy=False)
                else:
                    self._schedule(due, self.server, frame, copy=True)

    def _schedule(self, due: float, out: socket.socket, frame: bytes, copy: bool) -> None:
        with self._wake:
            self._order += 1
            heapq.heappush(self._queue, (due, self._order, out, frame, copy))
            self._wake.notify()

    def _deliver(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._queue and not self._stop.is_set():
                    self._wake.wait(0.1)
                if self._stop.is_set():
                    return
                due, _, out, frame, copy = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._queue)
            try:
                out.send(frame)
            except OSError:
                continue     # e.g. a frame over the MTU: the wire drops it, as a real one would
            if copy:
                self._copy(frame)

    def _copy(self, frame: bytes) -> None:
        try:
            self.tap.send(frame)
            self.copied += 1
        except OSError:
            pass

    def close(self) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in (self.client, self.server, self.tap):
            sock.close()


def reap_stale_namespaces() -> list[str]:
    """Delete the namespaces (and so their veths) of earlier runs killed before their clean-up
    (`st<pid>-cl`, `st<pid>-sv` of a process that is gone): named namespaces outlive it."""
    listing = _run("ip", "netns", "list", check=False).stdout
    stale = []
    for match in re.finditer(r"^(st(\d+)-(?:cl|sv))\b", listing, re.MULTILINE):
        name, pid = match.group(1), int(match.group(2))
        if pid != os.getpid() % 100_000 and not any(_pid_alive(p) for p in _pids_ending(pid)):
            _run("ip", "link", "del", f"st{pid}{name[-2]}w", check=False)
            _run("ip", "netns", "del", name, check=False)
            stale.append(name)
    return stale


def _pids_ending(short: int) -> list[int]:
    """Running pids whose value mod 100,000 is `short` (the prefix keeps five digits)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) % 100_000 == short]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


@dataclass
class TappedLink:
    tap_device: str                 # host side of the switch's tap port (root namespace)
    delay_ms: float = 20.0          # one way, each direction
    prefix: str = field(default_factory=lambda: f"st{os.getpid() % 100_000}")
    wire: DelayedTapWire | None = None
    _processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-cl"

    @property
    def server_ns(self) -> str:
        return f"{self.prefix}-sv"

    def __enter__(self) -> TappedLink:
        reap_stale_namespaces()
        self._remove()
        try:
            self._create()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _create(self) -> None:
        sides = {}
        for ns, role, address in ((self.client_ns, "c", CLIENT_ADDRESS), (self.server_ns, "s", SERVER_ADDRESS)):
            inside, outside = f"{self.prefix}{role}", f"{self.prefix}{role}w"
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "link", "add", outside, "type", "veth", "peer", "name", inside)
            _run("ip", "link", "set", inside, "netns", ns)
            for where, dev in ((["ip", "netns", "exec", ns], inside), ([], outside)):
                _run(*where, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1", check=False)
                # Offloads would hand the tap unsegmented or unchecksummed frames.
                _run(*where, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                     check=False)
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", inside)
            _run("ip", "-n", ns, "link", "set", inside, "up")
            _run("ip", "link", "set", outside, "up")
            sides[role] = outside
        self.wire = DelayedTapWire(sides["c"], sides["s"], self.tap_device, self.delay_ms / 1000)

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check,
                              timeout=timeout, cwd=cwd)

    def wait_listening(self, ns: str, port: int, udp: bool = False, timeout: float = 10.0) -> None:
        """Until a socket in `ns` listens on `port` (a client started earlier would be refused,
        and its attempt would be one more flow on the tap)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            listing = self.run(ns, "ss", "-Hln" + ("u" if udp else "t"), f"sport = :{port}", check=False)
            if listing.stdout.strip():
                return
            time.sleep(0.05)
        raise TimeoutError(f"nothing listens on {'udp' if udp else 'tcp'} port {port} in {ns} after {timeout} s")

    def start(self, ns: str, argv: list[str], **popen_args) -> subprocess.Popen:
        """A process in a namespace, stopped on exit (and killed with the test run)."""
        proc = subprocess.Popen(tied(["ip", "netns", "exec", ns, *argv]), start_new_session=True, **popen_args)
        self._processes.append(proc)
        return proc

    def _remove(self) -> None:
        for proc in self._processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        self._processes.clear()
        if self.wire is not None:
            self.wire.close()
            self.wire = None
        for ns, role in ((self.client_ns, "c"), (self.server_ns, "s")):
            _run("ip", "link", "del", f"{self.prefix}{role}w", check=False)
            _run("ip", "netns", "del", ns, check=False)
