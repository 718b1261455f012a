"""FTP (RFC 959, RFC 2428) control lines that announce data connections: PORT and EPRT
commands, 227 (PASV) and 229 (EPSV) replies.

The replies are read by the standard library's own parsers (ftplib.parse227, parse229);
PORT and EPRT, which ftplib only writes, are parsed here. An FTP control connection that
goes TLS (AUTH TLS) and back (CCC) is followed: TLS records are stepped over whole.
"""

from __future__ import annotations

import ftplib
import ipaddress

from controller.sessions.framing import drop_frame
from controller.sessions.model import Limits, ParseStats


def _port(p1: str, p2: str) -> int | None:
    if not (p1.isdigit() and p2.isdigit() and len(p1) <= 3 and len(p2) <= 3):
        return None
    a, b = int(p1), int(p2)
    if a > 255 or b > 255:
        return None
    return (a << 8) | b or None


def _ipv4(parts: list[str]) -> str | None:
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return None
    return ".".join(str(int(p)) for p in parts)


def parse_port(arg: str) -> tuple[str, int] | None:
    """PORT h1,h2,h3,h4,p1,p2."""
    parts = [p.strip() for p in arg.strip().split(",")]
    if len(parts) != 6:
        return None
    address, port = _ipv4(parts[:4]), _port(parts[4], parts[5])
    return (address, port) if address and port else None


def parse_eprt(arg: str) -> tuple[str, int] | None:
    """EPRT |af|address|port| (any delimiter, RFC 2428)."""
    arg = arg.strip()
    if len(arg) < 2:
        return None
    fields = arg.split(arg[0])
    if len(fields) != 5 or fields[0] or fields[4] or fields[1] not in ("1", "2"):
        return None
    try:
        address = ipaddress.ip_address(fields[2])
    except ValueError:
        return None
    if address.version != (4 if fields[1] == "1" else 6):
        return None
    if not (fields[3].isdigit() and len(fields[3]) <= 5 and 0 < int(fields[3]) <= 65535):
        return None
    return str(address), int(fields[3])


def parse_227(line: str) -> tuple[str, int] | None:
    try:
        host, port = ftplib.parse227(line)
    except (ftplib.Error, ValueError):
        return None
    address = _ipv4(host.split("."))
    return (address, port) if address and 0 < port <= 65535 and "," in line else None


def parse_229(line: str, server: str) -> int | None:
    try:
        _, port = ftplib.parse229(line, (server, 0))
    except (ftplib.Error, ValueError, IndexError):
        return None
    return port if 0 < port <= 65535 else None


class LineSplitter:
    """CRLF-terminated lines of one direction of an FTP control connection, bounded, with
    TLS records stepped over."""

    def __init__(self, limits: Limits, stats: ParseStats) -> None:
        self.limits, self.stats = limits, stats
        self.buffer = bytearray()
        self.skip = 0
        self.discarding = False     # inside an over-long line: drop up to its end

    def reset(self) -> None:
        self.buffer.clear()
        self.skip = 0
        self.discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        self.buffer += data
        buf = self.buffer
        lines: list[bytes] = []
        while buf:
            if not self.discarding and buf[0] in (20, 21, 22, 23) and len(buf) >= 2 and buf[1] == 3:
                if len(buf) < 5:
                    break
                self.stats.note("ftp_tls_records")
                self.skip = drop_frame(buf, 5 + int.from_bytes(buf[3:5], "big"))
                if self.skip:
                    break
                continue
            end = buf.find(b"\n", 0, self.limits.max_line + 1)
            if end < 0:
                if len(buf) > self.limits.max_line:
                    if not self.discarding:
                        self.stats.error("ftp_line_too_long")
                    self.discarding = True
                    buf.clear()
                break
            line = bytes(buf[:end]).rstrip(b"\r")
            del buf[:end + 1]
            if self.discarding:
                self.discarding = False
                continue
            lines.append(line)
        return lines
