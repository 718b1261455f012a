"""Builders for P4Runtime entities, by the P4 program's names, and their decoders."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

from finsy.proto import p4r

from controller.p4runtime.encoding import decode_int, encode_int
from controller.p4runtime.p4info import P4InfoIndex

# A match value: exact -> int; ternary -> (value, mask); lpm -> Lpm; range -> Range.
MatchValue = Union[int, tuple[int, int], "Lpm", "Range"]


@dataclass(frozen=True)
class Lpm:
    value: int
    prefix_len: int


@dataclass(frozen=True)
class Range:
    low: int
    high: int       # inclusive


def _field_match(info: P4InfoIndex, table, name: str, value: MatchValue) -> p4r.FieldMatch | None:
    field = info.match_field(table, name)
    width = field.bitwidth
    kind = field.match_type
    fm = p4r.FieldMatch(field_id=field.id)
    if kind == field.EXACT:
        if isinstance(value, (tuple, Lpm, Range)):
            raise _mismatch(table, name, "an exact", value)
        fm.exact.value = encode_int(int(value), width)
    elif kind == field.TERNARY:
        if isinstance(value, (Lpm, Range)):
            raise _mismatch(table, name, "a ternary", value)
        val, mask = value if isinstance(value, tuple) else (value, (1 << width) - 1)
        if mask == 0:
            return None  # don't care: P4Runtime wants the field left out
        fm.ternary.value = encode_int(val & mask, width)
        fm.ternary.mask = encode_int(mask, width)
    elif kind == field.LPM:
        if isinstance(value, (tuple, Range)):
            raise _mismatch(table, name, "an LPM", value)
        lpm = value if isinstance(value, Lpm) else Lpm(int(value), width)
        if lpm.prefix_len == 0:
            return None
        fm.lpm.value = encode_int(lpm.value, width)
        fm.lpm.prefix_len = lpm.prefix_len
    elif kind == field.RANGE:
        if not isinstance(value, Range):
            raise _mismatch(table, name, "a range", value)
        if value.low == 0 and value.high == (1 << width) - 1:
            return None  # the whole range: left out, as for a don't-care ternary
        fm.range.low = encode_int(value.low, width)
        fm.range.high = encode_int(value.high, width)
    else:
        raise ValueError(f"match kind {kind} of {table.preamble.name}.{name} is not supported")
    return fm


def _mismatch(table, name: str, kind: str, value: MatchValue) -> TypeError:
    # int() or & would fail on it anyway; say which field and why.
    return TypeError(f"{table.preamble.name}.{name} is {kind} match, {value!r} is not a value for it")


def action(info: P4InfoIndex, name: str, params: Mapping[str, int] | None = None) -> p4r.Action:
    act = info.action(name)
    params = dict(params or {})
    msg = p4r.Action(action_id=act.preamble.id)
    for param in act.params:
        if param.name not in params:
            raise ValueError(f"action {name!r} needs parameter {param.name!r}")
        msg.params.add(param_id=param.id, value=encode_int(int(params.pop(param.name)), param.bitwidth))
    if params:
        raise ValueError(f"action {name!r} has no parameter(s) {sorted(params)}")
    return msg


def table_entry(
    info: P4InfoIndex,
    table: str,
    match: Mapping[str, MatchValue] | None = None,
    action_name: str | None = None,
    params: Mapping[str, int] | None = None,
    *,
    priority: int = 0,
    idle_timeout_ns: int = 0,
    is_default: bool = False,
) -> p4r.TableEntry:
    tbl = info.table(table)
    entry = p4r.TableEntry(table_id=tbl.preamble.id, priority=priority,
                           idle_timeout_ns=idle_timeout_ns, is_default_action=is_default)
    for name, value in (match or {}).items():
        fm = _field_match(info, tbl, name, value)
        if fm is not None:
            entry.match.append(fm)
    if action_name is not None:
        entry.action.action.CopyFrom(action(info, action_name, params))
    return entry


def counter_entry(info: P4InfoIndex, counter: str, index: int | None = None) -> p4r.CounterEntry:
    """One cell, or (index None) every cell of an indexed counter in one read."""
    entry = p4r.CounterEntry(counter_id=info.counter(counter).preamble.id)
    if index is not None:
        entry.index.index = index
    return entry


def meter_entry(info: P4InfoIndex, meter: str, index: int, rate: float | None = None,
                burst: int = 1) -> p4r.MeterEntry:
    """One cell of an indexed meter as a single-rate bucket (committed = peak: `rate` units/s,
    `burst` units); rate None: the cell's default configuration (every packet GREEN)."""
    entry = p4r.MeterEntry(meter_id=info.meter(meter).preamble.id)
    entry.index.index = index
    if rate is not None:
        units = max(1, round(rate))
        entry.config.cir, entry.config.cburst = units, burst
        entry.config.pir, entry.config.pburst = units, burst
    return entry


def direct_counter_entry(info: P4InfoIndex, table: str) -> p4r.DirectCounterEntry:
    """Every entry's direct counter of a table, in one read."""
    entry = p4r.DirectCounterEntry()
    entry.table_entry.table_id = info.table(table).preamble.id
    return entry


def digest_entry(info: P4InfoIndex, digest: str, *, max_timeout_ns: int = 0,
                 max_list_size: int = 1, ack_timeout_ns: int = 1_000_000_000) -> p4r.DigestEntry:
    entry = p4r.DigestEntry(digest_id=info.digest(digest).preamble.id)
    entry.config.max_timeout_ns = max_timeout_ns
    entry.config.max_list_size = max_list_size
    entry.config.ack_timeout_ns = ack_timeout_ns
    return entry


def clone_session_entry(session_id: int, ports: list[int]) -> p4r.PacketReplicationEngineEntry:
    pre = p4r.PacketReplicationEngineEntry()
    pre.clone_session_entry.session_id = session_id
    for instance, port in enumerate(ports):
        pre.clone_session_entry.replicas.add(egress_port=port, instance=instance)
    return pre


def multicast_group_entry(group_id: int, ports: list[int]) -> p4r.PacketReplicationEngineEntry:
    pre = p4r.PacketReplicationEngineEntry()
    pre.multicast_group_entry.multicast_group_id = group_id
    for port in ports:
        pre.multicast_group_entry.replicas.add(egress_port=port, instance=0)
    return pre


def entity(message) -> p4r.Entity:
    """Wrap a TableEntry, CounterEntry, ... in an Entity."""
    field = {
        p4r.TableEntry: "table_entry",
        p4r.CounterEntry: "counter_entry",
        p4r.DirectCounterEntry: "direct_counter_entry",
        p4r.MeterEntry: "meter_entry",
        p4r.DigestEntry: "digest_entry",
        p4r.PacketReplicationEngineEntry: "packet_replication_engine_entry",
    }[type(message)]
    ent = p4r.Entity()
    getattr(ent, field).CopyFrom(message)
    return ent


UPDATE_TYPES = {"insert": p4r.Update.INSERT, "modify": p4r.Update.MODIFY, "delete": p4r.Update.DELETE}


def update(kind: str, message) -> p4r.Update:
    """kind: 'insert', 'modify' or 'delete'."""
    return p4r.Update(type=UPDATE_TYPES[kind], entity=entity(message))


def decode_match(info: P4InfoIndex, entry: p4r.TableEntry) -> dict[str, int]:
    """Exact match fields of a read-back entry, by name."""
    table = info.table_by_id(entry.table_id)
    names = {f.id: f.name for f in table.match_fields}
    return {names[fm.field_id]: decode_int(fm.exact.value) for fm in entry.match if fm.HasField("exact")}


def decode_ternary(info: P4InfoIndex, entry: p4r.TableEntry) -> dict[str, tuple[int, int]]:
    """Every match field of a read-back entry as (value, mask), by name: exact ones with a
    full mask, ternary ones as written, fields left out (don't care) as (0, 0)."""
    table = info.table_by_id(entry.table_id)
    fields = {f.id: f for f in table.match_fields}
    decoded = {f.name: (0, 0) for f in table.match_fields}
    for fm in entry.match:
        field = fields[fm.field_id]
        if fm.HasField("exact"):
            decoded[field.name] = (decode_int(fm.exact.value), (1 << field.bitwidth) - 1)
        elif fm.HasField("ternary"):
            decoded[field.name] = (decode_int(fm.ternary.value), decode_int(fm.ternary.mask))
    return decoded


def decode_action(info: P4InfoIndex, entry: p4r.TableEntry) -> tuple[str, dict[str, int]]:
    act = info.action_by_id(entry.action.action.action_id)
    names = {p.id: p.name for p in act.params}
    return act.preamble.alias, {names[p.param_id]: decode_int(p.value) for p in entry.action.action.params}
