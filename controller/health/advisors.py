"""Advisors (Network Dispatcher): the controller times a real request to each backend.

A TCP advisor connects; an HTTP advisor sends one GET and expects a status. A probe that
fails, times out or gets another status is a failure (the monitor takes the backend out);
the time a successful one took is ND's forward metric (it grows with the server's queue).

    runner = AdvisorRunner([(backend_id, AdvisorSpec(...)), ...], period_s=1.0)
    runner.run_due(now)          # each serving-loop turn: start the probes that are due
    for r in runner.results():   # finished ones, never blocks
        monitor.advisor_result(r.backend_id, r.advisor, r.result.ok, r.at, r.result.response_time, r.result.detail)
    runner.close()

Probes block, so they run on a small thread pool; the serving loop only submits and
collects. One probe per target at a time: a target still being probed when its next period
comes is skipped, so a hanging server cannot pile up threads.
"""

from __future__ import annotations

import http.client
import queue
import socket
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Literal

MAX_BODY = 64 * 1024     # an advisor reads at most this much of a body (it times, not downloads)


@dataclass(frozen=True)
class AdvisorSpec:
    name: str                          # how the status names it, e.g. "http:80/health"
    kind: Literal["tcp", "http"]
    address: str
    port: int
    path: str = "/"
    expect_status: int = 200
    timeout_s: float = 1.0
    host_header: str | None = None     # HTTP Host; default the address


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    response_time: float    # s: connect (TCP), or request to the last byte read (HTTP)
    detail: str


@dataclass(frozen=True)
class AdvisorResult:
    backend_id: int
    advisor: str
    result: ProbeResult
    at: float               # the runner's clock when the probe finished


def probe_tcp(address: str, port: int, timeout_s: float) -> ProbeResult:
    started = time.perf_counter()
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            pass
    except OSError as exc:
        return ProbeResult(False, time.perf_counter() - started, f"connect {address}:{port}: {_reason(exc)}")
    elapsed = time.perf_counter() - started
    return ProbeResult(True, elapsed, f"connected in {elapsed * 1e3:.1f} ms")


def probe_http(address: str, port: int, path: str = "/", expect_status: int = 200, timeout_s: float = 1.0,
               host_header: str | None = None) -> ProbeResult:
    """One GET; ok when the status is the expected one and it all took at most timeout_s.

    http.client rather than urllib: one request exactly as asked, with no proxy from the
    environment and no redirect followed (an advisor may expect a 301).
    """
    started = time.perf_counter()
    connection = http.client.HTTPConnection(address, port, timeout=timeout_s)
    try:
        headers = {"Host": host_header} if host_header else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read(MAX_BODY)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, time.perf_counter() - started, f"GET {path}: {_reason(exc)}")
    finally:
        connection.close()
    elapsed = time.perf_counter() - started
    if elapsed > timeout_s:    # the socket timeout is per read: a slow drip can exceed it in total
        return ProbeResult(False, elapsed, f"GET {path}: {elapsed:.2f} s, more than the {timeout_s} s timeout")
    if status != expect_status:
        return ProbeResult(False, elapsed, f"GET {path}: status {status}, expected {expect_status}")
    return ProbeResult(True, elapsed, f"status {status} in {elapsed * 1e3:.1f} ms")


def probe(spec: AdvisorSpec) -> ProbeResult:
    if spec.kind == "tcp":
        return probe_tcp(spec.address, spec.port, spec.timeout_s)
    return probe_http(spec.address, spec.port, spec.path, spec.expect_status, spec.timeout_s, spec.host_header)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


class AdvisorRunner:
    """Every target probed once per period on a thread pool; results collected without waiting."""

    def __init__(self, targets: Iterable[tuple[int, AdvisorSpec]], period_s: float, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.targets = list(targets)
        self.period_s = period_s
        self.clock = clock
        self.skipped = 0           # periods a target was still busy with its previous probe
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="advisor")
        self._next: list[float | None] = [None] * len(self.targets)
        self._running: list[bool] = [False] * len(self.targets)
        self._done: queue.SimpleQueue[AdvisorResult] = queue.SimpleQueue()
        self._closed = False

    def run_due(self, now: float) -> int:
        """Start the probes whose time has come; returns how many were started."""
        started = 0
        for i, (backend_id, spec) in enumerate(self.targets):
            due = self._next[i]
            if self._closed or (due is not None and now < due):
                continue
            self._next[i] = now + self.period_s if due is None or now - due >= self.period_s else due + self.period_s
            if self._running[i]:
                self.skipped += 1
                continue
            self._running[i] = True
            future = self._pool.submit(probe, spec)
            future.add_done_callback(partial(self._finished, i, backend_id, spec))
            started += 1
        return started

    def _finished(self, index: int, backend_id: int, spec: AdvisorSpec, future: Future[ProbeResult]) -> None:
        # Runs on the worker thread: only a queue put and a flag the loop reads.
        try:
            result = future.result()
        except Exception as exc:    # a bug in a probe must not silence the advisor
            result = ProbeResult(False, 0.0, f"probe raised {exc!r}")
        self._running[index] = False      # before the put: whoever sees the result may probe again
        self._done.put(AdvisorResult(backend_id, spec.name, result, self.clock()))

    def results(self) -> list[AdvisorResult]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        """Stop starting probes; running ones finish within their timeout."""
        self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)
