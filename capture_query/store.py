"""The placement store: chunk files laid out by node, and a JSON manifest.

    STORE/manifest.json                    sources, chunks (id, node, size, moves), settings
    STORE/nodes/<node>/<chunk>.pcap[ng]    a chunk, on the node that holds it
    STORE/nodes/<node>/<chunk>.pcap.idx    its index (chunking.py): packet origins
    STORE/spool/                           outputs of a query in flight (removed after)

A node is a Dask worker by name (engine.py). On one machine (the embedded cluster) the
directories stand for the nodes' disks; on a real cluster STORE is a path every worker sees
(shared or mounted at the same place), and a move is a rename there.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from capture_query.captures import CaptureFormatError
from capture_query.chunking import chunk_capture, index_path, read_index

MANIFEST = "manifest.json"
VERSION = 1
DEFAULT_STORE = Path("results/query/store")


@dataclass
class Chunk:
    id: str
    node: str
    path: str            # relative to the store
    bytes: int
    packets: int
    source: int          # index into Manifest.sources
    moved_in: list[int] = field(default_factory=list)   # query numbers after which it moved


@dataclass
class Source:
    path: str
    bytes: int
    packets: int
    error: str | None = None   # where reading stopped (file, byte offset, problem)


@dataclass
class Manifest:
    nodes: list[str]
    chunk_mb: float
    mode: str
    version: int = VERSION
    queries: int = 0
    sources: list[Source] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict) -> Manifest:
        if data.get("version") != VERSION:
            raise ValueError(f"manifest version {data.get('version')}, this code reads {VERSION}")
        fields = {k: v for k, v in data.items() if k not in ("sources", "chunks")}
        return cls(**fields, sources=[Source(**s) for s in data["sources"]],
                   chunks=[Chunk(**c) for c in data["chunks"]])


def node_names(count: int) -> list[str]:
    return [f"node{k}" for k in range(count)]


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.name.split(".")[0]) or "capture"


class Store:
    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root, self.manifest = root, manifest

    @classmethod
    def open(cls, root: Path) -> Store:
        path = root / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"{root}: no store here ({MANIFEST} missing); run `query ingest` first")
        return cls(root, Manifest.from_json(json.loads(path.read_text())))

    @classmethod
    def open_or_create(cls, root: Path, nodes: int, chunk_mb: float, mode: str) -> Store:
        if (root / MANIFEST).exists():
            return cls.open(root)
        return cls(root, Manifest(node_names(nodes), chunk_mb, mode))

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(asdict(self.manifest), indent=1))
        os.replace(tmp, self.root / MANIFEST)   # a reader never sees half a manifest

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    def chunk_path(self, chunk: Chunk) -> Path:
        return self.root / chunk.path

    def chunks(self) -> list[Chunk]:
        return list(self.manifest.chunks)

    def by_id(self, chunk_id: str) -> Chunk:
        for chunk in self.manifest.chunks:
            if chunk.id == chunk_id:
                return chunk
        raise KeyError(chunk_id)

    def _node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def _unique_stem(self, path: Path) -> str:
        stem, taken = _safe_stem(path), {c.id.rsplit(".", 1)[0] for c in self.manifest.chunks}
        candidate, n = stem, 1
        while candidate in taken:
            n += 1
            candidate = f"{stem}-{n}"
        return candidate

    def ingest(self, files: Sequence[Path], node: str | None = None) -> Iterator[Source]:
        """Chunk each file and place its chunks round robin (continuing where the last ingest
        stopped), or all on `node` (files a capture node wrote stay on that node); yields each
        file's Source as it is done (its error, if reading stopped)."""
        if node is not None and node not in self.manifest.nodes:
            raise ValueError(f"no node {node!r} in this store (nodes: {', '.join(self.manifest.nodes)})")
        target = int(self.manifest.chunk_mb * 1024 * 1024)
        for path in files:
            stem, source = self._unique_stem(path), len(self.manifest.sources)
            suffix = _suffix(path)

            def place(n: int, stem: str = stem, suffix: str = suffix) -> tuple[str, Path]:
                nodes = self.manifest.nodes
                chosen = node if node is not None else nodes[(len(self.manifest.chunks) + n) % len(nodes)]
                chunk_id = f"{stem}.{n:04d}"
                return chunk_id, self._node_dir(chosen) / (chunk_id + suffix)

            result = chunk_capture(path, target, self.manifest.mode, source, place)
            entry = Source(str(path), path.stat().st_size, result.packets,
                           str(result.error) if result.error else None)
            self.manifest.sources.append(entry)
            for chunk in result.chunks:
                self.manifest.chunks.append(Chunk(chunk.id, chunk.path.parent.name,
                                                  str(chunk.path.relative_to(self.root)), chunk.bytes,
                                                  chunk.packets, source))
            self.save()
            yield entry

    def move(self, chunk: Chunk, node: str) -> None:
        """Move a chunk (and its index) to another node's directory."""
        old = self.chunk_path(chunk)
        new = self._node_dir(node) / old.name
        new.parent.mkdir(parents=True, exist_ok=True)
        os.replace(old, new)
        os.replace(index_path(old), index_path(new))
        chunk.node, chunk.path = node, str(new.relative_to(self.root))
        chunk.moved_in.append(self.manifest.queries)

    def split(self, chunk: Chunk) -> list[Chunk]:
        """Cut a chunk in two flow-complete halves (same node); the halves keep the packets'
        origins. A chunk that is one flow cannot be cut: it is returned as it was."""
        old = self.chunk_path(chunk)
        origins = [(float(r["ts"]), int(r["source"]), int(r["number"])) for r in read_index(old)]

        def place(n: int) -> tuple[str, Path]:
            chunk_id = f"{chunk.id}{'ab'[n] if n < 2 else str(n)}"
            return chunk_id, old.with_name(chunk_id + _suffix(old))

        result = chunk_capture(old, max(1, chunk.bytes // 2), self.manifest.mode, chunk.source, place, origins)
        if result.error is not None:
            raise CaptureFormatError(result.error.path, result.error.offset, result.error.problem)
        if len(result.chunks) < 2:
            for piece in result.chunks:
                piece.path.unlink()
                piece.index_path.unlink()
            return [chunk]
        old.unlink()
        index_path(old).unlink()
        at = self.manifest.chunks.index(chunk)
        halves = [Chunk(p.id, chunk.node, str(p.path.relative_to(self.root)), p.bytes, p.packets, chunk.source)
                  for p in result.chunks]
        self.manifest.chunks[at:at + 1] = halves
        return halves


def _suffix(path: Path) -> str:
    with open(path, "rb") as f:
        magic = f.read(4)
    return ".pcapng" if magic == b"\x0a\x0d\x0d\x0a" else ".pcap"
