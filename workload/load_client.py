"""A load generator: Poisson arrivals, each a new TCP connection fetching one object.

Object sizes come from a flow-size distribution (a built-in model by default, or a .cdf
file: workload/object_sizes.py); the request is
`GET /obj/<size> HTTP/1.0`, so the server closes the connection after the body. Every
request is one JSON line in the results file: when it started, how long it took, bytes
received, HTTP status or error, and the local address:port of its connection (the key a test
matches against the servers' connection logs). A summary (requests/s, p50/p99 latency,
failures) is printed as one JSON line at the end. A record's `connect` (seconds until the
connection was established; None if it never was) tells a request refused at connection time
(its SYNs dropped or reset) from one that broke once established.

    python -m workload.load_client --target 10.0.0.100:80 --rate 200 --duration 10 \
        --cdf fb_hadoop --max-bytes 200000 --out /tmp/client1.jsonl

asyncio, one process: arrivals are started on schedule however many requests are still in
flight, so the generator is not the bottleneck at a few hundred requests per second; each
record's `lag` says how late its start was, and the summary gives the largest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sim.builtin_workloads import BUILTIN
from sim.flow_sizes import CdfError
from workload.object_sizes import ObjectSizes


@dataclass
class RequestResult:
    start: float                  # wall clock (time.time()) when the connection was opened
    lag: float                    # seconds later than the Poisson schedule said
    size: int                     # bytes asked for
    latency: float | None = None  # seconds from connect to the last byte
    connect: float | None = None  # seconds until the connection was established (None: it never was)
    elapsed: float | None = None  # seconds until it ended, whatever the outcome
    bytes: int = 0                # body bytes received
    status: int | None = None
    error: str | None = None
    local: str | None = None      # "ip:port" of our end of the connection

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200 and self.bytes == self.size


def poisson_schedule(rng: np.random.Generator, rate: float, duration: float | None = None,
                     count: int | None = None) -> list[float]:
    """Arrival offsets (s from the start): exponential gaps of mean 1/rate, `count` of them or
    all within `duration`."""
    if rate <= 0:
        raise ValueError(f"rate must be > 0 requests/s, got {rate}")
    if count is not None:
        return np.cumsum(rng.exponential(1.0 / rate, count)).tolist()
    if duration is None:
        raise ValueError("give a duration or a count")
    times: list[float] = []
    t = rng.exponential(1.0 / rate)
    while t < duration:
        times.append(t)
        t += rng.exponential(1.0 / rate)
    return times


async def fetch(host: str, port: int, size: int, timeout: float, result: RequestResult) -> None:
    """One connection, one GET, read to the end; fills `result` (never raises)."""
    began = time.perf_counter()
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            result.connect = time.perf_counter() - began
            local = writer.get_extra_info("sockname")
            result.local = f"{local[0]}:{local[1]}"
            writer.write(f"GET /obj/{size} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            result.status = int(head.split(b" ", 2)[1])
            while chunk := await reader.read(1 << 16):
                result.bytes += len(chunk)
        result.latency = time.perf_counter() - began
        if result.status == 200 and result.bytes != size:
            result.error = f"short body ({result.bytes} of {size} bytes)"
    except TimeoutError:
        result.error = "timeout"
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError) as exc:
        result.error = type(exc).__name__
    finally:
        result.elapsed = time.perf_counter() - began
        if writer is not None:
            writer.close()


async def run_load(host: str, port: int, schedule: list[float], sizes: list[int],
                   timeout: float = 30.0) -> list[RequestResult]:
    """Start request i at schedule[i] (seconds from now) for sizes[i] bytes; wait for all."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    wall0 = time.time()
    tasks, results = [], []
    for offset, size in zip(schedule, sizes):
        delay = t0 + offset - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(0.0, loop.time() - t0 - offset)
        result = RequestResult(start=wall0 + offset + late, lag=late, size=size)
        results.append(result)
        tasks.append(asyncio.create_task(fetch(host, port, size, timeout, result)))
    await asyncio.gather(*tasks)
    return results


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def summarise(results: list[RequestResult], elapsed: float, offered_rate: float) -> dict:
    ok = [r for r in results if r.ok]
    latencies = [r.latency for r in ok if r.latency is not None]
    return {
        "requests": len(results),
        "ok": len(ok),
        "failed": len(results) - len(ok),
        "errors": dict(Counter(r.error or f"status {r.status}" for r in results if not r.ok)),
        "offered_rate": offered_rate,
        "seconds": round(elapsed, 3),
        "requests_per_s": round(len(ok) / elapsed, 2) if elapsed > 0 else None,
        "bytes": sum(r.bytes for r in ok),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p99_s": percentile(latencies, 99),
        "lag_p50_s": percentile([r.lag for r in results], 50),
        "max_lag_s": max((r.lag for r in results), default=0.0),
    }


def _raise_fd_limit() -> None:
    """Each request in flight holds a socket; the default 1024 descriptors is too few."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, metavar="HOST:PORT", help="e.g. the VIP, 10.0.0.100:80")
    parser.add_argument("--rate", type=float, required=True, help="mean new connections per second")
    amount = parser.add_mutually_exclusive_group(required=True)
    amount.add_argument("--duration", type=float, help="seconds of arrivals")
    amount.add_argument("--requests", type=int, help="number of requests")
    parser.add_argument("--cdf", default="fb_hadoop",
                        help=f"object sizes: a built-in model ({', '.join(BUILTIN)}), shared:NAME from "
                             "$P4DISPATCH_SHARED_DATA/flowsize, or a path to a .cdf file (default fb_hadoop)")
    parser.add_argument("--max-bytes", type=int, help="cap on an object's size (clips the CDF's tail)")
    parser.add_argument("--size", type=int, help="every object this many bytes (instead of the CDF)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    parser.add_argument("--out", type=Path, help="per-request results, JSON lines")
    parser.add_argument("--summary", type=Path, help="also write the summary (JSON) here")
    args = parser.parse_args(argv)

    host, _, port = args.target.rpartition(":")
    rng = np.random.default_rng(args.seed)
    schedule = poisson_schedule(rng, args.rate, duration=args.duration, count=args.requests)
    if args.size is not None:
        sizes = [args.size] * len(schedule)
    else:
        try:
            object_sizes = ObjectSizes.load(args.cdf, args.max_bytes)
        except CdfError as exc:
            parser.error(f"--cdf: {exc}")
        sizes = object_sizes.sample(rng, len(schedule))
    _raise_fd_limit()
    started = time.perf_counter()
    results = asyncio.run(run_load(host, int(port), schedule, sizes, args.timeout))
    elapsed = time.perf_counter() - started
    if args.out:
        with args.out.open("w") as out:
            for r in results:
                out.write(json.dumps(asdict(r), separators=(",", ":")) + "\n")
    summary = summarise(results, elapsed, args.rate)
    text = json.dumps(summary)
    if args.summary:
        args.summary.write_text(text + "\n")
    print(text, flush=True)
    return 0 if summary["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
