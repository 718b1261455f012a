"""Flow manager and flow table, against an in-memory `flows` table with the switch's answers.

The in-memory table answers as BMv2 does (ALREADY_EXISTS, NOT_FOUND, RESOURCE_EXHAUSTED
per update); the same behaviour on the real switch is in test_controller_bmv2.py.
"""

from __future__ import annotations

import pytest
from controller_fakes import digest_list as fake_digest_list
from finsy.proto import p4r, rpc_code

from controller.dataplane.constants import REACTIVE_BACKEND_ID
from controller.dataplane.dispatcher_tables import DispatcherTables, InstalledFlow
from controller.flow_manager import FlowManager
from controller.flow_table import SHARED_STATS_SLOT, FlowTable, pack_key, unpack_key
from controller.p4runtime import P4InfoIndex
from controller.p4runtime.client import UpdateFailure, WriteError
from topo.toolchain import BUILD_DIR

P4INFO = BUILD_DIR / "dispatcher.p4info.txtpb"
pytestmark = pytest.mark.skipif(not P4INFO.exists(), reason="build/dispatcher.p4info.txtpb not built (p4c missing)")
BACKENDS = {10, 11, 12}


class SwitchTable:
    """A `flows` table of fixed capacity that answers writes per update, as P4Runtime does."""

    def __init__(self, tables: DispatcherTables, capacity: int) -> None:
        self.tables = tables
        self.capacity = capacity
        self.entries: dict[tuple, tuple[int, int]] = {}
        self.writes = 0

    def write(self, updates, batch_size: int = 1000) -> None:
        self.writes += 1
        failures = []
        for i, update in enumerate(updates):
            entry = update.entity.table_entry
            key = self.tables.flow_key_of(entry)
            if update.type == p4r.Update.INSERT:
                if key in self.entries:
                    failures.append(UpdateFailure(i, rpc_code.ALREADY_EXISTS, "exists"))
                elif len(self.entries) >= self.capacity:
                    failures.append(UpdateFailure(i, rpc_code.RESOURCE_EXHAUSTED, "table full"))
                else:
                    self.entries[key] = self._params(entry)
            elif update.type == p4r.Update.MODIFY:
                if key not in self.entries:
                    failures.append(UpdateFailure(i, rpc_code.NOT_FOUND, "no such entry"))
                else:
                    self.entries[key] = self._params(entry)
            elif update.type == p4r.Update.DELETE:
                removed = self.entries.pop(key, None)
                if removed is None:
                    failures.append(UpdateFailure(i, rpc_code.NOT_FOUND, "no such entry"))
        if failures:
            raise WriteError(failures, len(updates))

    @staticmethod
    def _params(entry) -> tuple[int, int, int]:
        """(backend, stats slot, entry id)."""
        params = {p.param_id: int.from_bytes(p.value, "big") for p in entry.action.action.params}
        return params[1], params[2], params[3]

    def write_async(self, updates) -> Answered:
        try:
            self.write(updates)
            return Answered(None)
        except WriteError as exc:
            return Answered(exc)


class Answered:
    """A write the in-memory switch has already applied."""

    def __init__(self, error: WriteError | None) -> None:
        self.error = error
        self.done_at = 0.0

    def result(self) -> None:
        if self.error is not None:
            raise self.error


def digest_list(*flows: dict) -> p4r.DigestList:
    return fake_digest_list(flows)


def flow(i: int, backend: int = 10, **extra) -> dict:
    return {"src_addr": (0xFFFF << 32) | (0xC0A80000 + i), "dst_addr": (0xFFFF << 32) | 0x0A000064,
            "protocol": 6, "src_port": 40000 + i, "dst_port": 80, "service_id": 1,
            "backend_id": backend, **extra}


def key_of(i: int) -> tuple:
    f = flow(i)
    return (f["src_addr"], f["dst_addr"], 6, f["src_port"], 80)


@pytest.fixture
def tables() -> DispatcherTables:
    return DispatcherTables(P4InfoIndex.load(P4INFO))


def manager(tables: DispatcherTables, capacity: int = 1000, slots: int = 100) -> tuple[FlowManager, SwitchTable]:
    switch = SwitchTable(tables, capacity)
    fm = FlowManager(tables, switch, known_backend=BACKENDS.__contains__,
                     idle_timeout_ns=10**10, stats_slots=slots, table_size=capacity)
    return fm, switch


def idle_notification(tables: DispatcherTables, *indices: int) -> p4r.IdleTimeoutNotification:
    note = p4r.IdleTimeoutNotification()
    for i in indices:
        note.table_entry.append(tables.flow_delete(key_of(i)).entity.table_entry)
    return note


def test_key_packing_round_trips_and_is_compact():
    key = ((0xFFFF << 32) | 0xC0A80101, (1 << 127) | 5, 17, 65535, 0)
    packed = pack_key(key)
    assert len(packed) == 37 and unpack_key(packed) == key


def test_packed_key_from_an_entry_matches_pack_key(tables):
    key = ((0xFFFF << 32) | 0x0A000001, 1 << 100, 6, 7, 65535)
    entry = tables.flow(key, 10, 3).entity.table_entry
    assert tables.packed_flow_key_of(entry) == pack_key(key)
    assert tables.flow_key_of(entry) == key


def test_flow_table_slots_are_recycled_and_shared_when_exhausted():
    table = FlowTable(stats_slots=3)            # slots 1 and 2 are per-flow, 0 shared
    slots = [table.allocate_slot() for _ in range(3)]
    assert slots == [1, 2, SHARED_STATS_SLOT]
    table.add(b"a", 10, 1)
    table.add(b"b", 11, 2)
    assert table.per_backend[10] == 1 and table.per_backend[11] == 1
    assert table.remove(b"a") == (10, 1)
    assert table.allocate_slot() == 1            # freed slot comes back
    assert table.per_backend[10] == 0


def test_digests_become_entries_with_the_switch_chosen_backend(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1, 10), flow(2, 12), flow(3, 11)))
    fm.settle()
    assert {k: v[0] for k, v in switch.entries.items()} == {key_of(1): 10, key_of(2): 12, key_of(3): 11}
    assert fm.stats.inserted == 3 and len(fm.table) == 3
    assert len({v[1] for v in switch.entries.values()}) == 3, "each flow its own stats slot"
    assert switch.writes == 1, "one batch"


def test_duplicate_digests_write_nothing(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1), flow(1, flags=2)))   # collision repeats
    fm.settle()
    fm.on_digest_list(digest_list(flow(1, flags=1)))   # the data plane's retry
    fm.settle()
    assert fm.stats.inserted == 1 and fm.stats.duplicate_digests == 2 and switch.writes == 1


def test_malformed_and_unknown_backend_digests_are_counted_not_fatal(tables):
    fm, switch = manager(tables)
    bad = p4r.DigestList(digest_id=1, list_id=2)
    bad.data.add().struct.members.add().bitstring = b"\x01"
    fm.on_digest_list(bad)
    fm.on_digest_list(digest_list(flow(1, backend=99), flow(2, backend=REACTIVE_BACKEND_ID), flow(3)))
    fm.settle()
    assert fm.stats.malformed_digests == 1
    assert fm.stats.unknown_backend == 1
    assert fm.stats.reactive_digests == 1
    assert list(switch.entries) == [key_of(3)]


def test_idle_timeouts_delete_once_and_free_slots(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1), flow(2)))
    fm.settle()
    removed = []
    fm.on_removed.append(lambda key, backend, slot: removed.append((unpack_key(key), slot)))
    for _ in range(3):   # BMv2 repeats the notification until the entry is gone
        fm.on_idle_timeout(idle_notification(tables, 1))
    fm.settle()
    fm.on_idle_timeout(idle_notification(tables, 1))   # late repeat: already gone
    fm.settle()
    assert list(switch.entries) == [key_of(2)]
    assert fm.stats.deleted == 1 and len(removed) == 1 and removed[0][0] == key_of(1)
    assert fm.table.free_slots == 100 - 1 - 1   # slot 0 shared, one flow still holds one


def test_full_table_keeps_flows_waiting_and_retries_after_deletes(tables):
    fm, switch = manager(tables, capacity=2)
    fm.on_digest_list(digest_list(flow(1), flow(2), flow(3), flow(4)))
    fm.settle()
    assert len(switch.entries) == 2 and fm.stats.table_full == 2 and fm.overflow == 2
    writes = switch.writes
    fm.on_digest_list(digest_list(flow(3, flags=1)))   # repeated digest while still full
    fm.settle()
    assert switch.writes == writes, "no write attempt while the table is known to be full"
    fm.on_idle_timeout(idle_notification(tables, 1))
    fm.settle()
    assert key_of(1) not in switch.entries
    assert len(switch.entries) == 2 and fm.overflow == 1, "the freed room went to a waiting flow"


def test_adopting_the_switch_writes_nothing_and_keeps_slots(tables):
    fm, switch = manager(tables)
    installed = [InstalledFlow(key_of(i), 10 + i % 3, 5 + i) for i in range(4)]
    assert fm.adopt(installed) == 4
    fm.on_digest_list(digest_list(flow(0), flow(1, backend=11)))   # digests for adopted flows
    fm.settle()
    assert switch.writes == 0
    assert fm.table.get(pack_key(key_of(2))) == (12, 7)
    assert fm.table.allocate_slot() not in {5, 6, 7, 8}


def test_restore_rewrites_every_tracked_flow(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1, 10), flow(2, 11)))
    fm.settle()
    lost = SwitchTable(tables, 1000)     # the switch restarted empty
    lost.write(fm.restore_updates())
    assert {k: v[:2] for k, v in lost.entries.items()} == {k: v[:2] for k, v in switch.entries.items()}


def test_a_notification_of_thousands_is_read_in_slices_and_all_deleted(tables):
    fm, switch = manager(tables, capacity=10_000, slots=10_000)
    fm.on_digest_list(digest_list(*[flow(i) for i in range(5000)]))
    fm.settle()
    fm.on_idle_timeout(idle_notification(tables, *range(4500)))
    fm.flush()
    assert 0 < fm.pending + fm.stats.deleted < 4500, "one flush reads one slice"
    fm.settle()
    assert fm.stats.deleted == 4500 and len(switch.entries) == 500


def test_every_entry_gets_an_id_no_other_write_used(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(*(flow(i) for i in range(5))))
    fm.settle()
    ids = sorted(entry[2] for entry in switch.entries.values())
    assert ids == [1, 2, 3, 4, 5]
    # A controller that adopts the switch continues after the largest id it finds.
    fresh, _ = manager(tables)
    fresh.adopt([InstalledFlow(k, b, slot, entry_id) for k, (b, slot, entry_id) in switch.entries.items()])
    assert fresh.next_entry_id == 6


def test_a_stale_entry_report_is_counted_and_changes_nothing(tables):
    """The switch found the key's entry stale (an earlier flow's); the current flow runs on
    its own state. Rewriting the entry could race with a third flow that activated it."""
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1, backend=10)))
    fm.settle()
    before, writes = dict(switch.entries), switch.writes
    fm.on_digest_list(digest_list(flow(1, backend=11, flags=0x10)))   # DIGEST_FLAG_STALE_ENTRY
    fm.settle()
    assert switch.entries == before and switch.writes == writes
    assert fm.stats.stale_entries == 1 and fm.table.per_backend[10] == 1


def test_no_stats_slot_left_means_the_flow_waits(tables):
    """Each entry needs a statistics slot of its own (the switch keeps its activation there):
    with none free the flow waits on its cache way or ring entry, as with a full table."""
    fm, switch = manager(tables, capacity=1000, slots=4)   # slots 1-3 per flow, 0 shared
    fm.on_digest_list(digest_list(*(flow(i) for i in range(5))))
    fm.settle()
    assert len(switch.entries) == 3 and fm.overflow == 2
    assert 0 not in {slot for _, slot, _ in switch.entries.values()}


def test_restored_and_reactive_entries_are_trusted(tables):
    fm, switch = manager(tables)
    fm.on_digest_list(digest_list(flow(1)))
    fm.settle()
    assert {u.entity.table_entry.action.action.params[2].value for u in fm.restore_updates()} == {b"\0"}
    assert fm.install_now(key_of(2), 11)
    assert switch.entries[key_of(2)][2] == 0
