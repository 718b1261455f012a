"""The configuration as table entries, written so that it works on a fresh or a running switch.

On a fresh pipeline everything is inserted. A controller that takes over a running switch
(restart, failover) writes the same entries: those already there come back ALREADY_EXISTS
and are sent again as modifies, so the switch ends up exactly as configured with no delete
(a delete would leave a moment with no service).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from finsy.proto import p4r, rpc_code

from controller.backend_pool import BackendPool, LiveBackend
from controller.config import Config, Service
from controller.dataplane.constants import REACTIVE_BACKEND_ID
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.p4runtime.client import P4RuntimeClient, WriteError

log = logging.getLogger(__name__)

DIGEST_LIST_SIZE = 128          # flows per digest message: fewer, larger messages under load
DIGEST_LIST_TIMEOUT_NS = 2_000_000   # ... but none waits more than 2 ms


def backend_update(tables: DispatcherTables, backend: LiveBackend, kind: str = "insert") -> p4r.Update:
    service, cfg = backend.service, backend.config
    if service.forwarding == "dsr":
        return tables.backend_dsr(cfg.id, cfg.port, cfg.mac, kind)
    if service.forwarding == "ipip":
        assert service.tunnel_mac and service.tunnel_source and cfg.address
        return tables.backend_ipip(cfg.id, cfg.port, service.tunnel_mac, cfg.mac,
                                   service.tunnel_source, cfg.address, kind)
    return tables.backend_capture(cfg.id, cfg.port, service.truncate_bytes, kind)


def ring_bases(config: Config) -> dict[int, int]:
    """Each service's first entry in the ring space all services share, in config order
    (stable across restarts, so per-entry state on the switch keeps its meaning)."""
    bases, offset = {}, 0
    for service in config.services:
        bases[service.id] = offset
        offset += service.ring_size
    return bases


def service_updates(tables: DispatcherTables, service: Service, ring_base: int) -> list[p4r.Update]:
    if service.mode == "vip":
        assert service.vip is not None and service.port is not None
        return [tables.vip_service(service.vip, service.protocol_number, service.port,
                                   service.id, service.ring_size, ring_base),
                *(tables.vip_service_ports(service.vip, service.protocol_number, low, high, service.id,
                                           service.ring_size, ring_base) for low, high in service.session_ports),
                *([tables.client_affinity(service.id)] if service.affinity == "client" else []),
                tables.vip(service.vip)]
    return [tables.capture_port(port, service.id, service.ring_size, ring_base) for port in service.tap_ports]


def configuration_updates(tables: DispatcherTables, config: Config, pool: BackendPool) -> list[p4r.Update]:
    """Everything but the rings and the flows: services, backends, timers, digest, CPU clone."""
    timers = config.timers
    updates = [tables.dispatch_settings(timers.cache_timeout_ms * 1000, timers.digest_retry_ms * 1000,
                                        round(timers.flow_idle_timeout_s * 1e6)),
               tables.flow_digest_config(max_list_size=DIGEST_LIST_SIZE,
                                         max_timeout_ns=DIGEST_LIST_TIMEOUT_NS),
               tables.cpu_clone_session()]
    seen_vips: set[str] = set()
    bases = ring_bases(config)
    for service in pool.services.values():
        for update in service_updates(tables, service, bases[service.id]):
            # Two services on one VIP (ports 80 and 443) share its `vips` entry.
            if update.entity.table_entry.table_id == tables.info.table("vips").preamble.id:
                assert service.vip is not None   # only a vip service has a `vips` entry
                if service.vip in seen_vips:
                    continue
                seen_vips.add(service.vip)
            updates.append(update)
    updates += [backend_update(tables, b) for b in pool]
    for b in pool:   # TNA truncates capture copies by mirror session; nothing on BMv2
        if b.service.forwarding == "capture":
            updates += tables.capture_truncation(b.config.id, b.config.port, b.service.truncate_bytes)
    updates += signalling_updates(tables, config)
    if any(s.dispatch == "reactive" for s in pool.services.values()):
        updates.append(tables.backend_punt(REACTIVE_BACKEND_ID))
    return updates


def signalling_updates(tables: DispatcherTables, config: Config) -> list[p4r.Update]:
    """The `signalling` clone entries the services' `sessions` settings need (once per
    protocol and port, whichever services share it)."""
    keys = sorted({key for s in config.services if s.sessions is not None for key in s.sessions.clone_keys()})
    return [update for protocol, port in keys for update in tables.signalling_port(protocol, port)]


def write_idempotent(client: P4RuntimeClient, updates: Sequence[p4r.Update]) -> None:
    """Insert; what exists already is modified instead."""
    try:
        client.write(updates)
        return
    except WriteError as exc:
        exists = [f.index for f in exc.failures if f.code == rpc_code.ALREADY_EXISTS]
        other = [f for f in exc.failures if f.code != rpc_code.ALREADY_EXISTS]
        if other:
            raise
    retry = []
    for i in exists:
        update = p4r.Update()
        update.CopyFrom(updates[i])
        update.type = p4r.Update.MODIFY
        retry.append(update)
    client.write(retry)
    log.info("switch already had %d of %d configuration entries: modified in place",
             len(retry), len(updates))
