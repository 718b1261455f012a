"""Becoming the switch's controller: wait to be primary, then make the switch match the
configuration without disturbing it.

The pipeline is pushed only when the switch has none or another one (a push wipes every
entry, and BMv2 then doubles clones); entries already there are adopted and the ring already
there is the starting point (the switch is the truth). After a switch restart the flows this
controller knew are written back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controller.backend_pool import BackendPool
from controller.config import Config
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import FlowManager
from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from controller.p4runtime import entities as ent
from controller.p4runtime.targets import Program
from controller.ring_updates import RingUpdater
from controller.session_control import SessionControl
from controller.status import RunCounts
from controller.switch_setup import configuration_updates, write_idempotent

log = logging.getLogger("controller")


def wait_primary(client: P4RuntimeClient, stop: threading.Event, meanwhile: Callable[[], None]) -> bool:
    """True once this client is primary; False when stopped or the stream closed first.
    `meanwhile` runs every 100 ms while waiting as a backup (it answers operator commands)."""
    if client.is_primary:
        return True
    log.info("backup (election id %d): waiting for the primary to go", client.election_id)
    while not stop.is_set() and not client.stream_closed.is_set():
        if client.primary.wait(0.1):
            log.info("primary now (election id %d): taking over", client.election_id)
            return True
        meanwhile()
    return False


class TakeOver:
    def __init__(self, config: Config, program: Program, info: P4InfoIndex,
                 tables: DispatcherTables, pool: BackendPool, flows: FlowManager,
                 rings: RingUpdater, counts: RunCounts, sessions: SessionControl) -> None:
        self.config = config
        self.program = program
        self.cookie = program.cookie()
        self.info = info
        self.tables = tables
        self.pool = pool
        self.flows = flows
        self.rings = rings
        self.counts = counts
        self.sessions = sessions

    def __call__(self, client: P4RuntimeClient) -> None:
        self.flows.writer = client
        fresh = client.pipeline_cookie() != self.cookie
        if fresh:
            client.set_pipeline(self.info.p4info, self.program.device_config(), cookie=self.cookie)
            self.counts.pipeline_pushes += 1
            log.info("pushed %s to %s (the switch had %s)", self.program.label,
                     client.address, "another pipeline or none")
        write_idempotent(client, configuration_updates(self.tables, self.config, self.pool))
        if fresh:
            self.rings.adopt({})
            restore = self.flows.restore_updates()
            if restore:
                client.write(restore)
                self.counts.restored_flows += len(restore)
                log.info("restored %d flows entries the switch had lost", len(restore))
            self.sessions.restore(client)
        else:
            self._adopt(client)
            self.sessions.adopt(client)
        self.rings.update(client, force=True)

    def _adopt(self, client: P4RuntimeClient) -> None:
        """The switch is the truth: its flows and rings replace what this controller believed."""
        installed = self.tables.read_flows(client)
        self.flows.table.clear()
        adopted = self.flows.adopt(installed)
        rings: dict[int, dict[int, int]] = {sid: {} for sid in self.rings.rings}
        generation = 0
        for (service_id, slot), (backend_id, slot_generation) in read_ring(client, self.info).items():
            generation = max(generation, slot_generation)
            if service_id in rings:
                rings[service_id][slot] = backend_id
        self.rings.adopt(rings, generation)
        log.info("adopted %d flows entries and %d ring slots from the switch", adopted,
                 sum(len(s) for s in rings.values()))


RingEntries = dict[tuple[int, int], tuple[int, int]]


def read_ring(client: P4RuntimeClient, info: P4InfoIndex) -> RingEntries:
    """Every `dispatch_ring` entry on the switch: (service id, slot) -> (backend id, generation)."""
    entries: RingEntries = {}
    for entity in client.read([ent.entity(ent.table_entry(info, "dispatch_ring"))]):
        match = ent.decode_match(info, entity.table_entry)
        _, params = ent.decode_action(info, entity.table_entry)
        entries[(match["service_id"], match["slot"])] = (params["backend_id"], params["generation"])
    return entries
