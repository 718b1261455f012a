"""Reactive mode, only there to measure against: a new flow's first packet comes to the
controller, which decides it from the service's ring, writes its entry and sends the packet
back through the pipeline."""

from __future__ import annotations

import zlib

from controller.backend_pool import BackendPool
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.dataplane.flow_key import FlowKey, flow_key
from controller.flow_manager import FlowManager
from controller.flow_table import pack_key
from controller.p4runtime import P4RuntimeClient
from controller.p4runtime.encoding import flow_address
from controller.service_ring import EMPTY_SLOT, ServiceRing
from controller.status import RunCounts


class ReactiveDispatch:
    def __init__(self, pool: BackendPool, rings: dict[int, ServiceRing], flows: FlowManager,
                 tables: DispatcherTables, counts: RunCounts) -> None:
        self.pool = pool
        self.rings = rings
        self.flows = flows
        self.tables = tables
        self.counts = counts

    def handle(self, client: P4RuntimeClient, frame: bytes) -> None:
        self.counts.reactive_packets += 1
        key = flow_key(frame)
        service = self._service_of(key) if key else None
        if key is None or service is None:
            self.counts.reactive_failures += 1
            return
        packed = pack_key(key)
        if packed not in self.flows.table:
            ring = self.rings[service]
            backend = int(ring.slots[zlib.crc32(packed) & (ring.size - 1)])
            if backend == EMPTY_SLOT or not self.flows.install_now(key, backend):
                self.counts.reactive_failures += 1
                return
        client.packet_out(frame, self.tables.packet_out_metadata(dispatch=True))

    def _service_of(self, key: FlowKey) -> int | None:
        for service in self.pool.services.values():
            if (service.dispatch == "reactive" and service.vip is not None
                    and flow_address(service.vip) == key[1] and service.port == key[4]
                    and service.protocol_number == key[2]):
                return service.id
        return None
