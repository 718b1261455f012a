"""RTSP (RFC 2326, RFC 7826) requests and replies: the Transport header of SETUP.

No maintained Python library parses RTSP messages on their own (the RTSP packages on PyPI
are clients and servers that own the socket), so this is hand-written, bounded, and fuzzed
(tests/unit/test_sessions_fuzz.py). Framing is in framing.py.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from controller.sessions.model import Limits, ParseStats, Transport


@dataclass(frozen=True)
class TransportSpec:
    profile: str                          # RTP/AVP, RTP/AVP/TCP, ...
    lower: Transport
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    port: tuple[int, int] | None = None   # multicast
    interleaved: bool = False
    destination: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class RtspMessage:
    method: str | None
    status: int | None
    cseq: str
    session: str
    timeout: float | None                 # Session: id;timeout=N
    transports: list[TransportSpec] = field(default_factory=list)


_TOKEN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")


def _is_token(word: str) -> bool:
    return 0 < len(word) <= 32 and all(c in _TOKEN for c in word)


def _port_range(value: str) -> tuple[int, int] | None:
    parts = value.split("-")
    if len(parts) > 2 or not all(p.isdigit() and len(p) <= 5 for p in parts):
        return None
    low = int(parts[0])
    high = int(parts[-1])
    if not 0 < low <= high <= 65535 or high - low > 1:
        return None
    return low, high


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]\"")))
    except ValueError:
        return None


def _spec(item: str) -> tuple[TransportSpec, bool]:
    """One transport spec, and whether a parameter in it was malformed."""
    params = [p.strip() for p in item.split(";")]
    fields: dict[str, str] = {}
    for p in params[1:]:
        name, _, v = p.partition("=")
        fields[name.strip().lower()] = v.strip()
    bad = False
    ranges: dict[str, tuple[int, int] | None] = {}
    for name in ("client_port", "server_port", "port"):
        ranges[name] = _port_range(fields[name]) if name in fields else None
        bad = bad or (name in fields and ranges[name] is None)
    addresses: dict[str, str | None] = {}
    for name in ("destination", "source"):
        addresses[name] = _address(fields[name]) if fields.get(name) else None
        bad = bad or (bool(fields.get(name)) and addresses[name] is None)
    lower: Transport = "tcp" if params[0].upper().endswith("/TCP") else "udp"
    return TransportSpec(profile=params[0], lower=lower, client_port=ranges["client_port"],
                         server_port=ranges["server_port"], port=ranges["port"],
                         interleaved="interleaved" in fields, destination=addresses["destination"],
                         source=addresses["source"]), bad


def parse_transport(value: str, limits: Limits, stats: ParseStats) -> list[TransportSpec]:
    specs: list[TransportSpec] = []
    items = [v for v in value.split(",") if v.strip()]
    if len(items) > limits.max_media:
        stats.error("rtsp_too_many_transports")
        items = items[:limits.max_media]
    for item in items:
        spec, bad = _spec(item)
        if bad:
            stats.error("rtsp_bad_transport")
        specs.append(spec)
    return specs


def parse_rtsp(head: bytes, limits: Limits, stats: ParseStats) -> RtspMessage | None:
    """One framed RTSP message head, or None (counted) when it cannot be used."""
    if head.count(b"\n") >= limits.max_headers:
        stats.error("rtsp_too_many_headers")
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        stats.error("rtsp_encoding")
        return None
    lines = text.replace("\r\n ", " ").replace("\r\n\t", " ").split("\r\n")
    start = lines[0].split(" ", 2)
    method: str | None = None
    status: int | None = None
    if len(start) == 3 and start[2].startswith("RTSP/") and _is_token(start[0]):
        method = start[0].upper()
    elif len(start) >= 2 and start[0].startswith("RTSP/") and start[1].isdigit() and len(start[1]) == 3:
        status = int(start[1])
    else:
        stats.error("rtsp_bad_start_line")
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            stats.error("rtsp_bad_header")
            return None
        headers.setdefault(name.strip().lower(), value.strip())
    stats.note("rtsp_messages")
    session_field = headers.get("session", "")
    session, _, params = session_field.partition(";")
    timeout: float | None = None
    for p in params.split(";"):
        name, _, v = p.partition("=")
        if name.strip().lower() == "timeout" and v.strip().isdigit() and len(v.strip()) <= 6:
            timeout = float(v.strip())
    transports = parse_transport(headers["transport"], limits, stats) if "transport" in headers else []
    return RtspMessage(method=method, status=status, cseq=headers.get("cseq", ""), session=session.strip(),
                       timeout=timeout, transports=transports)
