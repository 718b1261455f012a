"""Host metrics for the load report, read with psutil.

* bytes and packets sent on the service interface (all but loopback when none is named):
  the kernel's cumulative counters, so a lost report loses nothing (psutil's `nowrap`
  keeps them monotonic across 32-bit wraps);
* CPU and memory utilisation, the 1-minute load average (the run queue) and the CPU count;
  CPU is the host's (`cpu="host"`, the default) or the service's (`cpu="service"`: the CPU
  time of the processes listening on the service port, as a share of `service_cpus` CPUs).
  The latter is for hosts that share a machine's /proc/stat, such as Mininet hosts or
  containers without a CPU namespace, where the host figure would be every tenant's;
* TCP connections in service on the service port (local port): established, and those the
  server has closed while its data is still on the way (FIN_WAIT1, CLOSING, LAST_ACK) or the
  client has closed while the server still sends (CLOSE_WAIT). A server that writes a
  response into its socket buffer and closes has not served it yet: on a full link the
  backlog lives in those closed-but-sending sockets, not in ESTABLISHED ones;
* optionally the first number a configured command prints (e.g. a queue length).
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import subprocess
import time
from dataclasses import dataclass
from typing import Literal

import psutil

log = logging.getLogger("agent")

# States of a server-side connection whose response is not yet delivered (see above)
IN_SERVICE = frozenset({psutil.CONN_ESTABLISHED, psutil.CONN_CLOSE_WAIT, psutil.CONN_FIN_WAIT1,
                        psutil.CONN_CLOSING, psutil.CONN_LAST_ACK})


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


CpuSource = Literal["host", "service"]


class HostSampler:
    def __init__(self, interface: str | None = None, service_port: int | None = None,
                 command: str | None = None, command_timeout_s: float = 0.5, cpu: CpuSource = "host",
                 service_cpus: float = 1.0) -> None:
        known = psutil.net_io_counters(pernic=True)
        if interface is not None and interface not in known:
            raise ValueError(f"no interface {interface!r}; this host has {', '.join(sorted(known))}")
        if cpu == "service" and service_port is None:
            raise ValueError("the service's CPU needs the service port (its processes are those listening on it)")
        if service_cpus <= 0:
            raise ValueError(f"service CPUs must be > 0, got {service_cpus}")
        self.interface = interface
        self.service_port = service_port
        self.command = shlex.split(command) if command else None
        self.command_timeout_s = command_timeout_s
        self.cpu = cpu
        self.service_cpus = service_cpus
        self.cpus = psutil.cpu_count() or 1
        # The service's processes, (pid, start time) -> CPU seconds at the last sample.
        self._service_cpu_seconds: dict[tuple[int, float], float] = {}
        self._service_sampled_at: float | None = None
        psutil.cpu_percent(interval=None)      # the first call only starts the measurement
        if cpu == "service":
            self._service_cpu(self._tcp_connections())

    def sample(self) -> Sample:
        tx_bytes, tx_packets = self._sent()
        connections = self._tcp_connections() if self.service_port is not None else []
        host_cpu = psutil.cpu_percent(interval=None)
        return Sample(tx_bytes=tx_bytes, tx_packets=tx_packets,
                      cpu_percent=host_cpu if self.cpu == "host" else self._service_cpu(connections),
                      memory_percent=psutil.virtual_memory().percent,
                      load_average=os.getloadavg()[0], cpus=self.cpus,
                      connections=self._in_service(connections), custom=self._custom())

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

    def _tcp_connections(self) -> list:
        try:
            return psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            log.warning("not allowed to list TCP connections; reporting 0 connections (and 0 service CPU)")
            return []

    def _in_service(self, connections: list) -> int:
        return sum(1 for c in connections
                   if c.status in IN_SERVICE and c.laddr and c.laddr.port == self.service_port)

    def _service_cpu(self, connections: list) -> float:
        """CPU % of the processes listening on the service port since the last sample, of
        `service_cpus` CPUs (capped at 100). A process seen for the first time counts from
        now on; none listening is 0."""
        now = time.monotonic()
        pids = {c.pid for c in connections
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == self.service_port and c.pid}
        seconds: dict[tuple[int, float], float] = {}
        used = 0.0
        for pid in pids:
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    key = (pid, process.create_time())
                    times = process.cpu_times()
            except psutil.Error:
                continue               # ended meanwhile
            seconds[key] = times.user + times.system
            if key in self._service_cpu_seconds:
                used += max(seconds[key] - self._service_cpu_seconds[key], 0.0)
        elapsed = None if self._service_sampled_at is None else now - self._service_sampled_at
        self._service_cpu_seconds, self._service_sampled_at = seconds, now
        if not elapsed or elapsed <= 0:
            return 0.0
        return min(100.0, 100.0 * used / elapsed / self.service_cpus)

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
