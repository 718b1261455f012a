"""Capture analysis: the sessions and announced flows in a pcap, by the runtime's own parser.

`analyse(path)` reads every frame (controller/pcap_frames.py: any common link type), takes
IPv4/IPv6 TCP and UDP on the signalling ports, feeds a SessionTracker and collects its
events. A capture that is corrupt part-way keeps what was read before the damage
(`CaptureReport.error` says where).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from controller.pcap_frames import CaptureError, read_frames
from controller.sessions.model import TCP, UDP, Announcement, Limits, ParseStats, Protocol, SessionEnd
from controller.sessions.tracker import SessionTracker


@dataclass(frozen=True)
class Packet:
    src: str
    dst: str
    protocol: int
    sport: int
    dport: int
    payload: bytes
    seq: int | None
    flags: int


def decode(frame: bytes) -> Packet | None:
    """The IP/TCP/UDP fields of an Ethernet frame, or None (not TCP/UDP, not a first fragment, cut short)."""
    if len(frame) < 14:
        return None
    ethertype, offset = int.from_bytes(frame[12:14], "big"), 14
    while ethertype in (0x8100, 0x88A8) and len(frame) >= offset + 4:
        ethertype, offset = int.from_bytes(frame[offset + 2:offset + 4], "big"), offset + 4
    if ethertype == 0x0800 and len(frame) >= offset + 20 and frame[offset] >> 4 == 4:
        ihl = (frame[offset] & 0x0F) * 4
        total = int.from_bytes(frame[offset + 2:offset + 4], "big")
        if int.from_bytes(frame[offset + 6:offset + 8], "big") & 0x3FFF or ihl < 20:
            return None         # a fragment (or bad header): signalling in fragments is not reassembled
        protocol = frame[offset + 9]
        src = str(ipaddress.IPv4Address(frame[offset + 12:offset + 16]))
        dst = str(ipaddress.IPv4Address(frame[offset + 16:offset + 20]))
        end = offset + total if total >= ihl else len(frame)
        offset += ihl
    elif ethertype == 0x86DD and len(frame) >= offset + 40:
        protocol = frame[offset + 6]          # extension headers are not followed
        src = str(ipaddress.IPv6Address(frame[offset + 8:offset + 24]))
        dst = str(ipaddress.IPv6Address(frame[offset + 24:offset + 40]))
        end = offset + 40 + int.from_bytes(frame[offset + 4:offset + 6], "big")
        offset += 40
    else:
        return None
    end = min(end, len(frame))                # Ethernet padding and snap length
    if protocol == TCP and end >= offset + 20:
        data_at = offset + (frame[offset + 12] >> 4) * 4
        if data_at < offset + 20 or data_at > end:
            return None
        return Packet(src, dst, TCP, int.from_bytes(frame[offset:offset + 2], "big"),
                      int.from_bytes(frame[offset + 2:offset + 4], "big"), frame[data_at:end],
                      int.from_bytes(frame[offset + 4:offset + 8], "big"), frame[offset + 13])
    if protocol == UDP and end >= offset + 8:
        return Packet(src, dst, UDP, int.from_bytes(frame[offset:offset + 2], "big"),
                      int.from_bytes(frame[offset + 2:offset + 4], "big"), frame[offset + 8:end], None, 0)
    return None


@dataclass
class CaptureReport:
    path: Path
    frames: int = 0
    signalling_packets: int = 0
    announcements: list[Announcement] = field(default_factory=list)
    ends: list[SessionEnd] = field(default_factory=list)
    stats: ParseStats = field(default_factory=ParseStats)
    error: CaptureError | None = None      # the capture was unreadable from there on


def analyse(path: str | Path, ports: Mapping[Protocol, Iterable[int]] | None = None,
            limits: Limits | None = None) -> CaptureReport:
    """Every announcement and session end in the capture, in capture order."""
    tracker = SessionTracker(ports, limits)
    report = CaptureReport(Path(path), stats=tracker.stats)
    try:
        for frame in read_frames(path):
            report.frames += 1
            packet = decode(frame.data)
            if packet is None or tracker.protocol_of(packet.protocol, packet.sport, packet.dport) is None:
                continue
            report.signalling_packets += 1
            for event in tracker.feed(frame.timestamp, packet.src, packet.dst, packet.protocol, packet.sport,
                                      packet.dport, packet.payload, packet.seq, packet.flags):
                if isinstance(event, Announcement):
                    if event.port_count:     # a control connection's "any port" names no endpoint
                        report.announcements.append(event)
                else:
                    report.ends.append(event)
    except CaptureError as exc:
        report.error = exc
    return report
