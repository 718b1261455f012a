"""The backends of every service as they are now: configured, added, quiesced, draining.

  active     in the ring by its policy weight
  quiesced   weight 0: no new flows, its flows continue; back with `activate`
  draining   weight 0, and removed once its last flow has ended
Removing a backend takes it out of the ring and deletes its entries: its flows have nowhere
left to go, so drain first for a graceful exit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from controller.config import Backend, Config, Service


class BackendState(StrEnum):
    ACTIVE = "active"
    QUIESCED = "quiesced"
    DRAINING = "draining"


class BackendError(ValueError):
    """An operator's request that cannot be done (unknown name, taken id, ...)."""


@dataclass
class LiveBackend:
    config: Backend
    service: Service
    state: BackendState = BackendState.ACTIVE
    state_since: float = 0.0

    @property
    def id(self) -> int:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def takes_new_flows(self) -> bool:
        return self.state == BackendState.ACTIVE


class BackendPool:
    def __init__(self, config: Config) -> None:
        self.services: dict[int, Service] = {s.id: s for s in config.services}
        self._backends: dict[int, LiveBackend] = {}
        for service in config.services:
            for backend in service.backends:
                self._backends[backend.id] = LiveBackend(backend, service)

    def __contains__(self, backend_id: int) -> bool:
        return backend_id in self._backends

    def __iter__(self):
        return iter(self._backends.values())

    def get(self, backend_id: int) -> LiveBackend | None:
        return self._backends.get(backend_id)

    def service_named(self, name: str) -> Service:
        for service in self.services.values():
            if service.name == name:
                return service
        raise BackendError(f"no service named {name!r}; services: "
                           f"{', '.join(s.name for s in self.services.values())}")

    def named(self, name: str) -> LiveBackend:
        for backend in self._backends.values():
            if backend.name == name:
                return backend
        raise BackendError(f"no backend named {name!r}; backends: "
                           f"{', '.join(b.name for b in self._backends.values())}")

    def name_of(self, backend_id: int) -> str:
        """The backend's name, or its id when it is not (or no longer) in the pool."""
        backend = self._backends.get(backend_id)
        return backend.name if backend is not None else str(backend_id)

    def of_service(self, service_id: int) -> list[LiveBackend]:
        """In a stable order (id), so a policy's server indices mean the same every poll."""
        return sorted((b for b in self._backends.values() if b.service.id == service_id),
                      key=lambda b: b.id)

    def add(self, service_name: str, backend: Backend) -> LiveBackend:
        service = self.service_named(service_name)
        if backend.id in self._backends:
            raise BackendError(f"backend id {backend.id} is taken by {self._backends[backend.id].name!r}")
        if any(b.name == backend.name for b in self._backends.values()):
            raise BackendError(f"a backend named {backend.name!r} exists already")
        if service.forwarding == "ipip" and (backend.address is None or ":" in backend.address):
            raise BackendError(f"service {service.name!r} tunnels (ipip): backend needs an IPv4 address")
        live = LiveBackend(backend, service, state_since=time.monotonic())
        self._backends[backend.id] = live
        return live

    def set_state(self, name: str, state: BackendState) -> LiveBackend:
        backend = self.named(name)
        if backend.state != state:
            backend.state = state
            backend.state_since = time.monotonic()
        return backend

    def remove(self, name: str) -> LiveBackend:
        backend = self.named(name)
        del self._backends[backend.id]
        return backend
