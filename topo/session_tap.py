"""A client and a server in two network namespaces, a delayed link between them, and a tap:
every packet on the server's link is mirrored, as it passes, into a switch's tap port.

    client ns  --[veth, netem delay each way]--  server ns ==tc mirred (both directions)==> tap
                                                              (the tap port's host-side veth,
                                                               moved into the server ns)

For the session-affinity tests (issue 13): real clients and servers (ftplib / pyftpdlib,
SIPp) talk across the link; the capture service sees their signalling and data as a real
tap would, with a client `delay_ms` away (the time the controller has between an
announcement and the flow it announces). Everything is removed on exit, even after a
failure: processes, namespaces, and the tap device goes back to the root namespace.
"""

from __future__ import annotations

import os
import signal
import subprocess
from dataclasses import dataclass, field

from topo.lifetime import tied

CLIENT_ADDRESS = "10.77.0.1"
SERVER_ADDRESS = "10.77.0.2"


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


@dataclass
class TappedLink:
    tap_device: str                 # host side of the switch's tap port (moved in, moved back)
    delay_ms: float = 20.0          # one way, each direction
    prefix: str = field(default_factory=lambda: f"st{os.getpid() % 100_000}")
    _processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def client_ns(self) -> str:
        return f"{self.prefix}-cl"

    @property
    def server_ns(self) -> str:
        return f"{self.prefix}-sv"

    def __enter__(self) -> TappedLink:
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
        cl, sv = self.client_ns, self.server_ns
        c_dev, s_dev = f"{self.prefix}c", f"{self.prefix}s"
        for ns in (cl, sv):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run("ip", "link", "add", c_dev, "type", "veth", "peer", "name", s_dev)
        _run("ip", "link", "set", c_dev, "netns", cl)
        _run("ip", "link", "set", s_dev, "netns", sv)
        _run("ip", "link", "set", self.tap_device, "netns", sv)
        for ns, dev, address in ((cl, c_dev, CLIENT_ADDRESS), (sv, s_dev, SERVER_ADDRESS)):
            self.run(ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            # Offloads would hand the tap unsegmented or unchecksummed frames.
            self.run(ns, "ethtool", "-K", dev, "tx", "off", "rx", "off", "tso", "off", "gso", "off", "gro", "off",
                     check=False)
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "delay", f"{self.delay_ms}ms")
        _run("ip", "-n", sv, "link", "set", self.tap_device, "up")
        # The tap: both directions of the server's link, mirrored as they pass (egress before
        # netem's delay, ingress after the client's).
        _run("tc", "-n", sv, "qdisc", "add", "dev", s_dev, "clsact")
        for direction in ("ingress", "egress"):
            _run("tc", "-n", sv, "filter", "add", "dev", s_dev, direction, "matchall",
                 "action", "mirred", "egress", "mirror", "dev", self.tap_device)

    def run(self, ns: str, *argv: str, check: bool = True, timeout: float | None = None,
            cwd: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, check=check,
                              timeout=timeout, cwd=cwd)

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
        # The tap device goes home first: deleting the namespace would destroy it, and with it
        # its peer, the switch's port.
        _run("ip", "-n", self.server_ns, "link", "set", self.tap_device, "netns", "1", check=False)
        _run("ip", "link", "set", self.tap_device, "up", check=False)
        for ns in (self.client_ns, self.server_ns):
            _run("ip", "netns", "del", ns, check=False)
