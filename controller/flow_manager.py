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
from dataclasses import dataclass, field
from typing import Callable, Iterable, Protocol, Sequence

from finsy.proto import p4r, rpc_code

from controller.dataplane.dispatcher_tables import DispatcherTables, InstalledFlow
from controller.dataplane.flow_digest import FlowDigest, MalformedDigest, decode_digest_list
from controller.flow_table import FlowTable, pack_key, unpack_key
from controller.p4runtime.client import WriteError

log = logging.getLogger(__name__)

REACTIVE_BACKEND_ID = 1023      # the punt_to_controller pseudo-backend of reactive services
OVERFLOW_RETRY_S = 1.0          # with a full table, try again at most this often ...
OVERFLOW_LIMIT = 200_000        # ... for at most this many waiting flows
DELETE_SLICE = 2000             # deletes per flush, after the inserts


class Writer(Protocol):
    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None: ...


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


@dataclass
class _Pending:
    digest: FlowDigest
    received: float     # monotonic time the digest list arrived


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
        self._inserts: dict[bytes, _Pending] = {}
        self._deletes: set[bytes] = set()
        self._overflow: dict[bytes, _Pending] = {}
        self._table_full_at: float | None = None
        self._deleted_since_full = 0

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
        if key in self.table or key in self._inserts:
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
        self.stats.idle_notifications += 1
        for entry in notification.table_entry:
            key = pack_key(self.tables.flow_key_of(entry))
            if key in self.table:
                self._deletes.add(key)

    def remove_backend_flows(self, backend_id: int) -> int:
        """Delete every entry of a removed backend (its flows have nowhere left to go)."""
        keys = self.table.keys_of_backend(backend_id)
        self._deletes.update(keys)
        for key in [k for k, p in self._inserts.items() if p.digest.backend_id == backend_id]:
            del self._inserts[key]
        return len(keys)

    @property
    def pending(self) -> int:
        return len(self._inserts) + len(self._deletes)

    @property
    def overflow(self) -> int:
        return len(self._overflow)

    # ---- output -------------------------------------------------------------------------

    def flush(self, now: float | None = None) -> None:
        """Write pending inserts, then some deletes; retry overflow flows when there may be room.

        New flows go first: a late delete only holds a table slot a little longer, a late
        insert leaves a flow on its cache slot. Deletes go in bounded slices so a burst of
        expiries never holds new flows back; with a full table they go first, to make room.
        """
        now = time.monotonic() if now is None else now
        if self._deletes and self._overflow:
            self._write_deletes()
        self._expire_overflow(now)
        if self._overflow and (self._deleted_since_full or self._table_full_at is None
                               or now - self._table_full_at >= OVERFLOW_RETRY_S):
            room = self._deleted_since_full if self._table_full_at is not None else len(self._overflow)
            for key in list(self._overflow)[:max(room, 1)]:
                self._inserts[key] = self._overflow.pop(key)
            self._table_full_at = None
        if self._inserts:
            self._write_inserts(now)
        if self._deletes:
            self._write_deletes()

    def _write_deletes(self) -> None:
        keys = [self._deletes.pop() for _ in range(min(len(self._deletes), DELETE_SLICE))]
        updates = [self.tables.flow_delete(unpack_key(k)) for k in keys]
        failed = self._write(updates, tolerate=(rpc_code.NOT_FOUND,))
        for i, key in enumerate(keys):
            if i in failed:
                continue   # the entry stays; a later notification asks again
            removed = self.table.remove(key)
            if removed is not None:
                self.stats.deleted += 1
                self._deleted_since_full += 1
                for listener in self.on_removed:
                    listener(key, *removed)

    def _write_inserts(self, now: float) -> None:
        items = list(self._inserts.items())
        self._inserts.clear()
        slots = [self.table.allocate_slot() for _ in items]
        updates = [self.tables.flow(p.digest.key, p.digest.backend_id, slot, self.idle_timeout_ns)
                   for (_, p), slot in zip(items, slots)]
        failures = self._write(updates, tolerate=())
        done = time.monotonic()
        full = 0
        for i, ((key, pending), slot) in enumerate(zip(items, slots)):
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
                if code == rpc_code.UNKNOWN:
                    log.error("flows insert refused (UNKNOWN) with the table below its size")
                continue
            else:
                self.stats.inserted += 1
                self.install_latency.append(done - pending.received)
            self.table.add(key, pending.digest.backend_id, slot)
            event = InstallEvent(key, pending.digest.backend_id, slot, pending.digest)
            for listener in self.on_installed:
                listener(event)
        if full:
            if self._table_full_at is None:
                log.warning("`flows` table full (%d entries): %d flows stay on cache and ring, "
                            "retried when entries are deleted", len(self.table), full)
            self.stats.table_full += full
            self._table_full_at = now
            self._deleted_since_full = 0

    def _write(self, updates: list[p4r.Update], tolerate: tuple[int, ...]) -> dict[int, int]:
        """Send; returns {index: code} of failed updates (tolerated codes count as done)."""
        try:
            self.writer.write(updates, batch_size=self.batch_size)
            return {}
        except WriteError as exc:
            failed = {}
            for failure in exc.failures:
                if failure.code in tolerate:
                    continue
                failed[failure.index] = failure.code
                if failure.code not in (rpc_code.RESOURCE_EXHAUSTED, rpc_code.ALREADY_EXISTS,
                                        rpc_code.UNKNOWN):
                    log.error("flows write failed: update %d: %s %s", failure.index,
                              rpc_code.Code.Name(failure.code), failure.message)
            return failed

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
        """Reactive mode: one entry written at once (the packet waits for it)."""
        packed = pack_key(key)
        slot = self.table.allocate_slot()
        if self._write([self.tables.flow(key, backend_id, slot, self.idle_timeout_ns)], tolerate=()):
            self.table.release_slot(slot)
            self.stats.write_failures += 1
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
            count += 1
            for listener in self.on_installed:
                listener(InstallEvent(key, flow.backend_id, slot, None))
        self.table.rebuild_free_slots()
        self.stats.adopted += count
        return count

    def restore_updates(self) -> list[p4r.Update]:
        """Every tracked entry as an insert: for a switch that restarted and lost them."""
        return [self.tables.flow(unpack_key(key), backend_id, slot, self.idle_timeout_ns)
                for key, backend_id, slot in self.table.items()]


__all__ = ["FlowManager", "FlowStats", "InstallEvent", "REACTIVE_BACKEND_ID", "Writer"]
