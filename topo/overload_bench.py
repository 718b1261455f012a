"""Issue 11's overload proof: the emulated cluster offered more than it can serve, with and
without SA2C (`[services.admission]`), on fresh networks, the same clients each time.

    run_overload(OverloadOptions(), admission=True, workdir) -> dict

Capacity. Each backend's responses go through a token bucket of its `capacities` Mbit/s
(topo/server_cluster.py), so the cluster serves at most sum(capacities) Mbit/s of responses.
Every request fetches one object of `size` bytes; on the wire a response is the body, about
250 bytes of HTTP header, 66 bytes of Ethernet, IP and TCP (with timestamps) per 1,448-byte
segment and three more packets for the handshake and the close (`wire_bytes`). The cluster's
capacity in requests/s is then sum(capacities) * 1e6 / 8 / wire_bytes, and the clients offer
`factor` times that, as Poisson arrivals for `duration_s`.

Measured, from the clients' own records (workload/load_client.py) and the controller:
  * completed requests/s: requests answered in full within the arrival window / its length;
  * latency p50/p99 of the completed requests, from the connection attempt and from the
    established connection (the latter leaves out SYNs the switch dropped and the client
    retransmitted);
  * refused: requests that never got a connection; the switch's `admission_new` drops (SYN
    packets, retransmissions included) and `admission_established` drops;
  * broken: requests whose connection was established and that then failed (reset, time-out,
    short body): what SA2C promises never to do;
  * SA2C's level, p and load every second (with SA2C), and any health transition (the agents
    run with a TCP check and no advisor by default, so that detection is not what is measured).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from controller.status import ControllerStatus
from topo.health_bench import FaultOptions, StatusTrace, free_udp_port, health_cluster
from topo.mininet_support import free_tcp_port
from topo.server_cluster import ClusterHealthSpec, ServerClusterSpec

HEADER_BYTES = 250          # HTTP status line and headers of a response (about)
SEGMENT = 1448              # TCP payload per segment (MTU 1500, timestamps on)
OVERHEAD = 66               # Ethernet 14 + IP 20 + TCP 32 per segment
HANDSHAKE_PACKETS = 3       # SYN-ACK, FIN, last ACK (about)


def wire_bytes(size: int) -> int:
    """Bytes a backend sends on its return link for one response of `size` body bytes."""
    payload = size + HEADER_BYTES
    return payload + math.ceil(payload / SEGMENT) * OVERHEAD + HANDSHAKE_PACKETS * OVERHEAD


@dataclass
class OverloadOptions:
    capacities: tuple[float, ...] = (3.0, 3.0, 3.0)
    clients: int = 3
    size: int = 50_000
    factor: float = 2.0
    duration_s: float = 60.0
    request_timeout_s: float = 30.0
    period_s: float = 1.0
    policy: str = "round_robin"
    agent_check: Literal["none", "tcp", "http"] = "tcp"
    advisor: Literal["none", "tcp", "http"] = "none"
    admission: dict[str, Any] | None = None     # SA2C settings when on ({}: the defaults)
    max_connections: int | None = None          # each backend's connection limit (SA2C's connections component)

    @property
    def capacity_rps(self) -> float:
        return sum(self.capacities) * 1e6 / 8 / wire_bytes(self.size)

    @property
    def offered_rps(self) -> float:
        return self.factor * self.capacity_rps

    def spec(self, admission: bool) -> ServerClusterSpec:
        health = ClusterHealthSpec(period_s=self.period_s, agent_check=self.agent_check, advisor=self.advisor,
                                   advisor_timeout_s=min(0.5, self.period_s), listen_port=free_udp_port())
        return ServerClusterSpec(clients=self.clients, capacities_mbit=self.capacities, policy=self.policy,
                                 grpc_port=free_tcp_port(), thrift_port=free_tcp_port(), health=health,
                                 admission=(self.admission or {}) if admission else None,
                                 max_connections=self.max_connections)


def admission_row(t: float, status: ControllerStatus) -> dict[str, Any]:
    """SA2C's decision and the health states in one status sample, `t` s into the run."""
    service = status.services[0] if status.services else None
    row: dict[str, Any] = {"t": round(t, 1), "drops": dict(status.drops)}
    if service is not None:
        row["health"] = {b.name: b.health.state if b.health else None for b in service.backends}
        row["served_mbps"] = {b.name: (b.health.host.served_bytes_per_s or 0) * 8 / 1e6
                              if b.health and b.health.host else None for b in service.backends}
        a = service.admission
        if a is not None:
            row.update(level=a.level, wanted=a.wanted, p=round(a.drop_prob, 3), load=round(a.load, 3),
                       raw_load=round(a.raw_load, 3), t2=round(a.t2, 3), t3=round(a.t3, 3),
                       components={k: round(v, 3) for k, v in a.components.items()})
        row["connections"] = {b.name: b.health.host.connections if b.health and b.health.host else None
                              for b in service.backends}
    return row


def run_overload(options: OverloadOptions, admission: bool, workdir: Path) -> dict[str, Any]:
    spec = options.spec(admission)
    fault_options = FaultOptions(period_s=options.period_s)   # readiness waits only
    with health_cluster(fault_options, workdir, spec=spec) as (cluster, embedded):
        controller = embedded.controller
        before = controller.status()
        traced_from = time.monotonic()
        with StatusTrace(embedded, interval=1.0) as trace:     # SA2C's decisions, every second
            t0 = time.time()
            running = cluster.start_clients(rate=options.offered_rps / spec.clients, duration=options.duration_s,
                                            size=options.size, request_timeout=options.request_timeout_s)
            runs = cluster.finish_clients(running, timeout=options.duration_s + options.request_timeout_s + 60)
        after = controller.status()
        transitions = {b.name: b.health.transitions_total for s in after.services for b in s.backends
                       if b.health is not None}
        transitions_before = {b.name: b.health.transitions_total for s in before.services for b in s.backends
                              if b.health is not None}
    records = [r for run in runs.values() for r in run.records]
    return summarise(options, admission, records, t0, before.drops, after.drops,
                     [admission_row(at - traced_from, status) for at, status in trace.samples],
                     {n: _diff(transitions[n], transitions_before.get(n, {})) for n in transitions})


def _diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def summarise(options: OverloadOptions, admission: bool, records: list[dict], t0: float,
              drops_before: dict[str, int], drops_after: dict[str, int], trace: list[dict],
              transitions: dict[str, dict[str, int]]) -> dict[str, Any]:
    ok = [r for r in records if r.get("error") is None and r.get("status") == 200]
    connected = [r for r in records if r.get("connect") is not None]
    never = [r for r in records if r.get("connect") is None]
    broken = [r for r in connected if not (r.get("error") is None and r.get("status") == 200)]
    window_end = t0 + options.duration_s
    completed_in_window = [r for r in ok if r["start"] + r["latency"] <= window_end]
    latency = np.array([r["latency"] for r in ok]) if ok else np.array([])
    after_connect = np.array([r["latency"] - r["connect"] for r in ok]) if ok else np.array([])
    connect = np.array([r["connect"] for r in ok]) if ok else np.array([])

    def pct(values: np.ndarray, q: float) -> float | None:
        return float(np.percentile(values, q)) if values.size else None

    levels = Counter(row.get("level") for row in trace if "level" in row)
    return {
        "sa2c": admission,
        "capacity_rps": options.capacity_rps,
        "offered_rps": options.offered_rps,
        "requests": len(records),
        "completed": len(ok),
        "completed_per_s": len(completed_in_window) / options.duration_s,
        "completed_per_s_all": len(ok) / options.duration_s,
        "latency_p50_s": pct(latency, 50),
        "latency_p99_s": pct(latency, 99),
        "after_connect_p50_s": pct(after_connect, 50),
        "after_connect_p99_s": pct(after_connect, 99),
        "connect_p99_s": pct(connect, 99),
        "never_connected": len(never),
        "never_connected_errors": dict(Counter(r.get("error") for r in never)),
        "broken": len(broken),
        "broken_errors": dict(Counter(r.get("error") or f"status {r.get('status')}" for r in broken)),
        "switch_drops": {k: drops_after.get(k, 0) - drops_before.get(k, 0)
                         for k in ("admission_new", "admission_established", "no_backend")},
        "levels_seconds": dict(levels),
        "health_transitions": {n: t for n, t in transitions.items() if t},
        "trace": trace,
    }


def format_table(results: list[dict[str, Any]]) -> str:
    head = (f"{'SA2C':5} {'offered/s':>9} {'capacity/s':>10} {'completed/s':>11} {'p50 s':>7} {'p99 s':>7} "
            f"{'p99 after conn. s':>17} {'never connected':>15} {'SYNs dropped':>12} {'broken':>6}")
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{'on' if r['sa2c'] else 'off':5} {r['offered_rps']:9.1f} {r['capacity_rps']:10.1f} "
            f"{r['completed_per_s']:11.1f} {_f(r['latency_p50_s']):>7} {_f(r['latency_p99_s']):>7} "
            f"{_f(r['after_connect_p99_s']):>17} {r['never_connected']:>15} "
            f"{r['switch_drops']['admission_new']:>12} {r['broken']:>6}")
    return "\n".join(lines)


def _f(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
