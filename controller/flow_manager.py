"""Flow lifecycle: digests become `flows` entries, idle entries are deleted, nothing is re-decided.

The switch has already chosen each flow's backend (ring and cache) before the controller
hears of it; the manager writes exactly that choice into the `flows` table, in batches.
Duplicates are normal (the data plane repeats a digest until the entry appears, BMv2
repeats idle-timeout notifications until the entry is gone) and are dropped here.

A full table is not an error for the flow: it stays on its cache slot and the ring. The
manager counts it, keeps the flow in an overflow set (refreshed by the repeated digests,
forgotten once they stop) and tries again once entries have been deleted or a back-off passed.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

from finsy.proto import p4r, rpc_code

from controller.dataplane.constants import REACTIVE_BACKEND_ID
from controller.dataplane.dispatcher_tables import DispatcherTables, InstalledFlow
from controller.dataplane.flow_digest import FlowDigest, MalformedDigest, decode_digest_list
from controller.flow_table import SHARED_STATS_SLOT, FlowTable, pack_key, unpack_key
from controller.histogram import INSTALL_LATENCY_BUCKETS_S, CumulativeHistogram
from controller.p4runtime.client import P4RuntimeError, WriteError

log = logging.getLogger(__name__)

OVERFLOW_RETRY_S = 1.0          # with a full table, try again at most this often ...
OVERFLOW_LIMIT = 200_000        # ... for at most this many waiting flows
DELETE_SLICE = 250              # deletes per write: short, so new flows never wait long
EXPIRED_SLICE = 2000            # expired entries read per flush


class PendingWrite(Protocol):
    done_at: float | None

    def result(self) -> None: ...


class Writer(Protocol):
    """What the manager needs of a switch: P4RuntimeClient, or a stand-in in tests."""

    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None: ...

    def write_async(self, updates: Sequence[p4r.Update]) -> PendingWrite: ...


@dataclass
class FlowStats:
    """What happened to digests and entries since start (exported as metrics)."""
    digests: int = 0
    duplicate_digests: int = 0
    malformed_digests: int = 0
    unknown_backend: int = 0
    reactive_digests: int = 0
    inserted: int = 0
    deleted: int = 0
    already_installed: int = 0
    table_full: int = 0
    write_failures: int = 0
    idle_notifications: int = 0
    adopted: int = 0
    stale_entries: int = 0          # digests saying the switch found a key's entry stale
    write_seconds: float = 0.0      # flows writes: sent -> answered, summed
    write_batches: int = 0


@dataclass
class _Pending:
    digest: FlowDigest
    received: float     # monotonic time the digest list arrived


@dataclass
class _InFlight:
    kind: str                   # "insert" or "delete"
    keys: list[bytes]
    pending: list[_Pending]     # inserts: the digests
    slots: list[int]            # inserts: the stats slots they were given
    write: PendingWrite
    sent: float


@dataclass
class InstallEvent:
    """Told to listeners (load estimation) when an entry is in the switch."""
    key: bytes
    backend_id: int
    slot: int
    digest: FlowDigest | None   # None for adopted or restored entries


class FlowManager:
    def __init__(self, tables: DispatcherTables, writer: Writer, *,
                 known_backend: Callable[[int], bool], idle_timeout_ns: int, stats_slots: int,
                 table_size: int, batch_size: int = 1000, latency_samples: int = 100_000) -> None:
        self.tables = tables
        self.writer = writer
        self.known_backend = known_backend
        self.idle_timeout_ns = idle_timeout_ns
        self.batch_size = batch_size
        self.table_size = table_size
        self.table = FlowTable(stats_slots)
        self.stats = FlowStats()
        self.on_installed: list[Callable[[InstallEvent], None]] = []
        self.on_removed: list[Callable[[bytes, int, int], None]] = []   # key, backend, slot
        # Digest arrival -> entry written, seconds (newest last).
        self.install_latency: deque[float] = deque(maxlen=latency_samples)
        # The same latencies, every one since start, in buckets (Prometheus' histogram).
        self.install_histogram = CumulativeHistogram(INSTALL_LATENCY_BUCKETS_S)
        self._inserts: dict[bytes, _Pending] = {}
        # Each entry written gets an id no other write used (docs/consistency.md).
        self.next_entry_id = 1
        self._deletes: set[bytes] = set()
        self._overflow: dict[bytes, _Pending] = {}
        self._table_full_at: float | None = None
        self._deleted_since_full = 0
        self._in_flight: _InFlight | None = None
        self._in_flight_keys: set[bytes] = set()
        self._last_kind = "delete"
        self._expired: deque = deque()      # idle-timeout notifications' entries, not yet read

    # ---- input --------------------------------------------------------------------------

    def on_digest_list(self, digest_list: p4r.DigestList, received: float | None = None) -> None:
        received = time.monotonic() if received is None else received
        try:
            digests = decode_digest_list(digest_list)
        except MalformedDigest as exc:
            self.stats.malformed_digests += 1
            log.warning("malformed digest ignored: %s", exc)
            return
        for digest in digests:
            self.on_digest(digest, received)

    def on_digest(self, digest: FlowDigest, received: float) -> None:
        self.stats.digests += 1
        if digest.backend_id == REACTIVE_BACKEND_ID:
            self.stats.reactive_digests += 1   # the reactive path installs these itself
            return
        if not self.known_backend(digest.backend_id):
            self.stats.unknown_backend += 1
            if self.stats.unknown_backend <= 10 or self.stats.unknown_backend % 1000 == 0:
                log.warning("digest names backend %d, which is not configured (%d so far); "
                            "flow %s:%d -> %s:%d left on the ring", digest.backend_id,
                            self.stats.unknown_backend, digest.src_ip, digest.src_port,
                            digest.dst_ip, digest.dst_port)
            return
        key = pack_key(digest.key)
        if digest.is_stale_entry:
            # The key's entry came from an earlier flow with this key, and the switch does not
            # use it: the current flow runs on its cache way or ring entry for its whole life.
            # Rewriting the entry could race with yet another flow of the key that activated
            # it, so it is left alone (docs/consistency.md) and only counted.
            self.stats.stale_entries += 1
            return
        if key in self.table or key in self._inserts or key in self._in_flight_keys:
            self.stats.duplicate_digests += 1
            return
        if key in self._overflow or self._table_still_full():
            if key in self._overflow:
                self.stats.duplicate_digests += 1
            if len(self._overflow) < OVERFLOW_LIMIT or key in self._overflow:
                self._overflow[key] = _Pending(digest, received)
            return
        self._inserts[key] = _Pending(digest, received)

    def on_idle_timeout(self, notification: p4r.IdleTimeoutNotification) -> None:
        """Queue the expired entries; `flush` reads them a slice at a time: BMv2 sends
        thousands in one notification, and reading them at once holds new flows up."""
        self.stats.idle_notifications += 1
        self._expired.append(iter(notification.table_entry))

    def _take_expired(self, limit: int) -> None:
        """Read up to `limit` expired entries into the delete set."""
        while self._expired and limit > 0:
            for entry in islice(self._expired[0], limit):
                limit -= 1
                if not self.tables.is_flow(entry):
                    continue     # another table's (announced_flows: the session control's)
                key = self.tables.packed_flow_key_of(entry)
                if key in self.table:
                    self._deletes.add(key)
            if limit > 0:   # that notification ran out before the slice did
                self._expired.popleft()

    def backend_of(self, key: tuple[int, int, int, int, int]) -> int | None:
        """The backend the switch chose for a flow: its entry's, or its digest's while the
        entry is being written (None: no digest of it has come)."""
        packed = pack_key(key)
        installed = self.table.get(packed)
        if installed is not None:
            return installed[0]
        for waiting in (self._inserts, self._overflow):
            if packed in waiting:
                return waiting[packed].digest.backend_id
        flight = self._in_flight
        if flight is not None and flight.kind == "insert" and packed in self._in_flight_keys:
            return flight.pending[flight.keys.index(packed)].digest.backend_id
        return None

    def remove_backend_flows(self, backend_id: int) -> int:
        """Delete every entry of a removed backend (its flows have nowhere left to go)."""
        keys = self.table.keys_of_backend(backend_id)
        self._deletes.update(keys)
        for waiting in (self._inserts, self._overflow):
            for key in [k for k, p in waiting.items() if p.digest.backend_id == backend_id]:
                del waiting[key]
        return len(keys)

    @property
    def pending(self) -> int:
        return len(self._inserts) + len(self._deletes)

    @property
    def overflow(self) -> int:
        return len(self._overflow)

    # ---- output -------------------------------------------------------------------------

    def flush(self, now: float | None = None) -> None:
        """Collect the write in flight, then send the next batch without waiting for it.

        One write is in flight at a time, so the switch applies a batch while this thread
        decodes the next digests. New flows usually go first: a late delete only holds a
        table slot a little longer, a late insert leaves a flow on its cache slot. When both
        wait, inserts and delete slices alternate, so neither starves; with a full table,
        deletes go first to make room.
        """
        now = time.monotonic() if now is None else now
        self._complete()
        self._take_expired(EXPIRED_SLICE)
        self._expire_overflow(now)
        if self._overflow and (self._deleted_since_full or self._table_full_at is None
                               or now - self._table_full_at >= OVERFLOW_RETRY_S):
            room = self._deleted_since_full if self._table_full_at is not None else len(self._overflow)
            for key in list(self._overflow)[:max(room, 1)]:
                self._inserts[key] = self._overflow.pop(key)
            self._table_full_at = None
        deletes_turn = self._deletes and (self._overflow or not self._inserts
                                          or self._last_kind == "insert")
        if deletes_turn:
            self._send_deletes()
        elif self._inserts:
            self._send_inserts()

    def settle(self) -> None:
        """Write everything pending and wait for the answers."""
        while self._inserts or self._deletes or self._expired or self._in_flight is not None:
            self.flush()

    def _send_deletes(self) -> None:
        keys = [self._deletes.pop() for _ in range(min(len(self._deletes), DELETE_SLICE))]
        updates = [self.tables.flow_delete(unpack_key(k)) for k in keys]
        self._submit(_InFlight("delete", keys, [], [], self.writer.write_async(updates), time.monotonic()))

    def _send_inserts(self) -> None:
        oldest = list(islice(self._inserts, self.batch_size))
        items = [(key, self._inserts.pop(key)) for key in oldest]
        slots = [self.table.allocate_slot() for _ in items]
        # Every entry needs a statistics slot of its own: the switch keeps the entry's
        # activation there (docs/consistency.md). None left: as good as a full table.
        if SHARED_STATS_SLOT in slots:
            waiting = [(k, p) for (k, p), slot in zip(items, slots) if slot == SHARED_STATS_SLOT]
            items = [(k, p) for (k, p), slot in zip(items, slots) if slot != SHARED_STATS_SLOT]
            slots = [slot for slot in slots if slot != SHARED_STATS_SLOT]
            self._no_stats_slot(waiting)
            if not items:
                return
        updates = [self.tables.flow(p.digest.key, p.digest.backend_id, slot, self.idle_timeout_ns,
                                    entry_id=self._take_entry_id())
                   for (_, p), slot in zip(items, slots)]
        keys = [k for k, _ in items]
        self._submit(_InFlight("insert", keys, [p for _, p in items], slots,
                               self.writer.write_async(updates), time.monotonic()))

    def _no_stats_slot(self, waiting: list[tuple[bytes, _Pending]]) -> None:
        for key, pending in waiting:
            self._overflow[key] = pending
        self.stats.table_full += len(waiting)
        self._table_full_at = time.monotonic()
        self._deleted_since_full = 0

    def _take_entry_id(self) -> int:
        entry_id = self.next_entry_id
        self.next_entry_id += 1
        return entry_id

    def _submit(self, flight: _InFlight) -> None:
        self._in_flight = flight
        self._in_flight_keys = set(flight.keys) if flight.kind == "insert" else set()
        self._last_kind = flight.kind

    def _complete(self) -> None:
        flight = self._in_flight
        if flight is None:
            return
        self._in_flight = None
        self._in_flight_keys = set()
        try:
            failures = self._outcome(flight)
        except P4RuntimeError:
            self._abandon(flight)
            raise
        done = flight.write.done_at or time.monotonic()
        self.stats.write_seconds += done - flight.sent
        self.stats.write_batches += 1
        if flight.kind == "delete":
            self._deleted(flight.keys, failures)
        else:
            self._inserted(flight, failures, done)

    def abandon_in_flight(self) -> None:
        """The session ended with a write unanswered (the switch or channel went away)."""
        if self._in_flight is not None:
            self._abandon(self._in_flight)
            self._in_flight = None
            self._in_flight_keys = set()

    def _abandon(self, flight: _InFlight) -> None:
        # Forget the inserts (their flows digest again from the cache); keep the deletes
        # for the next session.
        for slot in flight.slots:
            self.table.release_slot(slot)
        if flight.kind == "delete":
            self._deletes.update(flight.keys)

    def _deleted(self, keys: list[bytes], failures: dict[int, int]) -> None:
        for i, key in enumerate(keys):
            if failures.get(i, rpc_code.NOT_FOUND) != rpc_code.NOT_FOUND:
                continue   # the entry stays; a later notification asks again
            removed = self.table.remove(key)
            if removed is not None:
                self.stats.deleted += 1
                self._deleted_since_full += 1
                for listener in self.on_removed:
                    listener(key, *removed)

    def _inserted(self, flight: _InFlight, failures: dict[int, int], done: float) -> None:
        full = 0
        latencies: list[float] = []
        for i, (key, pending, slot) in enumerate(zip(flight.keys, flight.pending, flight.slots)):
            code = failures.get(i)
            if self._is_table_full(code):
                self.table.release_slot(slot)
                self._overflow[key] = pending
                full += 1
                continue
            if code == rpc_code.ALREADY_EXISTS:
                self.stats.already_installed += 1
            elif code is not None:
                self.table.release_slot(slot)
                self.stats.write_failures += 1
                log.error("flows insert refused: %s", rpc_code.Code.Name(code))
                continue
            else:
                self.stats.inserted += 1
                latencies.append(done - pending.received)
            self.table.add(key, pending.digest.backend_id, slot)
            event = InstallEvent(key, pending.digest.backend_id, slot, pending.digest)
            for listener in self.on_installed:
                listener(event)
        self.install_latency.extend(latencies)
        self.install_histogram.observe_many(latencies)
        if full:
            if self._table_full_at is None:
                log.warning("`flows` table full (%d entries): %d flows stay on cache and ring, "
                            "retried when entries are deleted", len(self.table), full)
            self.stats.table_full += full
            self._table_full_at = time.monotonic()
            self._deleted_since_full = 0

    @staticmethod
    def _outcome(flight: _InFlight) -> dict[int, int]:
        """{index: code} of the updates that failed; raises P4RuntimeError if the switch is gone."""
        try:
            flight.write.result()
            return {}
        except WriteError as exc:
            return {f.index: f.code for f in exc.failures}

    def _is_table_full(self, code: int | None) -> bool:
        # P4Runtime says RESOURCE_EXHAUSTED; BMv2's PI answers UNKNOWN ("Error when adding
        # match entry to target"), so a refusal with the table at its size counts as full.
        return code == rpc_code.RESOURCE_EXHAUSTED or (
            code == rpc_code.UNKNOWN and len(self.table) >= self.table_size)

    def _table_still_full(self) -> bool:
        return self._table_full_at is not None and not self._deleted_since_full

    def _expire_overflow(self, now: float) -> None:
        """A waiting flow whose digests stopped has ended: forget it."""
        horizon = max(self.idle_timeout_ns / 1e9, 2 * OVERFLOW_RETRY_S)
        stale = [k for k, p in self._overflow.items() if now - p.received > horizon]
        for key in stale:
            del self._overflow[key]

    def install_now(self, key: tuple[int, int, int, int, int], backend_id: int) -> bool:
        """Reactive mode: one entry written at once (the packet waits for it). Entry id 0:
        trusted, since no packet of the flow has been forwarded yet."""
        self._complete()
        packed = pack_key(key)
        slot = self.table.allocate_slot()
        try:
            self.writer.write([self.tables.flow(key, backend_id, slot, self.idle_timeout_ns)])
        except WriteError as exc:
            self.table.release_slot(slot)
            self.stats.write_failures += 1
            log.error("reactive insert refused: %s", exc)
            return False
        self.stats.inserted += 1
        self.table.add(packed, backend_id, slot)
        for listener in self.on_installed:
            listener(InstallEvent(packed, backend_id, slot, None))
        return True

    # ---- start-up and recovery ----------------------------------------------------------

    def adopt(self, installed: Iterable[InstalledFlow]) -> int:
        """Take over what the switch already has (no writes, no remaps)."""
        count = 0
        for flow in installed:
            key = pack_key(flow.key)
            slot = self.table.adopt(key, flow.backend_id, flow.stats_slot)
            self.next_entry_id = max(self.next_entry_id, flow.entry_id + 1)
            count += 1
            for listener in self.on_installed:
                listener(InstallEvent(key, flow.backend_id, slot, None))
        self.table.rebuild_free_slots()
        self.stats.adopted += count
        return count

    def restore_updates(self) -> list[p4r.Update]:
        """Every tracked entry as an insert: for a switch that restarted and lost them.
        Entry id 0: the switch trusts them at once (it has no flow state left to check
        them against)."""
        return [self.tables.flow(unpack_key(key), backend_id, slot, self.idle_timeout_ns)
                for key, backend_id, slot in self.table.items()]


__all__ = ["FlowManager", "FlowStats", "InstallEvent", "Writer"]
