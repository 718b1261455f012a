"""The data-plane contract in Python: the values p4src/shared/ defines, in one place.

tests/unit/test_dataplane_constants.py keeps them equal to the P4 sources, and
tests/integration/test_p4_program.py to the compiled program's P4Info. Table sizes the controller needs
at run time (flows, flow_stats, dispatch_ring, backends) are read from P4Info, not from here.
"""

from enum import IntEnum

CPU_PORT = 255
CPU_CLONE_SESSION_ID = 100
IP_PROTO_TCP = 6
IP_PROTO_UDP = 17
MAX_RING_SIZE = 1 << 16          # the ring index is 16 bits of the flow hash
# IPv4 addresses sit in 128-bit flow keys as IPv4-mapped IPv6 (::ffff:a.b.c.d).
IPV4_MAPPED_PREFIX = 0xFFFF << 32
# Backend ids are bit<16> on the wire, but the `backends` table holds BACKENDS_TABLE_SIZE
# (p4src/shared/sizes.p4); the top id is the reactive mode's punt pseudo-backend.
MAX_BACKENDS = 1024
REACTIVE_BACKEND_ID = MAX_BACKENDS - 1
MAX_BACKEND_ID = REACTIVE_BACKEND_ID - 1
# p4src/shared/sizes.p4: the flow cache (docs/consistency.md) and the global ring space.
FLOW_CACHE_SETS = 65536
FLOW_CACHE_WAYS = 4
DISPATCH_RING_TABLE_SIZE = 65536     # ring entries summed over all services


# The serializable enums of p4src/shared/constants.p4, by the same names; the program's
# P4Info carries them and tests/integration/test_p4_program.py checks these against it.

class PacketInReason(IntEnum):
    """Why a packet came to the controller (the packet-in header's `reason`)."""
    NONE = 0
    SIGNALLING = 1
    REACTIVE = 2        # reactive mode: a new flow's packet, undecided
    DROPPED = 3         # a copy of a dropped packet (drop_copies table), its reason in drop_reason


class AdmissionLevel(IntEnum):
    """SARA SA2C levels, mildest first."""
    ADMIT_ALL = 0
    DROP_NEW_PROB = 1
    ESTABLISHED_ONLY = 2
    DEGRADE_ESTABLISHED = 3
    REJECT_ALL = 4


class DropReason(IntEnum):
    """Index into the `drops` counter."""
    NONE = 0
    PARSER_TRUNCATED = 1
    PARSER_OTHER = 2
    IPV4_BAD_VERSION = 3
    IPV4_BAD_IHL = 4
    IPV4_BAD_TOTAL_LEN = 5
    IPV4_BAD_CHECKSUM = 6
    IP_TRUNCATED = 7
    IPV6_BAD_VERSION = 8
    TCP_BAD_OFFSET = 9
    UDP_BAD_LENGTH = 10
    VIP_PORT_UNCONFIGURED = 11
    VIP_FRAGMENT = 12
    ADMISSION_NEW = 13
    ADMISSION_ESTABLISHED = 14
    NO_BACKEND = 15
    L2_MISS = 16


class DispatchEvent(IntEnum):
    """Index into the `dispatch_events` counter."""
    EVENT_FLOW_TABLE_HIT = 1
    EVENT_CACHE_HIT = 2
    EVENT_NEW_FLOW = 3
    EVENT_CACHE_COLLISION = 4
    EVENT_STATELESS = 5
    EVENT_DIGEST = 6
    EVENT_DIGEST_RETRY = 7
    EVENT_BAD_CHECKSUM_CAPTURED = 8
    EVENT_GENERATION_HELD = 9
    EVENT_GENERATION_APPLIED = 10
    EVENT_ENTRY_ACTIVATED = 11
    EVENT_ENTRY_STALE = 12
    EVENT_ANNOUNCED_HIT = 13
    EVENT_ANNOUNCED_UNUSED = 14
    EVENT_ENTRY_EXPIRED = 15


class DigestFlag(IntEnum):
    DIGEST_FLAG_RETRY = 0x01
    DIGEST_FLAG_COLLISION = 0x02
    DIGEST_FLAG_RTT_VALID = 0x04
    DIGEST_FLAG_SYMMETRIC = 0x08
    DIGEST_FLAG_STALE_ENTRY = 0x10
    DIGEST_FLAG_ANNOUNCED = 0x20
    DIGEST_FLAG_ACTIVATED = 0x40


# A `flows` entry id with this bit asks the switch for an ACTIVATED digest at the entry's
# activation (p4src/shared/constants.p4): several switches' home entries carry it, so that
# replicas are written once the home has taken the entry over (docs/multiswitch.md, rule 3).
# Ids count up from 1 and never reach it; a single switch's entries never carry it.
ENTRY_ID_REPORT_ACTIVATION = 1 << 47


# The enums the compiled program publishes in P4Info (checked at start by check_enums).
PROGRAM_ENUMS: tuple[type[IntEnum], ...] = (PacketInReason, AdmissionLevel, DropReason)
