"""The UDP socket for agents' heartbeats and load reports, read on a thread of its own.

The serving loop is single-threaded (controller/app.py), so this thread does nothing but
receive: each datagram goes into a bounded queue with its arrival time, and the loop takes
them with `drain()` and decides (intake.py, monitor.py). Arrival is timestamped here, not
when the loop gets round to it, so a busy loop does not make heartbeats look late.

    listener = HealthListener("127.0.0.1", 9190).start()
    for datagram in listener.drain():     # each serving-loop turn; never blocks
        ...datagram.payload, datagram.received_at, datagram.source...
    listener.stop()

A flood cannot grow memory: when the queue is full, datagrams are dropped and counted.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from controller.health.messages import MAX_DATAGRAM

log = logging.getLogger("controller.health")

QUEUE_SIZE = 4096
RECEIVE_TIMEOUT_S = 0.2        # how soon the thread notices stop()


@dataclass(frozen=True)
class Datagram:
    payload: bytes
    received_at: float            # the listener's clock (monotonic s by default)
    source: tuple[str, int]


class HealthListener:
    def __init__(self, address: str, port: int, queue_size: int = QUEUE_SIZE,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._socket.bind((address, port))
        except OSError:
            self._socket.close()
            raise
        self._socket.settimeout(RECEIVE_TIMEOUT_S)
        self.address: tuple[str, int] = self._socket.getsockname()[:2]
        self._queue: queue.Queue[Datagram] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="health-listener", daemon=True)
        self.received = 0             # written by the thread only
        self.overflow = 0             # dropped because the loop did not keep up

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> HealthListener:
        self._thread.start()
        return self

    def drain(self, limit: int = QUEUE_SIZE) -> list[Datagram]:
        out: list[Datagram] = []
        while len(out) < limit:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * RECEIVE_TIMEOUT_S + 1)
        self._socket.close()

    def __enter__(self) -> HealthListener:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                payload, source = self._socket.recvfrom(MAX_DATAGRAM + 1)
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("health listener stopped: %s", exc)
                return
            self.received += 1
            try:
                self._queue.put_nowait(Datagram(payload, self.clock(), source[:2]))
            except queue.Full:
                self.overflow += 1
