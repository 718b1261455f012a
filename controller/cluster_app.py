"""The controller of several switches behind ECMP (issue 15, docs/multiswitch.md).

    supervisor per switch: connect (back-off) -> primary -> push pipeline -> hand over
    one serving loop:      join handed-over switches -> drain every stream -> write -> poll

Used only when the configuration has `[[switches]]`; `[switch]` runs controller/app.py's
Controller, whose code path this leaves as it is. What is shared with it is everything
above the switch: pool, policies, rings, health, load monitor, operator commands, status.
What differs:

* Configuration and ring writes go through a SwitchSet: the same batches to every switch in
  service, in one order, with one generation counter.
* `flows` entries go where controller/cluster_flows.py says: home entries to the reporting
  switch, replicas once the home reports activation, deletes once idle everywhere.
* A switch that joins (first start or return) gets the configuration, every ring slot's
  current backend under one fresh generation, then every activated flow's replica, before
  the loop counts it in service. A lost stream or failed write is that switch's failure,
  not the end of serving: the others go on, and its supervisor reconnects.
* At a take-over (a backup becoming primary, a restart) the switches that run the program
  already are adopted, not wiped (controller/cluster_takeover.py): their entries and rings
  become the controller's state, the switches that lag the old controller's last ring write
  get it, and the replicas it had not written yet are written.
* Counters are read per switch (a poller each) and summed as increases
  (controller/cluster_counters.py), so the policies see the whole cluster.

The serving loop is one thread, as in controller/app.py; supervisors only connect and push.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

from controller.app import DIGESTS_PER_ROUND, Controller
from controller.cluster_counters import ClusterCounters
from controller.cluster_flows import ClusterFlowManager, ClusterFlows, RoutedFlowWriter
from controller.cluster_takeover import SwitchState, adopted_flows, cluster_ring, plain_entry_id, ring_fixes
from controller.config import Config
from controller.counter_poller import CounterPoller, CounterReading
from controller.dataplane.constants import DispatchEvent, PacketInReason
from controller.dataplane.dispatcher_tables import CounterValue
from controller.dataplane.flow_key import ring_slot
from controller.ecmp_commands import CommandEcmpGroup
from controller.flow_replicas import FlowReplicas
from controller.flow_table import unpack_key
from controller.p4runtime import P4RuntimeClient, P4RuntimeError
from controller.p4runtime.client import queued, take_digests
from controller.p4runtime.encoding import flow_address
from controller.p4runtime.switch_set import AllSwitchesLost, SwitchSet
from controller.p4runtime.targets import Program
from controller.service_ring import EMPTY_SLOT
from controller.status import ClusterStatus, ControllerStatus
from controller.switch_setup import configuration_updates, write_idempotent
from controller.switch_supervisor import Handover, SwitchSupervisor
from controller.takeover import RingEntries, read_ring

log = logging.getLogger("controller")

# At a take-over the loop waits this long after the first switch is handed over for the
# others, so that it adopts them together (they may differ by the old controller's last write).
ADOPTION_WAIT_S = 2.0


class EcmpGroup(Protocol):
    """The ECMP stage in front of the switches: which of them receive traffic. In Mininet,
    topo/multi_dispatcher.py's MininetEcmp; on a network, a BGP announcement or an ECMP
    switch's group. Calls must return quickly: the serving loop makes them."""

    def add(self, switch: str) -> None: ...

    def remove(self, switch: str) -> None: ...


@dataclass
class _Served:
    client: P4RuntimeClient
    poller: CounterPoller | None
    released: threading.Event     # set once the session is closed: its supervisor reconnects


class ClusterController(Controller):
    flow_manager_class = ClusterFlowManager

    def __init__(self, config: Config, program: Program | None = None, ecmp: EcmpGroup | None = None) -> None:
        if not config.several_switches:
            raise ValueError("ClusterController drives `[[switches]]`; one `[switch]` is Controller's")
        super().__init__(config, program)
        assert isinstance(self.flows, ClusterFlowManager)
        self.names = [switch_name(s.name, s.grpc_address, s.device_id) for s in config.switches]
        self.switch_set = SwitchSet()
        self.replicas = FlowReplicas([])
        self.cluster_flows = ClusterFlows(self.flows, self.tables, self.switch_set, self.replicas)
        self.flows.writer = RoutedFlowWriter(self.switch_set, self.cluster_flows)
        self.switch_set.on_lost.append(self._on_lost)
        self.ring_updater.keep_slots = self.unreplicated_slots
        self.counters = ClusterCounters()
        # The ECMP group: given (a test's, an embedding program's), else the configuration's commands.
        self.ecmp = ecmp if ecmp is not None else (CommandEcmpGroup(config.ecmp) if config.ecmp else None)
        self.joins = 0
        self._served: dict[str, _Served] = {}
        self._rings_written = False
        timers = config.timers
        self.freeze = Freeze(cache_timeout_s=timers.cache_timeout_ms / 1000,
                             digest_retry_s=timers.digest_retry_ms / 1000)
        self._wakeup = threading.Event()
        self._arrivals: queue.Queue[Handover] = queue.Queue()
        # Until the first switches are served, switches that run the program are adopted.
        self._adopting = True
        self._gathered: list[Handover] = []
        self._gathering_since: float | None = None
        self.adopted_switches: list[str] = []
        self._ecmp_lock = threading.Lock()     # supervisors take switches out before a push
        # Changes of the ECMP group waiting for the freeze (rule 6): switch -> "add" or "remove".
        self._ecmp_pending: dict[str, str] = {}
        self.held_out: set[str] = set()        # taken out by the operator: synced, no traffic
        self.supervisors = {name: SwitchSupervisor(name, switch, self.program, self.info, self._arrivals,
                                                   self._wakeup, may_adopt=lambda: self._adopting,
                                                   before_push=self._ecmp_remove)
                            for name, switch in zip(self.names, config.switches)}

    @property
    def writer(self) -> P4RuntimeClient:
        """What configuration, ring and operator writes go to: the SwitchSet, which has the
        client's write interface (the parts that take a client only write through it)."""
        return cast(P4RuntimeClient, self.switch_set)

    # ---- the outer loop ------------------------------------------------------------------------

    def _run(self, stop: threading.Event) -> None:
        for supervisor in self.supervisors.values():
            supervisor.start(stop)
        try:
            while not stop.is_set():
                self.take_arrivals()
                if not self._served:
                    backup = any(sv.state == "backup" for sv in self.supervisors.values())
                    self._set_role("backup" if backup else "connecting")
                    self._while_backup()
                    self._wakeup.wait(0.1)
                    self._wakeup.clear()
                    continue
                self._set_role("primary")
                if all(s.client.digests.empty() for s in self._served.values()):
                    self._wakeup.wait(0.05)
                self._wakeup.clear()
                self.turn()
        finally:
            for name in list(self._served):
                self._release(name, wait=True)
            for supervisor in self.supervisors.values():
                supervisor.join(timeout=3)

    def take_arrivals(self, now: float | None = None) -> None:
        """Switches the supervisors handed over: into service. The first ones are gathered
        (all of them, or for ADOPTION_WAIT_S) and those running the program adopted together."""
        now = time.monotonic() if now is None else now
        while True:
            try:
                self._gathered.append(self._arrivals.get_nowait())
            except queue.Empty:
                break
        if not self._gathered:
            return
        if self._adopting:
            if self._gathering_since is None:
                self._gathering_since = now
            arrived = {h.name for h in self._gathered}
            if len(arrived) < len(self.names) and now - self._gathering_since < ADOPTION_WAIT_S:
                return
            self._adopting = False
            running = [h for h in self._gathered if not h.fresh]
            if running:
                self.adopt_running(running)
            self._gathered = [h for h in self._gathered if h.fresh]
        handed_over, self._gathered = self._gathered, []
        for handed in handed_over:
            if not handed.fresh:
                # Handed over to be adopted just as the take-over ended: its state may lag
                # what was written since. Its supervisor pushes a pipeline, ECMP removal first.
                log.warning("switch %s arrived after the take-over: it will be reprogrammed", handed.name)
                self._ecmp_remove(handed.name)
                _close(_Served(handed.client, None, handed.released))
                continue
            try:
                self.join(handed.name, handed.client, poll=True, released=handed.released)
            except P4RuntimeError as exc:
                log.error("switch %s could not be brought into service: %s", handed.name, exc)
                self.switch_set.lose(handed.name, str(exc))    # if it was a member already
                self._release(handed.name)                     # closed, and its supervisor retries

    def adopt_running(self, handed: list[Handover], poll: bool = True) -> None:
        """Adopt switches that run the program (controller/cluster_takeover.py): nothing the
        data plane decided changes. The cluster's ring is, per slot, the newest generation
        found, written to the switches that lag it; entries are recorded as found; the
        replicas the old controller had not written are written; the switches go (back)
        into the ECMP group after the freeze of rule 6 if any flow is recorded."""
        started = time.monotonic()
        states = self._read_running(handed)
        ring = cluster_ring(states)
        slots: dict[int, dict[int, int]] = {}
        for (service_id, slot), (backend, _) in ring.items():
            slots.setdefault(service_id, {})[slot] = backend
        self.ring_updater.adopt(slots, max((g for _, g in ring.values()), default=0))
        for name in list(states):
            if not self._adopt_switch(name, states[name], ring):
                del states[name]
        self._adopt_sessions(sorted(states))
        next_id = max((plain_entry_id(e.entry_id) + 1 for st in states.values() for e in st.flows), default=1)
        adopted = self.cluster_flows.adopt(adopted_flows(states), next_id)
        self._rings_written = True
        if any(EMPTY_SLOT in r.slots for r in self.ring_updater.rings.values()):
            self.ring_updater.update(self.writer, force=True)     # a service the switches lack
        replicas = sum(self.cluster_flows.switch_joined(name) for name in states)
        for name in states:
            if poll:
                self._served[name].poller = self._poller(self._served[name].client)
            self.joins += 1
            self._into_ecmp(name)
        self.adopted_switches = sorted(states)
        log.info("took over %s running: %d flows adopted (%d to confirm), %d replicas the old controller "
                 "had not written, in %.0f ms", ", ".join(sorted(states)) or "no switch", adopted,
                 self.cluster_flows.unconfirmed, replicas, (time.monotonic() - started) * 1e3)

    def _read_running(self, handed: list[Handover]) -> dict[str, SwitchState]:
        """Each switch's entries and ring; a switch that cannot be read is taken out of ECMP
        and closed (its supervisor reconnects and reprograms it). The sessions of those read
        are the loop's from here on."""
        states: dict[str, SwitchState] = {}
        for h in handed:
            try:
                states[h.name] = SwitchState(self.tables.read_flows(h.client), read_ring(h.client, self.info))
            except P4RuntimeError as exc:
                log.error("switch %s could not be read to adopt it: %s", h.name, exc)
                self._ecmp_remove(h.name)
                _close(_Served(h.client, None, h.released))
                continue
            self._served[h.name] = _Served(h.client, None, h.released)
        return states

    def _adopt_switch(self, name: str, state: SwitchState, ring: RingEntries) -> bool:
        """Configuration, and the ring slots the switch lags; then it is in the set."""
        client = self._served[name].client
        try:
            write_idempotent(client, configuration_updates(self.tables, self.config, self.pool))
            fixes = ring_fixes(state, ring)
            if fixes:
                client.write([self.tables.ring_slot(sid, slot, backend, generation,
                                                    "modify" if (sid, slot) in state.ring else "insert")
                              for (sid, slot), (backend, generation) in sorted(fixes.items())])
                log.info("switch %s lagged the cluster's ring: %d slots written", name, len(fixes))
        except P4RuntimeError as exc:
            log.error("switch %s could not be adopted: %s", name, exc)
            self._release(name)
            return False
        self.switch_set.add(name, client)
        self.counters.adopting(name)
        return True

    def _adopt_sessions(self, names: list[str]) -> None:
        """Announced entries: the first switch's are the session table; the others get them."""
        if not names:
            return
        first, *others = names
        self.sessions.adopt(self._served[first].client)
        announced = [self.tables.announced_flow(e) for e in self.sessions.table]
        for name in others if announced else []:
            write_idempotent(self._served[name].client, announced)

    def join(self, name: str, client: P4RuntimeClient, poll: bool, released: threading.Event | None = None) -> None:
        """Configuration, rings and replicas to a switch with a fresh pipeline, in that order
        (rule 8); then it is in service. The first switch writes the rings for everyone."""
        started = time.monotonic()
        # Served from here on, so that a failure half-way releases the session to its supervisor.
        served = self._served[name] = _Served(client, None, released or threading.Event())
        write_idempotent(client, configuration_updates(self.tables, self.config, self.pool))
        if self._rings_written:
            rings = self._ring_updates()
            if rings:
                client.write(rings)
        self.sessions.restore(client)       # the sessions' announced entries, as on the others
        self.switch_set.add(name, client)
        replicas = self.cluster_flows.switch_joined(name)
        if not self._rings_written:
            self.ring_updater.adopt({})
            self.ring_updater.update(self.writer, force=True)
            self._rings_written = True
        if poll:
            served.poller = self._poller(client)
        self.joins += 1
        self.counts.pipeline_pushes += 1
        self._into_ecmp(name)
        log.info("switch %s in service (%d of %d): configuration, rings and %d replicas in %.0f ms",
                 name, len(self._served), len(self.names), replicas, (time.monotonic() - started) * 1e3)

    def _into_ecmp(self, name: str) -> None:
        """In service: configuration, rings and every activated flow's replica are there.
        Into the ECMP group after the freeze of rule 6 (at once while no flow has been
        recorded: none can move), unless the operator holds it out."""
        if name not in self.held_out:
            self._change_ecmp(name, "add")

    def _change_ecmp(self, name: str, verb: str) -> None:
        """An ECMP change the controller makes on purpose: after the freeze of rule 6, so that
        every flow it moves is replicated or decided by a ring no rewrite touched since."""
        if self.ecmp is None:
            return
        if self.replicas.flows or len(self.flows.table):
            self._ecmp_pending[name] = verb
            self.freeze.begin(name, time.monotonic())
            self.ring_updater.frozen = True
        elif verb == "add":
            self._ecmp_add(name)
        else:
            self._ecmp_remove(name)

    # ---- the operator's changes -----------------------------------------------------------------

    def _command_handlers(self, args: dict[str, Any]) -> dict[str, Callable[[P4RuntimeClient], Any]]:
        return super()._command_handlers(args) | {
            "switch_out": lambda c: self.take_out(args["name"]),
            "switch_in": lambda c: self.put_in(args["name"]),
        }

    def take_out(self, name: str) -> dict[str, str]:
        """Out of the ECMP group on purpose (maintenance), after the freeze: its flows move to
        the others replicated. It stays in service, written like the others, so that it can
        go back in with no pipeline push."""
        self._check_switch(name)
        if name in self.held_out:
            raise ValueError(f"switch {name} is out of the ECMP group already")
        if self.ecmp is None:
            raise ValueError("no ECMP group to change: give `[ecmp]` commands in the configuration")
        self.held_out.add(name)
        if name in self.switch_set:
            self._change_ecmp(name, "remove")
        return {"switch": name, "state": "leaving" if name in self.freeze.waiting else "out"}

    def put_in(self, name: str) -> dict[str, str]:
        """Back into the ECMP group after the freeze (or when it is next in service)."""
        self._check_switch(name)
        if name not in self.held_out:
            raise ValueError(f"switch {name} is not held out of the ECMP group")
        self.held_out.discard(name)
        if name in self.switch_set:
            self._change_ecmp(name, "add")
        return {"switch": name, "state": "joining" if name in self.freeze.waiting else "in"}

    def _check_switch(self, name: str) -> None:
        if name not in self.names:
            raise ValueError(f"no switch named {name!r}; the switches are {', '.join(self.names)}")

    def _ecmp_add(self, name: str) -> None:
        if self.ecmp is not None:
            with self._ecmp_lock:
                self.ecmp.add(name)

    def _ecmp_remove(self, name: str) -> None:
        """Out of the group: before the switch is wiped (a supervisor's push), lost or sent back."""
        if self.ecmp is not None:
            with self._ecmp_lock:
                self.ecmp.remove(name)

    def _ring_updates(self):
        """Every ring slot's current backend under one generation no write used: the same
        backends as on the switches in service, so a generation still names one backend per
        slot on every switch."""
        generation = self.ring_updater.next_generation()
        updates = []
        for service in self.pool.services.values():
            ring = self.ring_updater.rings[service.id]
            updates += [self.tables.ring_slot(service.id, slot, int(backend), generation, "insert")
                        for slot, backend in enumerate(ring.slots) if backend != EMPTY_SLOT]
        return updates

    def _poller(self, client: P4RuntimeClient) -> CounterPoller:
        poller = CounterPoller(client, self.tables, self.config.timers.poll_interval_ms / 1000,
                               per_flow=self.monitor.track_flows)
        poller.__enter__()
        return poller

    # ---- serving -----------------------------------------------------------------------------

    def turn(self, readings: dict[str, CounterReading] | None = None) -> None:
        """One turn of the serving loop over every switch. `readings`: in place of the
        pollers' (tests)."""
        for name, served in list(self._served.items()):
            self._drain(name, served.client)
            if served.client.stream_closed.is_set():
                self.switch_set.lose(name, f"stream to {served.client.address} closed")
            elif not served.client.is_primary:
                self.switch_set.lose(name, "no longer primary (another controller took over)")
        try:
            if not self._served:
                self._run_commands(self.writer)
                return
            # Announced entries first: each is a race with its flow's first packet.
            self.sessions.flush(self.writer)
            self._run_commands(self.writer)
            self.health_enforcer.turn(self.writer, time.monotonic())
            self.flows.flush()
            self.cluster_flows.check_activations(time.monotonic())
            self.cluster_flows.flush()
            reading = self._cluster_reading(readings)
            if reading is not None:
                self.freeze.held_decisions(reading.events.get(DispatchEvent.EVENT_GENERATION_HELD), reading.at)
                self._poll(self.writer, reading)
            self.end_freeze(time.monotonic())
        except AllSwitchesLost as exc:
            log.error("every switch is lost: %s", exc)

    def _drain(self, name: str, client: P4RuntimeClient) -> None:
        for arrived, digest_list in take_digests(client, DIGESTS_PER_ROUND):
            self.cluster_flows.on_digest_list(name, digest_list, arrived)
        for notification in queued(client.idle_timeouts):
            self.cluster_flows.on_idle_timeout(name, notification, time.monotonic())
            self.sessions.on_idle_timeout(notification)
        for packet in queued(client.packet_ins):
            # Signalling copies (no reactive dispatch with several switches: the configuration).
            # The session's entries go to every switch: ECMP may send its media through any.
            fields = self.tables.packet_in_fields(packet)
            if fields.get("reason") == PacketInReason.SIGNALLING:
                self.sessions.on_packet_in(fields.get("ingress_port", 0), packet.payload, fields.get("backend_id", 0))
                self.sessions.flush(self.writer)
        for error in queued(client.stream_errors):
            log.warning("switch %s reported a stream error: %s", name, error.message or error)

    def _cluster_reading(self, given: dict[str, CounterReading] | None) -> CounterReading | None:
        fresh = False
        for name, served in list(self._served.items()):
            try:
                reading = given.get(name) if given is not None else (
                    served.poller.latest() if served.poller is not None else None)
            except P4RuntimeError as exc:
                self.switch_set.lose(name, str(exc))
                continue
            if reading is not None:
                self.counters.add(name, reading)
                fresh = True
        return self.counters.reading() if fresh else None

    def _poll(self, client: P4RuntimeClient, reading: CounterReading) -> None:
        super()._poll(client, reading)
        cluster = self.cluster_status()
        with self._status_lock:
            self._status = self._status.model_copy(update={"cluster": cluster})

    def end_freeze(self, now: float) -> None:
        """Rule 6: the switches waiting to rejoin ECMP go in once every flow recorded before
        the freeze began is replicated (or its home entry is an ended flow's), T_c +
        digest_retry has passed (every live flow decided before has digested since) and no
        switch has held a ring decision for T_c; then the policies' rewrites resume."""
        if not self.freeze.waiting or self.ecmp is None:
            return
        started = min(self.freeze.waiting.values())
        if not self.freeze.may_end(now, self._unreplicated_before(started, now)):
            return
        for name in list(self.freeze.waiting):
            verb = self._ecmp_pending.pop(name, "add")
            if name in self.switch_set:
                (self._ecmp_add if verb == "add" else self._ecmp_remove)(name)
            log.info("freeze over after %.0f ms: %s %s the ECMP group", (now - started) * 1e3, name,
                     "into" if verb == "add" else "out of")
        self.freeze.waiting.clear()
        self.ring_updater.frozen = False

    def _unreplicated_before(self, started: float, now: float) -> int:
        """Flows whose home entry was written before `started` and is not on every switch yet:
        activated ones (a replica is due or failed), and unactivated ones younger than the
        freeze's horizon (older ones are ended flows')."""
        written_at = self.cluster_flows.written_at
        horizon = self.freeze.horizon_s
        count = 0
        for key, placed in self.replicas.flows.items():
            at = written_at.get(key)
            if at is None or at >= started or (not placed.activated and now - at > horizon):
                continue
            if not self.replicas.is_replicated(key):
                count += 1
        return count

    def unreplicated_slots(self, service_id: int, now: float | None = None) -> set[int]:
        """Rule 5: the ring slots of a service that decided a recorded flow not yet on every
        switch in service; a rewrite leaves them alone until it is (a switch the flow moves to
        then decides it at the same slot, with the same backend). A home entry written more
        than `T_c + digest_retry` ago and still not activated is an ended flow's (a live flow's
        next packet comes within T_c and activates it; its ACTIVATED digest within a retry
        period): its slot is free again, or every short flow would pin its slot until idle
        deletion. Capture services' keys are sorted endpoints, not left out here."""
        service = self.pool.services[service_id]
        if service.mode != "vip" or service.vip is None:
            return set()
        now = time.monotonic() if now is None else now
        timers = self.config.timers
        horizon = (timers.cache_timeout_ms + timers.digest_retry_ms) / 1000
        written_at = self.cluster_flows.written_at
        match = (flow_address(service.vip), service.protocol_number, service.port)
        by_client = service.affinity == "client"
        slots = set()
        for key in self.replicas.flows:
            flow = unpack_key(key)
            if (flow[1], flow[2], flow[4]) != match or self.replicas.is_replicated(key):
                continue
            if now - written_at.get(key, now) > horizon:
                continue
            slots.add(ring_slot(flow, service.ring_size, by_client))
        return slots

    # ---- losing a switch ---------------------------------------------------------------------

    def _on_lost(self, name: str, reason: str) -> None:
        """The SwitchSet dropped a member (stream closed, write failed): out of service; its
        supervisor reconnects once the session is closed here. Out of the ECMP group first
        (rule 7): its share of traffic moves to the others at once."""
        self._ecmp_remove(name)
        self.freeze.waiting.pop(name, None)
        self._ecmp_pending.pop(name, None)
        if not self.freeze.waiting:
            self.ring_updater.frozen = False
        self._release(name)
        self.cluster_flows.switch_lost(name)
        log.error("switch %s out of service (%s); %d switches serve", name, reason, len(self._served))

    def _release(self, name: str, wait: bool = False) -> None:
        """Stop the switch's poller, then close its session (its supervisor then reconnects).
        Not in the serving loop unless `wait`: a read under way on a hung switch holds the
        poller until its deadline, and the channel must not close under that read."""
        served = self._served.pop(name, None)
        if served is None:
            return
        if wait:
            _close(served)
        else:
            threading.Thread(target=_close, args=(served,), name=f"release-{name}", daemon=True).start()

    # ---- status ----------------------------------------------------------------------------------

    def cluster_status(self) -> ClusterStatus:
        counts = self.cluster_flows.counts
        replicated = sum(1 for key in self.replicas.flows if self.replicas.is_replicated(key))
        return ClusterStatus(in_service=list(self.switch_set.names), lost=dict(self.switch_set.lost),
                             joins=self.joins, activations=counts.activations,
                             replicas_written=counts.replicas_written, restored_replicas=counts.restored_replicas,
                             own_entries=counts.own_entries, cross_switch_splits=self.cluster_flows.cross_switch_splits,
                             replicated_flows=replicated, recorded_flows=len(self.replicas.flows),
                             waiting_for_ecmp=sorted(self.freeze.waiting), freezes=self.freeze.freezes,
                             adopted_switches=self.adopted_switches, adopted_flows=counts.adopted_flows,
                             unconfirmed_flows=self.cluster_flows.unconfirmed,
                             confirmed_activations=counts.confirmed_activations,
                             deletes_spared=counts.deletes_spared, reused_keys=counts.reused_keys,
                             held_out=sorted(self.held_out),
                             leaving_ecmp=sorted(n for n, v in self._ecmp_pending.items() if v == "remove"),
                             ecmp_command_failures=self.ecmp.failures if isinstance(self.ecmp, CommandEcmpGroup) else 0)

    def _empty_status(self) -> ControllerStatus:
        switches = self.config.switches
        return ControllerStatus(role=self.role, switch=", ".join(s.grpc_address for s in switches),
                                election_id=switches[0].election_id)


class Freeze:
    """Rule 6's conditions for putting switches (back) into the ECMP group."""

    def __init__(self, cache_timeout_s: float, digest_retry_s: float) -> None:
        self.cache_timeout_s = cache_timeout_s
        self.horizon_s = cache_timeout_s + digest_retry_s     # T_c + digest_retry
        self.waiting: dict[str, float] = {}                   # switch -> when its freeze began
        self._held: float | None = None                       # the held-decision count summed
        self._held_changed = float("-inf")
        self.freezes = 0

    def begin(self, switch: str, now: float) -> None:
        self.waiting[switch] = now
        self.freezes += 1

    def held_decisions(self, value: CounterValue | None, at: float) -> None:
        packets = float(value.packets) if value is not None else 0.0
        if self._held is not None and packets != self._held:
            self._held_changed = at
        self._held = packets

    def may_end(self, now: float, unreplicated_before: int) -> bool:
        started = min(self.waiting.values())
        return (now - started >= self.horizon_s and unreplicated_before == 0
                and now - self._held_changed >= self.cache_timeout_s)


def _close(served: _Served) -> None:
    if served.poller is not None:
        served.poller.__exit__(None, None, None)
    served.client.close()
    served.released.set()


def switch_name(name: str | None, grpc_address: str, device_id: int) -> str:
    """How logs and the status name a switch: its configured name, else its address."""
    if name:
        return name
    return grpc_address if device_id == 0 else f"{grpc_address}/{device_id}"
