"""Builds the typed status (controller/status.py) after each counter poll, in the serving loop.

Times in the status are ages and durations in seconds at the moment it was built (the
controller's monotonic clock means nothing to a reader).
"""

from __future__ import annotations

from controller.admission_writer import AdmissionWriter
from controller.backend_pool import BackendPool, LiveBackend
from controller.config import Config
from controller.counter_poller import CounterReading, drops_by_reason, events_by_name
from controller.flow_manager import FlowManager
from controller.health.monitor import BackendHealth
from controller.health_control import HealthControl, HealthEnforcer
from controller.load_monitor import LoadMonitor
from controller.policies.nd import NetworkDispatcher
from controller.policy_admin import nd_settings
from controller.ring_updates import RingUpdater
from controller.session_control import SessionControl
from controller.status import (
    AdmissionStatus,
    AdvisorHealth,
    BackendHealthStatus,
    BackendStatus,
    ControllerStatus,
    FlowStatus,
    HealthSummary,
    HealthTransition,
    HistogramSnapshot,
    HostStatus,
    NdStatus,
    RateTracker,
    RunCounts,
    ServiceStatus,
    SessionStatus,
    latency_quantiles,
    port_status,
)


class StatusBuilder:
    def __init__(self, config: Config, pool: BackendPool, flows: FlowManager, monitor: LoadMonitor,
                 rings: RingUpdater, health: HealthControl, enforcer: HealthEnforcer, admission: AdmissionWriter,
                 counts: RunCounts, started: float, sessions: SessionControl | None = None) -> None:
        self.config = config
        self.pool = pool
        self.flows = flows
        self.monitor = monitor
        self.rings = rings
        self.health = health
        self.enforcer = enforcer
        self.admission = admission
        self.counts = counts
        self.started = started
        self.sessions = sessions
        self._rates = RateTracker()

    def build(self, base: ControllerStatus, reading: CounterReading) -> ControllerStatus:
        now = reading.at
        stats = self.flows.stats
        digests_per_s, writes_per_s = self._rates.rates(now, stats.digests, stats.inserted + stats.deleted)
        health = self.health.snapshot(now)
        estimated = self.monitor.estimates.server_load() if self.monitor.track_flows else None
        services = []
        for service in self.pool.services.values():
            shares = self.rings.rings[service.id].shares()
            backends = [self._backend(b, reading, health.get(b.id), now,
                                      None if estimated is None else float(estimated[b.id]), shares.get(b.id, 0.0))
                        for b in self.pool.of_service(service.id)]
            services.append(ServiceStatus(
                name=service.name, id=service.id, mode=service.mode, policy=service.policy,
                dispatch=service.dispatch, ring_rewrites=self.rings.rings[service.id].rewrites, backends=backends,
                down_entries=self.health.plan.down_entries.get(service.id, "keep"),
                admission=self._admission(service.id), nd=self._nd(service.id)))
        flows = FlowStatus(active=len(self.flows.table), pending=self.flows.pending,
                           overflow=self.flows.overflow, **vars(stats),
                           digests_per_s=digests_per_s, writes_per_s=writes_per_s,
                           install_latency_ms=latency_quantiles(self.flows.install_latency),
                           install_latency_seconds=HistogramSnapshot(**self.flows.install_histogram.snapshot()))
        return base.model_copy(update={
            "uptime_s": now - self.started, "flows": flows, "controller": self.counts.snapshot(),
            "ports": port_status(reading.ports), "drops": drops_by_reason(reading.drops),
            "events": events_by_name(reading.events), "ring_generation": self.rings.generation,
            "health": self._health_summary(now), "services": services, "sessions": self._sessions()})

    def _sessions(self) -> SessionStatus | None:
        control = self.sessions
        if control is None or not control.enabled:
            return None
        parse = control.parse_stats()
        by_state = {str(state): count for state, count in control.table.by_state().items()}
        return SessionStatus(sessions=len(control.table.sessions), by_state=by_state,
                             announced_entries=len(control.table), capacity=control.table.capacity,
                             waiting=control.waiting, signalling_packets=control.signalling.packets,
                             not_inspected=control.signalling.not_inspected, **vars(control.table.counts),
                             entry_latency_ms=latency_quantiles(control.entry_latency),
                             parse_errors=dict(parse.errors), parse_notes=dict(parse.notes))

    # ---- per backend ---------------------------------------------------------------------

    def _backend(self, b: LiveBackend, reading: CounterReading, health: BackendHealth | None, now: float,
                 estimated: float | None, ring_share: float) -> BackendStatus:
        traffic = reading.backend_traffic.get(b.id)
        rate = float(self.monitor.backend_rate[b.id])
        ratio = float(self.health.visibility_ratios([b], now)[0])
        return BackendStatus(
            name=b.name, id=b.id, state=b.state.value, port=b.config.port,
            capacity_mbps=b.config.capacity_mbps, flows=int(self.flows.table.per_backend[b.id]),
            load_mbps=rate * 8 / 1e6,
            estimated_mbps=estimated * 8 / 1e6 if estimated is not None else None, ring_share=ring_share,
            packets=traffic.packets if traffic else 0, bytes=traffic.bytes if traffic else 0,
            load_source=self.health.load_source(b.id, now).value, visibility_ratio=ratio,
            served_mbps=rate / ratio * 8 / 1e6 if ratio > 0 else None,
            health=self._backend_health(b, health, now))

    def _backend_health(self, b: LiveBackend, h: BackendHealth | None, now: float) -> BackendHealthStatus:
        totals = {state.value: n for (backend_id, state), n in self.health.transitions.items() if backend_id == b.id}
        host = self._host(b, now)
        if h is None:
            return BackendHealthStatus(watched=False, state="up", reason="not watched (no agent, no advisor)",
                                       for_s=now - max(self.started, b.state_since), host=host)
        return BackendHealthStatus(
            watched=True, state=h.state.value, reason=h.reason, for_s=now - h.since, has_agent=h.has_agent,
            last_heartbeat_age_s=h.last_heartbeat_age, flag=h.flag.name.lower() if h.flag is not None else None,
            planned_failure_in_s=h.planned_failure_in, good_periods=h.good_periods,
            advisors=[AdvisorHealth(name=name, ok=a.ok, response_time_s=a.response_time, detail=a.detail,
                                    failures=a.failures) for name, a in h.advisors.items()],
            transitions=[HealthTransition(ago_s=now - t.time, old=t.old.value, new=t.new.value, reason=t.reason)
                         for t in h.transitions],
            transitions_total=totals, host=host)

    def _host(self, b: LiveBackend, now: float) -> HostStatus | None:
        s = self.health.host_sample(b.id, now)
        if s is None:
            return None
        return HostStatus(age_s=now - s.received_at, cpu=s.cpu, memory=s.memory,
                          run_queue_per_cpu=s.run_queue_per_cpu, connections=s.connections,
                          served_bytes_per_s=s.tx_rate, custom=s.custom)

    # ---- per service ---------------------------------------------------------------------

    def _admission(self, service_id: int) -> AdmissionStatus | None:
        decision = self.admission.decisions.get(service_id)
        control = self.admission.controls.get(service_id)
        if decision is None or control is None:
            return None
        entry = self.admission.on_switch.get(service_id)
        s = control.settings
        return AdmissionStatus(
            level=decision.level.name.lower(), wanted=decision.wanted.name.lower(), drop_prob=decision.drop_prob,
            load=decision.load, raw_load=decision.raw_load, t1=s.t1, t2=decision.t2, t3=decision.t3, c=s.c,
            on_switch="admit_all" if entry is None else entry.level.name.lower(),
            writes=self.admission.writes[service_id], components=dict(self.admission.components.get(service_id, {})))

    def _nd(self, service_id: int) -> NdStatus | None:
        policy = self.rings.policies.get(service_id)
        if not isinstance(policy, NetworkDispatcher):
            return None
        backends = self.pool.of_service(service_id)
        # The manager keeps servers by their index in the service's backend list (by id).
        over = [backends[i].name for i in sorted(policy.over_limit) if i < len(backends)]
        return NdStatus(**nd_settings(policy), over_limit=over)

    def _health_summary(self, now: float) -> HealthSummary:
        counts = self.health.counts()
        listener = self.health.cluster.listener
        return HealthSummary(
            period_s=self.health.period_s,
            listening=f"{listener.address[0]}:{listener.address[1]}" if listener is not None else None,
            messages={k.removeprefix("accepted_"): v for k, v in counts.items() if k.startswith("accepted_")},
            dropped={k.removeprefix("dropped_"): v for k, v in counts.items() if k.startswith("dropped_")},
            advisor_skipped=counts.get("advisor_skipped", 0), report_resets=counts.get("report_resets", 0),
            entries_deleted=self.enforcer.entries_deleted,
            on_fallback=[self.pool.name_of(b) for b in self.health.visibility.on_fallback(now) if b in self.pool])
