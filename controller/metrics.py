"""Prometheus metrics, read from the controller's status at scrape time.

One collector turns the controller's status (the same one `p4dispatch status` shows)
into metric families, so the numbers on a dashboard and on the terminal agree.
Rates (digests/s, writes/s) are left to PromQL's rate() over the counters. Every family,
its labels and meaning: docs/metrics.md; the Grafana dashboard over them:
dashboards/grafana/p4dispatch.json (tests/unit/test_grafana_dashboard.py keeps the two in step).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from controller.dataplane.constants import AdmissionLevel
from controller.status import (
    HEALTH_STATES,
    LOAD_SOURCES,
    ROLES,
    ControllerStatus,
    HealthSummary,
    ServiceStatus,
    SessionStatus,
)


class ControllerCollector(Collector):
    def __init__(self, status: Callable[[], ControllerStatus]) -> None:
        self._status = status

    def collect(self) -> Iterator:
        status = self._status()
        role = GaugeMetricFamily("dispatcher_controller_role", "1 for the controller's current role",
                                 labels=["role"])
        for role_name in ROLES:
            role.add_metric([role_name], 1.0 if status.role == role_name else 0.0)
        yield role
        flows = status.flows
        if flows is None:
            return
        yield GaugeMetricFamily("dispatcher_active_flows", "flows entries the controller tracks",
                                value=flows.active)
        yield GaugeMetricFamily("dispatcher_overflow_flows",
                                "flows waiting for room in a full `flows` table", value=flows.overflow)
        for name, help_text in (("digests", "new-flow digests received"),
                                ("duplicate_digests", "digests for flows already installed or queued"),
                                ("malformed_digests", "digests that could not be decoded"),
                                ("unknown_backend", "digests naming an unconfigured backend"),
                                ("inserted", "flows entries written"),
                                ("deleted", "flows entries deleted after idle timeout or removal"),
                                ("table_full", "inserts refused because the table was full"),
                                ("write_failures", "flows writes that failed otherwise")):
            yield CounterMetricFamily(f"dispatcher_{name}", help_text, value=getattr(flows, name))
        writes = CounterMetricFamily("dispatcher_writes", "P4Runtime flows updates", labels=["kind"])
        writes.add_metric(["insert"], flows.inserted)
        writes.add_metric(["delete"], flows.deleted)
        yield writes
        if flows.install_latency_ms is not None:
            latency = GaugeMetricFamily("dispatcher_install_latency_ms",
                                        "digest arrival to entry written, last 2,000 flows", labels=["quantile"])
            latency.add_metric(["p50"], flows.install_latency_ms.p50)
            latency.add_metric(["p99"], flows.install_latency_ms.p99)
            yield latency
        histogram = flows.install_latency_seconds
        if histogram is not None:
            # le as prometheus_client's own Histogram writes it ("0.005", "1.0", "+Inf")
            buckets = [(floatToGoString(le), count) for le, count in zip(histogram.le, histogram.cumulative)]
            yield HistogramMetricFamily("dispatcher_install_latency_seconds",
                                        "digest arrival to entry written, every install since start",
                                        buckets=[*buckets, ("+Inf", histogram.count)],
                                        sum_value=histogram.sum)
        load = GaugeMetricFamily("dispatcher_backend_load_bytes_per_second",
                                 "traffic sent to each backend over the last poll",
                                 labels=["service", "backend"])
        share = GaugeMetricFamily("dispatcher_ring_share", "fraction of the ring held by each backend",
                                  labels=["service", "backend"])
        active = GaugeMetricFamily("dispatcher_backend_flows", "installed flows per backend",
                                   labels=["service", "backend"])
        capacity = GaugeMetricFamily("dispatcher_backend_capacity_bytes_per_second",
                                     "configured service rate of each backend (load / capacity = utilisation)",
                                     labels=["service", "backend"])
        for service in status.services:
            for b in service.backends:
                labels = [service.name, b.name]
                load.add_metric(labels, b.load_mbps * 1e6 / 8)
                share.add_metric(labels, b.ring_share)
                active.add_metric(labels, b.flows)
                capacity.add_metric(labels, b.capacity_mbps * 1e6 / 8)
        yield load
        yield share
        yield active
        yield capacity
        port_packets = CounterMetricFamily("dispatcher_port_packets", "packets per switch port",
                                           labels=["port", "direction"])
        port_bytes = CounterMetricFamily("dispatcher_port_bytes", "bytes per switch port",
                                         labels=["port", "direction"])
        for direction, cells in status.ports.items():
            for port, cell in cells.items():
                port_packets.add_metric([port, direction], cell.packets)
                port_bytes.add_metric([port, direction], cell.bytes)
        yield port_packets
        yield port_bytes
        drops = CounterMetricFamily("dispatcher_drops", "packets the data plane dropped, by reason",
                                    labels=["reason"])
        for reason, packets in status.drops.items():
            drops.add_metric([reason], packets)
        yield drops
        events = CounterMetricFamily("dispatcher_dataplane_events",
                                     "packets by dispatch path and event (cache_collision, generation_held, ...)",
                                     labels=["event"])
        for event, packets in status.events.items():
            events.add_metric([event], packets)
        yield events
        yield GaugeMetricFamily("dispatcher_pending_flows",
                                "flows digested but not yet written to the switch", value=flows.pending)
        yield GaugeMetricFamily("dispatcher_ring_generation",
                                "newest generation written to a dispatch ring (grows with every ring write)",
                                value=status.ring_generation)
        yield from backend_health_families(status.services)
        if status.health is not None:
            yield from health_message_families(status.health)
        yield from admission_families(status.services)
        if status.sessions is not None:
            yield from session_families(status.sessions)


def backend_health_families(services: list[ServiceStatus]) -> Iterator:
    """Health states, transitions, agents' and advisors' figures, and where each backend's load comes from."""
    state = GaugeMetricFamily("dispatcher_backend_health", "1 for the backend's health state (unwatched: up)",
                              labels=["service", "backend", "state"])
    watched = GaugeMetricFamily("dispatcher_backend_health_watched", "1 when an agent or an advisor watches it",
                                labels=["service", "backend"])
    in_state = GaugeMetricFamily("dispatcher_backend_health_state_seconds", "time in the current health state",
                                 labels=["service", "backend"])
    transitions = CounterMetricFamily("dispatcher_backend_health_transitions",
                                      "times the backend entered each health state",
                                      labels=["service", "backend", "state"])
    heartbeat_age = GaugeMetricFamily("dispatcher_backend_heartbeat_age_seconds",
                                      "time since the agent's last accepted heartbeat", labels=["service", "backend"])
    advisor = GaugeMetricFamily("dispatcher_backend_advisor_response_seconds",
                                "latest successful advisor probe's response time (nd's forward metric)",
                                labels=["service", "backend", "advisor"])
    advisor_ok = GaugeMetricFamily("dispatcher_backend_advisor_up", "1 when the advisor's latest probe succeeded",
                                   labels=["service", "backend", "advisor"])
    host = GaugeMetricFamily("dispatcher_backend_host_utilisation", "the agent's latest report, 0..1",
                             labels=["service", "backend", "resource"])
    served = GaugeMetricFamily("dispatcher_backend_served_bytes_per_second",
                               "bytes/s the server sent on its service interface (agent)",
                               labels=["service", "backend"])
    source = GaugeMetricFamily("dispatcher_backend_load_source",
                               "1 for where the backend's switch-to-served load ratio comes from",
                               labels=["service", "backend", "source"])
    ratio = GaugeMetricFamily("dispatcher_backend_visibility_ratio",
                              "switch-counted bytes per byte the server sends (learned or configured)",
                              labels=["service", "backend"])
    for service in services:
        for b in service.backends:
            labels = [service.name, b.name]
            for origin in LOAD_SOURCES:
                source.add_metric([*labels, origin], 1.0 if b.load_source == origin else 0.0)
            ratio.add_metric(labels, b.visibility_ratio)
            h = b.health
            if h is None:
                continue
            for health_state in HEALTH_STATES:
                state.add_metric([*labels, health_state], 1.0 if h.state == health_state else 0.0)
                transitions.add_metric([*labels, health_state], h.transitions_total.get(health_state, 0))
            watched.add_metric(labels, 1.0 if h.watched else 0.0)
            in_state.add_metric(labels, h.for_s)
            if h.last_heartbeat_age_s is not None:
                heartbeat_age.add_metric(labels, h.last_heartbeat_age_s)
            for a in h.advisors:
                if a.ok is not None:
                    advisor_ok.add_metric([*labels, a.name], 1.0 if a.ok else 0.0)
                if a.response_time_s is not None:
                    advisor.add_metric([*labels, a.name], a.response_time_s)
            if h.host is not None:
                host.add_metric([*labels, "cpu"], h.host.cpu)
                host.add_metric([*labels, "memory"], h.host.memory)
                if h.host.served_bytes_per_s is not None:
                    served.add_metric(labels, h.host.served_bytes_per_s)
    yield from (state, watched, in_state, transitions, heartbeat_age, advisor, advisor_ok, host, served, source, ratio)


def health_message_families(health: HealthSummary) -> Iterator:
    """The agents' datagrams: accepted by kind, dropped by reason (zeros included)."""
    accepted = CounterMetricFamily("dispatcher_health_messages", "agents' messages accepted", labels=["kind"])
    for kind, n in health.messages.items():
        accepted.add_metric([kind], n)
    yield accepted
    dropped = CounterMetricFamily("dispatcher_health_messages_dropped", "agents' datagrams dropped, by reason",
                                  labels=["reason"])
    for reason, n in health.dropped.items():
        dropped.add_metric([reason], n)
    yield dropped
    yield CounterMetricFamily("dispatcher_health_advisor_skipped", "advisor probes skipped (previous one still "
                              "running)", value=health.advisor_skipped)
    yield CounterMetricFamily("dispatcher_health_entries_deleted", "flows entries deleted because their backend "
                              "went down", value=health.entries_deleted)


def admission_families(services: list[ServiceStatus]) -> Iterator:
    """SA2C per service: level, drop probability, load, thresholds, entries written."""
    level = GaugeMetricFamily("dispatcher_admission_level", "admission level written (0 admit_all .. 4 reject_all)",
                              labels=["service"])
    wanted = GaugeMetricFamily("dispatcher_admission_wanted_level", "level SA2C asked for, before the "
                               "refuse_established cap", labels=["service"])
    prob = GaugeMetricFamily("dispatcher_admission_drop_probability", "p of the level written", labels=["service"])
    load = GaugeMetricFamily("dispatcher_admission_load", "cluster load as a fraction of capacity",
                             labels=["service", "kind"])
    threshold = GaugeMetricFamily("dispatcher_admission_threshold", "SA2C thresholds in force",
                                  labels=["service", "threshold"])
    writes = CounterMetricFamily("dispatcher_admission_writes", "admission entries written (insert, modify, "
                                 "delete)", labels=["service"])
    for service in services:
        a = service.admission
        if a is None:
            continue
        name = service.name
        level.add_metric([name], int(AdmissionLevel[a.level.upper()]))
        wanted.add_metric([name], int(AdmissionLevel[a.wanted.upper()]))
        prob.add_metric([name], a.drop_prob)
        load.add_metric([name, "smoothed"], a.load)
        load.add_metric([name, "raw"], a.raw_load)
        for t, value in (("t1", a.t1), ("t2", a.t2), ("t3", a.t3), ("c", a.c)):
            threshold.add_metric([name, t], value)
        writes.add_metric([name], a.writes)
    yield from (level, wanted, prob, load, threshold, writes)


def session_families(sessions: SessionStatus) -> Iterator:
    """Session affinity (docs/sessions.md)."""
    by_state = GaugeMetricFamily("dispatcher_sessions", "sessions with announced entries, by state",
                                 labels=["state"])
    for state, count in sessions.by_state.items():
        by_state.add_metric([state], count)
    yield by_state
    yield GaugeMetricFamily("dispatcher_announced_entries", "announced_flows entries on the switch",
                            value=sessions.announced_entries)
    yield GaugeMetricFamily("dispatcher_announcements_waiting",
                            "announcements waiting for their signalling flow's backend", value=sessions.waiting)
    for name, field, help_text in (
            ("signalling_packets", "signalling_packets", "signalling packets cloned to the controller and read"),
            ("announcements", "announcements", "flows announced by signalling"),
            ("announced_hits", "hits", "flows whose first packet took their session's backend"),
            ("announced_missed", "missed", "flows to an announced end decided by the ring (too early, set full)"),
            ("announced_expired", "expired", "announced entries idle for their start time"),
            ("announced_contested", "contested",
             "announced entries not written or withdrawn: sessions on different backends announced one match"),
            ("sessions_ended", "ended", "sessions ended by BYE, TEARDOWN, control close, ..."),
            ("announced_table_full", "table_full", "announced entries not written: table full or refused"),
            ("announced_no_backend", "no_backend", "announcements whose signalling flow had no backend in time")):
        yield CounterMetricFamily(f"dispatcher_{name}", help_text, value=getattr(sessions, field))
    errors = CounterMetricFamily("dispatcher_signalling_parse_errors",
                                 "malformed or over-limit signalling, by kind (nothing installed)", labels=["kind"])
    for kind, count in sorted(sessions.parse_errors.items()):
        errors.add_metric([kind], count)
    yield errors


def make_registry(status: Callable[[], ControllerStatus]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ControllerCollector(status))
    return registry
