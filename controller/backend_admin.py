"""Backends at run time: add, remove, quiesce, drain, activate; a draining backend leaves
once its last flow has ended. Each change rewrites the rings at once."""

from __future__ import annotations

import logging
from typing import Any

from controller.backend_pool import BackendPool, BackendState
from controller.config import Backend, Timers
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import FlowManager
from controller.flow_table import unpack_key
from controller.p4runtime import P4RuntimeClient, P4RuntimeError
from controller.p4runtime.encoding import address_from_flow
from controller.ring_updates import RingUpdater
from controller.switch_setup import backend_update, write_idempotent

log = logging.getLogger("controller.backends")


class BackendAdmin:
    def __init__(self, pool: BackendPool, flows: FlowManager, rings: RingUpdater,
                 tables: DispatcherTables, timers: Timers) -> None:
        self.pool = pool
        self.flows = flows
        self.rings = rings
        self.tables = tables
        # A draining backend's last cached flow can still send its first digest this late.
        self.drain_settle_s = (timers.cache_timeout_ms + timers.digest_retry_ms) / 1000

    def finish_drains(self, client: P4RuntimeClient, now: float) -> None:
        for backend in list(self.pool):
            if (backend.state == BackendState.DRAINING and now - backend.state_since > self.drain_settle_s
                    and self.flows.table.per_backend[backend.id] == 0):
                log.info("backend %s drained: removing it", backend.name)
                self.remove(client, backend.name)

    def remove(self, client: P4RuntimeClient, name: str) -> dict[str, Any]:
        backend = self.pool.named(name)
        self.pool.remove(name)
        self.rings.update(client, force=True)
        dropped = self.flows.remove_backend_flows(backend.id)
        self.flows.settle()
        client.write([self.tables.backend_delete(backend.id)])
        log.info("backend %s removed (%d flows entries deleted)", name, dropped)
        return {"removed": name, "flows_deleted": dropped}

    def add(self, client: P4RuntimeClient, service_name: str, backend: Backend) -> dict[str, Any]:
        live = self.pool.add(service_name, backend)
        try:
            write_idempotent(client, [backend_update(self.tables, live)])
        except P4RuntimeError:
            self.pool.remove(backend.name)
            raise
        self.rings.update(client, force=True)
        log.info("backend %s added to service %s", backend.name, service_name)
        return {"added": backend.name}

    def set_state(self, client: P4RuntimeClient, name: str, state: BackendState) -> dict[str, Any]:
        self.pool.set_state(name, state)
        self.rings.update(client, force=True)
        log.info("backend %s is %s", name, state.value)
        return {"backend": name, "state": state.value}

    def flow_list(self, limit: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for key, backend_id, slot in self.flows.table.items():
            if len(out) >= limit:
                break
            src, dst, proto, sport, dport = unpack_key(key)
            out.append({"src": f"{address_from_flow(src)}:{sport}", "dst": f"{address_from_flow(dst)}:{dport}",
                        "protocol": proto, "backend": self.pool.name_of(backend_id), "stats_slot": slot})
        return out
