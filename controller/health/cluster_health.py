"""Cluster health behind one call for the serving loop: listener, intake, monitor, host
metrics and advisors composed.

    health = ClusterHealth(config.health, config.health.plan(config.services), now=time.monotonic())
    health.start()                        # binds the UDP port, starts the listener thread
    ...each serving-loop turn (or each counter poll):
    update = health.poll(time.monotonic())
    for t in update.transitions:          # a backend went down, up, draining, recovering
        ...ring: only health.takes_new_flows(backend_id) backends get weight;
        ...t.new == DOWN: keep or delete its entries by plan.down_entries[service_id]
    for backend_id, sample in update.reports:   # fresh host metrics: visibility, ND, SA2C
        ...
    health.snapshot(now), health.counts()       # status, API, Prometheus
    health.stop()

Single-threaded like the loop that calls it: the listener and the advisors' pool are the
only other threads, and they only fill queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.health.advisors import AdvisorRunner
from controller.health.config import HealthConfig, HealthPlan
from controller.health.host_metrics import HostMetrics, HostSample
from controller.health.intake import MessageIntake
from controller.health.listener import HealthListener
from controller.health.messages import Codec, Heartbeat
from controller.health.monitor import BackendHealth, HealthMonitor, Transition


@dataclass
class HealthUpdate:
    transitions: list[Transition] = field(default_factory=list)
    reports: list[tuple[int, HostSample]] = field(default_factory=list)   # (backend id, sample)


class ClusterHealth:
    def __init__(self, config: HealthConfig, plan: HealthPlan, now: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.plan = plan
        self.clock = clock
        self.monitor = HealthMonitor(config.monitor_settings(), plan.hosts, plan.advisor_names, now)
        self.intake = MessageIntake(Codec(config.key()), plan.hosts)
        self.host_metrics = HostMetrics(stale_after_s=config.stale_after_s)
        self.advisors = AdvisorRunner(plan.advisors, config.period_s, workers=config.advisor_workers, clock=clock)
        self.listener: HealthListener | None = None
        self._host_of = {b: h for h, backends in plan.hosts.items() for b in backends}

    def start(self) -> ClusterHealth:
        """Bind the UDP port (OSError if taken) and start receiving; only when agents are configured."""
        if self.plan.hosts and self.listener is None:
            self.listener = HealthListener(self.config.listen_address, self.config.listen_port,
                                           clock=self.clock).start()
        return self

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        self.advisors.close()

    def poll(self, now: float) -> HealthUpdate:
        update = HealthUpdate()
        for datagram in self.listener.drain() if self.listener is not None else ():
            message = self.intake.accept(datagram.payload)
            if isinstance(message, Heartbeat):
                update.transitions += self.monitor.heartbeat(message, datagram.received_at)
            elif message is not None:
                sample = self.host_metrics.add(message, datagram.received_at)
                update.reports += [(b, sample) for b in self.plan.hosts.get(message.host_id, ())]
        for r in self.advisors.results():
            update.transitions += self.monitor.advisor_result(r.backend_id, r.advisor, r.result.ok, r.at,
                                                              r.result.response_time, r.result.detail)
        self.advisors.run_due(now)
        update.transitions += self.monitor.tick(now)
        return update

    # ---- questions ------------------------------------------------------------------------

    def takes_new_flows(self, backend_id: int) -> bool:
        return self.monitor.takes_new_flows(backend_id)

    def host_sample(self, backend_id: int, now: float) -> HostSample | None:
        host = self._host_of.get(backend_id)
        return None if host is None else self.host_metrics.latest(host, now)

    def snapshot(self, now: float) -> dict[int, BackendHealth]:
        return self.monitor.snapshot(now)

    def counts(self) -> dict[str, int]:
        """Messages accepted and dropped by reason, listener overflow, advisor skips."""
        out = {f"accepted_{k}": v for k, v in self.intake.accepted.items()}
        out |= {f"dropped_{k}": v for k, v in self.intake.dropped.items()}
        out["dropped_overflow"] = self.listener.overflow if self.listener is not None else 0
        out["advisor_skipped"] = self.advisors.skipped
        out["report_resets"] = self.host_metrics.resets
        return out
