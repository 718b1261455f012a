"""The controller's status, typed: what `status`, the HTTP API, the metrics and the demo show.

Built by the serving loop after each counter poll (StatusBuilder) and read by other threads
as an immutable snapshot; over HTTP it travels as JSON and is read back into the same models.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from controller.dataplane.dispatcher_tables import CounterValue

Role = Literal["connecting", "backup", "primary", "stopped"]
ROLES: tuple[Role, ...] = ("connecting", "backup", "primary", "stopped")
LATENCY_SAMPLES = 2000   # install latencies behind the status' p50/p99


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


HealthStateName = Literal["up", "draining", "down", "recovering"]
HEALTH_STATES: tuple[HealthStateName, ...] = ("up", "draining", "down", "recovering")
LoadSource = Literal["measured", "held", "fallback"]
LOAD_SOURCES: tuple[LoadSource, ...] = ("measured", "held", "fallback")


class AdvisorHealth(_Model):
    name: str
    ok: bool | None                   # None: no probe finished yet
    response_time_s: float | None     # latest successful probe: nd's forward metric
    detail: str
    failures: int                     # failed probes in a row


class HealthTransition(_Model):
    ago_s: float                      # seconds before the status was built
    old: HealthStateName
    new: HealthStateName
    reason: str


class HostStatus(_Model):
    """The latest load report of the backend's agent (none when stale)."""
    age_s: float
    cpu: float                        # utilisation 0..1
    memory: float
    run_queue_per_cpu: float
    connections: int
    served_bytes_per_s: float | None  # sent on the service interface, from the agent's counters
    custom: float | None


class BackendHealthStatus(_Model):
    watched: bool                     # has an agent or an advisor; unwatched backends are always up
    state: HealthStateName
    reason: str
    for_s: float                      # seconds in this state
    has_agent: bool = False
    last_heartbeat_age_s: float | None = None
    flag: str | None = None           # the last heartbeat's: up, application_down, planned_failure
    planned_failure_in_s: float | None = None
    good_periods: int = 0             # towards recovery_periods
    advisors: list[AdvisorHealth] = []
    transitions: list[HealthTransition] = []          # the last 20, oldest first
    transitions_total: dict[str, int] = {}            # new state -> times entered since start
    host: HostStatus | None = None


class BackendStatus(_Model):
    name: str
    id: int
    state: str
    port: int
    capacity_mbps: float
    flows: int                        # installed flows entries
    load_mbps: float                  # switch counters, last poll
    estimated_mbps: float | None      # FB_EST's estimate, when the policy tracks flows
    ring_share: float
    packets: int
    bytes: int
    # Measured load (issue 11): the switch-counted / served bytes ratio the policies scale
    # capacities by, and where it comes from: learned from the agent (measured), learned but
    # the agent silent (held), or the configured visible_load_ratio (fallback).
    load_source: LoadSource = "fallback"
    visibility_ratio: float = 1.0
    served_mbps: float | None = None  # switch counters / ratio: what the server is estimated to send
    health: BackendHealthStatus | None = None


class AdmissionStatus(_Model):
    """SA2C's latest decision for a service and what the switch's entry says."""
    level: str                        # AdmissionLevel name written (lower case)
    wanted: str                       # SA2C's level before the refuse_established cap
    drop_prob: float
    load: float                       # smoothed cluster load rho
    raw_load: float                   # this period's x
    t1: float
    t2: float                         # thresholds in force (they move)
    t3: float
    c: float
    on_switch: str                    # the entry's level; admit_all when there is none
    writes: int                       # admission entries written since start
    components: dict[str, float] = {}  # each load component's cluster load alone, last period


class NdStatus(_Model):
    proportions: dict[str, float]     # active, new, host, forward
    smoothing: float
    sensitivity: float
    host_limit: float | None
    cooldown_s: float
    over_limit: list[str]             # backends the manager keeps out (host limit, cool-down)


class ServiceStatus(_Model):
    name: str
    id: int
    mode: str
    policy: str
    dispatch: str
    ring_rewrites: int
    backends: list[BackendStatus]
    down_entries: str = "delete"      # a down backend's flows entries: keep | delete
    admission: AdmissionStatus | None = None
    nd: NdStatus | None = None


class HealthSummary(_Model):
    period_s: float
    listening: str | None             # "address:port" of the agents' UDP listener; None without agents
    messages: dict[str, int] = {}     # accepted by kind: heartbeat, report
    dropped: dict[str, int] = {}      # by reason: malformed, unauthenticated, unknown_host, replayed, overflow
    advisor_skipped: int = 0          # probes skipped: the previous one still running
    report_resets: int = 0            # reports after an agent or counter restart (no rate)
    entries_deleted: int = 0          # flows entries deleted because their backend went down
    on_fallback: list[str] = []       # backends whose load uses the configured ratio


class LatencyQuantiles(_Model):
    p50: float
    p99: float


class HistogramSnapshot(_Model):
    """Cumulative buckets since start (controller/histogram.py), for histogram_quantile()."""
    le: list[float]
    cumulative: list[int]
    count: int
    sum: float


class FlowStatus(_Model):
    active: int
    pending: int
    overflow: int
    digests: int
    duplicate_digests: int
    malformed_digests: int
    unknown_backend: int
    reactive_digests: int
    inserted: int
    deleted: int
    already_installed: int
    table_full: int
    write_failures: int
    idle_notifications: int
    adopted: int
    stale_entries: int
    write_seconds: float
    write_batches: int
    digests_per_s: float | None = None
    writes_per_s: float | None = None
    install_latency_ms: LatencyQuantiles | None = None
    install_latency_seconds: HistogramSnapshot | None = None


class SessionStatus(_Model):
    """Session affinity (issue 13, docs/sessions.md): the session table and what happened."""
    sessions: int                     # sessions with announced entries on the switch
    by_state: dict[str, int]          # announced (no flow started yet), started
    announced_entries: int            # announced_flows entries now (two per announced port)
    capacity: int                     # the table's size
    waiting: int                      # announcements waiting for their signalling flow's backend
    signalling_packets: int           # signalling packet-ins read
    not_inspected: int                # cloned, but no service reads that port there (or not TCP/UDP)
    announcements: int
    entries_written: int
    reannounced: int
    hits: int                         # flows whose first packet took a session's backend
    expired: int                      # entries idle for their start time
    ended: int                        # sessions ended (BYE, TEARDOWN, control close, ...)
    entries_ended: int
    table_full: int
    no_backend: int                   # announcements whose signalling flow's backend never came
    adopted: int
    unreadable: int
    missed: int = 0                   # flows to an announced end that the ring decided (too early, set full)
    contested: int = 0                # announced matches shared by sessions on different backends: not written
    entry_latency_ms: LatencyQuantiles | None = None   # announcement read -> entries on the switch
    parse_errors: dict[str, int] = {}   # by kind (controller/sessions/model.py ParseStats)
    parse_notes: dict[str, int] = {}


class ControllerCounts(_Model):
    reconnects: int = 0
    pipeline_pushes: int = 0
    restored_flows: int = 0
    reactive_packets: int = 0
    reactive_failures: int = 0


class PortCounter(_Model):
    packets: int
    bytes: int


class ClusterStatus(_Model):
    """Several switches (docs/multiswitch.md): which serve, and where entries went."""
    in_service: list[str] = []
    lost: dict[str, str] = {}               # switch -> why it left (until it is back)
    joins: int = 0                          # switches brought (back) into service
    activations: int = 0                    # ACTIVATED digests (home entries taken over)
    replicas_written: int = 0
    restored_replicas: int = 0              # replicas written to switches that joined
    own_entries: int = 0                    # entries of a switch's own for a flow that moved there
    cross_switch_splits: int = 0            # ... that named another backend than the home's
    replicated_flows: int = 0               # recorded flows with an entry on every switch in service
    recorded_flows: int = 0
    waiting_for_ecmp: list[str] = []        # in service, its ECMP change waiting for the freeze (rule 6)
    leaving_ecmp: list[str] = []            # ... of those, the ones to be taken out (the operator's)
    held_out: list[str] = []                # out of ECMP by the operator's command: synced, no traffic
    freezes: int = 0
    adopted_switches: list[str] = []        # taken over running at the start (not reprogrammed)
    adopted_flows: int = 0                  # keys found on them
    unconfirmed_flows: int = 0              # adopted home entries of unknown activation, watched
    confirmed_activations: int = 0          # ... whose statistics cell grew: activated
    deletes_spared: int = 0                 # idle on every holder, but one's cell counted since: kept
    reused_keys: int = 0                    # a new connection on another switch reusing a recorded key
    ecmp_command_failures: int = 0          # `[ecmp]` commands that failed or overran (logged)


class ControllerStatus(_Model):
    role: Role
    switch: str
    election_id: int
    uptime_s: float = 0.0
    flows: FlowStatus | None = None            # None until the first counter poll
    controller: ControllerCounts = ControllerCounts()
    ports: dict[str, dict[str, PortCounter]] = {}   # direction -> port -> counts
    drops: dict[str, int] = {}                      # data-plane drops by reason (lower case)
    # Data-plane dispatch events (dispatch_events counter): the paths packets took, cache
    # collisions, digests, and ring generations held back or applied (docs/consistency.md).
    events: dict[str, int] = {}
    ring_generation: int = 0                        # the newest generation written to any ring
    health: HealthSummary | None = None
    services: list[ServiceStatus] = []
    sessions: SessionStatus | None = None          # None: no service reads signalling
    cluster: ClusterStatus | None = None           # None: one switch


@dataclass
class RunCounts:
    """What the controller itself did, counted by the serving loop (mutable; see ControllerCounts)."""
    reconnects: int = 0
    pipeline_pushes: int = 0
    restored_flows: int = 0
    reactive_packets: int = 0
    reactive_failures: int = 0

    def snapshot(self) -> ControllerCounts:
        return ControllerCounts(**asdict(self))


class RateTracker:
    """Digests/s and writes/s over windows of at least a second."""

    def __init__(self) -> None:
        self._base: tuple[float, int, int] | None = None

    def rates(self, now: float, digests: int, writes: int) -> tuple[float | None, float | None]:
        result: tuple[float | None, float | None] = (None, None)
        if self._base is not None:
            t0, digests0, writes0 = self._base
            dt = max(now - t0, 1e-6)
            result = ((digests - digests0) / dt, (writes - writes0) / dt)
        if self._base is None or now - self._base[0] >= 1.0:
            self._base = (now, digests, writes)
        return result


def latency_quantiles(latencies: deque[float]) -> LatencyQuantiles | None:
    """p50/p99 in ms of the newest installs only: converting the whole 100,000-sample window
    at every poll would cost the serving loop milliseconds ten times a second."""
    recent = list(islice(reversed(latencies), LATENCY_SAMPLES))
    if not recent:
        return None
    values = np.array(recent) * 1e3
    return LatencyQuantiles(p50=float(np.percentile(values, 50)), p99=float(np.percentile(values, 99)))


def port_status(ports: Mapping[str, Mapping[int, CounterValue]]) -> dict[str, dict[str, PortCounter]]:
    return {direction: {str(port): PortCounter(packets=c.packets, bytes=c.bytes)
                        for port, c in sorted(cells.items())}
            for direction, cells in ports.items()}
