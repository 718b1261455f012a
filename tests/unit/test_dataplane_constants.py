"""The controller's plain constants match p4src/shared/constants.p4 (the serializable enums
are checked against the compiled program's P4Info in tests/integration/test_p4_program.py)."""

import re
from pathlib import Path

from controller.dataplane import constants as py

P4_CONSTANTS = Path(__file__).resolve().parents[2] / "p4src" / "shared" / "constants.p4"


def p4_constants() -> dict[str, int]:
    pattern = re.compile(r"^const\s+bit<\d+>\s+(\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)\s*;", re.M)
    return {name: int(value, 0) for name, value in pattern.findall(P4_CONSTANTS.read_text())}


def test_enums_match_p4():
    p4 = p4_constants()
    for enum in (py.DispatchEvent, py.DigestFlag):
        for member in enum:
            assert p4[member.name] == member.value, f"{enum.__name__}.{member.name}"


def test_scalars_match_p4():
    p4 = p4_constants()
    assert p4["CPU_PORT"] == py.CPU_PORT
    assert p4["CPU_CLONE_SESSION_ID"] == py.CPU_CLONE_SESSION_ID
    assert p4["IP_PROTO_TCP"] == py.IP_PROTO_TCP and p4["IP_PROTO_UDP"] == py.IP_PROTO_UDP
    assert p4["IPV4_MAPPED_PREFIX"] << 32 == py.IPV4_MAPPED_PREFIX


def test_sizes_match_p4():
    text = (P4_CONSTANTS.parent / "sizes.p4").read_text()
    defines = {name: int(value) for name, value in re.findall(r"^#define\s+(\w+)\s+(\d+)\b", text, re.M)}
    assert defines["FLOW_CACHE_SETS"] == py.FLOW_CACHE_SETS
    assert defines["FLOW_CACHE_WAYS"] == py.FLOW_CACHE_WAYS
    assert defines["DISPATCH_RING_TABLE_SIZE"] == py.DISPATCH_RING_TABLE_SIZE
    assert defines["BACKENDS_TABLE_SIZE"] == py.MAX_BACKENDS
