"""Host metrics for the load report, read with psutil.

* bytes and packets sent on the service interface (all but loopback when none is named):
  the kernel's cumulative counters, so a lost report loses nothing (psutil's `nowrap`
  keeps them monotonic across 32-bit wraps);
* CPU and memory utilisation, the 1-minute load average (the run queue) and the CPU count;
* established TCP connections whose local port is the service port;
* optionally the first number a configured command prints (e.g. a queue length).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import subprocess
from dataclasses import dataclass

import psutil

log = logging.getLogger("agent")


@dataclass(frozen=True)
class Sample:
    tx_bytes: int
    tx_packets: int
    cpu_percent: float
    memory_percent: float
    load_average: float
    cpus: int
    connections: int
    custom: float = math.nan


class HostSampler:
    def __init__(self, interface: str | None = None, service_port: int | None = None,
                 command: str | None = None, command_timeout_s: float = 0.5) -> None:
        known = psutil.net_io_counters(pernic=True)
        if interface is not None and interface not in known:
            raise ValueError(f"no interface {interface!r}; this host has {', '.join(sorted(known))}")
        self.interface = interface
        self.service_port = service_port
        self.command = shlex.split(command) if command else None
        self.command_timeout_s = command_timeout_s
        self.cpus = psutil.cpu_count() or 1
        psutil.cpu_percent(interval=None)      # the first call only starts the measurement

    def sample(self) -> Sample:
        tx_bytes, tx_packets = self._sent()
        return Sample(tx_bytes=tx_bytes, tx_packets=tx_packets,
                      cpu_percent=psutil.cpu_percent(interval=None),
                      memory_percent=psutil.virtual_memory().percent,
                      load_average=os.getloadavg()[0], cpus=self.cpus,
                      connections=self._connections(), custom=self._custom())

    def _sent(self) -> tuple[int, int]:
        counters = psutil.net_io_counters(pernic=True, nowrap=True)
        if self.interface is not None:
            nic = counters.get(self.interface)
            if nic is None:     # the interface went away: zeros read as a reset by the controller
                log.warning("interface %s is gone", self.interface)
                return 0, 0
            return nic.bytes_sent, nic.packets_sent
        nics = [c for name, c in counters.items() if name != "lo"]
        return sum(c.bytes_sent for c in nics), sum(c.packets_sent for c in nics)

    def _connections(self) -> int:
        if self.service_port is None:
            return 0
        try:
            connections = psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            log.warning("not allowed to list TCP connections; reporting 0")
            return 0
        return sum(1 for c in connections
                   if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == self.service_port)

    def _custom(self) -> float:
        if self.command is None:
            return math.nan
        try:
            done = subprocess.run(self.command, capture_output=True, text=True, timeout=self.command_timeout_s)
            value = float(done.stdout.split()[0])
        except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as exc:
            log.warning("metric command %s gave no number: %s", shlex.join(self.command), exc)
            return math.nan
        return value if math.isfinite(value) else math.nan
