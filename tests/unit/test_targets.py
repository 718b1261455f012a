"""Target-specific details of the controller: CPU port, port numbers, pipeline config."""

import struct

import pytest

from controller.dataplane.constants import CPU_CLONE_SESSION_ID, CPU_PORT
from controller.p4runtime.targets import (
    BMV2,
    BMV2_DIGEST_FIELDS,
    TNA_DIGEST_FIELDS,
    TOFINO,
    TOFINO2,
    merge_event_counters,
    target_named,
    tofino_device_config,
)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def test_bmv2_is_what_the_controller_always_used():
    assert BMV2.cpu_port == CPU_PORT == 255
    assert BMV2.device_port(7) == 7
    with pytest.raises(ValueError):
        BMV2.device_port(1, pipe=1)


def test_tofino_ports_are_pipe_and_port():
    assert TOFINO.cpu_port == 64 and TOFINO2.cpu_port == 0
    assert TOFINO.device_port(4, pipe=1) == 132
    with pytest.raises(ValueError):
        TOFINO.device_port(128)


def test_tofino_device_config_is_what_bf_switchd_reads():
    """p4.tmp.P4DeviceConfig with device_data = len+name, len+tofino.bin, len+context.json."""
    binary, context = b"\x01\x02" * 100, b'{"program_name": "dispatcher"}'
    config = tofino_device_config("dispatcher", binary, context)
    assert config[0] == 0x1A   # field 3 (device_data), length-delimited
    length, pos = _read_varint(config, 1)
    data = config[pos:]
    assert len(data) == length
    parts = []
    while data:
        (size,) = struct.unpack("<i", data[:4])
        parts.append(data[4:4 + size])
        data = data[4 + size:]
    assert parts == [b"dispatcher", binary, context]


def test_pipeline_files_per_target(tmp_path):
    assert BMV2.pipeline_files("dispatcher", tmp_path).device_files == (tmp_path / "dispatcher.json",)
    files = TOFINO.pipeline_files("dispatcher", tmp_path)
    assert files.p4info == tmp_path / "tna" / "tofino" / "p4info.txtpb"
    assert [p.name for p in files.device_files] == ["tofino.bin", "context.json"]


def test_digest_layouts_differ_only_by_the_two_unused_members():
    assert [f for f in BMV2_DIGEST_FIELDS if f not in TNA_DIGEST_FIELDS] == ["cache_slot", "timestamp_us"]
    assert [f for f in BMV2_DIGEST_FIELDS if f in TNA_DIGEST_FIELDS] == list(TNA_DIGEST_FIELDS)


def test_cpu_clone_session_follows_the_target():
    from controller.dataplane.dispatcher_tables import DispatcherTables

    for target in (BMV2, TOFINO):
        tables = DispatcherTables.__new__(DispatcherTables)   # cpu_clone_session reads no P4Info
        tables.target = target
        session = tables.cpu_clone_session().entity.packet_replication_engine_entry.clone_session_entry
        assert session.session_id == CPU_CLONE_SESSION_ID
        assert [r.egress_port for r in session.replicas] == [target.cpu_port]


def test_unknown_target_is_a_clear_error():
    assert target_named("tofino") is TOFINO
    with pytest.raises(ValueError, match="unknown target 'tofino3'"):
        target_named("tofino3")


def test_timers_in_the_data_planes_unit():
    assert BMV2.timer_value(1_000_000) == 1_000_000
    # TNA's coarse clock, 2^26 ns; rounded up. p4src/tna's defaults are these: (15, 8).
    assert (TOFINO.timer_value(1_000_000), TOFINO.timer_value(500_000)) == (15, 8)


def test_capture_truncation_is_a_mirror_session_on_tna_only():
    from controller.dataplane.dispatcher_tables import DispatcherTables

    tables = DispatcherTables.__new__(DispatcherTables)
    tables.target = BMV2
    assert tables.capture_truncation(5, port=3, truncate_bytes=96) == []
    tables.target = TOFINO
    assert tables.capture_truncation(5, port=3, truncate_bytes=0) == []
    (update,) = tables.capture_truncation(5, port=3, truncate_bytes=96)
    session = update.entity.packet_replication_engine_entry.clone_session_entry
    assert (session.session_id, session.packet_length_bytes) == (128 + 5, 96)
    assert [r.egress_port for r in session.replicas] == [3]


def test_event_counters_merge_into_v1models_dispatch_events():
    add = int.__add__
    # BMv2: one counter, as read.
    assert merge_event_counters(BMV2, {"dispatch_events": {3: 5, 6: 2}}, add) == {3: 5, 6: 2}
    # TNA: split by index; a repeated digest counted at 7 only, so 6 gets it added back.
    readings = {"dispatch_events": {1: 10, 3: 4}, "digest_events": {6: 4, 7: 1},
                "generation_events": {9: 2}, "entry_events": {11: 3}, "announced_events": {13: 2, 14: 1}}
    assert merge_event_counters(TOFINO, readings, add) == {1: 10, 3: 4, 6: 5, 7: 1, 9: 2, 11: 3, 13: 2, 14: 1}


def test_tofino_program_loads_bf_p4c_output(tmp_path):
    out = tmp_path / "tna" / "tofino"
    (out / "pipe").mkdir(parents=True)
    (out / "p4info.txtpb").write_text("")
    with pytest.raises(FileNotFoundError, match="tofino.bin is missing"):
        TOFINO.program("dispatcher", tmp_path)
    (out / "pipe" / "tofino.bin").write_bytes(b"\x00" * 16)
    (out / "pipe" / "context.json").write_text("{}")
    program = TOFINO.program("dispatcher", tmp_path)
    assert program.p4info == out / "p4info.txtpb"
    assert program.device_config() == tofino_device_config("dispatcher", b"\x00" * 16, b"{}")
    assert program.label == "tofino/tofino.bin" and program.cookie() > 0


def test_the_switch_config_names_the_target():
    from controller.config import Switch

    assert Switch().target == "bmv2"
    assert target_named(Switch(target="tofino2").target) is TOFINO2
