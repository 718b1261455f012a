"""An announcement as `announced_flows` entries: ternary matches, priority, expiry, metadata.

The switch's `announced_flows` table (p4src/v1model/flow_dispatch.p4) is ternary because an
announcement usually knows one end of the flow only: an SDP offer says where media goes,
not where from; FTP's 227 names the server's port, not the client's. Each announced port is
written twice, the announced end as destination and as source: either end of a flow may be
the announced one, and a capture service sorts a flow's two ends before it looks anything
up (both directions of a connection have one key), so which one comes first is not known
until the flow exists. The other end's address is matched when the signalling names it
(`Announcement.peer`), and its port too when that is named (`peer_port`: an SDP answer is
paired with its offer), which makes the entry one flow's and no other session's.

Each entry carries, in the P4Runtime entry's `metadata` bytes (stored and returned by the
switch, never looked at by the data plane), which session it belongs to, so a controller
that takes over a running switch rebuilds its session table from the switch alone.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from controller.p4runtime.encoding import flow_address
from controller.sessions.model import TCP, UDP, Announcement, FiveTuple, Protocol

ADDRESS_MASK = (1 << 128) - 1
PORT_MASK = 0xFFFF
PRIORITY_BOTH_ENDS = 30      # both addresses and both ports: one flow, no other session's
PRIORITY_WITH_PEER = 20      # a match naming both addresses wins over one naming one
PRIORITY_ONE_END = 10
MAX_SESSION_ID = 128         # longer ids (SIP Call-IDs may be long) are kept as a digest
METADATA_VERSION = 1

Ternary = tuple[int, int]    # (value, mask); mask 0: any


def session_key(session: str) -> str:
    """A session id short enough for the switch's entry metadata, equal for equal ids."""
    if len(session) <= MAX_SESSION_ID:
        return session
    return "sha256:" + hashlib.sha256(session.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class GroupKey:
    """A session as the table groups its announced flows: protocol, signalling flow, id."""
    protocol: Protocol
    signalling: FiveTuple
    session: str            # session_key() of the id; "" when the protocol has none (FTP)


@dataclass(frozen=True)
class Match:
    """One ternary match of `announced_flows` with its priority: the entry's identity."""
    src_addr: Ternary
    dst_addr: Ternary
    protocol: int
    src_port: Ternary
    dst_port: Ternary
    priority: int

    def fields(self) -> dict[str, int | Ternary]:
        return {"src_addr": self.src_addr, "dst_addr": self.dst_addr, "protocol": self.protocol,
                "src_port": self.src_port, "dst_port": self.dst_port}

    def covers(self, key: tuple[int, int, int, int, int]) -> bool:
        """Whether a flow key (flow_key.FlowKey order) matches, as the switch would decide."""
        src, dst, protocol, sport, dport = key
        return (protocol == self.protocol and _hits(self.src_addr, src) and _hits(self.dst_addr, dst)
                and _hits(self.src_port, sport) and _hits(self.dst_port, dport))


def _hits(ternary: Ternary, value: int) -> bool:
    return value & ternary[1] == ternary[0] & ternary[1]


@dataclass(frozen=True)
class AnnouncedEntry:
    match: Match
    backend_id: int
    group: GroupKey
    endpoint: tuple[str, int]       # the announced (address, port) this entry is for
    kind: str                       # the announcement's kind (sdp-offer, pasv, ...)
    ttl_s: float                    # idle this long without a new flow matching: expired

    def metadata(self) -> bytes:
        return json.dumps({"v": METADATA_VERSION, "p": self.group.protocol, "s": list(self.group.signalling),
                           "i": self.group.session, "a": self.endpoint[0], "o": self.endpoint[1],
                           "k": self.kind, "t": self.ttl_s}, separators=(",", ":")).encode()


class BadMetadata(ValueError):
    """An `announced_flows` entry whose metadata this controller did not write."""


def entry_from_switch(match: Match, backend_id: int, metadata: bytes) -> AnnouncedEntry:
    """An entry read back from the switch (controller take-over)."""
    try:
        data = json.loads(metadata)
        if data.get("v") != METADATA_VERSION:
            raise BadMetadata(f"metadata version {data.get('v')!r}")
        src, dst, proto, sport, dport = data["s"]
        group = GroupKey(data["p"], (str(src), str(dst), int(proto), int(sport), int(dport)), str(data["i"]))
        return AnnouncedEntry(match, backend_id, group, (str(data["a"]), int(data["o"])), str(data["k"]),
                              float(data["t"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise BadMetadata(f"announced_flows entry with unreadable metadata {metadata[:80]!r}: {exc}") from None


def group_of(protocol: Protocol, signalling: FiveTuple, session: str) -> GroupKey:
    return GroupKey(protocol, signalling, session_key(session))


def entries_for(announcement: Announcement, backend_id: int, max_ttl_s: float | None = None) -> list[AnnouncedEntry]:
    """Two entries per announced port: the announced end as destination, then as source.
    They expire after the announcement's start time, at most `max_ttl_s`."""
    ttl = announcement.start_within_s if max_ttl_s is None else min(announcement.start_within_s, max_ttl_s)
    protocol = TCP if announcement.transport == "tcp" else UDP
    address = (flow_address(announcement.address), ADDRESS_MASK)
    peer = (flow_address(announcement.peer), ADDRESS_MASK) if announcement.peer else (0, 0)
    priority = PRIORITY_WITH_PEER if announcement.peer else PRIORITY_ONE_END
    group = group_of(announcement.protocol, announcement.signalling, announcement.session)
    if announcement.port_count == 0:
        # Any port of the address, from the peer only: one entry, the peer's flows towards the
        # announced end (a VIP service's keys are not sorted; capture services do not use this).
        if announcement.peer is None:
            return []
        match = Match(peer, address, protocol, (0, 0), (0, 0), PRIORITY_WITH_PEER)
        return [AnnouncedEntry(match, backend_id, group, (announcement.address, 0), announcement.kind, ttl)]
    both_ends = announcement.peer is not None and announcement.peer_port is not None
    if both_ends:
        priority = PRIORITY_BOTH_ENDS
    entries = []
    for offset in range(announcement.port_count):
        port = announcement.port + offset
        peer_port = (announcement.peer_port or 0) + offset
        if port > PORT_MASK or peer_port > PORT_MASK:
            break
        other_port = (peer_port, PORT_MASK) if both_ends else (0, 0)
        endpoint = (announcement.address, port)
        for match in (Match(peer, address, protocol, other_port, (port, PORT_MASK), priority),
                      Match(address, peer, protocol, (port, PORT_MASK), other_port, priority)):
            entries.append(AnnouncedEntry(match, backend_id, group, endpoint, announcement.kind, ttl))
    return entries
