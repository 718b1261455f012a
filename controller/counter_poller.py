"""Counter reads on a thread of their own, so the serving loop never waits for them.

Reading the per-flow counter (131,072 cells) takes BMv2 and the decoding a good part of a
second under load; done in the serving loop it held digests back for as long (measured:
p50 digest-to-entry 1.7 s at 10,000 flows/s with fb_est). Here a thread reads every
interval and hands the newest reading over; the serving loop takes it when it comes round.
P4Runtime reads need no arbitration and share the channel with the loop's writes.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass, field

from controller.dataplane.constants import DispatchEvent, DropReason
from controller.dataplane.dispatcher_tables import CounterValue, DispatcherTables
from controller.p4runtime import P4RuntimeClient, P4RuntimeError


@dataclass
class CounterReading:
    at: float                                   # monotonic time the reads started
    backend_traffic: dict[int, CounterValue]
    flow_stats: dict[int, CounterValue] | None  # None when no policy needs per-flow rates
    ports: dict[str, dict[int, CounterValue]]   # "in"/"out" -> port -> value
    drops: dict[int, CounterValue] = field(default_factory=dict)   # DropReason -> packets
    events: dict[int, CounterValue] = field(default_factory=dict)  # DispatchEvent -> packets


class CounterPoller:
    def __init__(self, client: P4RuntimeClient, tables: DispatcherTables, interval: float,
                 per_flow: bool) -> None:
        self.client = client
        self.tables = tables
        self.interval = interval
        self.per_flow = per_flow
        self._readings: queue.Queue[CounterReading | P4RuntimeError] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="counter-poller", daemon=True)

    def __enter__(self) -> CounterPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def latest(self) -> CounterReading | None:
        """The newest reading not yet taken; raises the poller's error if the switch went away."""
        try:
            reading = self._readings.get_nowait()
        except queue.Empty:
            return None
        if isinstance(reading, P4RuntimeError):
            raise reading
        return reading

    def _run(self) -> None:
        next_read = time.monotonic()
        while not self._stop.wait(max(0.0, next_read - time.monotonic())):
            next_read = max(next_read + self.interval, time.monotonic())
            try:
                reading = self._read()
            except P4RuntimeError as exc:
                self._offer(exc)
                return
            self._offer(reading)

    def _read(self) -> CounterReading:
        at = time.monotonic()
        read = self.tables.read_counter
        return CounterReading(
            at, read(self.client, "backend_traffic"),
            read(self.client, "flow_stats") if self.per_flow else None,
            {"in": read(self.client, "port_in"), "out": read(self.client, "port_out")},
            # 32 cells: one more small read per poll, so that drops by reason reach the metrics.
            read(self.client, "drops"),
            # 16 cells: collisions, held generations and the other paths packets take.
            self.tables.read_dispatch_events(self.client))

    def _offer(self, item: CounterReading | P4RuntimeError) -> None:
        """Replace a reading the loop has not taken yet: only the newest matters."""
        with contextlib.suppress(queue.Empty):
            self._readings.get_nowait()
        self._readings.put_nowait(item)
        self.client.activity.set()


def drops_by_reason(cells: dict[int, CounterValue]) -> dict[str, int]:
    """Packets dropped per reason, named as in DropReason in lower case
    ("vip_port_unconfigured"). Every reason is listed, zeros too, so that a counter exists
    before its first drop (rate() over a series that appears at 5 loses those 5); an index
    the enum does not name keeps its number."""
    out = {reason.name.lower(): 0 for reason in DropReason if reason is not DropReason.NONE}
    for index, value in sorted(cells.items()):
        try:
            name = DropReason(index).name.lower()
        except ValueError:
            name = str(index)
        out[name] = out.get(name, 0) + value.packets
    return out


def events_by_name(cells: dict[int, CounterValue]) -> dict[str, int]:
    """The data plane's dispatch events by name in lower case without EVENT_ ("cache_collision"),
    every one listed, zeros too."""
    out = {event.name.removeprefix("EVENT_").lower(): 0 for event in DispatchEvent}
    for index, value in cells.items():
        try:
            out[DispatchEvent(index).name.removeprefix("EVENT_").lower()] = value.packets
        except ValueError:
            continue   # a cell no event names: nothing counts there
    return out
