"""Splitting SIP and RTSP byte streams into messages (start line and headers, then a body of
Content-Length bytes), with hard limits; RTSP's interleaved binary frames ($, channel,
length) are stepped over."""

from __future__ import annotations

import re

from controller.sessions.model import Limits, ParseStats

_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_HEAD_END = b"\r\n\r\n"


def content_length(head: bytes) -> int | None | str:
    """The Content-Length of a message head: None when absent, "bad" when not one number."""
    values = {m.group(1) for m in _CONTENT_LENGTH.finditer(head)}
    if not values:
        return None
    if len(values) > 1:
        return "bad"
    value = values.pop()
    if not value.isdigit() or len(value) > 9:
        return "bad"
    return int(value)


def drop_frame(buf: bytearray, size: int) -> int:
    """Remove a length-prefixed binary frame of `size` bytes (RTSP interleaved data, a TLS
    record) from the front of `buf`; returns how many of its bytes have not arrived yet,
    which the caller skips in later data."""
    if len(buf) < size:
        missing = size - len(buf)
        buf.clear()
        return missing
    del buf[:size]
    return 0


class MessageFramer:
    """Messages from one direction of a TCP stream (`feed`) or from datagrams (`datagram`)."""

    def __init__(self, prefix: str, limits: Limits, stats: ParseStats, interleaved: bool = False) -> None:
        self.prefix, self.limits, self.stats, self.interleaved = prefix, limits, stats, interleaved
        self.buffer = bytearray()
        self.skip = 0          # bytes still to discard (an oversized body, an interleaved frame)

    def reset(self) -> None:
        self.buffer.clear()
        self.skip = 0

    def datagram(self, data: bytes) -> list[tuple[bytes, bytes]]:
        """The message in one UDP datagram (a body without Content-Length runs to its end)."""
        data = data.lstrip(b"\r\n")
        if not data.strip(b" \t\r\n\x00"):
            self.stats.note(f"{self.prefix}_keepalives")   # CRLF, blanks or NULs that keep a NAT binding
            return []
        if len(data) > self.limits.max_message:
            self.stats.error(f"{self.prefix}_too_large")
            return []
        end = data.find(_HEAD_END)
        if end < 0:
            self.stats.error(f"{self.prefix}_truncated")
            return []
        head, rest = data[:end], data[end + 4:]
        length = content_length(head)
        if length == "bad":
            self.stats.error(f"{self.prefix}_bad_content_length")
            return []
        if isinstance(length, int):
            if length > len(rest):
                self.stats.error(f"{self.prefix}_truncated")
                return []
            rest = rest[:length]
        return [(head, rest)]

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        if self.skip:
            n = min(self.skip, len(data))
            self.skip -= n
            data = data[n:]
        self.buffer += data
        out: list[tuple[bytes, bytes]] = []
        buf = self.buffer
        while buf:
            start = 0
            while start < len(buf) and buf[start] in b"\r\n":
                start += 1
            if start:
                del buf[:start]
                continue
            if self.interleaved and buf[0] == 0x24:      # '$' channel length(2) data
                if len(buf) < 4:
                    break
                self.stats.note(f"{self.prefix}_interleaved_frames")
                self.skip = drop_frame(buf, 4 + int.from_bytes(buf[2:4], "big"))
                if self.skip:
                    break
                continue
            end = buf.find(_HEAD_END, 0, self.limits.max_head + 4)
            if end < 0:
                if len(buf) > self.limits.max_head:
                    self.stats.error(f"{self.prefix}_head_too_large")
                    buf.clear()
                break
            head = bytes(buf[:end])
            length = content_length(head)
            if length == "bad":
                self.stats.error(f"{self.prefix}_bad_content_length")
                del buf[:end + 4]
                continue
            size = length if isinstance(length, int) else 0
            if end + 4 + size > self.limits.max_message:
                self.stats.error(f"{self.prefix}_too_large")
                del buf[:end + 4]
                drop = min(size, len(buf))
                del buf[:drop]
                self.skip = size - drop
                continue
            if len(buf) < end + 4 + size:
                break
            out.append((head, bytes(buf[end + 4:end + 4 + size])))
            del buf[:end + 4 + size]
        if len(buf) > self.limits.max_stream_buffer:     # cannot happen with the limits above; belt and braces
            self.stats.error(f"{self.prefix}_buffer_overflow")
            buf.clear()
        return out
