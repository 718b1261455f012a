"""Raw records of pcap and pcapng files, read and written byte for byte.

Chunks must give the tools exactly what the whole file gives them, so records are copied
verbatim (pcapng options, comments, interface ids and all) rather than decoded and
re-encoded. Reading stops at the first record that is corrupt or cut short and reports the
file and byte offset; everything before it has been yielded and can be kept.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BYTE_ORDER = 0x1A2B3C4D
BLOCK_IDB, BLOCK_PB, BLOCK_SPB, BLOCK_EPB = 1, 2, 3, 6
# A record longer than this is taken for corruption (real snap lengths are at most 256 KiB).
MAX_RECORD = 64 * 1024 * 1024
_SECTION_LENGTH_UNKNOWN = struct.pack("<q", -1)


class CaptureFormatError(ValueError):
    """Reading stopped: names the file and the byte offset of the bad record."""

    def __init__(self, path: Path, offset: int, problem: str) -> None:
        self.path, self.offset, self.problem = path, offset, problem
        super().__init__(f"{path} at byte {offset}: {problem}")


@dataclass(frozen=True)
class Record:
    """One record as stored. `packet` records carry a frame; the others (pcapng interface,
    name resolution, statistics, decryption-secrets blocks) describe the section and go to
    every chunk."""
    offset: int
    raw: bytes
    packet: bool
    timestamp: float = 0.0
    linktype: int = 1
    data: bytes = b""


@dataclass
class CaptureHeader:
    """What every chunk of a file starts with: the pcap global header, or the pcapng section
    header block (its section length made 'unknown', since a chunk is shorter)."""
    kind: str                   # "pcap" or "pcapng"
    raw: bytes
    linktype: int = 1

    @property
    def suffix(self) -> str:
        return "." + self.kind


def _read_exact(f: BinaryIO, n: int, path: Path, offset: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) < n:
        raise CaptureFormatError(path, offset, f"{what} cut short: {len(data)} of {n} bytes")
    return data


def open_capture(path: Path, f: BinaryIO) -> tuple[CaptureHeader, Iterator[Record]]:
    """The file's header and an iterator over its records (raises CaptureFormatError)."""
    magic = f.read(4)
    if magic in PCAP_MAGICS:
        endian, unit = PCAP_MAGICS[magic]
        rest = _read_exact(f, 20, path, 4, "pcap file header")
        linktype = struct.unpack(endian + "I", rest[16:20])[0] & 0xFFFF
        header = CaptureHeader("pcap", magic + rest, linktype)
        return header, _pcap_records(path, f, endian, unit, linktype)
    if len(magic) == 4 and struct.unpack("<I", magic)[0] == PCAPNG_SHB:
        return _pcapng_open(path, f, magic)
    raise CaptureFormatError(path, 0, "not a pcap or pcapng file (unknown magic number)")


def _pcap_records(path: Path, f: BinaryIO, endian: str, unit: float, linktype: int) -> Iterator[Record]:
    head = struct.Struct(endian + "IIII")
    offset = 24
    while True:
        raw_head = f.read(16)
        if not raw_head:
            return
        if len(raw_head) < 16:
            raise CaptureFormatError(path, offset, f"record header cut short: {len(raw_head)} of 16 bytes")
        sec, frac, caplen, _wire = head.unpack(raw_head)
        if caplen > MAX_RECORD:
            raise CaptureFormatError(path, offset, f"corrupt record: captured length {caplen}")
        data = _read_exact(f, caplen, path, offset, "record")
        yield Record(offset, raw_head + data, True, sec + frac * unit, linktype, data)
        offset += 16 + caplen


def _pcapng_open(path: Path, f: BinaryIO, magic: bytes) -> tuple[CaptureHeader, Iterator[Record]]:
    rest = _read_exact(f, 8, path, 0, "section header block")
    order = rest[4:8]
    if struct.unpack("<I", order)[0] == PCAPNG_BYTE_ORDER:
        endian = "<"
    elif struct.unpack(">I", order)[0] == PCAPNG_BYTE_ORDER:
        endian = ">"
    else:
        raise CaptureFormatError(path, 0, "pcapng section header has no byte-order magic")
    length = struct.unpack(endian + "I", rest[:4])[0]
    if length < 28 or length % 4 or length > MAX_RECORD:
        raise CaptureFormatError(path, 0, f"corrupt section header block length {length}")
    body = _read_exact(f, length - 12, path, 0, "section header block")
    shb = bytearray(magic + rest + body)
    shb[16:24] = _SECTION_LENGTH_UNKNOWN if endian == "<" else _SECTION_LENGTH_UNKNOWN[::-1]
    header = CaptureHeader("pcapng", bytes(shb))
    return header, _pcapng_records(path, f, endian, length)


def _tsresol(options: bytes, endian: str) -> tuple[float, float]:
    """(seconds per timestamp unit, offset in seconds) from an interface block's options."""
    unit, tsoffset, at = 1e-6, 0.0, 0
    while at + 4 <= len(options):
        code, size = struct.unpack(endian + "HH", options[at:at + 4])
        value = options[at + 4:at + 4 + size]
        if code == 0:
            break
        if code == 9 and size >= 1:
            unit = 2.0 ** -(value[0] & 0x7F) if value[0] & 0x80 else 10.0 ** -value[0]
        elif code == 14 and size >= 8:
            tsoffset = float(struct.unpack(endian + "q", value[:8])[0])
        at += 4 + (size + 3) // 4 * 4
    return unit, tsoffset


def _pcapng_records(path: Path, f: BinaryIO, endian: str, first_length: int) -> Iterator[Record]:
    interfaces: list[tuple[int, int, float, float]] = []   # linktype, snaplen, unit, offset
    offset = first_length
    while True:
        head = f.read(8)
        if not head:
            return
        if len(head) < 8:
            raise CaptureFormatError(path, offset, f"block header cut short: {len(head)} of 8 bytes")
        kind, length = struct.unpack(endian + "II", head)
        if kind == PCAPNG_SHB:
            # A second section (files joined with cat) would need its own chunk headers.
            raise CaptureFormatError(path, offset, "a second pcapng section: only the first is read")
        if length < 12 or length % 4 or length > MAX_RECORD:
            raise CaptureFormatError(path, offset, f"corrupt block (type {kind:#x}, length {length})")
        body = _read_exact(f, length - 8, path, offset, f"block of type {kind:#x}")
        if struct.unpack(endian + "I", body[-4:])[0] != length:
            raise CaptureFormatError(path, offset, "corrupt block: trailing length differs")
        raw, body = head + body, body[:-4]
        if kind == BLOCK_IDB and len(body) >= 8:
            linktype, _, snaplen = struct.unpack(endian + "HHI", body[:8])
            interfaces.append((linktype, snaplen, *_tsresol(body[8:], endian)))
            yield Record(offset, raw, False)
        elif kind in (BLOCK_EPB, BLOCK_PB) and len(body) >= 20:
            if kind == BLOCK_EPB:
                iface, hi, lo, caplen, _ = struct.unpack(endian + "IIIII", body[:20])
            else:
                iface, _, hi, lo, caplen, _ = struct.unpack(endian + "HHIIII", body[:20])
            if iface >= len(interfaces) or 20 + caplen > len(body):
                raise CaptureFormatError(path, offset, f"corrupt packet block (interface {iface}, length {caplen})")
            linktype, _, unit, tsoffset = interfaces[iface]
            yield Record(offset, raw, True, ((hi << 32) | lo) * unit + tsoffset, linktype, body[20:20 + caplen])
        elif kind == BLOCK_SPB and len(body) >= 4:
            if not interfaces:
                raise CaptureFormatError(path, offset, "simple packet block before any interface")
            linktype, snaplen, _, _ = interfaces[0]
            wire = struct.unpack(endian + "I", body[:4])[0]
            caplen = min(wire, snaplen or wire, len(body) - 4)
            yield Record(offset, raw, True, 0.0, linktype, body[4:4 + caplen])
        else:
            yield Record(offset, raw, False)
        offset += length


def read_records(path: Path) -> Iterator[tuple[CaptureHeader, Record]]:
    """Convenience: every record of a file with its header (raises CaptureFormatError)."""
    with open(path, "rb") as f:
        header, records = open_capture(path, f)
        for record in records:
            yield header, record
