"""SIP (RFC 3261) messages and the media their SDP bodies (RFC 4566) announce.

The start line and headers are read by `sipmessage` (a maintained, typed, pure-Python SIP
parser) and the SDP body by `sdp-transform` (the Python port of the widely used JavaScript
sdp-transform); this module frames, bounds and checks around them. Framing (where a message
ends on TCP, Content-Length, compact `l:`) is in framing.py. Nothing here raises on bad
input: a message that cannot be used is counted in ParseStats.errors and skipped.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import sdp_transform
from sipmessage import Message, Request

from controller.sessions.model import Limits, ParseStats, Transport


@dataclass(frozen=True)
class SdpMedia:
    media: str            # audio, video, application, ...
    address: str          # normalised IP address text
    port: int
    port_count: int       # 2 for RTP without rtcp-mux (RTCP on port + 1)
    transport: Transport
    profile: str          # RTP/AVP, udp, TCP/RTP/AVP, ...


@dataclass(frozen=True)
class SipMessage:
    method: str | None    # requests
    status: int | None    # responses
    call_id: str
    cseq_method: str      # the method a response answers
    media: list[SdpMedia] = field(default_factory=list)


def _address(text: object) -> str | None:
    try:
        return str(ipaddress.ip_address(str(text)))
    except ValueError:
        return None


def parse_sdp(body: bytes, limits: Limits, stats: ParseStats) -> list[SdpMedia]:
    """The media streams an SDP body announces (disabled ones, port 0, and held ones,
    address 0.0.0.0, are left out and noted)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        stats.error("sdp_encoding")
        return []
    try:
        session = sdp_transform.parse(text)
    except Exception:     # a third-party parser on hostile input: whatever it raises is a bad body
        stats.error("sdp_malformed")
        return []
    media_list = session.get("media") or []
    if len(media_list) > limits.max_media:
        stats.error("sdp_too_many_media")
        media_list = media_list[:limits.max_media]
    found: list[SdpMedia] = []
    for m in media_list:
        port = m.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            stats.error("sdp_bad_media")
            continue
        if port == 0:
            stats.note("sdp_media_disabled")
            continue
        connection = m.get("connection") or session.get("connection") or {}
        address = _address(connection.get("ip")) if isinstance(connection, dict) else None
        if address is None:
            stats.error("sdp_bad_address")
            continue
        if ipaddress.ip_address(address).is_unspecified:
            stats.note("sdp_media_on_hold")
            continue
        profile = str(m.get("protocol", ""))
        transport: Transport = "tcp" if profile.upper().startswith("TCP") else "udp"
        rtp = "RTP" in profile.upper()
        found.append(SdpMedia(media=str(m.get("type", "")), address=address, port=port,
                              port_count=2 if rtp and "rtcpMux" not in m and port < 65535 else 1,
                              transport=transport, profile=profile))
    return found


def parse_sip(head: bytes, body: bytes, limits: Limits, stats: ParseStats) -> SipMessage | None:
    """One framed SIP message, or None (counted) when it cannot be used."""
    first_line_end = head.find(b"\r\n")
    if (first_line_end if first_line_end >= 0 else len(head)) > limits.max_line:
        stats.error("sip_start_line_too_long")
        return None
    if head.count(b"\n") >= limits.max_headers:
        stats.error("sip_too_many_headers")
        return None
    # Unfold continuation lines (RFC 3261 7.3.1), which sipmessage does not accept.
    head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    try:
        message = Message.parse(head + b"\r\n\r\n" + body)
    except UnicodeDecodeError:
        stats.error("sip_encoding")
        return None
    except Exception:     # sipmessage raises ValueError, but hostile input may find others
        stats.error("sip_malformed")
        return None
    headers = message.headers
    call_id = (headers.get("Call-ID") or "").strip()
    cseq = (headers.get("CSeq") or "").split()
    if not call_id or len(cseq) != 2 or not cseq[0].isdigit():
        stats.error("sip_missing_headers")
        return None
    stats.note("sip_messages")
    media: list[SdpMedia] = []
    content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if body and content_type == "application/sdp":
        media = parse_sdp(body, limits, stats)
    elif body and content_type.startswith("multipart/"):
        stats.note("sip_multipart_body_skipped")
    if isinstance(message, Request):
        return SipMessage(method=message.method.upper(), status=None, call_id=call_id,
                          cseq_method=cseq[1].upper(), media=media)
    return SipMessage(method=None, status=message.code, call_id=call_id, cseq_method=cseq[1].upper(), media=media)
