"""The `[health]` section of the controller's configuration (pydantic, like controller/config.py).

    [health]
    period_s = 1.0                 # agents' heartbeat period; advisors probe once per period
    missed_limit = 3               # down after this many missed heartbeat periods (SARA)
    recovery_periods = 3           # up again after this many good periods in a row
    key_file = "/etc/p4dispatch/health.key"   # HMAC key shared with the agents (optional)
    listen_address = "127.0.0.1"   # UDP for heartbeats and load reports
    listen_port = 9190
    down_entries = "auto"          # a down backend's flows entries: keep | delete | auto

    [[health.agents]]              # backends whose server runs `p4dispatch agent`
    backend = "web1"               # its host id defaults to the backend's id
    [[health.agents]]
    backend = "web2"
    host_id = 7

    [[health.advisors]]
    service = "web"                # every backend of the service, or name them in `backends`
    kind = "http"                  # tcp | http
    path = "/obj/0"
    expect_status = 200
    timeout_s = 0.5                # port: the service's unless given

controller/config.py's Config has it as `health` and checks it against the services
(`self.health.plan(self.services)` in its model validator).

`down_entries`: what happens to a down backend's `flows` entries. `delete` (auto for VIP
services, i.e. servers): the server's connections are lost anyway; deleting their entries
sends the clients' next packets through the ring to a live server, which answers with a
reset at once, so clients fail fast and retry instead of waiting for TCP timeouts on a dead
server, and the table does not fill with dead flows. The cost: a false detection (the agent
died, the server did not) breaks live connections too (an advisor does not prevent it: any
failing source takes the backend down). `keep` (auto for capture services): a capture node must see every
packet of a flow or none of the rest; moving the rest to another node would split the flow
over two nodes, worse for the analysis than a gap, and a node that comes back (tcpdump
restarted) picks up where it was. Entries then leave by idle timeout as usual.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.health.advisors import AdvisorSpec
from controller.health.messages import MIN_PERIOD_S, load_key
from controller.health.monitor import MonitorSettings

DownEntries = Literal["keep", "delete"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentHost(_Strict):
    backend: str = Field(min_length=1)
    host_id: int | None = Field(default=None, ge=0, le=65535, description="default: the backend's id")


class AdvisorConfig(_Strict):
    service: str = Field(min_length=1)
    backends: list[str] = Field(default=[], description="empty: every backend of the service")
    kind: Literal["tcp", "http"]
    port: int | None = Field(default=None, ge=1, le=65535, description="default: the service's port")
    path: str = Field(default="/", pattern=r"^/")
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout_s: float = Field(default=1.0, gt=0)
    host_header: str | None = None
    name: str | None = Field(default=None, description="default: kind:port[path]")


class HealthConfig(_Strict):
    period_s: float = Field(default=1.0, ge=MIN_PERIOD_S)
    missed_limit: int = Field(default=3, ge=1)
    recovery_periods: int = Field(default=3, ge=1)
    late_tolerance: float = Field(default=0.5, ge=0, lt=1,
                                  description="share of a period a heartbeat may be late and still count")
    advisor_fail_limit: int = Field(default=1, ge=1, description="failed probes in a row that take a backend down")
    key_file: Path | None = None
    allow_unsigned: bool = Field(default=False, description="accept unsigned messages on a non-loopback address")
    listen_address: str = "127.0.0.1"
    listen_port: int = Field(default=9190, ge=0, le=65535)
    report_stale_s: float | None = Field(default=None, gt=0, description="default: missed_limit periods")
    down_entries: Literal["auto", "keep", "delete"] = "auto"
    advisor_workers: int = Field(default=4, ge=1, le=64)
    agents: list[AgentHost] = []
    advisors: list[AdvisorConfig] = []

    @model_validator(mode="after")
    def _checks(self) -> HealthConfig:
        try:
            address = ipaddress.ip_address(self.listen_address)
        except ValueError:
            raise ValueError(f"listen_address {self.listen_address!r} is not an IP address") from None
        if self.key_file is not None:
            load_key(self.key_file)       # raises ValueError naming the file and the problem
        elif not address.is_loopback and not self.allow_unsigned:
            raise ValueError(f"listening on {self.listen_address} needs `key_file`: without HMAC anyone who "
                             "reaches the port can forge heartbeats (or set allow_unsigned = true)")
        slow = [a.name or a.kind for a in self.advisors if a.timeout_s > self.period_s]
        if slow:
            raise ValueError(f"advisor timeout_s must not exceed period_s ({self.period_s}): {slow}")
        named = [a.backend for a in self.agents]
        repeated = sorted({n for n in named if named.count(n) > 1})
        if repeated:
            raise ValueError(f"each backend has one agent entry; repeated: {repeated}")
        return self

    def key(self) -> bytes | None:
        return load_key(self.key_file) if self.key_file is not None else None

    def monitor_settings(self) -> MonitorSettings:
        return MonitorSettings(period_s=self.period_s, missed_limit=self.missed_limit,
                               recovery_periods=self.recovery_periods, late_tolerance=self.late_tolerance,
                               advisor_fail_limit=self.advisor_fail_limit)

    @property
    def stale_after_s(self) -> float:
        return self.report_stale_s if self.report_stale_s is not None else self.missed_limit * self.period_s

    def down_entries_for(self, mode: str) -> DownEntries:
        """keep or delete, for a service of this mode ("vip" or "capture")."""
        if self.down_entries != "auto":
            return self.down_entries
        return "keep" if mode == "capture" else "delete"

    def plan(self, services: Sequence[ServiceLike]) -> HealthPlan:
        """Names resolved against the services; ValueError for a name that is not there."""
        by_name = {b.name: (s, b) for s in services for b in s.backends}
        services_by_name = {s.name: s for s in services}
        hosts: dict[int, list[int]] = {}
        for agent in self.agents:
            if agent.backend not in by_name:
                raise ValueError(f"health.agents: no backend named {agent.backend!r}")
            backend = by_name[agent.backend][1]
            hosts.setdefault(agent.host_id if agent.host_id is not None else backend.id, []).append(backend.id)
        targets: list[tuple[int, AdvisorSpec]] = []
        for i, advisor in enumerate(self.advisors):
            where = f"health.advisors[{i}]"
            service = services_by_name.get(advisor.service)
            if service is None:
                raise ValueError(f"{where}: no service named {advisor.service!r}")
            names = {b.name for b in service.backends}
            unknown = sorted(set(advisor.backends) - names)
            if unknown:
                raise ValueError(f"{where}: service {service.name!r} has no backends {unknown}")
            port = advisor.port or service.port
            if port is None:
                raise ValueError(f"{where}: service {service.name!r} has no port; give the advisor one")
            name = advisor.name or f"{advisor.kind}:{port}{advisor.path if advisor.kind == 'http' else ''}"
            for backend in service.backends:
                if advisor.backends and backend.name not in advisor.backends:
                    continue
                if backend.address is None:
                    raise ValueError(f"{where}: backend {backend.name!r} needs an `address` to be probed")
                targets.append((backend.id, AdvisorSpec(name=name, kind=advisor.kind, address=backend.address,
                                                        port=port, path=advisor.path,
                                                        expect_status=advisor.expect_status,
                                                        timeout_s=advisor.timeout_s,
                                                        host_header=advisor.host_header)))
        names_by_backend: dict[int, list[str]] = {}
        for backend_id, spec in targets:
            if spec.name in names_by_backend.get(backend_id, []):
                raise ValueError(f"health.advisors: two advisors named {spec.name!r} on backend {backend_id}; "
                                 "give them a `name`")
            names_by_backend.setdefault(backend_id, []).append(spec.name)
        down = {s.id: self.down_entries_for(s.mode) for s in services}
        return HealthPlan({h: tuple(b) for h, b in hosts.items()}, targets,
                          {b: tuple(n) for b, n in names_by_backend.items()}, down)


class BackendLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def address(self) -> str | None: ...


class ServiceLike(Protocol):
    """What plan() reads of controller.config.Service (not imported: config.py includes this)."""
    @property
    def name(self) -> str: ...
    @property
    def id(self) -> int: ...
    @property
    def mode(self) -> str: ...
    @property
    def port(self) -> int | None: ...
    @property
    def backends(self) -> Sequence[BackendLike]: ...


@dataclass(frozen=True)
class HealthPlan:
    """The health section resolved against the services: ids instead of names."""
    hosts: dict[int, tuple[int, ...]]                  # host id -> backend ids its agent speaks for
    advisors: list[tuple[int, AdvisorSpec]]            # (backend id, probe)
    advisor_names: dict[int, tuple[str, ...]]          # backend id -> its advisors' names
    down_entries: dict[int, DownEntries]               # service id -> keep | delete
