"""Chunk outputs to the user's stdout: streamed as chunks finish, or merged in time order.

A chunk's output is read from its spool file a line at a time and cut into per-packet
records (tools.py); each record is renumbered as on the whole file and, for --merge, keyed
by its packet's (timestamp, source file, number in the file), which the chunk's index gives.
Merging reads every chunk's spool file at once, a record at a time: nothing is held whole.
Banner lines (ngrep's filter line, tshark's field header) are printed once.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from capture_query.chunking import read_index
from capture_query.tools import Query

Key = tuple[float, int, int]
_FIRST: Key = (float("-inf"), -1, -1)


def keyed_records(query: Query, spool: Path, index: np.ndarray) -> Iterator[tuple[Key, bool, list[bytes]]]:
    """(merge key, is banner, lines as on the whole file) for each record of a chunk's output."""
    key = _FIRST
    with open(spool, "rb") as f:
        for record in query.records(f):
            if record.number is None or not 1 <= record.number <= len(index):
                yield key, record.banner, record.lines
                continue
            row = index[record.number - 1]
            key = (float(row["ts"]), int(row["source"]), int(row["number"]))
            yield key, False, query.render(record, key[2])


class OutputSink:
    """Writes records to `out`, banners once."""

    def __init__(self, query: Query, out: BinaryIO) -> None:
        self.query, self.out = query, out
        self._banner_done = False
        self.lines = 0

    def _write(self, banner: bool, lines: list[bytes], first_banner: bool) -> None:
        if banner and not first_banner:
            return
        for line in lines:
            self.out.write(line if line.endswith(b"\n") else line + b"\n")
            self.lines += 1

    def stream(self, spool: Path, chunk: Path) -> None:
        """One finished chunk's output, at once."""
        first = not self._banner_done
        for _, banner, lines in keyed_records(self.query, spool, read_index(chunk)):
            self._write(banner, lines, first)
        self._banner_done = True
        self.out.flush()

    def merge(self, chunks: list[tuple[Path, Path]]) -> None:
        """Every chunk's output (spool, chunk path), merged by packet time then place; the
        banner is the first chunk's."""
        def tagged(n: int, spool: Path, chunk: Path) -> Iterator[tuple[Key, int, bool, list[bytes]]]:
            for key, banner, lines in keyed_records(self.query, spool, read_index(chunk)):
                yield key, n, banner, lines

        streams = [tagged(n, spool, chunk) for n, (spool, chunk) in enumerate(chunks)]
        for _, n, banner, lines in heapq.merge(*streams, key=lambda item: item[0]):
            self._write(banner, lines, first_banner=n == 0)
        self.out.flush()
