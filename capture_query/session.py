"""One query from start to end: tasks for every chunk, output as they finish (or merged),
times and progress on stderr, a line in the store's history, then rebalancing."""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

from distributed import Client
from tqdm import tqdm

from capture_query.engine import ChunkResult, ChunkTask, node_workers, submit_chunks, worker_names
from capture_query.output import OutputSink
from capture_query.placement import Rebalancer
from capture_query.store import Store
from capture_query.tools import Query

HISTORY = "history.jsonl"


@dataclass
class QueryReport:
    wall_seconds: float
    results: list[ChunkResult]
    node_seconds: dict[str, float]
    moves: list[dict] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    failed: list[ChunkResult] = field(default_factory=list)
    rebalance_note: str = ""


def node_times(results: list[ChunkResult], nodes: list[str]) -> dict[str, float]:
    times = dict.fromkeys(nodes, 0.0)
    for r in results:
        times[r.node] = times.get(r.node, 0.0) + r.seconds
    return times


class QuerySession:
    def __init__(self, store: Store, query: Query, client: Client, *, merge: bool = False,
                 rebalance: bool = True, threshold: float = 0.1, verbose: bool = True,
                 out: BinaryIO | None = None, err: TextIO | None = None, seed: int | None = None) -> None:
        self.store, self.query, self.client = store, query, client
        self.merge, self.rebalance, self.threshold, self.verbose = merge, rebalance, threshold, verbose
        self.out = out if out is not None else sys.stdout.buffer
        self.err = err if err is not None else sys.stderr
        self.rng = random.Random(seed)

    def run(self) -> QueryReport:
        chunks = self.store.chunks()
        spool = self.store.spool / uuid.uuid4().hex[:8]
        spool.mkdir(parents=True, exist_ok=True)
        tasks = [ChunkTask(c.id, str(self.store.chunk_path(c).resolve()), str(spool / f"{c.id}.out"), c.node)
                 for c in chunks]
        paths = {c.id: self.store.chunk_path(c) for c in chunks}
        workers = worker_names(self.client)
        by_address = {addr: name for name, addr in workers.items()}
        home = {node: by_address[addr] for node, addr in node_workers(self.store.manifest.nodes, workers).items()}
        sink = OutputSink(self.query, self.out)
        results: list[ChunkResult] = []
        start = time.perf_counter()
        try:
            with tqdm(total=len(tasks), file=self.err, unit="chunk", desc=self.query.tool, leave=False) as bar:
                for result in submit_chunks(self.client, self.query, tasks):
                    results.append(result)
                    if self.verbose:
                        bar.write(f"chunk {result.chunk_id} node {result.node} worker {result.worker} "
                                  f"{result.seconds:.3f} s", file=self.err)
                    if not self.merge:
                        sink.stream(Path(next(t.spool for t in tasks if t.chunk_id == result.chunk_id)),
                                    paths[result.chunk_id])
                    bar.update(1)
            if self.merge:
                sink.merge([(Path(t.spool), paths[t.chunk_id]) for t in tasks])
        finally:
            shutil.rmtree(spool, ignore_errors=True)
        wall = time.perf_counter() - start
        report = QueryReport(wall, results, node_times(results, self.store.manifest.nodes))
        report.failed = [r for r in results if r.returncode not in (0, 1) or (r.returncode and r.stderr)]
        self._summary(report)
        ran_home = all(home.get(r.node) == r.worker for r in results)
        if not self.rebalance:
            report.rebalance_note = "off"
        elif len(set(home.values())) < len(home):
            report.rebalance_note = "off: fewer workers than nodes"
        elif not ran_home:
            report.rebalance_note = "skipped: some chunks ran away from their node (a worker died)"
        else:
            self._rebalance(report)
        self.store.manifest.queries += 1
        self.store.save()
        self._history(report)
        return report

    def _summary(self, report: QueryReport) -> None:
        per_worker: dict[str, list[float]] = defaultdict(list)
        for r in report.results:
            per_worker[r.worker].append(r.seconds)
        for worker in sorted(per_worker):
            times = per_worker[worker]
            print(f"worker {worker}: {len(times)} chunks, {sum(times):.2f} s busy", file=self.err)
        print(f"{self.query.tool}: {len(report.results)} chunks in {report.wall_seconds:.2f} s", file=self.err)
        for r in report.failed[:3]:
            print(f"chunk {r.chunk_id}: {self.query.tool} exited {r.returncode}: {r.stderr}", file=self.err)

    def _rebalance(self, report: QueryReport) -> None:
        done = Rebalancer(self.store, self.threshold, self.rng).apply(report.node_seconds)
        report.moves, report.splits = done.moves, done.splits
        if done.moves:
            print(f"rebalanced: {len(done.moves)} chunks moved, {len(done.splits)} split", file=self.err)

    def _history(self, report: QueryReport) -> None:
        line = {"query": self.store.manifest.queries, "tool": self.query.tool, "args": list(self.query.args),
                "wall_seconds": round(report.wall_seconds, 4),
                "node_seconds": {n: round(t, 4) for n, t in report.node_seconds.items()},
                "moves": report.moves, "splits": report.splits, "rebalance": report.rebalance_note or "on",
                "chunks": [asdict(r) for r in report.results]}
        with open(self.store.root / HISTORY, "a") as f:
            f.write(json.dumps(line) + "\n")
