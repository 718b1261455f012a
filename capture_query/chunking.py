"""Cutting a capture into chunks: flow-complete (default) or plain size cuts.

Flow-complete: a packet goes to the chunk its flow (the switch's symmetric flow key, so both
directions) was given when first seen; a new flow goes to the open chunk, and the open chunk
takes no new flows once it holds the target size. Every connection therefore lies whole in
one chunk, in file order, and tshark's reassembly sees what it sees on the whole file. A
flow bigger than the target makes its chunk bigger: chunks are at least, not at most, the
target (bar the last).

Each chunk has a sidecar index (`.idx`): per packet its timestamp, source file and packet
number in that file, so outputs can be renumbered and merged in the whole file's order.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from capture_query.captures import CaptureFormatError, CaptureHeader, Record, open_capture
from controller.dataplane.flow_key import FlowKey, flow_key
from sim.pcap_frames import to_ethernet

INDEX_DTYPE = np.dtype([("ts", "<f8"), ("source", "<u4"), ("number", "<u4")])
_INDEX_ROW = struct.Struct("<dII")
MODES = ("flow", "size")
OPEN_FILES = 64   # chunk files kept open at once (flows stay live, so any chunk may grow)


class FlowPacker:
    """Chunk numbers for packets, flow-complete: pure bookkeeping, no I/O."""

    def __init__(self, target_bytes: int) -> None:
        self.target = target_bytes
        self.sizes: list[int] = [0]
        self._flows: dict[FlowKey | None, int] = {}

    def place(self, key: FlowKey | None, size: int) -> int:
        chunk = self._flows.get(key)
        if chunk is None:
            if self.sizes[-1] >= self.target:
                self.sizes.append(0)
            chunk = self._flows[key] = len(self.sizes) - 1
        self.sizes[chunk] += size
        return chunk


class SizePacker(FlowPacker):
    """Plain size cuts: consecutive packets until the target, whatever their flow."""

    def place(self, key: FlowKey | None, size: int) -> int:
        if self.sizes[-1] >= self.target:
            self.sizes.append(0)
        self.sizes[-1] += size
        return len(self.sizes) - 1


def packer(mode: str, target_bytes: int) -> FlowPacker:
    if mode not in MODES:
        raise ValueError(f"chunking mode {mode!r}: one of {', '.join(MODES)}")
    return FlowPacker(target_bytes) if mode == "flow" else SizePacker(target_bytes)


def record_key(record: Record) -> FlowKey | None:
    """The switch's symmetric key; frames that cannot be made Ethernet share one key (None)."""
    frame = to_ethernet(record.linktype, record.data)
    return None if frame is None else flow_key(frame, symmetric=True)


@dataclass
class ChunkFile:
    id: str
    path: Path
    bytes: int = 0
    packets: int = 0

    @property
    def index_path(self) -> Path:
        return index_path(self.path)


def index_path(chunk_path: Path) -> Path:
    return chunk_path.with_name(chunk_path.name + ".idx")


def _open_pair(chunk_path: Path, mode: str) -> tuple[BinaryIO, BinaryIO]:
    """A chunk file and its index, open ("wb" or "ab"); the writer's LRU closes them."""
    if mode == "wb":
        return open(chunk_path, "wb"), open(index_path(chunk_path), "wb")
    return open(chunk_path, "ab"), open(index_path(chunk_path), "ab")


class ChunkWriter:
    """Writes records into chunk files (and their indexes), a bounded number open at once.

    Non-packet records (pcapng interface blocks and the like) go to every chunk, to those
    already started and those still to come, so interface numbers mean the same in each."""

    def __init__(self, header: CaptureHeader, path_for: Callable[[int], tuple[str, Path]]) -> None:
        self.header, self.path_for = header, path_for
        self.chunks: list[ChunkFile] = []
        self._section: list[bytes] = [header.raw]
        self._open: OrderedDict[int, tuple[BinaryIO, BinaryIO]] = OrderedDict()

    def _files(self, n: int) -> tuple[BinaryIO, BinaryIO]:
        if n in self._open:
            self._open.move_to_end(n)
            return self._open[n]
        if len(self._open) >= OPEN_FILES:
            _, (data, idx) = self._open.popitem(last=False)
            data.close()
            idx.close()
        if n == len(self.chunks):
            chunk_id, path = self.path_for(n)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.chunks.append(ChunkFile(chunk_id, path))
            files = _open_pair(path, "wb")
            files[0].write(b"".join(self._section))
        else:
            files = _open_pair(self.chunks[n].path, "ab")
        self._open[n] = files
        return files

    def section_record(self, raw: bytes) -> None:
        self._section.append(raw)
        for n in range(len(self.chunks)):
            self._files(n)[0].write(raw)

    def packet(self, n: int, raw: bytes, origin: tuple[float, int, int]) -> None:
        data, idx = self._files(n)
        data.write(raw)
        idx.write(_INDEX_ROW.pack(*origin))
        self.chunks[n].bytes += len(raw)
        self.chunks[n].packets += 1

    def close(self) -> list[ChunkFile]:
        for data, idx in self._open.values():
            data.close()
            idx.close()
        self._open.clear()
        for chunk in self.chunks:
            chunk.bytes = chunk.path.stat().st_size
        return self.chunks


@dataclass
class ChunkingResult:
    chunks: list[ChunkFile]
    packets: int
    error: CaptureFormatError | None   # reading stopped here; the chunks hold what came before


def chunk_capture(path: Path, target_bytes: int, mode: str, source: int,
                  path_for: Callable[[int], tuple[str, Path]],
                  origins: Iterable[tuple[float, int, int]] | None = None) -> ChunkingResult:
    """Cut one capture into chunks; `path_for(n)` names chunk n and says where it goes.

    `origins` (when re-cutting a chunk) gives each packet's origin; by default a packet's
    origin is its own timestamp, `source` and number in this file (from 1, as the tools
    count)."""
    chunker = packer(mode, target_bytes)
    origin_iter = iter(origins) if origins is not None else None
    count, error = 0, None
    with open(path, "rb") as f:
        try:
            header, records = open_capture(path, f)
        except CaptureFormatError as exc:
            return ChunkingResult([], 0, exc)
        writer = ChunkWriter(header, path_for)
        try:
            for record in records:
                if not record.packet:
                    writer.section_record(record.raw)
                    continue
                count += 1
                origin = next(origin_iter) if origin_iter is not None else (record.timestamp, source, count)
                writer.packet(chunker.place(record_key(record), len(record.raw)), record.raw, origin)
        except CaptureFormatError as exc:
            error = exc
        return ChunkingResult(writer.close(), count, error)


def read_index(chunk_path: Path) -> np.ndarray:
    return np.fromfile(index_path(chunk_path), dtype=INDEX_DTYPE)
