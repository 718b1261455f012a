"""Read pcap and pcapng files as Ethernet frames, whatever their link type.

Link types with an IP payload (Linux cooked, raw IP, BSD loopback, PPP, Cisco HDLC) are
given an Ethernet header; others (802.11, ...) are refused with a CaptureError. A corrupt
file raises CaptureError naming the file and the byte offset where reading stopped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from scapy.error import Scapy_Exception
from scapy.utils import RawPcapNgReader, RawPcapReader

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
# Frames made from non-Ethernet captures get these addresses.
SYNTH_SRC_MAC = bytes.fromhex("020000000a01")
SYNTH_DST_MAC = bytes.fromhex("020000000a02")

# pcap LINKTYPE_* values.
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_RAW = 101
LINKTYPE_C_HDLC = 104
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276


class CaptureError(ValueError):
    """A capture that cannot be read, or a link type that cannot become Ethernet."""

    def __init__(self, path: Path, offset: int | None, problem: str) -> None:
        self.path, self.offset, self.problem = path, offset, problem
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{path}{where}: {problem}")


@dataclass(frozen=True)
class Frame:
    timestamp: float   # seconds
    data: bytes        # an Ethernet frame
    wire_len: int      # length on the wire (data may be cut short by the snap length)


def _ethernet(ethertype: int, payload: bytes) -> bytes:
    return SYNTH_DST_MAC + SYNTH_SRC_MAC + ethertype.to_bytes(2, "big") + payload


def _ip_ethertype(payload: bytes) -> int | None:
    if not payload:
        return None
    return {4: ETHERTYPE_IPV4, 6: ETHERTYPE_IPV6}.get(payload[0] >> 4)


def to_ethernet(linktype: int, data: bytes) -> bytes | None:
    """The frame as Ethernet, or None if this packet carries nothing we can frame."""
    if linktype == LINKTYPE_ETHERNET:
        return data
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4, LINKTYPE_IPV6):
        ethertype = _ip_ethertype(data)
        return _ethernet(ethertype, data) if ethertype else None
    if linktype == LINKTYPE_LINUX_SLL and len(data) >= 16:
        return _ethernet(int.from_bytes(data[14:16], "big"), data[16:])
    if linktype == LINKTYPE_LINUX_SLL2 and len(data) >= 20:
        return _ethernet(int.from_bytes(data[0:2], "big"), data[20:])
    if linktype == LINKTYPE_NULL and len(data) >= 4:
        ethertype = _ip_ethertype(data[4:])  # the family is in host byte order: look at IP
        return _ethernet(ethertype, data[4:]) if ethertype else None
    if linktype == LINKTYPE_PPP and len(data) >= 4 and data[0] in (0x0F, 0x8F):
        # Cisco HDLC framing under the PPP link type (as Wireshark also reads it).
        return _ethernet(int.from_bytes(data[2:4], "big"), data[4:])
    if linktype == LINKTYPE_PPP and len(data) >= 2:
        if data[:2] == b"\xff\x03":  # address and control fields present
            data = data[2:]
        protocol = int.from_bytes(data[:2], "big")
        ethertype = {0x0021: ETHERTYPE_IPV4, 0x0057: ETHERTYPE_IPV6}.get(protocol)
        return _ethernet(ethertype, data[2:]) if ethertype else None
    if linktype == LINKTYPE_C_HDLC and len(data) >= 4:
        return _ethernet(int.from_bytes(data[2:4], "big"), data[4:])
    return None


SUPPORTED_LINKTYPES = {LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_PPP, LINKTYPE_RAW,
                       LINKTYPE_C_HDLC, LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6,
                       LINKTYPE_LINUX_SLL2}


def _timestamp(meta) -> float:
    if hasattr(meta, "tsresol"):  # pcapng
        return ((meta.tshigh << 32) | meta.tslow) / meta.tsresol
    return meta.sec + meta.usec / 1e6


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Every packet of the capture as an Ethernet frame, in file order.

    Packets of a supported link type that carry no framable payload are skipped; an
    unsupported link type or a corrupt file raises CaptureError.
    """
    path = Path(path)
    try:
        reader = RawPcapReader(str(path))
    except (Scapy_Exception, OSError, struct.error, EOFError) as exc:
        raise CaptureError(path, 0, f"not a pcap or pcapng file ({exc})") from None
    size = path.stat().st_size
    with reader:
        records = iter(reader)
        while True:
            offset = reader.f.tell()
            try:
                data, meta = next(records)
            except (StopIteration, EOFError):
                # pcapng may end in non-packet blocks (statistics); classic pcap may not.
                if offset < size and not isinstance(reader, RawPcapNgReader):
                    raise CaptureError(path, offset, f"{size - offset} trailing bytes are not a whole record") from None
                return
            except (Scapy_Exception, struct.error, ValueError, OverflowError, MemoryError) as exc:
                raise CaptureError(path, offset, f"corrupt record ({exc})") from None
            caplen = getattr(meta, "caplen", None)
            if caplen is not None and len(data) < caplen:
                raise CaptureError(path, offset, f"record cut short: {len(data)} of {caplen} bytes")
            linktype = getattr(meta, "linktype", None) or getattr(reader, "linktype", LINKTYPE_ETHERNET)
            if linktype not in SUPPORTED_LINKTYPES:
                raise CaptureError(path, offset, f"link type {linktype} cannot be turned into Ethernet")
            frame = to_ethernet(linktype, data)
            if frame is not None:
                wire_len = getattr(meta, "wirelen", None) or len(data)
                yield Frame(_timestamp(meta), frame, wire_len)
