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

from controller.status import ROLES, ControllerStatus


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


def make_registry(status: Callable[[], ControllerStatus]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ControllerCollector(status))
    return registry
