"""The agents' load reports as host metrics: the latest report per host, with the send rate
computed from the cumulative counters.

Rates use the agent's own clock (its uptime field), so a report delayed or queued on the
way does not make a rate jump. A counter that went backwards (interface re-created, host
rebooted) or an uptime that went backwards (agent restarted) gives no rate for that report;
the next one starts counting again. A report older than `stale_after_s` is not returned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.health.messages import SEQUENCE_MODULO, LoadReport


@dataclass(frozen=True)
class HostSample:
    host_id: int
    received_at: float             # controller's monotonic s
    cpu: float                     # utilisation, 0..1
    memory: float                  # 0..1
    run_queue_per_cpu: float       # 1-minute load average / CPUs
    connections: int               # in service on the service port (established or closed, sending)
    custom: float | None           # the configured command's number
    tx_bytes: int                  # cumulative, as reported
    uptime_s: float                # agent's clock (modulo 2**32 ms)
    tx_rate: float | None          # bytes/s since the previous report; None after a reset or first
    tx_packet_rate: float | None


class HostMetrics:
    def __init__(self, stale_after_s: float = 5.0) -> None:
        self.stale_after_s = stale_after_s
        self._reports: dict[int, tuple[LoadReport, float]] = {}
        self._samples: dict[int, HostSample] = {}
        self.resets = 0       # reports that followed a counter or agent reset

    def add(self, report: LoadReport, received_at: float) -> HostSample:
        previous = self._reports.get(report.host_id)
        tx_rate = packet_rate = None
        if previous is not None:
            before = previous[0]
            elapsed_ms = (report.uptime_ms - before.uptime_ms) % SEQUENCE_MODULO
            went_back = elapsed_ms >= SEQUENCE_MODULO // 2     # 32-bit ms: a wrap is a small step
            if went_back or report.tx_bytes < before.tx_bytes or report.tx_packets < before.tx_packets:
                self.resets += 1
            elif elapsed_ms > 0:
                tx_rate = (report.tx_bytes - before.tx_bytes) / (elapsed_ms / 1000)
                packet_rate = (report.tx_packets - before.tx_packets) / (elapsed_ms / 1000)
        self._reports[report.host_id] = (report, received_at)
        sample = HostSample(
            host_id=report.host_id, received_at=received_at, cpu=report.cpu_percent / 100,
            memory=report.memory_percent / 100, run_queue_per_cpu=report.run_queue_per_cpu,
            connections=report.connections, custom=None if math.isnan(report.custom) else report.custom,
            tx_bytes=report.tx_bytes, uptime_s=report.uptime_ms / 1000, tx_rate=tx_rate, tx_packet_rate=packet_rate)
        self._samples[report.host_id] = sample
        return sample

    def latest(self, host_id: int, now: float) -> HostSample | None:
        sample = self._samples.get(host_id)
        if sample is None or now - sample.received_at > self.stale_after_s:
            return None
        return sample

    def forget(self, host_id: int) -> None:
        self._reports.pop(host_id, None)
        self._samples.pop(host_id, None)
