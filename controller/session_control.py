"""Session affinity (issue 13): the flows a session's signalling announces go to the backend
of its signalling flow, from their first packet.

    signalling packet-in -> the service's SessionTracker -> Announcement
        -> the signalling flow's backend (its `flows` entry, or its digest while that is written)
        -> `announced_flows` entries (controller/sessions/announced.py), written at once
    a new flow's first packet matches one -> the switch sends it to that backend and caches it;
        its digest (flag ANNOUNCED) makes its exact `flows` entry as for any flow
    SessionEnd (BYE, TEARDOWN, control close) -> the session's entries deleted
    an entry idle for the announcement's start time -> idle-timeout notification -> deleted

Flows that started keep their exact entries when their session's announced entries go:
those only ever decide a flow's first packet (docs/sessions.md explains why that cannot
move a flow). Runs in the serving loop's thread, like everything that writes the switch.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from finsy.proto import p4r

from controller.config import Config, Service
from controller.dataplane.dispatcher_tables import DispatcherTables
from controller.flow_manager import FlowManager, InstallEvent
from controller.flow_table import unpack_key
from controller.p4runtime import P4RuntimeClient
from controller.p4runtime.client import WriteError
from controller.p4runtime.encoding import flow_address
from controller.sessions.announced import AnnouncedEntry, entries_for
from controller.sessions.capture import Packet, decode
from controller.sessions.model import Announcement, FiveTuple, ParseStats, SessionEnd, flow_ends
from controller.sessions.table import SessionTable
from controller.sessions.tracker import SessionTracker

log = logging.getLogger("controller.sessions")

BACKEND_WAIT_S = 2.0          # an announcement waits this long for its signalling flow's digest
MAX_WAITING = 1024            # announcements waiting at once (beyond: counted as no_backend)
MAX_SIGNALLING_FLOWS = 4096   # signalling flows whose backend is remembered (the tracker's bound)
TRACKER_IDLE_S = 600.0        # a signalling flow silent this long is forgotten (its sessions end)
TRACKER_SWEEP_S = 10.0


@dataclass
class _Waiting:
    announcement: Announcement
    until: float
    max_ttl_s: float


@dataclass
class SignallingCounts:
    packets: int = 0            # signalling packet-ins read
    not_inspected: int = 0      # cloned, but of no service that reads that port (or undecodable)


class _ServiceSessions:
    """One service's signalling: which packets are its, and their tracker."""

    def __init__(self, service: Service) -> None:
        assert service.sessions is not None
        self.service = service
        self.tracker = SessionTracker(service.sessions.ports())
        self.max_ttl_s = service.sessions.start_within_max_s
        self.vip = flow_address(service.vip) if service.vip else None

    def owns(self, ingress_port: int, packet: Packet) -> bool:
        if self.tracker.protocol_of(packet.protocol, packet.sport, packet.dport) is None:
            return False
        if self.service.mode == "capture":
            return ingress_port in self.service.tap_ports
        return self.vip in (flow_address(packet.src), flow_address(packet.dst))


class SessionControl:
    def __init__(self, config: Config, tables: DispatcherTables, flows: FlowManager, capacity: int) -> None:
        self.tables = tables
        self.flows = flows
        self.services = [_ServiceSessions(s) for s in config.services if s.sessions is not None]
        self.table = SessionTable(capacity)
        self.signalling = SignallingCounts()
        self._waiting: deque[_Waiting] = deque()
        self._writes: list[p4r.Update] = []
        self._write_entries: list[AnnouncedEntry | None] = []   # per update: the entry (None: a delete)
        self._write_since: list[float] = []     # per update: when its announcement was read
        # Seconds from reading an announcement to its entries being on the switch (latest 2,000).
        self.entry_latency: deque[float] = deque(maxlen=2000)
        self._deletes: list[AnnouncedEntry] = []
        self._next_sweep = 0.0
        # Signalling flow (its two ends) -> the backend its packet-ins said, newest last.
        self._signalling_backends: OrderedDict[tuple, int] = OrderedDict()
        flows.on_installed.append(self._installed)

    @property
    def enabled(self) -> bool:
        return bool(self.services)

    # ---- input (serving loop) -------------------------------------------------------------

    def on_packet_in(self, ingress_port: int, frame: bytes, backend_id: int = 0, now: float | None = None) -> None:
        """A signalling clone: parse it; what it announces or ends is written at `flush`.
        `backend_id`: where the switch sent the packet (the packet-in header says), so the
        flow's backend is known before its digest comes (0: not dispatched)."""
        now = time.monotonic() if now is None else now
        self.signalling.packets += 1
        packet = decode(frame)
        owner = None if packet is None else next((s for s in self.services if s.owns(ingress_port, packet)), None)
        if packet is None or owner is None:
            self.signalling.not_inspected += 1
            return
        if backend_id:
            ends = flow_ends((packet.src, packet.dst, packet.protocol, packet.sport, packet.dport))
            self._signalling_backends[ends] = backend_id
            self._signalling_backends.move_to_end(ends)
            if len(self._signalling_backends) > MAX_SIGNALLING_FLOWS:
                self._signalling_backends.popitem(last=False)
        for event in owner.tracker.feed(now, packet.src, packet.dst, packet.protocol, packet.sport, packet.dport,
                                        packet.payload, packet.seq, packet.flags):
            if isinstance(event, Announcement) and event.port_count == 0 and owner.service.mode == "capture":
                continue    # a tap sees the replies that name the ports (227/229): those are announced
            self._event(event, now, owner.max_ttl_s)

    def on_idle_timeout(self, notification: p4r.IdleTimeoutNotification) -> None:
        for entry in notification.table_entry:
            if not self.tables.is_announced_flow(entry):
                continue
            gone = self.table.expired(self.tables.announced_match_of(entry))
            if gone is not None:
                self._deletes.append(gone)

    def _installed(self, event: InstallEvent) -> None:
        if event.digest is None:
            return
        if event.digest.is_announced:
            self.table.hit(unpack_key(event.key))
        else:
            self.table.installed(unpack_key(event.key))

    def _event(self, event: Announcement | SessionEnd, now: float, max_ttl_s: float) -> None:
        if isinstance(event, SessionEnd):
            self._deletes += self.table.end(event)
            self._waiting = deque(w for w in self._waiting if not _ends(event, w.announcement))
            return
        if not self._place(event, now, max_ttl_s):
            if len(self._waiting) < MAX_WAITING:
                self._waiting.append(_Waiting(event, now + BACKEND_WAIT_S, max_ttl_s))
            else:
                self.table.counts.no_backend += 1

    def _place(self, announcement: Announcement, now: float, max_ttl_s: float) -> bool:
        """Entries for the announcement with its signalling flow's backend; False: not known yet."""
        backend = self._backend_of(announcement.signalling)
        if backend is None:
            return False
        placed = self.table.announce(entries_for(announcement, backend, max_ttl_s), now)
        for entry in placed.write:
            self._writes.append(self.tables.announced_flow(entry))
            self._write_entries.append(entry)
            self._write_since.append(announcement.time)
        for entry in placed.withdraw:
            self._withdraw(entry)
        return True

    def _withdraw(self, entry: AnnouncedEntry) -> None:
        """Delete a written entry; one still waiting to be written is just not written (a batch's
        updates may be applied in any order, so its insert and delete must not meet there)."""
        pending = next((i for i, e in enumerate(self._write_entries) if e is entry), None)
        if pending is None:
            self._deletes.append(entry)
            return
        del self._writes[pending], self._write_entries[pending], self._write_since[pending]

    def _backend_of(self, signalling: FiveTuple) -> int | None:
        src, dst, protocol, sport, dport = signalling
        known = self._signalling_backends.get(flow_ends(signalling))
        if known is not None:
            return known
        forward = (flow_address(src), flow_address(dst), protocol, sport, dport)
        backend = self.flows.backend_of(forward)
        if backend is None:   # a capture service's key is sorted; the other orientation
            backend = self.flows.backend_of((forward[1], forward[0], protocol, dport, sport))
        return backend

    # ---- output (serving loop) --------------------------------------------------------------

    def flush(self, client: P4RuntimeClient, now: float | None = None) -> None:
        """Place waiting announcements, then write what changed."""
        now = time.monotonic() if now is None else now
        if not (self._waiting or self._deletes or self._writes or now >= self._next_sweep):
            return
        for _ in range(len(self._waiting)):
            waiting = self._waiting.popleft()
            if not self._place(waiting.announcement, now, waiting.max_ttl_s):
                if now < waiting.until:
                    self._waiting.append(waiting)
                else:
                    self.table.counts.no_backend += 1

        if now >= self._next_sweep:
            self._next_sweep = now + TRACKER_SWEEP_S
            for service in self.services:
                for end in service.tracker.expire(now, TRACKER_IDLE_S):
                    self._deletes += self.table.end(end)
        for entry in self._deletes:
            self._writes.append(self.tables.announced_delete(entry.match))
            self._write_entries.append(None)
            self._write_since.append(now)
        self._deletes = []
        if self._writes:
            self._write(client)

    def _write(self, client: P4RuntimeClient) -> None:
        updates, entries, since = self._writes, self._write_entries, self._write_since
        self._writes, self._write_entries, self._write_since = [], [], []
        failed: dict[int, int] = {}
        try:
            client.write(updates)
        except WriteError as exc:
            failed = {f.index: f.code for f in exc.failures}
        done = time.monotonic()
        for i, entry in enumerate(entries):
            if entry is None:
                continue    # a delete that failed: the entry was gone already (NOT_FOUND)
            if i not in failed:
                self.entry_latency.append(done - since[i])
            if i in failed:
                self.table.refused(entry)
                self.table.counts.table_full += 1
                log.warning("announced_flows refused an entry for %s:%d (code %d)", *entry.endpoint, failed[i])
        self.table.written(sum(1 for i, e in enumerate(entries) if e is not None and i not in failed))

    # ---- take-over ------------------------------------------------------------------------

    def adopt(self, client: P4RuntimeClient) -> None:
        """A running switch: its announced entries are the session table."""
        entries, unreadable = self.tables.read_announced(client)
        self.table.adopt(entries, time.monotonic())
        if unreadable:
            self.table.counts.unreadable += len(unreadable)
            client.write([self.tables.announced_delete(m) for m in unreadable])
        if entries or unreadable:
            log.info("adopted %d announced_flows entries (%d sessions); deleted %d unreadable",
                     len(entries), len(self.table.sessions), len(unreadable))

    def restore(self, client: P4RuntimeClient) -> None:
        """A switch that lost its entries (restart): write the session table back."""
        entries = list(self.table)
        if entries:
            client.write([self.tables.announced_flow(e) for e in entries])
            log.info("restored %d announced_flows entries", len(entries))

    # ---- status ------------------------------------------------------------------------------

    def parse_stats(self) -> ParseStats:
        total = ParseStats()
        for service in self.services:
            total.errors.update(service.tracker.stats.errors)
            total.notes.update(service.tracker.stats.notes)
        return total

    @property
    def waiting(self) -> int:
        return len(self._waiting)


def _ends(end: SessionEnd, announcement: Announcement) -> bool:
    return (announcement.protocol == end.protocol and flow_ends(announcement.signalling) == flow_ends(end.signalling)
            and (not end.session or announcement.session in (end.session, "")))

