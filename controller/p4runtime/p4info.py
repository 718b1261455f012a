"""Name -> id lookups over a P4Info, so callers speak in the P4 program's names."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from finsy.proto import p4i
from google.protobuf import text_format

T = TypeVar("T")


class P4InfoError(KeyError):
    """A name the P4Info does not have."""

    def __str__(self) -> str:  # KeyError quotes its argument; say it plainly
        return str(self.args[0])


def _by_name(items) -> dict[str, object]:
    """Index entities by full name and by alias; an alias shared by two is left out."""
    index: dict[str, object] = {}
    seen_alias: dict[str, int] = {}
    for item in items:
        index[item.preamble.name] = item
        alias = item.preamble.alias
        seen_alias[alias] = seen_alias.get(alias, 0) + 1
    for item in items:
        alias = item.preamble.alias
        if seen_alias[alias] == 1 and alias not in index:
            index[alias] = item
    return index


class P4InfoIndex:
    """Lookups of tables, actions, counters, digests and packet metadata by name."""

    def __init__(self, p4info: p4i.P4Info) -> None:
        self.p4info = p4info
        self._tables = _by_name(p4info.tables)
        self._actions = _by_name(p4info.actions)
        self._counters = _by_name(p4info.counters)
        self._meters = _by_name(p4info.meters)
        self._direct_counters = _by_name(p4info.direct_counters)
        self._digests = _by_name(p4info.digests)
        self._packet_metadata = {m.preamble.name: m for m in p4info.controller_packet_metadata}
        self._table_by_id = {t.preamble.id: t for t in p4info.tables}
        self._action_by_id = {a.preamble.id: a for a in p4info.actions}

    @classmethod
    def load(cls, path: str | Path) -> P4InfoIndex:
        """Read a P4Info file: text format (.txt, .txtpb, .pb.txt) or binary."""
        path = Path(path)
        data = path.read_bytes()
        p4info = p4i.P4Info()
        if path.suffix in (".bin", ".pb") and not path.name.endswith(".pb.txt"):
            p4info.ParseFromString(data)
        else:
            try:
                text_format.Parse(data.decode(), p4info)
            except text_format.ParseError as exc:
                raise ValueError(f"{path}: not a P4Info in text format: {exc}") from exc
        return cls(p4info)

    @staticmethod
    def _get(index: dict, kind: str, name: str):
        try:
            return index[name]
        except KeyError:
            known = sorted(n for n in index if "." not in n)
            raise P4InfoError(f"no {kind} named {name!r} in the P4Info (known: {known})") from None

    def table(self, name: str) -> p4i.Table:
        return self._get(self._tables, "table", name)

    def table_by_id(self, table_id: int) -> p4i.Table:
        return self._table_by_id[table_id]

    def action(self, name: str) -> p4i.Action:
        return self._get(self._actions, "action", name)

    def action_by_id(self, action_id: int) -> p4i.Action:
        return self._action_by_id[action_id]

    def counter(self, name: str) -> p4i.Counter:
        return self._get(self._counters, "counter", name)

    def meter(self, name: str) -> p4i.Meter:
        return self._get(self._meters, "meter", name)

    def direct_counter(self, name: str) -> p4i.DirectCounter:
        return self._get(self._direct_counters, "direct counter", name)

    def digest(self, name: str) -> p4i.Digest:
        return self._get(self._digests, "digest", name)

    def packet_metadata(self, name: str) -> p4i.ControllerPacketMetadata:
        return self._get(self._packet_metadata, "controller packet metadata", name)

    def serializable_enum(self, name: str) -> dict[str, int]:
        """A P4 serializable enum (`enum bit<W> Name {...}`) as member name -> value."""
        enums = self.p4info.type_info.serializable_enums
        if name not in enums:
            raise P4InfoError(f"no serializable enum named {name!r} in the P4Info "
                              f"(known: {sorted(enums)})")
        return {m.name: int.from_bytes(m.value, "big") for m in enums[name].members}

    @staticmethod
    def match_field(table: p4i.Table, name: str) -> p4i.MatchField:
        for field in table.match_fields:
            if field.name == name:
                return field
        known = [f.name for f in table.match_fields]
        raise P4InfoError(f"table {table.preamble.name!r} has no match field {name!r} (known: {known})")

    @staticmethod
    def action_param(action: p4i.Action, name: str) -> p4i.Action.Param:
        for param in action.params:
            if param.name == name:
                return param
        known = [p.name for p in action.params]
        raise P4InfoError(f"action {action.preamble.name!r} has no parameter {name!r} (known: {known})")
