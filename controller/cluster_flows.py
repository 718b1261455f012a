"""`flows` entries on several switches (issue 15, docs/multiswitch.md rules 2-4, 8 and case
(C)): the flow manager keeps deciding *when* an entry is written or deleted, as on one
switch; this module says *where*, with controller/flow_replicas.py's bookkeeping.

* A digest for a key not recorded makes a home entry, on the reporting switch only (the
  flow manager writes it; `RoutedFlowWriter` sends it there). Its id carries
  ENTRY_ID_REPORT_ACTIVATION, so the home sends an ACTIVATED digest when it takes it over.
* An ACTIVATED digest from the home makes replicas (id 0, the home entry's backend and
  statistics slot) due on every other switch in service; written here, in parallel.
* A digest from another switch once the home entry is written: that switch gets an entry
  of its own (fresh id, its own backend), never a replica; a different backend is a
  cross-switch split, counted. (Before the home entry is written such a digest is left:
  the data plane repeats it every digest_retry.)
* Idle reports are per switch; the flow manager deletes a flow's entries, on every switch
  holding one, only once all of them reported it idle recently and, read just before the
  delete, no holder's statistics cell for it has counted a packet since its report (BMv2's
  `time_since_last_hit` would say the same, but wraps at 2^32 ns, 4.3 s: see
  docs/multiswitch.md rule 4).
* A switch that joins gets every activated flow's replica; a lost one takes its entries
  with it, and a flow left with no entry anywhere is forgotten.
* Switches taken over running (controller/cluster_takeover.py): their entries are recorded
  as written; a key held by its home alone has its activation confirmed by its home's
  `flow_stats` cell growing, the old controller having taken the ACTIVATED report with it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from finsy.proto import p4r, rpc_code

from controller.cluster_takeover import AdoptedFlow, plain_entry_id
from controller.dataplane.constants import ENTRY_ID_REPORT_ACTIVATION, REACTIVE_BACKEND_ID
from controller.dataplane.dispatcher_tables import CounterValue, DispatcherTables
from controller.dataplane.flow_digest import MalformedDigest, decode_digest_list
from controller.flow_manager import FlowManager, InstallEvent
from controller.flow_replicas import FlowReplicas, Placement, Write
from controller.flow_table import SHARED_STATS_SLOT, pack_key, unpack_key
from controller.p4runtime.client import P4RuntimeClient, P4RuntimeError, UpdateFailure, WriteError
from controller.p4runtime.switch_set import AllSwitchesLost, SwitchSet

log = logging.getLogger("controller")

ACTIVATION_WAIT_S = 5.0     # an ACTIVATED digest waits this long for its home entry's write to complete
ACTIVATION_CHECK_S = 0.25   # how often adopted home entries' statistics cells are read
REHOME_WAIT_S = 5.0         # a reused key's new digests wait this long at most for the old entries' delete


class ClusterFlowManager(FlowManager):
    """The flow manager of several switches: home entries ask for their activation to be
    reported, and the cluster layer can queue deletes and forget entries a lost switch took."""

    def _take_entry_id(self) -> int:
        return super()._take_entry_id() | ENTRY_ID_REPORT_ACTIVATION

    def plain_entry_id(self) -> int:
        """An id for an entry of a switch's own (case (C)): checked by activation, not reported."""
        return super()._take_entry_id()

    def delete(self, key: bytes) -> None:
        if key in self.table:
            self._deletes.add(key)

    def forget(self, key: bytes) -> None:
        """The entry is gone with its switch: no delete to write, only the bookkeeping."""
        self._deletes.discard(key)
        removed = self.table.remove(key)
        if removed is not None:
            for listener in self.on_removed:
                listener(key, *removed)


class RoutedWrite:
    """A batch split by destination switch, in flight on each; refusals mapped back to their
    positions in the batch (the PendingWrite interface)."""

    def __init__(self, switches: SwitchSet, parts: dict[str, tuple[list[int], object]], total: int) -> None:
        self._switches = switches
        self._parts = parts          # switch -> (positions in the batch, its pending write)
        self._total = total
        self.done_at: float | None = None

    def result(self) -> None:
        merged: dict[int, UpdateFailure] = {}
        for name, (positions, pending) in self._parts.items():
            try:
                pending.result()   # type: ignore[attr-defined]
            except WriteError as exc:
                for failure in exc.failures:
                    index = positions[failure.index] if 0 <= failure.index < len(positions) else positions[0]
                    merged.setdefault(index, UpdateFailure(index, failure.code, failure.message))
            except P4RuntimeError as exc:
                # The switch is gone: its entries with it; the others' writes stand.
                self._switches.lose(name, str(exc))
        self.done_at = time.monotonic()
        if merged:
            raise WriteError([merged[i] for i in sorted(merged)], self._total)


class RoutedFlowWriter:
    """The flow manager's Writer with several switches: each `flows` update goes where the
    cluster's bookkeeping says (an insert to its home, a delete to every holder)."""

    def __init__(self, switches: SwitchSet, flows: ClusterFlows) -> None:
        self.switches = switches
        self.flows = flows

    def write_async(self, updates: Sequence[p4r.Update]) -> RoutedWrite:
        by_switch: dict[str, list[int]] = {}
        for i, update in enumerate(updates):
            for name in self.flows.destinations(update):
                if name in self.switches:
                    by_switch.setdefault(name, []).append(i)
        parts: dict[str, tuple[list[int], object]] = {}
        for name, positions in by_switch.items():
            try:
                parts[name] = (positions, self.switches.member(name).write_async([updates[i] for i in positions]))
            except P4RuntimeError as exc:
                self.switches.lose(name, str(exc))
        return RoutedWrite(self.switches, parts, len(updates))

    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None:
        for start in range(0, len(updates), batch_size):
            self.write_async(updates[start:start + batch_size]).result()


@dataclass
class FlowsCounts:
    """What several switches add to the flow manager's statistics (exported in the status)."""
    activations: int = 0          # ACTIVATED digests
    replicas_written: int = 0
    own_entries: int = 0          # case (C): a switch's own entry for a moved flow
    restored_replicas: int = 0    # replicas written to a switch that joined
    adopted_flows: int = 0        # keys found on switches taken over running
    confirmed_activations: int = 0   # adopted home entries whose statistics cell grew
    deletes_spared: int = 0       # idle everywhere, but a holder's cell counted since its report
    reused_keys: int = 0          # a new connection's handshake on another switch than a recorded key's holders


class ClusterFlows:
    def __init__(self, flows: ClusterFlowManager, tables: DispatcherTables, switches: SwitchSet,
                 replicas: FlowReplicas) -> None:
        self.flows = flows
        self.tables = tables
        self.switches = switches
        self.replicas = replicas
        self.counts = FlowsCounts()
        self._activations: dict[bytes, tuple[str, float]] = {}   # key -> (reporting switch, when)
        self._deleting: dict[bytes, list[str]] = {}                 # key -> the switches holding it
        self._orphans: list[bytes] = []                             # installed with no placement left
        self._idle: dict[bytes, list[str]] = {}                     # key -> holders, all reported it idle
        self._rehoming: dict[bytes, float] = {}                     # key -> when its earlier flow's delete began
        self.written_at: dict[bytes, float] = {}                    # key -> when its home entry was written
        # Adopted home entries of unknown activation: key -> (home, statistics slot, packets then).
        self._unconfirmed: dict[bytes, tuple[str, int, int]] = {}
        self._checked_at = float("-inf")
        flows.on_installed.append(self._installed)
        flows.on_removed.append(self._removed)

    @property
    def cross_switch_splits(self) -> int:
        return self.replicas.cross_switch_splits

    # ---- from the switches ---------------------------------------------------------------

    def on_digest_list(self, switch: str, digest_list: p4r.DigestList, received: float) -> None:
        try:
            digests = decode_digest_list(digest_list)
        except MalformedDigest as exc:
            self.flows.stats.malformed_digests += 1
            log.warning("malformed digest from %s ignored: %s", switch, exc)
            return
        for digest in digests:
            key = pack_key(digest.key)
            if digest.is_activated:
                self.counts.activations += 1
                self._activations[key] = (switch, received)
                continue
            placed = self.replicas.flows.get(key)
            if (digest.is_stale_entry or digest.backend_id == REACTIVE_BACKEND_ID
                    or not self.flows.known_backend(digest.backend_id)):
                self.flows.on_digest(digest, received)     # counted there, nothing written
            elif placed is None:
                if received - self._rehoming.get(key, float("-inf")) < REHOME_WAIT_S:
                    self.flows.stats.duplicate_digests += 1     # the earlier flow's entries are going
                    continue
                self.replicas.on_digest(switch, key, digest.backend_id)     # the home
                self.flows.on_digest(digest, received)
            elif placed.home == switch:
                self.flows.on_digest(digest, received)     # a repeat (or a retry after a full table)
            elif key not in self.flows.table:
                self.flows.stats.duplicate_digests += 1    # home entry not written yet: it repeats
            elif digest.rtt_valid and switch not in placed.holders():
                self._rehome(switch, key, placed, received)
            elif self.replicas.on_digest(switch, key, digest.backend_id) is Write.OWN:
                if digest.backend_id != placed.backend:
                    log.warning("flow %s moved from %s to %s before its replica and was split there: "
                                "backend %d, not %d (digest flags 0x%02x, TCP flags 0x%02x)", digest.key,
                                placed.home, switch, digest.backend_id, placed.backend, digest.flags,
                                digest.tcp_flags)
                self._write_own(switch, key, digest.backend_id)
            else:
                self.flows.stats.duplicate_digests += 1

    def _removed(self, key: bytes, backend: int, slot: int) -> None:
        self._rehoming.pop(key, None)

    def _rehome(self, switch: str, key: bytes, placed: Placement, now: float) -> None:
        """The switch saw this flow's handshake (its digest has the SYN -> ACK RTT), so it is
        a new connection reusing a recorded flow's key (a client port reused), not that flow
        moved. The earlier flow's entries go from every holder: one of them (an activated
        home entry) would otherwise take this connection's packets if ECMP moved it there.
        Its digest, repeated while it is cached, then finds the key unrecorded and makes a
        home entry on this switch, which is replicated once activated."""
        holders = sorted(placed.holders())
        log.info("flow %s: a new connection on %s reuses the key of one recorded on %s (backend %d); "
                 "its entries go from %s", unpack_key(key), switch, placed.home, placed.backend, ", ".join(holders))
        del self.replicas.flows[key]
        self._deleting[key] = holders
        self.flows.delete(key)
        self._rehoming[key] = now
        self.counts.reused_keys += 1

    def on_idle_timeout(self, switch: str, notification: p4r.IdleTimeoutNotification, now: float) -> None:
        """An idle report from one switch: the entries' statistics cells there are read (one
        read), so that a packet counted after the report shows before the delete."""
        self.flows.stats.idle_notifications += 1
        keys = []
        for entry in notification.table_entry:
            if not self.tables.is_flow(entry):
                continue
            key = self.tables.packed_flow_key_of(entry)
            if key not in self.flows.table:
                continue
            if key not in self.replicas.flows:
                self._deleting[key] = list(self.switches.names)     # not placed (left over): wherever it is
                self.flows.delete(key)
            else:
                keys.append(key)
        if not keys:
            return
        slots = {self._slot(k) for k in keys} - {SHARED_STATS_SLOT}
        cells = self._read_cells(switch, slots) if switch in self.switches else {}
        for key in keys:
            cell = cells.get(self._slot(key))
            holders = self.replicas.on_idle(switch, key, now, cell.packets if cell is not None else None)
            if holders:
                self._idle[key] = holders

    def _slot(self, key: bytes) -> int:
        """The key's statistics slot; SHARED_STATS_SLOT (counts for many entries, so it says
        nothing of one) when it has none of its own or is not recorded."""
        installed = self.flows.table.get(key)
        return installed[1] if installed is not None else SHARED_STATS_SLOT

    def _delete_idle(self) -> None:
        """The flows idle on every holder: deleted unless a holder's cell counted a packet
        since its report (the flow moved there, or came back): then that holder must report
        it idle again."""
        if not self._idle:
            return
        candidates, self._idle = self._idle, {}
        by_holder: dict[str, set[int]] = {}
        for key, holders in candidates.items():
            for holder in holders:
                if self._slot(key) != SHARED_STATS_SLOT:
                    by_holder.setdefault(holder, set()).add(self._slot(key))
        cells = {h: self._read_cells(h, slots) for h, slots in by_holder.items() if h in self.switches}
        for key, holders in candidates.items():
            if key not in self.replicas.flows or key not in self.flows.table:
                continue
            slot = self._slot(key)
            now_counted = {h: cells[h][slot].packets for h in holders if h in cells and slot in cells[h]}
            if self.replicas.hit_since_idle(key, now_counted):
                self.counts.deletes_spared += 1
                continue
            del self.replicas.flows[key]
            self._deleting[key] = holders
            self.flows.delete(key)

    def destinations(self, update: p4r.Update) -> list[str]:
        """Where a flow manager's `flows` update goes."""
        key = self.tables.packed_flow_key_of(update.entity.table_entry)
        if update.type == p4r.Update.DELETE:
            self.written_at.pop(key, None)
            holders = self._deleting.pop(key, None)
            if holders is not None:
                return holders
            placed = self.replicas.flows.pop(key, None)   # deleted for another reason (backend removed)
            return sorted(placed.holders()) if placed is not None else list(self.switches.names)
        placed = self.replicas.flows.get(key)
        return [placed.home] if placed is not None else []

    # ---- writes of this layer's own ------------------------------------------------------------

    def flush(self, now: float | None = None) -> None:
        """Deletes of flows idle everywhere, replicas of the flows whose home reported
        activation, and the orphans' bookkeeping."""
        now = time.monotonic() if now is None else now
        self._delete_idle()
        for key in self._orphans:
            if key not in self.replicas.flows:
                self.written_at.pop(key, None)
                self.flows.forget(key)
        self._orphans.clear()
        due: dict[str, list[bytes]] = {}
        for key, (switch, at) in list(self._activations.items()):
            if key not in self.flows.table:
                if now - at > ACTIVATION_WAIT_S:
                    del self._activations[key]     # its home entry was never written
                continue
            del self._activations[key]
            for target in self.replicas.on_activated(switch, key):
                due.setdefault(target, []).append(key)
        written = self._write_replicas(due)
        self.counts.replicas_written += written

    def _replica(self, key: bytes) -> p4r.Update:
        installed = self.flows.table.get(key)
        assert installed is not None
        backend, slot = installed
        return self.tables.flow(unpack_key(key), backend, slot, self.flows.idle_timeout_ns)

    def _write_replicas(self, due: dict[str, list[bytes]]) -> int:
        """Replicas per switch, one write each, in parallel; returns how many landed."""
        pending = {}
        for switch, keys in due.items():
            if switch not in self.switches:
                continue
            try:
                pending[switch] = (keys, self.switches.member(switch).write_async([self._replica(k) for k in keys]))
            except P4RuntimeError as exc:
                self.switches.lose(switch, str(exc))
        written = 0
        for switch, (keys, write) in pending.items():
            refused: set[int] = set()
            try:
                write.result()
            except WriteError as exc:
                # ALREADY_EXISTS: the switch has an entry of the key (its own, written meanwhile).
                refused = {f.index for f in exc.failures if f.code != rpc_code.ALREADY_EXISTS}
                for f in exc.failures[:3]:
                    if f.code != rpc_code.ALREADY_EXISTS:
                        log.error("replica refused by %s: %s", switch, rpc_code.Code.Name(f.code))
            except P4RuntimeError as exc:
                self.switches.lose(switch, str(exc))
                continue
            landed = [k for i, k in enumerate(keys) if i not in refused]
            for key in landed:
                self.replicas.replicated(key, [switch])
            written += len(landed)
        return written

    def _write_own(self, switch: str, key: bytes, backend: int) -> None:
        installed = self.flows.table.get(key)
        if installed is None or switch not in self.switches:
            return
        update = self.tables.flow(unpack_key(key), backend, installed[1], self.flows.idle_timeout_ns,
                                  entry_id=self.flows.plain_entry_id())
        try:
            self.switches.member(switch).write_async([update]).result()
            self.counts.own_entries += 1
        except WriteError as exc:
            log.error("own entry refused by %s: %s", switch, exc)
        except P4RuntimeError as exc:
            self.switches.lose(switch, str(exc))

    def _installed(self, event: InstallEvent) -> None:
        self.written_at[event.key] = time.monotonic()
        placed = self.replicas.flows.get(event.key)
        if placed is None or placed.home not in self.switches:
            # Its home left while the write was in flight: no entry anywhere to keep track of.
            self._orphans.append(event.key)

    # ---- take-over -----------------------------------------------------------------------------

    def adopt(self, adopted: dict[bytes, AdoptedFlow], next_entry_id: int) -> int:
        """Entries of switches taken over running, recorded as if written here (their
        switches are in the set already). Keys held by their home alone are unconfirmed:
        their home's `flow_stats` cell is read now, and check_activations() watches it."""
        for key, flow in adopted.items():
            self.replicas.flows[key] = Placement(flow.entry.backend_id, flow.home, own=dict(flow.own),
                                                 replicas=set(flow.replicas), activated=flow.activated)
        # The flow manager counts ids without the report bit; its next fresh id follows every id found.
        self.flows.adopt(replace(f.entry, entry_id=plain_entry_id(f.entry.entry_id)) for f in adopted.values())
        self.flows.next_entry_id = max(self.flows.next_entry_id, next_entry_id)
        self.counts.adopted_flows += len(adopted)
        by_home: dict[str, dict[bytes, int]] = {}
        for key, flow in adopted.items():
            if not flow.activated and flow.home in flow.own and flow.entry.stats_slot != SHARED_STATS_SLOT:
                by_home.setdefault(flow.home, {})[key] = flow.entry.stats_slot
        for home, slots in by_home.items():
            cells = self._read_cells(home, slots.values())
            for key, slot in slots.items():
                self._unconfirmed[key] = (home, slot, cells[slot].packets if slot in cells else 0)
        return len(adopted)

    def check_activations(self, now: float) -> int:
        """Adopted home entries whose statistics cell grew since the adoption are activated
        (only an activated entry counts packets there): their replicas become due, as after
        an ACTIVATED report. Returns how many were confirmed."""
        if not self._unconfirmed or now - self._checked_at < ACTIVATION_CHECK_S:
            return 0
        self._checked_at = now
        by_home: dict[str, list[bytes]] = {}
        for key, (home, _, _) in list(self._unconfirmed.items()):
            if key not in self.replicas.flows or home not in self.switches:
                del self._unconfirmed[key]      # deleted, forgotten or its home lost
            else:
                by_home.setdefault(home, []).append(key)
        confirmed = 0
        for home, keys in by_home.items():
            cells = self._read_cells(home, (self._unconfirmed[k][1] for k in keys))
            for key in keys:
                _, slot, before = self._unconfirmed[key]
                if slot in cells and cells[slot].packets > before:
                    del self._unconfirmed[key]
                    self._activations[key] = (home, now)
                    confirmed += 1
        self.counts.confirmed_activations += confirmed
        return confirmed

    @property
    def unconfirmed(self) -> int:
        return len(self._unconfirmed)

    def _read_cells(self, switch: str, slots: Iterable[int]) -> dict[int, CounterValue]:
        try:
            # Members are P4RuntimeClients; the SwitchSet types them by what it writes.
            client = cast(P4RuntimeClient, self.switches.member(switch))
            return self.tables.read_counter_cells(client, "flow_stats", slots)
        except P4RuntimeError as exc:
            self.switches.lose(switch, str(exc))
            return {}

    # ---- switches ----------------------------------------------------------------------------

    def switch_joined(self, switch: str) -> int:
        """A switch in the set again (syncing): every activated flow's replica goes there."""
        keys = [k for k in self.replicas.switch_joined(switch) if k in self.flows.table]
        written = self._write_replicas({switch: keys}) if keys else 0
        self.counts.restored_replicas += written
        return written

    def switch_lost(self, switch: str) -> None:
        for key in self.replicas.switch_lost(switch):
            self.written_at.pop(key, None)
            self.flows.forget(key)
        for key, (reporter, _) in list(self._activations.items()):
            if reporter == switch:
                del self._activations[key]


__all__ = ["AllSwitchesLost", "ClusterFlowManager", "ClusterFlows", "RoutedFlowWriter"]
