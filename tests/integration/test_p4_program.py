"""The P4 program compiles with p4c, and its P4Info offers what the controller relies on."""

import pytest
from finsy.proto import p4i

from controller.dataplane.constants import PROGRAM_ENUMS
from controller.p4runtime.p4info import P4InfoIndex
from topo.toolchain import build_program, find_tool

pytestmark = pytest.mark.skipif(find_tool("p4c-bm2-ss") is None,
                                reason="p4c-bm2-ss not found on PATH or under $P4_PREFIX")


@pytest.fixture(scope="module")
def info() -> P4InfoIndex:
    return P4InfoIndex.load(build_program("dispatcher").p4info)


def test_both_programs_compile():
    for name in ("dispatcher", "minimal_forward"):
        prog = build_program(name)
        assert prog.bmv2_json.stat().st_size > 0 and prog.p4info.stat().st_size > 0


def test_controller_tables_exist(info):
    for table in ("services", "vips", "capture_ports", "l2_forward", "flows", "dispatch_ring",
                  "dispatch_settings", "admission", "backends", "signalling"):
        info.table(table)


def test_flows_table_supports_idle_timeout(info):
    flows = info.table("flows")
    assert flows.idle_timeout_behavior == p4i.Table.NOTIFY_CONTROL
    assert [f.name for f in flows.match_fields] == ["src_addr", "dst_addr", "protocol", "src_port", "dst_port"]
    assert flows.size >= 65536


def test_counters_and_digest(info):
    for name, size in (("port_in", 512), ("port_out", 512), ("drops", 32), ("dispatch_events", 16),
                       ("backend_traffic", 1024)):
        assert info.counter(name).size == size
    # A statistics slot for every `flows` entry, and room for the 100,000 flows of the
    # readback benchmark.
    assert info.counter("flow_stats").size == info.table("flows").size >= 100_000
    digest = info.digest("flow_digest_t")
    assert len(digest.type_spec.struct.name) > 0
    assert {m.preamble.name for m in info.p4info.controller_packet_metadata} == {"packet_in", "packet_out"}


@pytest.mark.parametrize("enum", PROGRAM_ENUMS, ids=lambda e: e.__name__)
def test_python_enums_are_the_programs(info, enum):
    """Drop reasons, packet-in reasons and admission levels: the names and values the
    compiled program publishes in its P4Info are the controller's."""
    assert info.serializable_enum(enum.__name__) == {m.name: m.value for m in enum}


def test_sizes_the_controller_assumes(info):
    from controller.dataplane.constants import MAX_BACKENDS, MAX_RING_SIZE
    assert info.table("backends").size == MAX_BACKENDS
    assert info.table("dispatch_ring").size >= MAX_RING_SIZE
