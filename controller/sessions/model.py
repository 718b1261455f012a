"""What the signalling parsers produce: announced flows, session ends, limits and error counts.

A session (SARA) is a signalling flow plus the flows it announces before they start. The
parsers turn signalling payloads into `Announcement`s (an endpoint a media or data flow will
go to) and `SessionEnd`s (BYE, CANCEL, TEARDOWN, QUIT, the control connection closing); the
controller's session table (issue 13, items 2-4) keys announced flows by `Announcement.key`
and sends them to the backend of `Announcement.signalling`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

Protocol = Literal["sip", "rtsp", "ftp"]
Transport = Literal["udp", "tcp"]
Side = Literal["initiator", "responder"]

# (source address, destination address, IP protocol, source port, destination port), the
# order of controller.dataplane.flow_key.FlowKey but with addresses as text. A signalling
# flow is oriented from its initiator (the TCP client, the first sender of a UDP flow).
FiveTuple = tuple[str, str, int, int, int]

TCP, UDP = 6, 17


def flow_ends(flow: FiveTuple) -> tuple:
    """A flow's protocol and two ends in one order, whichever way it is written."""
    src, dst, protocol, sport, dport = flow
    return (protocol, *sorted(((src, sport), (dst, dport))))


@dataclass(frozen=True)
class Limits:
    """Hard bounds: nothing a peer sends makes the tracker keep more than these."""

    max_message: int = 65_536          # one SIP/RTSP message, head and body
    max_head: int = 16_384             # start line and headers of one SIP/RTSP message
    max_headers: int = 128             # header lines of one SIP/RTSP message
    max_line: int = 2_048              # one FTP command or reply line
    max_stream_buffer: int = 131_072   # unparsed bytes held per direction of a TCP flow
    max_out_of_order: int = 65_536     # bytes of out-of-order TCP segments held per direction
    max_media: int = 32                # m= lines (SDP) or transport specs (RTSP) used per message
    max_flows: int = 4_096             # signalling flows tracked at once (oldest dropped first)
    max_pending: int = 64              # RTSP requests awaiting a reply, per flow
    max_calls: int = 4_096             # SIP Call-IDs remembered (for ends and rejections)


@dataclass(frozen=True)
class Announcement:
    """A flow announced by signalling: it will go to `address`:`port` (and the next
    `port_count` - 1 ports: RTCP beside RTP, an RTSP port pair). `port_count` 0: to any
    port of `address`, from `peer` (an FTP control connection's data connections, for a
    switch that never sees the server's replies)."""

    protocol: Protocol
    signalling: FiveTuple
    session: str          # SIP Call-ID, RTSP Session (empty before the reply names it), FTP: ""
    address: str          # the announced endpoint (where the announced flow is sent)
    port: int
    transport: Transport
    announcer: Side       # which end of the signalling flow announced it
    kind: str             # sdp-offer/sdp-answer (sip), client_port/server_port/port (rtsp),
                          # port/eprt/pasv/epsv/control (ftp)
    peer: str | None      # the address expected at the other end of the announced flow, if known
    port_count: int = 1
    media: str = ""       # audio, video, ... (SDP m=), "data" (FTP)
    start_within_s: float = 60.0   # expiry hint: drop the announced entry if no packet comes by then
    time: float = 0.0
    peer_port: int | None = None   # the other end's port, when the signalling names it (an SDP answer)

    @property
    def key(self) -> tuple[str, str, int, str]:
        """What a session table keys the announced flow by."""
        return (self.protocol, self.address, self.port, self.transport)

    def as_json(self) -> dict[str, object]:
        return {"protocol": self.protocol, "signalling": list(self.signalling), "session": self.session,
                "address": self.address, "port": self.port, "port_count": self.port_count,
                "transport": self.transport, "announcer": self.announcer, "kind": self.kind,
                "peer": self.peer, "media": self.media, "start_within_s": self.start_within_s,
                "time": self.time, "peer_port": self.peer_port}


@dataclass(frozen=True)
class SessionEnd:
    """The session's announced flows can go: BYE/CANCEL/rejection, TEARDOWN, QUIT or close."""

    protocol: Protocol
    signalling: FiveTuple
    session: str          # "" for the whole signalling flow (control close, FTP)
    reason: str
    time: float = 0.0


Event = Announcement | SessionEnd


@dataclass
class ParseStats:
    """Counts by kind: `errors` (malformed or over a limit; never raised), `notes` (parsed
    messages and things worth knowing, e.g. RTSP interleaved transport)."""

    errors: Counter[str] = field(default_factory=Counter)
    notes: Counter[str] = field(default_factory=Counter)

    def error(self, kind: str, n: int = 1) -> None:
        self.errors[kind] += n

    def note(self, kind: str, n: int = 1) -> None:
        self.notes[kind] += n
