"""P4Runtime byte encodings and entity builders, against a P4Info made here."""

import pytest
from finsy.proto import p4i, p4r

from controller.p4runtime import entities as ent
from controller.p4runtime.encoding import address_from_flow, decode_int, encode_int, flow_address, mac_to_int
from controller.p4runtime.p4info import P4InfoError, P4InfoIndex


def small_p4info() -> P4InfoIndex:
    info = p4i.P4Info()
    table = info.tables.add()
    table.preamble.id, table.preamble.name, table.preamble.alias = 1, "Ingress.c.flows", "flows"
    for i, (name, width, kind) in enumerate([("addr", 128, p4i.MatchField.EXACT),
                                             ("port", 16, p4i.MatchField.TERNARY)], start=1):
        table.match_fields.add(id=i, name=name, bitwidth=width, match_type=kind)
    action = info.actions.add()
    action.preamble.id, action.preamble.name, action.preamble.alias = 2, "Ingress.c.set_backend", "set_backend"
    action.params.add(id=1, name="backend_id", bitwidth=16)
    counter = info.counters.add()
    counter.preamble.id, counter.preamble.name, counter.preamble.alias = 3, "Ingress.drops", "drops"
    return P4InfoIndex(info)


def test_encode_int_is_canonical():
    assert encode_int(0, 16) == b"\x00"
    assert encode_int(1, 16) == b"\x01"
    assert encode_int(0x0100, 16) == b"\x01\x00"
    assert decode_int(encode_int(2**127 + 5, 128)) == 2**127 + 5
    with pytest.raises(ValueError, match="does not fit in 9 bits"):
        encode_int(512, 9)


def test_ipv4_is_mapped_and_back():
    assert flow_address("10.0.0.1") == (0xFFFF << 32) | 0x0A000001
    assert str(address_from_flow(flow_address("10.0.0.1"))) == "10.0.0.1"
    assert str(address_from_flow(flow_address("2001:db8::1"))) == "2001:db8::1"
    assert mac_to_int("00:00:00:00:01:02") == 0x0102
    with pytest.raises(ValueError, match="not a MAC"):
        mac_to_int("00:00:01:02")


def test_table_entry_by_names():
    info = small_p4info()
    entry = ent.table_entry(info, "flows", {"addr": 5, "port": (80, 0xFFFF)}, "set_backend",
                            {"backend_id": 12}, priority=3)
    assert entry.table_id == 1 and entry.priority == 3
    assert entry.match[0].exact.value == b"\x05"
    assert (entry.match[1].ternary.value, entry.match[1].ternary.mask) == (b"\x50", b"\xff\xff")
    assert entry.action.action.params[0].value == b"\x0c"
    assert ent.decode_match(info, entry) == {"addr": 5}
    assert ent.decode_action(info, entry) == ("set_backend", {"backend_id": 12})


def test_ternary_dont_care_is_left_out():
    entry = ent.table_entry(small_p4info(), "flows", {"addr": 1, "port": (0, 0)})
    assert [m.field_id for m in entry.match] == [1]


def test_bad_names_say_what_exists():
    info = small_p4info()
    with pytest.raises(P4InfoError, match="no table named 'flowz'.*flows"):
        info.table("flowz")
    with pytest.raises(P4InfoError, match="has no match field 'prt'"):
        ent.table_entry(info, "flows", {"prt": 1})
    with pytest.raises(ValueError, match="needs parameter 'backend_id'"):
        ent.action(info, "set_backend", {})
    with pytest.raises(ValueError, match="has no parameter"):
        ent.action(info, "set_backend", {"backend_id": 1, "extra": 2})


def test_counter_read_all_cells():
    entry = ent.counter_entry(small_p4info(), "drops")
    assert entry.counter_id == 3 and not entry.HasField("index")
    wrapped = ent.entity(entry)
    assert wrapped.WhichOneof("entity") == "counter_entry"
    assert ent.update("delete", entry).type == p4r.Update.DELETE
