"""Running a query on Dask: one task per chunk, pinned to the worker of the chunk's node.

Embedded by default: a LocalCluster of single-threaded worker processes, with work stealing
off so a chunk runs where it is placed (the times then say how fast each node is, which is
what rebalancing needs). The restriction is loose: if a worker dies, the scheduler re-runs
its chunks elsewhere, reading them from the store (a re-fetch). A task writes its output to
a temporary spool file and renames it when the tool is done, so a killed attempt leaves
nothing behind; the client takes each chunk's result once.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dask
from distributed import Client, LocalCluster, as_completed, get_worker

from capture_query.tools import Query


@dataclass(frozen=True)
class ChunkTask:
    chunk_id: str
    path: str     # the chunk file
    spool: str    # where its output goes
    node: str     # the node it is placed on


@dataclass(frozen=True)
class ChunkResult:
    chunk_id: str
    node: str
    worker: str       # the worker it ran on
    start: float      # wall-clock seconds (time.time) on the worker
    seconds: float
    returncode: int
    stderr: str       # the tool's diagnostics, last lines


def run_chunk(query: Query, task: ChunkTask) -> ChunkResult:
    """The task: the tool on one chunk, its stdout to the spool file."""
    try:
        worker = str(get_worker().name)
    except ValueError:
        worker = "client"
    tmp = f"{task.spool}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    start = time.time()
    t0 = time.perf_counter()
    with open(tmp, "wb") as out:
        done = subprocess.run(query.argv(Path(task.path)), stdout=out, stderr=subprocess.PIPE, check=False)
    os.replace(tmp, task.spool)
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
    return ChunkResult(task.chunk_id, task.node, worker, start, time.perf_counter() - t0, done.returncode,
                       "\n".join(tail))


def node_workers(nodes: Sequence[str], workers: Mapping[str, str]) -> dict[str, str]:
    """Worker address for each node: the worker of the same name (a real cluster's workers
    are started with --name NODE), else the nodes spread over the workers in name order."""
    if not workers:
        raise RuntimeError("the Dask cluster has no workers")
    if all(node in workers for node in nodes):
        return {node: workers[node] for node in nodes}
    ordered = [workers[name] for name in sorted(workers, key=_natural)]
    return {node: ordered[k % len(ordered)] for k, node in enumerate(nodes)}


def _natural(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (1 << 30, name)


def worker_names(client: Client) -> dict[str, str]:
    return {str(info["name"]): addr for addr, info in client.scheduler_info()["workers"].items()}


@contextmanager
def connect(scheduler: str | None, workers: int, memory_limit: str = "2GiB") -> Iterator[Client]:
    """A client on the cluster at `scheduler`, or on an embedded one of `workers` processes."""
    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with dask.config.set({"distributed.scheduler.work-stealing": False}), \
         LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR, memory_limit=memory_limit) as cluster, \
         Client(cluster) as client:
        client.wait_for_workers(workers)
        yield client


def submit_chunks(client: Client, query: Query, tasks: Sequence[ChunkTask]) -> Iterator[ChunkResult]:
    """Every chunk's task, results as they finish, each chunk once."""
    placed = node_workers(sorted({t.node for t in tasks}), worker_names(client))
    token = uuid.uuid4().hex[:8]
    futures = [client.submit(run_chunk, query, task, key=f"chunk-{task.chunk_id}-{token}", pure=False,
                             workers=[placed[task.node]], allow_other_workers=True)
               for task in tasks]
    seen: set[str] = set()
    for future in as_completed(futures):
        result: ChunkResult = future.result()
        future.release()
        if result.chunk_id in seen:
            continue
        seen.add(result.chunk_id)
        yield result
