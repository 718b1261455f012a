"""Programming an emulated switch once, without the controller: for Mininet tests and demos.

`push_pipeline` loads a compiled program over P4Runtime. `dispatcher_updates` turns a
controller configuration (controller/config.py's Config, as the topologies generate it)
into the table entries the controller writes at start (services, VIPs, backends, timers,
digest: controller/switch_setup.py's own list) plus the fixed ring weighted round robin
would write (the backends' configured weights).
topo/flow_installer.py then plays the flow manager's part during a test. The
controller itself (controller/app.py) does all this and then keeps adapting; this module
never does.
"""

from __future__ import annotations

from finsy.proto import p4r

from controller.backend_pool import BackendPool
from controller.config import Config
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.dispatch_ring import build_ring
from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from controller.p4runtime import entities as ent
from controller.switch_setup import configuration_updates
from topo.toolchain import build_program


def push_pipeline(grpc_address: str, program: str = "dispatcher", device_id: int = 0,
                  election_id: int = 1) -> tuple[P4RuntimeClient, P4InfoIndex]:
    """A primary P4Runtime session with `program` loaded (the caller closes the client)."""
    compiled = build_program(program)
    info = P4InfoIndex.load(compiled.p4info)
    client = P4RuntimeClient(grpc_address, device_id=device_id, election_id=election_id)
    client.connect()
    try:
        client.set_pipeline_files(info.p4info, compiled.bmv2_json)
    except BaseException:
        client.close()
        raise
    return client, info


def static_ring(weights: list[float], backend_ids: list[int], size: int) -> list[int]:
    """Ring slots (backend ids) in proportion to the weights: what a fixed policy would write."""
    return [backend_ids[i] for i in build_ring(weights, size)]


def dispatcher_updates(tables: DispatcherTables, config: Config) -> list[p4r.Update]:
    """Everything the dispatcher needs before the first packet, from a validated Config: the
    controller's own start-up entries (controller/switch_setup.py) and a ring per service
    by the backends' configured weights (weighted round robin's ring), where the controller
    would run its policy."""
    pool = BackendPool(config)
    updates = configuration_updates(tables, config, pool)
    for service in config.services:
        backends = pool.of_service(service.id)
        updates += tables.ring(service.id, static_ring([b.config.weight for b in backends],
                                                       [b.id for b in backends], service.ring_size),
                               generation=1)
    return updates


def minimal_forward_updates(info: P4InfoIndex, port_map: dict[int, int]) -> list[p4r.Update]:
    """The minimal program's only table: ingress port -> output port."""
    return [ent.update("insert", ent.table_entry(info, "port_forward", {"ingress_port": src},
                                                 "output", {"port": dst}))
            for src, dst in sorted(port_map.items())]
