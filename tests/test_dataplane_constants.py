"""The controller's mirror of the P4 constants matches p4src/shared/constants.p4."""

import re
from pathlib import Path

from controller.dataplane import constants as py

P4_CONSTANTS = Path(__file__).resolve().parent.parent / "p4src" / "shared" / "constants.p4"


def p4_constants() -> dict[str, int]:
    pattern = re.compile(r"^const\s+bit<\d+>\s+(\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)\s*;", re.M)
    return {name: int(value, 0) for name, value in pattern.findall(P4_CONSTANTS.read_text())}


def test_enums_match_p4():
    p4 = p4_constants()
    for enum in (py.AdmissionLevel, py.DropReason, py.DispatchEvent, py.DigestFlag):
        for member in enum:
            assert p4[member.name] == member.value, f"{enum.__name__}.{member.name}"


def test_every_drop_reason_is_mirrored():
    p4_drops = {n for n in p4_constants() if n.startswith("DROP_") and n != "DROP_REASON_COUNT"}
    assert p4_drops == {m.name for m in py.DropReason}


def test_scalars_match_p4():
    p4 = p4_constants()
    assert p4["CPU_PORT"] == py.CPU_PORT
    assert p4["CPU_CLONE_SESSION_ID"] == py.CPU_CLONE_SESSION_ID
    assert p4["PACKET_IN_REASON_SIGNALLING"] == py.PacketInReason.SIGNALLING
    assert p4["PACKET_IN_REASON_REACTIVE"] == py.PacketInReason.REACTIVE
