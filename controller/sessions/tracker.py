"""Per-flow tracking of signalling: payloads in, announced flows and session ends out.

`SessionTracker.feed` takes every packet of a signalling flow (both directions; for TCP
with its sequence number and flags), reassembles TCP, frames and parses the messages and
returns the `Announcement`s and `SessionEnd`s they carry. The same object serves the
capture-analysis command (controller/sessions/capture.py) and, later, the controller's
packet-in path (issue 13, items 2-4). Memory is bounded by `Limits`; bad input is counted
in `stats`, never raised.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from controller.sessions.framing import MessageFramer
from controller.sessions.ftp import LineSplitter, parse_227, parse_229, parse_eprt, parse_port
from controller.sessions.model import (
    TCP,
    UDP,
    Announcement,
    Event,
    FiveTuple,
    Limits,
    ParseStats,
    Protocol,
    SessionEnd,
    Side,
)
from controller.sessions.rtsp import RtspMessage, parse_rtsp
from controller.sessions.sip import SdpMedia, SipMessage, parse_sip
from controller.sessions.tcp import TcpReassembler

DEFAULT_PORTS: dict[Protocol, tuple[int, ...]] = {"sip": (5060,), "rtsp": (554, 8554), "ftp": (21,)}
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

# How long an announced entry waits for its first packet (a hint for the session table).
START_WITHIN_S = {"sdp-offer": 180.0, "sdp-answer": 60.0, "rtsp": 60.0, "ftp": 30.0,
                  "ftp-control": 600.0}   # idle between transfers; capped by start_within_max_s


@dataclass
class _Direction:
    reassembler: TcpReassembler | None
    framer: MessageFramer | None
    lines: LineSplitter | None


@dataclass
class _Flow:
    protocol: Protocol
    signalling: FiveTuple
    directions: dict[Side, _Direction]
    rtsp_pending: OrderedDict[str, str] = field(default_factory=OrderedDict)
    rtsp_session: str = ""
    last_seen: float = 0.0


@dataclass
class _Call:
    answered: bool = False                                   # a 2xx to an INVITE seen
    offer: list[SdpMedia] = field(default_factory=list)     # the last request's SDP media


class SessionTracker:
    def __init__(self, ports: Mapping[Protocol, Iterable[int]] | None = None, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.stats = ParseStats()
        self.port_protocol: dict[int, Protocol] = {}
        for protocol, numbers in (DEFAULT_PORTS if ports is None else ports).items():
            for port in numbers:
                self.port_protocol[int(port)] = protocol
        self.flows: OrderedDict[tuple, _Flow] = OrderedDict()
        self.calls: OrderedDict[str, _Call] = OrderedDict()    # by SIP Call-ID

    # ---- packets in ---------------------------------------------------------------------

    def protocol_of(self, protocol: int, sport: int, dport: int) -> Protocol | None:
        if protocol not in (TCP, UDP):
            return None
        found = self.port_protocol.get(dport) or self.port_protocol.get(sport)
        if found == "ftp" and protocol != TCP:
            return None
        return found

    def feed(self, time: float, src: str, dst: str, protocol: int, sport: int, dport: int, payload: bytes,
             seq: int | None = None, flags: int = 0) -> list[Event]:
        """The events one packet of a signalling flow brings (empty for other traffic)."""
        kind = self.protocol_of(protocol, sport, dport)
        if kind is None:
            return []
        events_at_start: list[Event] = []
        key = (protocol, *sorted(((src, sport), (dst, dport))))
        flow = self.flows.get(key)
        if flow is None:
            if protocol == TCP and not payload and not flags & TCP_SYN:
                return []        # a lone ACK/FIN/RST of a flow we never saw: nothing to track
            flow = self._new_flow(kind, src, dst, protocol, sport, dport, flags)
            self.flows[key] = flow
            if len(self.flows) > self.limits.max_flows:
                self.stats.error("flows_limit")
                self.flows.popitem(last=False)
            if kind == "ftp":
                events_at_start = [self._ftp_control(flow, time)]
        flow.last_seen = time
        side: Side = "initiator" if (src, sport) == (flow.signalling[0], flow.signalling[3]) else "responder"
        events: list[Event] = events_at_start
        direction = flow.directions[side]
        if direction.reassembler is not None and seq is not None:
            data, gap = direction.reassembler.feed(seq, payload, syn=bool(flags & TCP_SYN))
            if gap:
                self._reset(direction)
        else:
            data = payload
        if data:
            events += self._data(flow, side, data, time, datagram=protocol == UDP)
        if protocol == TCP and flags & (TCP_FIN | TCP_RST):
            events.append(SessionEnd(flow.protocol, flow.signalling, "", "close", time))
            del self.flows[key]
        return events

    def expire(self, now: float, idle_s: float) -> list[SessionEnd]:
        """Forget signalling flows idle for idle_s seconds (a UDP flow has no close)."""
        ends: list[SessionEnd] = []
        for key, flow in list(self.flows.items()):
            if now - flow.last_seen >= idle_s:
                ends.append(SessionEnd(flow.protocol, flow.signalling, "", "idle", now))
                del self.flows[key]
        return ends

    def _new_flow(self, kind: Protocol, src: str, dst: str, protocol: int, sport: int, dport: int,
                  flags: int) -> _Flow:
        reverse = False
        if protocol == TCP and flags & TCP_SYN:
            reverse = bool(flags & TCP_ACK)                     # SYN-ACK: the receiver initiated
        elif self.port_protocol.get(dport) != kind and self.port_protocol.get(sport) == kind:
            reverse = True                                      # from the service port: a reply
        if reverse:
            src, dst, sport, dport = dst, src, dport, sport

        def direction() -> _Direction:
            reassembler = TcpReassembler(self.limits, self.stats) if protocol == TCP else None
            if kind == "ftp":
                return _Direction(reassembler, None, LineSplitter(self.limits, self.stats))
            return _Direction(reassembler, MessageFramer(kind, self.limits, self.stats, interleaved=kind == "rtsp"),
                              None)

        return _Flow(kind, (src, dst, protocol, sport, dport), {"initiator": direction(), "responder": direction()})

    @staticmethod
    def _reset(direction: _Direction) -> None:
        if direction.framer is not None:
            direction.framer.reset()
        if direction.lines is not None:
            direction.lines.reset()

    def _data(self, flow: _Flow, side: Side, data: bytes, time: float, datagram: bool) -> list[Event]:
        direction = flow.directions[side]
        events: list[Event] = []
        if direction.lines is not None:
            for line in direction.lines.feed(data):
                events += self._ftp(flow, side, line, time)
            return events
        assert direction.framer is not None
        messages = direction.framer.datagram(data) if datagram else direction.framer.feed(data)
        for head, body in messages:
            if flow.protocol == "sip":
                sip = parse_sip(head, body, self.limits, self.stats)
                if sip is not None:
                    events += self._sip(flow, side, sip, time)
            else:
                rtsp = parse_rtsp(head, self.limits, self.stats)
                if rtsp is not None:
                    events += self._rtsp(flow, side, rtsp, time)
        return events

    # ---- the protocols ---------------------------------------------------------------------

    @staticmethod
    def _ends(flow: _Flow, side: Side) -> tuple[str, str]:
        """(address of the sender, address of the receiver) of a message from `side`."""
        src, dst = flow.signalling[0], flow.signalling[1]
        return (src, dst) if side == "initiator" else (dst, src)

    def _call(self, call_id: str) -> _Call:
        call = self.calls.setdefault(call_id, _Call())
        self.calls.move_to_end(call_id)
        if len(self.calls) > self.limits.max_calls:
            self.calls.popitem(last=False)
        return call

    def _sip(self, flow: _Flow, side: Side, message: SipMessage, time: float) -> list[Event]:
        events: list[Event] = []
        offer = message.method is not None
        kind = "sdp-offer" if offer else "sdp-answer"
        known = self.calls.get(message.call_id)
        for i, m in enumerate(message.media):
            # An answer's m-line i answers the offer's m-line i (RFC 3264): its media flow is
            # between those two ends, so it is announced with both, which no other call shares.
            paired = known.offer[i] if known and not offer and i < len(known.offer) else None
            if paired is not None and paired.transport == m.transport:
                events.append(Announcement("sip", flow.signalling, message.call_id, m.address, m.port, m.transport,
                                           side, kind, paired.address, min(m.port_count, paired.port_count),
                                           m.media, START_WITHIN_S[kind], time, peer_port=paired.port))
            else:
                events.append(Announcement("sip", flow.signalling, message.call_id, m.address, m.port, m.transport,
                                           side, kind, None, m.port_count, m.media, START_WITHIN_S[kind], time))
        if message.method in ("BYE", "CANCEL"):
            events.append(SessionEnd("sip", flow.signalling, message.call_id, message.method.lower(), time))
            self.calls.pop(message.call_id, None)
            return events
        if offer and message.media:
            self._call(message.call_id).offer = message.media
        if message.method == "INVITE":
            self._call(message.call_id)
        elif message.status is not None and message.cseq_method == "INVITE":
            if 200 <= message.status < 300:
                self._call(message.call_id).answered = True
            elif message.status >= 300 and known is not None and not known.answered:
                # The first INVITE failed: its offer will never flow. A failed re-INVITE keeps the call.
                events.append(SessionEnd("sip", flow.signalling, message.call_id, "rejected", time))
                del self.calls[message.call_id]
        return events

    def _rtsp(self, flow: _Flow, side: Side, message: RtspMessage, time: float) -> list[Event]:
        sender, receiver = self._ends(flow, side)
        if message.session:
            flow.rtsp_session = message.session
        session = message.session or flow.rtsp_session
        events: list[Event] = []
        if message.method is not None:
            flow.rtsp_pending[message.cseq] = message.method
            if len(flow.rtsp_pending) > self.limits.max_pending:
                flow.rtsp_pending.popitem(last=False)
            if message.method == "TEARDOWN":
                return [SessionEnd("rtsp", flow.signalling, session, "teardown", time)]
            if message.method != "SETUP":
                return []
            client, server, reply = sender, receiver, False
        else:
            method = flow.rtsp_pending.pop(message.cseq, None)
            if method != "SETUP" or message.status is None or not 200 <= message.status < 300:
                return []
            client, server, reply = receiver, sender, True
        expiry = message.timeout if message.timeout else START_WITHIN_S["rtsp"]
        other: Side = "responder" if side == "initiator" else "initiator"
        client_side, server_side = (other, side) if reply else (side, other)
        for t in message.transports:
            if t.interleaved:
                self.stats.note("rtsp_interleaved")   # the media rides in the RTSP connection itself
                continue
            client_address = t.destination or client
            server_address = t.source or server
            found: list[tuple[str, tuple[int, int], str, str, Side]] = []
            if t.client_port:
                found.append((client_address, t.client_port, server_address, "client_port", client_side))
            if t.server_port and reply:
                found.append((server_address, t.server_port, client_address, "server_port", server_side))
            if t.port and t.destination:
                found.append((t.destination, t.port, server_address, "port", server_side))
            for address, (low, high), peer, kind, announcer in found:
                events.append(Announcement("rtsp", flow.signalling, session, address, low, t.lower, announcer, kind,
                                           peer, high - low + 1, "", expiry, time))
        return events

    @staticmethod
    def _ftp_control(flow: _Flow, time: float) -> Announcement:
        """An FTP control connection announces, from its start, the client's connections to
        its server (any port) for as long as it lives. A switch in front of servers that answer
        directly (DSR) sees PASV but never the 227 naming the port, and the data connection
        follows the 227 by a LAN round trip, sooner than any controller writes an entry; the
        login exchange gives this one several round trips. (A tap sees the 227: capture
        services do not use this one.) The PORT/EPRT/227/229 announcements come on top."""
        client, server = flow.signalling[0], flow.signalling[1]
        return Announcement("ftp", flow.signalling, "", server, 0, "tcp", "initiator", "control", client, 0, "data",
                            START_WITHIN_S["ftp-control"], time)

    def _ftp(self, flow: _Flow, side: Side, raw: bytes, time: float) -> list[Event]:
        sender, receiver = self._ends(flow, side)
        head = raw[:4].upper()
        if not (head.startswith((b"PORT", b"EPRT")) or raw[:4] in (b"227 ", b"229 ")):
            return []
        try:
            line = raw.decode("ascii")
        except UnicodeDecodeError:
            self.stats.error("ftp_encoding")
            return []
        found: tuple[str, int] | None = None
        command, _, arg = line.partition(" ")
        if side == "initiator" and command.upper() == "PORT":
            kind, found = "port", parse_port(arg)
        elif side == "initiator" and command.upper() == "EPRT":
            kind, found = "eprt", parse_eprt(arg)
        elif side == "responder" and command == "227":
            kind, found = "pasv", parse_227(line)
        elif side == "responder" and command == "229":
            port = parse_229(line, sender)
            kind, found = "epsv", ((sender, port) if port else None)
        else:
            return []
        if found is None:
            self.stats.error(f"ftp_bad_{kind}")
            return []
        self.stats.note("ftp_announcements")
        return [Announcement("ftp", flow.signalling, "", found[0], found[1], "tcp", side, kind, receiver, 1, "data",
                             START_WITHIN_S["ftp"], time)]
