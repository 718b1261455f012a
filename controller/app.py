"""The controller: one loop that keeps a switch serving the configuration.

    connect (back-off) -> primary? (else wait as backup) -> take over -> serve -> lost? reconnect

Take-over makes the switch match the configuration without disturbing it: the pipeline is
pushed only when the switch has none or another one (a push wipes every entry, and BMv2 then
doubles clones), entries already there are adopted, the ring already there is the starting
point. After a switch restart the flows this controller knew are written back.

Serving is a single thread: stream messages (digests, idle timeouts, reactive packet-ins),
operator commands, every write and the reaction to each counter poll run here, so no
state needs a lock. Only the counter reads run beside it (controller/counter_poller.py).
Other threads (HTTP API) talk to it through `submit()` and read `status()`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import zlib
from concurrent.futures import Future
from itertools import islice
from typing import Any, Callable

import numpy as np

from controller.backend_pool import BackendError, BackendPool, BackendState
from controller.config import Backend, Config
from controller.counter_poller import CounterPoller, CounterReading, drops_by_reason
from controller.dataplane.constants import PACKET_IN_REASON_REACTIVE
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import REACTIVE_BACKEND_ID, FlowManager
from controller.flow_table import pack_key, unpack_key
from controller.load_monitor import LoadMonitor
from controller.p4runtime import P4InfoIndex, P4RuntimeClient, P4RuntimeError
from controller.p4runtime import entities as ent
from controller.p4runtime.encoding import address_from_flow, flow_address
from controller.policies import NoServerAvailable, Policy, make_policy
from controller.service_ring import EMPTY_SLOT, ServiceRing
from controller.switch_setup import backend_update, configuration_updates, write_idempotent
from controller.pipeline import CompiledProgram, compiled_program
from controller.dataplane.flow_key import flow_key

log = logging.getLogger("controller")

BACKOFF_FIRST_S = 0.25
BACKOFF_LONGEST_S = 4.0
DIGESTS_PER_ROUND = 512
STATUS_LATENCY_SAMPLES = 2000   # install latencies behind the status' p50/p99



class Controller:
    def __init__(self, config: Config, program: CompiledProgram | None = None) -> None:
        self.config = config
        self.program = program or compiled_program(config.switch.program)
        self.cookie = self.program.cookie()
        self.info = P4InfoIndex.load(self.program.p4info)
        self.tables = DispatcherTables(self.info)
        self.pool = BackendPool(config)
        stats_slots = self.info.counter("flow_stats").size
        self.flows = FlowManager(self.tables, writer=_NoSwitch(), known_backend=self._known_backend,
                                 idle_timeout_ns=int(config.timers.flow_idle_timeout_s * 1e9),
                                 stats_slots=stats_slots, table_size=self.info.table("flows").size)
        self.policies: dict[int, Policy] = {s.id: make_policy(s.policy) for s in config.services}
        self.rings = {s.id: ServiceRing(s.id, s.ring_size, s.ring_threshold) for s in config.services}
        self.monitor = LoadMonitor(stats_slots, any(p.needs_flow_estimates for p in self.policies.values()))
        self.flows.on_installed.append(self.monitor.flow_installed)
        self.flows.on_removed.append(self.monitor.flow_removed)
        self.role = "connecting"
        self.started = time.monotonic()
        self.counts = {"reconnects": 0, "pipeline_pushes": 0, "restored_flows": 0,
                       "reactive_packets": 0, "reactive_failures": 0}
        self._commands: queue.Queue[tuple[Callable[[P4RuntimeClient], Any], Future]] = queue.Queue()
        self._status: dict[str, Any] = {}
        self._status_lock = threading.Lock()
        self._rate_base: tuple[float, int, int] | None = None

    def _known_backend(self, backend_id: int) -> bool:
        return backend_id in self.pool

    # ---- the outer loop: connect, take over, serve, reconnect --------------------------

    def run(self, stop: threading.Event) -> None:
        delay = BACKOFF_FIRST_S
        sw = self.config.switch
        while not stop.is_set():
            client = P4RuntimeClient(sw.grpc_address, sw.device_id, sw.election_id, timeout=5.0)
            try:
                client.connect()
            except P4RuntimeError as exc:
                self._set_role("connecting")
                log.warning("switch unreachable (%s); retrying in %.2f s", exc, delay)
                client.close()
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_LONGEST_S)
                continue
            delay = BACKOFF_FIRST_S
            try:
                if self._wait_primary(client, stop):
                    self._take_over(client)
                    self._serve(client, stop)
            except P4RuntimeError as exc:
                log.error("lost the switch: %s", exc)
            finally:
                self.flows.abandon_in_flight()
                client.close()
            if not stop.is_set():
                self.counts["reconnects"] += 1
                self._set_role("connecting")
                log.warning("reconnecting to %s", sw.grpc_address)
                stop.wait(BACKOFF_FIRST_S)
        self._set_role("stopped")
        log.info("controller stopped")

    def _wait_primary(self, client: P4RuntimeClient, stop: threading.Event) -> bool:
        if client.is_primary:
            return True
        self._set_role("backup")
        log.info("backup (election id %d): waiting for the primary to go", client.election_id)
        while not stop.is_set() and not client.stream_closed.is_set():
            if client.primary.wait(0.1):
                log.info("primary now (election id %d): taking over", client.election_id)
                return True
            self._run_commands(None)
        return False

    def _take_over(self, client: P4RuntimeClient) -> None:
        started = time.monotonic()
        self.flows.writer = client
        fresh = client.pipeline_cookie() != self.cookie
        if fresh:
            client.set_pipeline_files(self.info.p4info, self.program.bmv2_json, cookie=self.cookie)
            self.counts["pipeline_pushes"] += 1
            log.info("pushed %s to %s (the switch had %s)", self.program.bmv2_json.name,
                     client.address, "another pipeline or none")
        write_idempotent(client, configuration_updates(self.tables, self.config, self.pool))
        if fresh:
            for ring in self.rings.values():
                ring.adopt({})
            restore = self.flows.restore_updates()
            if restore:
                client.write(restore)
                self.counts["restored_flows"] += len(restore)
                log.info("restored %d flows entries the switch had lost", len(restore))
        else:
            self._adopt(client)
        self._update_rings(client, force=True)
        self._set_role("primary")
        log.info("serving %d services, %d backends, %d flows (take-over %.0f ms)",
                 len(self.pool.services), sum(1 for _ in self.pool), len(self.flows.table),
                 (time.monotonic() - started) * 1e3)

    def _adopt(self, client: P4RuntimeClient) -> None:
        """The switch is the truth: its flows and rings replace what this controller believed."""
        installed = self.tables.read_flows(client)
        self.flows.table.clear()
        adopted = self.flows.adopt(installed)
        rings: dict[int, dict[int, int]] = {sid: {} for sid in self.rings}
        for entity in client.read([ent.entity(ent.table_entry(self.info, "dispatch_ring"))]):
            match = ent.decode_match(self.info, entity.table_entry)
            _, params = ent.decode_action(self.info, entity.table_entry)
            if match["service_id"] in rings:
                rings[match["service_id"]][match["slot"]] = params["backend_id"]
        for service_id, slots in rings.items():
            self.rings[service_id].adopt(slots)
        log.info("adopted %d flows entries and %d ring slots from the switch", adopted,
                 sum(len(s) for s in rings.values()))

    # ---- serving ----------------------------------------------------------------------------

    def _serve(self, client: P4RuntimeClient, stop: threading.Event) -> None:
        poller = CounterPoller(client, self.tables, self.config.timers.poll_interval_ms / 1000,
                               per_flow=self.monitor.track_flows)
        with poller:
            while not stop.is_set():
                if client.digests.empty():
                    client.activity.wait(0.05)
                client.activity.clear()
                if client.stream_closed.is_set():
                    raise P4RuntimeError(f"stream to {client.address} closed")
                if not client.is_primary:
                    log.warning("no longer primary (another controller took over)")
                    return
                self._drain_stream(client)
                self._run_commands(client)
                self.flows.flush()
                reading = poller.latest()
                if reading is not None:
                    self._poll(client, reading)

    def _drain_stream(self, client: P4RuntimeClient) -> None:
        # Digests in rounds of at most DIGESTS_PER_ROUND flows, each written before the next
        # is taken: a backlog is then worked off in batches whose write takes a few ms,
        # rather than one batch that makes every flow in it wait for all the others.
        taken = 0
        while taken < DIGESTS_PER_ROUND:
            try:
                arrived, digest_list = client.digests.get_nowait()
            except queue.Empty:
                break
            client.ack_digest(digest_list)
            self.flows.on_digest_list(digest_list, arrived)
            taken += len(digest_list.data)
        while True:
            try:
                self.flows.on_idle_timeout(client.idle_timeouts.get_nowait())
            except queue.Empty:
                break
        while True:
            try:
                packet = client.packet_ins.get_nowait()
            except queue.Empty:
                break
            if self.tables.packet_in_fields(packet).get("reason") == PACKET_IN_REASON_REACTIVE:
                self._reactive(client, packet.payload)
        while True:
            try:
                error = client.stream_errors.get_nowait()
            except queue.Empty:
                break
            log.warning("switch reported a stream error: %s", error.message or error)

    def _poll(self, client: P4RuntimeClient, reading: CounterReading) -> None:
        """A counter reading: estimators, drains, rings, status."""
        self.monitor.update(reading.at, reading.backend_traffic, reading.flow_stats)
        self._finish_drains(client, reading.at)
        self._update_rings(client)
        self._publish_status(reading.at, reading.backend_traffic, reading.ports, reading.drops)

    # ---- rings ----------------------------------------------------------------------------

    def _update_rings(self, client: P4RuntimeClient, force: bool = False) -> None:
        now = time.monotonic()
        for service in self.pool.services.values():
            backends = self.pool.of_service(service.id)
            ring = self.rings[service.id]
            if not backends:
                continue
            view = self.monitor.view(backends, self.flows.table.per_backend, now, service.load_visibility)
            try:
                weights = self.policies[service.id].weights(view)
            except NoServerAvailable:
                if not ring.warned_no_backend:
                    log.warning("service %s: no backend takes new flows; the ring stays as it is",
                                service.name)
                    ring.warned_no_backend = True
                continue
            ring.warned_no_backend = False
            ids = [b.id for b in backends]
            changes = ring.plan(ids, weights, force=force)
            if not changes:
                continue
            if service.dispatch == "reactive":
                ring.commit(changes)   # the controller's own ring decides; the switch punts
                self._write_reactive_ring(client, ring)
                continue
            updates = [self.tables.ring_slot(service.id, slot, backend,
                                             "insert" if ring.slots[slot] == EMPTY_SLOT else "modify")
                       for slot, backend in changes.items()]
            client.write(updates)
            ring.commit(changes)
            shares = ", ".join(f"{self._name(b)} {s:.0%}" for b, s in sorted(ring.shares().items()))
            log.info("service %s: ring rewritten (%d of %d slots): %s", service.name,
                     len(changes), ring.size, shares)

    def _write_reactive_ring(self, client: P4RuntimeClient, ring: ServiceRing) -> None:
        """A reactive service's switch ring points every slot at the punt pseudo-backend."""
        if ring.punt_written:
            return
        write_idempotent(client, self.tables.ring(ring.service_id, [REACTIVE_BACKEND_ID] * ring.size))
        ring.punt_written = True

    def _reactive(self, client: P4RuntimeClient, frame: bytes) -> None:
        """Reactive mode: decide the flow, write its entry, send the packet back through."""
        self.counts["reactive_packets"] += 1
        key = flow_key(frame)
        service = self._reactive_service(key) if key else None
        if key is None or service is None:
            self.counts["reactive_failures"] += 1
            return
        packed = pack_key(key)
        if packed not in self.flows.table:
            ring = self.rings[service]
            backend = int(ring.slots[zlib.crc32(packed) & (ring.size - 1)])
            if backend == EMPTY_SLOT or not self.flows.install_now(key, backend):
                self.counts["reactive_failures"] += 1
                return
        client.packet_out(frame, self.tables.packet_out_metadata(dispatch=True))

    def _reactive_service(self, key: tuple[int, int, int, int, int]) -> int | None:
        for service in self.pool.services.values():
            if (service.dispatch == "reactive" and service.vip is not None
                    and flow_address(service.vip) == key[1] and service.port == key[4]
                    and service.protocol_number == key[2]):
                return service.id
        return None

    # ---- backends at run time ------------------------------------------------------------

    def _finish_drains(self, client: P4RuntimeClient, now: float) -> None:
        """A draining backend goes once its last flow ended and no cached flow can still come."""
        settle = (self.config.timers.cache_timeout_ms + self.config.timers.digest_retry_ms) / 1000
        for backend in list(self.pool):
            if (backend.state == BackendState.DRAINING and now - backend.state_since > settle
                    and self.flows.table.per_backend[backend.id] == 0):
                log.info("backend %s drained: removing it", backend.name)
                self._remove(client, backend.name)

    def _remove(self, client: P4RuntimeClient, name: str) -> dict[str, Any]:
        backend = self.pool.named(name)
        self.pool.remove(name)
        self._update_rings(client, force=True)
        dropped = self.flows.remove_backend_flows(backend.id)
        self.flows.settle()
        client.write([self.tables.backend_delete(backend.id)])
        log.info("backend %s removed (%d flows entries deleted)", name, dropped)
        return {"removed": name, "flows_deleted": dropped}

    def _add(self, client: P4RuntimeClient, service_name: str, backend: Backend) -> dict[str, Any]:
        live = self.pool.add(service_name, backend)
        try:
            write_idempotent(client, [backend_update(self.tables, live)])
        except P4RuntimeError:
            self.pool.remove(backend.name)
            raise
        self._update_rings(client, force=True)
        log.info("backend %s added to service %s", backend.name, service_name)
        return {"added": backend.name}

    def _set_state(self, client: P4RuntimeClient, name: str, state: BackendState) -> dict[str, Any]:
        self.pool.set_state(name, state)
        self._update_rings(client, force=True)
        log.info("backend %s is %s", name, state.value)
        return {"backend": name, "state": state.value}

    # ---- commands from other threads --------------------------------------------------------

    def submit(self, command: str, **args: Any) -> Future:
        """Queue an operator command for the serving loop; the future holds its result."""
        handlers: dict[str, Callable[[P4RuntimeClient], Any]] = {
            "add": lambda c: self._add(c, args["service"], Backend.model_validate(args["backend"])),
            "remove": lambda c: self._remove(c, args["name"]),
            "quiesce": lambda c: self._set_state(c, args["name"], BackendState.QUIESCED),
            "drain": lambda c: self._set_state(c, args["name"], BackendState.DRAINING),
            "activate": lambda c: self._set_state(c, args["name"], BackendState.ACTIVE),
            "flows": lambda c: self._flow_list(int(args.get("limit", 100))),
        }
        future: Future = Future()
        if command not in handlers:
            future.set_exception(BackendError(f"unknown command {command!r}"))
            return future
        self._commands.put((handlers[command], future))
        return future

    def _run_commands(self, client: P4RuntimeClient | None) -> None:
        while True:
            try:
                handler, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if client is None:
                future.set_exception(BackendError(f"this controller is {self.role}, not primary"))
                continue
            try:
                future.set_result(handler(client))
            except Exception as exc:  # reported to the operator, the loop goes on
                future.set_exception(exc)

    def _flow_list(self, limit: int) -> list[dict[str, Any]]:
        out = []
        for key, backend_id, slot in self.flows.table.items():
            if len(out) >= limit:
                break
            src, dst, proto, sport, dport = unpack_key(key)
            out.append({"src": f"{address_from_flow(src)}:{sport}", "dst": f"{address_from_flow(dst)}:{dport}",
                        "protocol": proto, "backend": self._name(backend_id), "stats_slot": slot})
        return out

    # ---- status -------------------------------------------------------------------------------

    def _name(self, backend_id: int) -> str:
        for b in self.pool:
            if b.id == backend_id:
                return b.name
        return str(backend_id)

    def _set_role(self, role: str) -> None:
        self.role = role
        with self._status_lock:
            self._status["role"] = role

    def _publish_status(self, now: float, backend_traffic: dict, ports: dict[str, dict],
                        drops: dict | None = None) -> None:
        stats = self.flows.stats
        rates = {}
        if self._rate_base is not None:
            t0, digests0, writes0 = self._rate_base
            dt = max(now - t0, 1e-6)
            rates = {"digests_per_s": (stats.digests - digests0) / dt,
                     "writes_per_s": (stats.inserted + stats.deleted - writes0) / dt}
        if self._rate_base is None or now - self._rate_base[0] >= 1.0:
            self._rate_base = (now, stats.digests, stats.inserted + stats.deleted)
        # The newest installs only: converting the whole 100,000-sample window at every
        # poll would cost the serving loop milliseconds ten times a second.
        recent = list(islice(reversed(self.flows.install_latency), STATUS_LATENCY_SAMPLES))
        latency = np.array(recent) if recent else None
        estimated = self.monitor.estimates.server_load() if self.monitor.track_flows else None
        services = []
        for service in self.pool.services.values():
            shares = self.rings[service.id].shares()
            backends = []
            for b in self.pool.of_service(service.id):
                traffic = backend_traffic.get(b.id)
                backends.append({
                    "name": b.name, "id": b.id, "state": b.state.value, "port": b.config.port,
                    "capacity_mbps": b.config.capacity_mbps,
                    "flows": int(self.flows.table.per_backend[b.id]),
                    "load_mbps": float(self.monitor.backend_rate[b.id]) * 8 / 1e6,
                    "estimated_mbps": float(estimated[b.id]) * 8 / 1e6 if estimated is not None else None,
                    "ring_share": shares.get(b.id, 0.0),
                    "packets": traffic.packets if traffic else 0,
                    "bytes": traffic.bytes if traffic else 0,
                })
            services.append({"name": service.name, "id": service.id, "mode": service.mode,
                             "policy": service.policy, "dispatch": service.dispatch,
                             "ring_rewrites": self.rings[service.id].rewrites,
                             "backends": backends})
        status = {
            "role": self.role, "switch": self.config.switch.grpc_address,
            "election_id": self.config.switch.election_id,
            "uptime_s": now - self.started,
            "flows": {"active": len(self.flows.table), "pending": self.flows.pending,
                      "overflow": self.flows.overflow, **vars(stats), **rates,
                      "install_latency_ms": ({"p50": float(np.percentile(latency, 50)) * 1e3,
                                              "p99": float(np.percentile(latency, 99)) * 1e3}
                                             if latency is not None else None),
                      # cumulative buckets since start, for Prometheus' histogram_quantile()
                      "install_latency_seconds": self.flows.install_histogram.snapshot()},
            "controller": dict(self.counts),
            "ports": {direction: {str(port): {"packets": c.packets, "bytes": c.bytes}
                                  for port, c in sorted(cells.items())}
                      for direction, cells in ports.items()},
            "drops": drops_by_reason(drops or {}),   # reason -> packets the data plane dropped
            "services": services,
        }
        with self._status_lock:
            self._status = status

    def status(self) -> dict[str, Any]:
        with self._status_lock:
            return dict(self._status, role=self.role)


class _NoSwitch:
    """The flow manager's writer before the first connection."""

    def write(self, updates, batch_size: int = 1000) -> None:
        raise P4RuntimeError("not connected to a switch")

    def write_async(self, updates):
        raise P4RuntimeError("not connected to a switch")
