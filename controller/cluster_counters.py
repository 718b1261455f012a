"""Counters summed over several switches (issue 15, docs/multiswitch.md), so policies see the
whole cluster: what every switch sent to each backend, each flow's packets wherever ECMP
took them (a flow's entries have one statistics slot on every switch), drops and events.

Sums are of per-switch *increases*, accumulated: a switch that restarts starts its counters
at 0 again, and a sum of raw values would then go backwards, which the load monitor would
read as negative traffic. A value below the switch's previous one is taken as a restart:
the whole new value is the increase. The result is a CounterReading with totals that only
grow, as one switch's are, so controller/load_monitor.py takes it unchanged. A switch taken
over running has counted since it started: its first reading is where its increases start.
"""

from __future__ import annotations

from collections import defaultdict

from controller.counter_poller import CounterReading
from controller.dataplane.dispatcher_tables import CounterValue

Cells = dict[int, CounterValue]


class _Summed:
    """One counter array (or map) summed over switches."""

    def __init__(self) -> None:
        self._last: dict[str, Cells] = {}
        self.total: dict[int, CounterValue] = {}

    def add(self, switch: str, cells: Cells, baseline: bool = False) -> None:
        if baseline:
            self._last[switch] = dict(cells)
            return
        last = self._last.get(switch, {})
        for index, value in cells.items():
            before = last.get(index)
            if before is None or value.packets < before.packets or value.bytes < before.bytes:
                before = CounterValue(0, 0)        # first reading of this cell, or a restart
            grown = self.total.get(index, CounterValue(0, 0))
            self.total[index] = CounterValue(grown.packets + value.packets - before.packets,
                                             grown.bytes + value.bytes - before.bytes)
        self._last[switch] = dict(cells)

    def snapshot(self) -> Cells:
        return dict(self.total)


class ClusterCounters:
    """Feed each switch's newest reading; `reading()` is the cluster's."""

    def __init__(self) -> None:
        self._backends = _Summed()
        self._flows = _Summed()
        self._drops = _Summed()
        self._events = _Summed()
        self._ports: dict[str, _Summed] = defaultdict(_Summed)
        self._at = 0.0
        self._per_flow = False
        self.readings: dict[str, int] = defaultdict(int)     # switch -> readings taken
        self._adopted: set[str] = set()                        # switches whose next reading is a baseline

    def adopting(self, switch: str) -> None:
        """The switch was taken over running: its next reading is what it counted before."""
        self._adopted.add(switch)

    def add(self, switch: str, reading: CounterReading) -> None:
        baseline = switch in self._adopted
        self._adopted.discard(switch)
        self._backends.add(switch, reading.backend_traffic, baseline)
        if reading.flow_stats is not None:
            self._flows.add(switch, reading.flow_stats, baseline)
            self._per_flow = True
        self._drops.add(switch, reading.drops, baseline)
        self._events.add(switch, reading.events, baseline)
        for direction, cells in reading.ports.items():
            # Every dispatcher has the same port plan, so port j is backend j's on all of them.
            self._ports[direction].add(switch, cells, baseline)
        self._at = max(self._at, reading.at)
        self.readings[switch] += 1

    def reading(self) -> CounterReading:
        return CounterReading(at=self._at, backend_traffic=self._backends.snapshot(),
                              flow_stats=self._flows.snapshot() if self._per_flow else None,
                              ports={d: s.snapshot() for d, s in self._ports.items()},
                              drops=self._drops.snapshot(), events=self._events.snapshot())
