"""The controller: one loop that keeps a switch serving the configuration.

    connect (back-off) -> primary? (else wait as backup) -> take over -> serve -> lost? reconnect

Serving is a single thread: stream messages (digests, idle timeouts, reactive packet-ins),
operator commands, every write, cluster health and the reaction to each counter poll run
here, so no state needs a lock. Beside it run only threads that fill queues: the counter
reads (controller/counter_poller.py), the agents' UDP listener and the advisors' probes
(controller/health/). Other threads (HTTP API) talk to it through `submit()` and read
`status()`.

The parts, each in its own module: take-over and adoption (takeover.py), ring updates
(ring_updates.py), backend administration (backend_admin.py), reactive mode (reactive.py),
health and measured load (health_control.py), SA2C admission (admission_writer.py), nd's
run-time settings (policy_admin.py), session affinity (session_control.py) and the typed
status (status.py, status_builder.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from controller.admission_writer import AdmissionWriter
from controller.backend_admin import BackendAdmin
from controller.backend_pool import BackendError, BackendPool, BackendState
from controller.config import Backend, Config, ConfigError
from controller.counter_poller import CounterPoller, CounterReading
from controller.dataplane.constants import PROGRAM_ENUMS, PacketInReason
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import FlowManager
from controller.health_control import HealthControl, HealthEnforcer
from controller.load_monitor import LoadMonitor
from controller.p4runtime import P4InfoIndex, P4RuntimeClient, P4RuntimeError
from controller.p4runtime.client import queued, take_digests
from controller.p4runtime.p4info import P4InfoError
from controller.p4runtime.targets import Program, target_named
from controller.policy_admin import NdChange, apply_nd_change
from controller.reactive import ReactiveDispatch
from controller.ring_updates import RingUpdater
from controller.service_ring import ServiceRing
from controller.session_control import SessionControl
from controller.status import ControllerStatus, Role, RunCounts
from controller.status_builder import StatusBuilder
from controller.takeover import TakeOver, wait_primary

log = logging.getLogger("controller")

BACKOFF_FIRST_S = 0.25
BACKOFF_LONGEST_S = 4.0
DIGESTS_PER_ROUND = 512


class Controller:
    # Several switches use a manager that also says where entries go (controller/cluster_app.py).
    flow_manager_class: type[FlowManager] = FlowManager

    def __init__(self, config: Config, program: Program | None = None) -> None:
        self.config = config
        # Every switch runs one program on one target (the configuration checks it).
        self.target = target_named(config.dispatchers[0].target)
        self.program = program or self.target.program(config.dispatchers[0].program)
        self.info = P4InfoIndex.load(self.program.p4info)
        self.tables = DispatcherTables(self.info, self.target)
        check_program_fits(config, self.info)
        self.pool = BackendPool(config)
        stats_slots = self.info.counter("flow_stats").size
        self.flows = self.flow_manager_class(
            self.tables, writer=_NoSwitch(), known_backend=self.pool.__contains__,
            idle_timeout_ns=int(config.timers.flow_idle_timeout_s * 1e9),
            stats_slots=stats_slots, table_size=self.info.table("flows").size)
        self.monitor = LoadMonitor(stats_slots, track_flows=False)
        self.started = time.monotonic()
        self.health = HealthControl(config, self.pool, now=self.started)
        self.ring_updater = RingUpdater(config, self.pool, self.monitor, self.flows.table, self.tables,
                                        inputs=self.health)
        self.monitor.track_flows = self.ring_updater.needs_flow_estimates
        self.flows.on_installed.append(self.monitor.flow_installed)
        self.flows.on_removed.append(self.monitor.flow_removed)
        self.counts = RunCounts()
        self.admin = BackendAdmin(self.pool, self.flows, self.ring_updater, self.tables, config.timers)
        self.reactive = ReactiveDispatch(self.pool, self.rings, self.flows, self.tables, self.counts)
        self.sessions = SessionControl(config, self.tables, self.flows,
                                       capacity=self.info.table("announced_flows").size)
        self.take_over = TakeOver(config, self.program, self.info, self.tables, self.pool, self.flows,
                                  self.ring_updater, self.counts, self.sessions)
        self.health_enforcer = HealthEnforcer(self.health, self.ring_updater, self.flows)
        self.admission = AdmissionWriter(config, self.tables, self.pool, self.monitor, self.health)
        self.status_builder = StatusBuilder(config, self.pool, self.flows, self.monitor, self.ring_updater,
                                            self.health, self.health_enforcer, self.admission, self.counts,
                                            self.started, self.sessions)
        self.role: Role = "connecting"
        self._commands: queue.Queue[tuple[Callable[[P4RuntimeClient], Any], Future]] = queue.Queue()
        self._status = self._empty_status()
        self._status_lock = threading.Lock()

    @property
    def rings(self) -> dict[int, ServiceRing]:
        return self.ring_updater.rings

    # ---- the outer loop: connect, take over, serve, reconnect --------------------------

    def run(self, stop: threading.Event) -> None:
        """Serve until `stop`. Raises HealthStartError when the agents' UDP port cannot be bound."""
        self.health.start()       # a no-op when started already (the CLI does, to report errors early)
        try:
            self._run(stop)
        finally:
            self.health.stop()
        self._set_role("stopped")
        log.info("controller stopped")

    def _run(self, stop: threading.Event) -> None:
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
                if not client.is_primary:
                    self._set_role("backup")
                if wait_primary(client, stop, meanwhile=self._while_backup):
                    started = time.monotonic()
                    self.take_over(client)
                    self.health_enforcer.after_take_over()
                    self.admission.adopt(client)
                    self._set_role("primary")
                    log.info("serving %d services, %d backends, %d flows (take-over %.0f ms)",
                             len(self.pool.services), sum(1 for _ in self.pool), len(self.flows.table),
                             (time.monotonic() - started) * 1e3)
                    self._serve(client, stop)
            except P4RuntimeError as exc:
                log.error("lost the switch: %s", exc)
            finally:
                self.flows.abandon_in_flight()
                client.close()
            if not stop.is_set():
                self.counts.reconnects += 1
                self._set_role("connecting")
                log.warning("reconnecting to %s", sw.grpc_address)
                stop.wait(BACKOFF_FIRST_S)

    def _while_backup(self) -> None:
        """Every 100 ms as a backup: refuse commands, keep health current (no switch writes: the
        take-over rewrites the rings and deletes what a down backend left)."""
        self._run_commands(None)
        self.health.poll(time.monotonic())

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
                self._turn(client, poller.latest())

    def _turn(self, client: P4RuntimeClient, reading: CounterReading | None) -> None:
        """One turn of the serving loop: stream, commands, health, writes, and the newest counter
        reading when one came."""
        self._drain_stream(client)
        # Announced entries first: each is a race with its flow's first packet.
        self.sessions.flush(client)
        self._run_commands(client)
        self.health_enforcer.turn(client, time.monotonic())
        self.flows.flush()
        if reading is not None:
            self._poll(client, reading)

    def _drain_stream(self, client: P4RuntimeClient) -> None:
        # Digests in rounds of at most DIGESTS_PER_ROUND flows, each written before the next
        # is taken: a backlog is then worked off in batches whose write takes a few ms,
        # rather than one batch that makes every flow in it wait for all the others.
        for arrived, digest_list in take_digests(client, DIGESTS_PER_ROUND):
            self.flows.on_digest_list(digest_list, arrived)
        for notification in queued(client.idle_timeouts):
            self.flows.on_idle_timeout(notification)
            self.sessions.on_idle_timeout(notification)
        for packet in queued(client.packet_ins):
            fields = self.tables.packet_in_fields(packet)
            if fields.get("reason") == PacketInReason.REACTIVE:
                self.reactive.handle(client, packet.payload)
            elif fields.get("reason") == PacketInReason.SIGNALLING:
                self.sessions.on_packet_in(fields.get("ingress_port", 0), packet.payload, fields.get("backend_id", 0))
                # Written at once: each announced entry races its flow's first packet, and a
                # burst of signalling must not hold the first announcements back.
                self.sessions.flush(client)
        for error in queued(client.stream_errors):
            log.warning("switch reported a stream error: %s", error.message or error)

    def _poll(self, client: P4RuntimeClient, reading: CounterReading) -> None:
        """A counter reading: estimators, drains, rings, admission, status."""
        self.monitor.update(reading.at, reading.backend_traffic, reading.flow_stats)
        self.health.switch_bytes(reading.backend_traffic)
        self.admin.finish_drains(client, reading.at)
        self.ring_updater.update(client)
        self.admission.turn(client, reading.at, reading.drops)
        status = self.status_builder.build(self._empty_status(), reading)
        with self._status_lock:
            self._status = status

    # ---- commands from other threads --------------------------------------------------------

    def submit(self, command: str, **args: Any) -> Future:
        """Queue an operator command for the serving loop; the future holds its result."""
        handlers = self._command_handlers(args)
        future: Future = Future()
        if command not in handlers:
            future.set_exception(BackendError(f"unknown command {command!r}"))
            return future
        self._commands.put((handlers[command], future))
        return future

    def _command_handlers(self, args: dict[str, Any]) -> dict[str, Callable[[P4RuntimeClient], Any]]:
        """Operator commands by name, each run by the serving loop with the switch's client."""
        admin = self.admin
        return {
            "add": lambda c: admin.add(c, args["service"], Backend.model_validate(args["backend"])),
            "remove": lambda c: admin.remove(c, args["name"]),
            "quiesce": lambda c: admin.set_state(c, args["name"], BackendState.QUIESCED),
            "drain": lambda c: admin.set_state(c, args["name"], BackendState.DRAINING),
            "activate": lambda c: admin.set_state(c, args["name"], BackendState.ACTIVE),
            "flows": lambda c: admin.flow_list(int(args.get("limit", 100))),
            "nd": lambda c: apply_nd_change(self.ring_updater.nd_policy(args["service"]),
                                            NdChange.model_validate(args.get("change") or {})),
        }

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

    # ---- status -------------------------------------------------------------------------------

    def status(self) -> ControllerStatus:
        with self._status_lock:
            return self._status.model_copy(update={"role": self.role})

    def _set_role(self, role: Role) -> None:
        self.role = role

    def _empty_status(self) -> ControllerStatus:
        sw = self.config.switch
        return ControllerStatus(role=self.role, switch=sw.grpc_address, election_id=sw.election_id)


def check_program_fits(config: Config, info: P4InfoIndex) -> None:
    """The configuration fits the program's tables (sizes from its P4Info, not assumed), and
    the program speaks the controller's enums (drop reasons, packet-in reasons, admission
    levels: their names and values are in the P4Info)."""
    for enum in PROGRAM_ENUMS:
        try:
            published = info.serializable_enum(enum.__name__)
        except P4InfoError as exc:
            raise ConfigError(f"the program's P4Info: {exc}; build the program from this checkout") from None
        expected = {m.name: m.value for m in enum}
        if published != expected:
            raise ConfigError(f"the program's enum {enum.__name__} is {published}, the controller's is "
                              f"{expected}; build the program from this checkout")
    ring_slots = sum(s.ring_size for s in config.services)
    if ring_slots > info.table("dispatch_ring").size:
        raise ConfigError(f"the services' rings have {ring_slots} slots in all; the program's "
                          f"dispatch_ring table holds {info.table('dispatch_ring').size}")
    backends = sum(len(s.backends) for s in config.services)
    if backends > info.table("backends").size - 1:   # one entry is the reactive punt
        raise ConfigError(f"{backends} backends configured; the program's backends table holds "
                          f"{info.table('backends').size - 1} besides the reactive punt")


class _NoSwitch:
    """The flow manager's writer before the first connection."""

    def write(self, updates, batch_size: int = 1000) -> None:
        raise P4RuntimeError("not connected to a switch")

    def write_async(self, updates):
        raise P4RuntimeError("not connected to a switch")
