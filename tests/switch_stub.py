"""A Controller without a switch, for tests: the P4Info it needs and an in-memory switch.

`program(tmp)` is the compiled program when build/ has it, else a small P4Info with the
entities the Controller looks up (same names as p4src/), so these tests run without p4c.
`InMemorySwitch` takes the Controller's writes as a P4Runtime switch would (per update:
ALREADY_EXISTS, NOT_FOUND), keeps the entries of every table it is written, answers reads
of them, and has the stream queues the serving loop drains (empty unless a test fills
them). Only the switch is a stand-in: the Controller's own code runs unchanged.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from finsy.proto import p4i, p4r, rpc_code
from google.protobuf import text_format

from controller.dataplane.constants import PROGRAM_ENUMS
from controller.dataplane.dispatcher_tables import FLOW_KEY_BYTES, FLOW_KEY_FIELDS
from controller.p4runtime import P4InfoIndex
from controller.p4runtime import entities as ent
from controller.p4runtime.client import UpdateFailure, WriteError
from controller.pipeline import BUILD_DIR, CompiledProgram


def small_p4info() -> p4i.P4Info:
    """The entities Controller() looks up and writes (rings, flows, admission), named as in
    p4src/, and the serializable enums it checks the program against."""
    info = p4i.P4Info()

    def table(table_id: int, name: str, size: int, fields: Sequence[tuple[str, int]]) -> p4i.Table:
        t = info.tables.add(size=size)
        t.preamble.id, t.preamble.name, t.preamble.alias = table_id, f"DispatcherIngress.{name}", name.split(".")[-1]
        for i, (field, width) in enumerate(fields, start=1):
            t.match_fields.add(id=i, name=field, bitwidth=width, match_type=p4i.MatchField.EXACT)
        return t

    def action(action_id: int, name: str, params: Sequence[tuple[str, int]]) -> None:
        a = info.actions.add()
        a.preamble.id, a.preamble.name, a.preamble.alias = action_id, f"DispatcherIngress.{name}", name.split(".")[-1]
        for param_id, (param, width) in enumerate(params, start=1):
            a.params.add(id=param_id, name=param, bitwidth=width)

    table(1, "flow_dispatch.flows", 65536, [(f, w * 8) for f, w in zip(FLOW_KEY_FIELDS, FLOW_KEY_BYTES)])
    table(2, "flow_dispatch.dispatch_ring", 65536, [("service_id", 16), ("slot", 16)])
    table(6, "backend_forward.backends", 1024, [("backend_id", 16)])
    table(7, "flow_dispatch.admission.admission", 1024, [("service_id", 16)])
    action(3, "flow_dispatch.set_flow_backend", [("backend_id", 16), ("stats_slot", 32), ("id", 48)])
    action(4, "flow_dispatch.set_ring_backend", [("backend_id", 16), ("generation", 32)])
    action(8, "flow_dispatch.admission.set_admission", [("level", 8), ("drop_prob", 16)])
    for enum in PROGRAM_ENUMS:   # the controller checks the program speaks its enums
        published = info.type_info.serializable_enums[enum.__name__]
        published.underlying_type.bitwidth = 8
        for member in enum:
            published.members.add(name=member.name, value=bytes([member.value]))
    stats = info.counters.add(size=131072)
    stats.preamble.id, stats.preamble.name, stats.preamble.alias = 5, "DispatcherIngress.flow_stats", "flow_stats"
    return info


def program(tmp: Path) -> CompiledProgram:
    built = CompiledProgram.in_build_dir("dispatcher", BUILD_DIR)
    if built.p4info.exists() and built.bmv2_json.exists():
        return built
    (tmp / "dispatcher.p4info.txtpb").write_text(text_format.MessageToString(small_p4info()))
    (tmp / "dispatcher.json").write_text("{}")   # only hashed into the pipeline cookie
    return CompiledProgram.in_build_dir("dispatcher", tmp)


class Answered:
    """A write the in-memory switch has already applied (what write_async returns)."""

    def __init__(self, error: WriteError | None = None) -> None:
        self.error = error
        self.done_at: float | None = None   # the flow manager then takes its own clock

    def result(self) -> None:
        if self.error is not None:
            raise self.error


class InMemorySwitch:
    """Tables as dicts: alias -> {match (sorted name, value pairs) -> the entry as written}."""

    def __init__(self, info: P4InfoIndex) -> None:
        self.info = info
        self.tables: dict[str, dict[tuple, p4r.TableEntry]] = {}
        self.meters: dict[tuple[str, int], p4r.MeterConfig | None] = {}   # (alias, index) -> config; None: default
        self.counters: dict[tuple[str, int], int] = {}    # (alias, index) -> packets, as a test sets them
        self.writes: list[list[p4r.Update]] = []
        # What the serving loop drains (controller/app.py _drain_stream) and checks.
        self.digests: queue.Queue = queue.Queue()
        self.idle_timeouts: queue.Queue = queue.Queue()
        self.packet_ins: queue.Queue = queue.Queue()
        self.stream_errors: queue.Queue = queue.Queue()
        self.activity = threading.Event()
        self.stream_closed = threading.Event()
        self.is_primary = True
        self._lock = threading.Lock()

    # ---- P4Runtime client surface ------------------------------------------------------------

    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None:
        with self._lock:
            self.writes.append(list(updates))
            failures = [f for i, u in enumerate(updates) if (f := self._apply(i, u)) is not None]
        if failures:
            raise WriteError(failures, len(updates))

    def write_async(self, updates: Sequence[p4r.Update]) -> Answered:
        try:
            self.write(updates)
        except WriteError as exc:
            return Answered(exc)
        return Answered()

    def read(self, entities: Iterable[p4r.Entity]) -> Iterator[p4r.Entity]:
        for wanted in entities:
            if wanted.WhichOneof("entity") == "counter_entry":
                cell = p4r.CounterEntry()
                cell.CopyFrom(wanted.counter_entry)
                alias = next(c.preamble.alias for c in self.info.p4info.counters if c.preamble.id == cell.counter_id)
                cell.data.packet_count = self.counters.get((alias, cell.index.index), 0)
                yield p4r.Entity(counter_entry=cell)
                continue
            alias = self.info.table_by_id(wanted.table_entry.table_id).preamble.alias
            with self._lock:
                entries = list(self.tables.get(alias, {}).values())
            for entry in entries:
                yield p4r.Entity(table_entry=entry)

    def ack_digest(self, digest_list) -> None:
        pass

    # ---- what tests look at --------------------------------------------------------------------

    def entries(self, alias: str) -> dict[tuple, dict[str, int]]:
        """match -> action parameters, of one table."""
        with self._lock:
            return {match: ent.decode_action(self.info, e)[1] for match, e in self.tables.get(alias, {}).items()}

    def ring(self, service_id: int) -> dict[int, int]:
        """slot -> backend id of a service's dispatch ring."""
        return {dict(m)["slot"]: p["backend_id"] for m, p in self.entries("dispatch_ring").items()
                if dict(m)["service_id"] == service_id}

    def flow_backends(self) -> list[int]:
        """The backend of every `flows` entry."""
        return [p["backend_id"] for p in self.entries("flows").values()]

    def updates_to(self, alias: str) -> list[p4r.Update]:
        with self._lock:
            return [u for batch in self.writes for u in batch if u.entity.WhichOneof("entity") == "table_entry"
                    and self.info.table_by_id(u.entity.table_entry.table_id).preamble.alias == alias]

    # ---- the switch's answers ------------------------------------------------------------------

    def _apply(self, index: int, update: p4r.Update) -> UpdateFailure | None:
        if update.entity.WhichOneof("entity") == "meter_entry":
            meter = update.entity.meter_entry
            alias = next(m.preamble.alias for m in self.info.p4info.meters if m.preamble.id == meter.meter_id)
            config = p4r.MeterConfig()
            config.CopyFrom(meter.config)
            self.meters[(alias, meter.index.index)] = config if meter.HasField("config") else None
            return None
        entry = update.entity.table_entry
        alias = self.info.table_by_id(entry.table_id).preamble.alias
        match = tuple(sorted(ent.decode_match(self.info, entry).items()))
        table = self.tables.setdefault(alias, {})
        if update.type == p4r.Update.INSERT:
            if match in table:
                return UpdateFailure(index, rpc_code.ALREADY_EXISTS, "exists")
            table[match] = _copy(entry)
        elif update.type == p4r.Update.MODIFY:
            if match not in table:
                return UpdateFailure(index, rpc_code.NOT_FOUND, "no such entry")
            table[match] = _copy(entry)
        elif update.type == p4r.Update.DELETE and table.pop(match, None) is None:
            return UpdateFailure(index, rpc_code.NOT_FOUND, "no such entry")
        return None


def _copy(entry: p4r.TableEntry) -> p4r.TableEntry:
    out = p4r.TableEntry()
    out.CopyFrom(entry)
    return out
