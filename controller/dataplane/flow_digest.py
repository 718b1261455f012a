"""The new-flow digest (flow_digest_t in p4src/shared/metadata.p4), decoded.

Both targets' layouts decode: BMv2's flow_digest_t and the TNA program's
tna_flow_digest_t, which leaves out cache_slot and timestamp_us (a Tofino learning
quantum holds 48 bytes; controller/p4runtime/targets.py)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from finsy.proto import p4r

from controller.dataplane.constants import DigestFlag
from controller.p4runtime.encoding import address_from_flow
from controller.p4runtime.targets import BMV2_DIGEST_FIELDS, TNA_DIGEST_FIELDS

# Member order of flow_digest_t: the digest's P4Data struct lists them in this order.
FIELDS = BMV2_DIGEST_FIELDS
NO_CACHE_SLOT = 0xFFFFFFFF   # p4src/shared/constants.p4: the flow has no cache way


@dataclass(frozen=True)
class FlowDigest:
    src_addr: int       # 128-bit flow-key form (IPv4-mapped)
    dst_addr: int
    protocol: int
    src_port: int
    dst_port: int
    service_id: int
    backend_id: int
    cache_slot: int
    timestamp_us: int
    tcp_flags: int
    rtt_us: int
    flags: int

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        """The `flows` table match, in its field order."""
        return (self.src_addr, self.dst_addr, self.protocol, self.src_port, self.dst_port)

    @property
    def src_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return address_from_flow(self.src_addr)

    @property
    def dst_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return address_from_flow(self.dst_addr)

    @property
    def rtt_valid(self) -> bool:
        return bool(self.flags & DigestFlag.DIGEST_FLAG_RTT_VALID)

    @property
    def is_retry(self) -> bool:
        return bool(self.flags & DigestFlag.DIGEST_FLAG_RETRY)

    @property
    def is_collision(self) -> bool:
        return bool(self.flags & DigestFlag.DIGEST_FLAG_COLLISION)

    @property
    def is_stale_entry(self) -> bool:
        """The key's `flows` entry names another backend than this (newer) flow has."""
        return bool(self.flags & DigestFlag.DIGEST_FLAG_STALE_ENTRY)

    @property
    def is_activated(self) -> bool:
        """The switch took this key's `flows` entry over just now (an entry whose id asked for
        it: ENTRY_ID_REPORT_ACTIVATION); sent once per entry, besides the flow's digests."""
        return bool(self.flags & DigestFlag.DIGEST_FLAG_ACTIVATED)

    @property
    def is_announced(self) -> bool:
        """The flow's backend came from `announced_flows`: a session's signalling named it."""
        return bool(self.flags & DigestFlag.DIGEST_FLAG_ANNOUNCED)


class MalformedDigest(ValueError):
    """A digest whose data does not have flow_digest_t's shape."""


def decode_digest_list(digest_list: p4r.DigestList) -> list[FlowDigest]:
    flows = []
    for data in digest_list.data:
        raw = [m.bitstring for m in data.struct.members]
        # A bitstring is never empty (0 is one zero byte): an empty one is another kind of
        # member or none. (Checked this way, not with HasField: this runs 10,000 times a second.)
        if len(raw) not in (len(FIELDS), len(TNA_DIGEST_FIELDS)) or not all(raw):
            raise MalformedDigest(
                f"digest {digest_list.digest_id} list {digest_list.list_id}: expected "
                f"{len(FIELDS)} (BMv2) or {len(TNA_DIGEST_FIELDS)} (TNA) bitstring members, "
                f"got {len(raw)} members ({sum(1 for r in raw if r)} bitstrings)")
        values = [int.from_bytes(r, "big") for r in raw]
        if len(raw) == len(TNA_DIGEST_FIELDS):
            # TNA: no cache way number and no timestamp on the wire.
            values[7:7] = [NO_CACHE_SLOT, 0]
        flows.append(FlowDigest(*values))
    return flows
