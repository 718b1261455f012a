"""Per-flow FB_EST state for a table of flow slots, updated at each synchronisation point.

Slots are small integers the caller recycles when flows end, so memory follows the number
of active flows. The rate is averaged over busy intervals only: r_j is the rate while
sending and p_j the chance of sending, so r_j * p_j does not discount idle time twice.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from controller.estimators.busy_probability import DEFAULT_IDLE_RTTS, busy_this_interval, update_busy
from controller.estimators.flow_rate import DEFAULT_TIME_CONSTANT, update_rate
from controller.estimators.server_load import server_load


class FlowEstimates:
    """Rate, busy probability, RTT and server of every tracked flow slot."""

    def __init__(self, n_servers: int, time_constant: float = DEFAULT_TIME_CONSTANT,
                 idle_rtts: float = DEFAULT_IDLE_RTTS, capacity: int = 1024) -> None:
        self.n_servers = n_servers
        self.time_constant = time_constant
        self.idle_rtts = idle_rtts
        self.rate = np.zeros(capacity)
        self.busy = np.zeros(capacity)
        self.rtt = np.ones(capacity)
        self.server = np.zeros(capacity, dtype=np.int64)
        self.tracked = np.zeros(capacity, dtype=bool)

    def _grow(self, needed: int) -> None:
        size = len(self.rate)
        if needed <= size:
            return
        new = max(needed, 2 * size)
        for name, fill in (("rate", 0.0), ("busy", 0.0), ("rtt", 1.0), ("server", 0), ("tracked", False)):
            old = getattr(self, name)
            grown = np.full(new, fill, dtype=old.dtype)
            grown[:size] = old
            setattr(self, name, grown)

    def track(self, slots: ArrayLike, servers: ArrayLike, rtts: ArrayLike,
              initial_rate: ArrayLike = 0.0) -> None:
        """Start tracking new flows (the controller learnt them from digests): busy, rate prior."""
        slots = np.asarray(slots, dtype=np.int64)
        if slots.size == 0:
            return
        self._grow(int(slots.max()) + 1)
        self.server[slots] = servers
        self.rtt[slots] = rtts
        self.rate[slots] = initial_rate
        self.busy[slots] = 1.0
        self.tracked[slots] = True

    def forget(self, slots: ArrayLike) -> None:
        slots = np.asarray(slots, dtype=np.int64)
        slots = slots[slots < len(self.tracked)]
        self.tracked[slots] = False
        self.rate[slots] = 0.0
        self.busy[slots] = 0.0

    def sync(self, bytes_seen: ArrayLike, idle_time: ArrayLike, interval: float) -> None:
        """One synchronisation point for every slot: bytes since the last one, current idle gap."""
        n = len(self.rate)
        bytes_seen = _per_slot(bytes_seen, n, 0.0)
        idle_time = _per_slot(idle_time, n, np.inf)
        busy_now = busy_this_interval(bytes_seen, idle_time, self.rtt, self.idle_rtts)
        sending = bytes_seen > 0
        rate = update_rate(self.rate, bytes_seen, interval, self.time_constant)
        self.rate = np.where(self.tracked & sending, rate, self.rate)
        self.busy = np.where(self.tracked, update_busy(self.busy, busy_now, interval, self.time_constant), 0.0)

    def server_load(self) -> NDArray[np.float64]:
        """Expected load per server: sum of r_j * p_j over its tracked flows (bytes/s)."""
        return server_load(self.server[self.tracked], self.rate[self.tracked], self.busy[self.tracked],
                           self.n_servers)


def _per_slot(values: ArrayLike, n: int, fill: float) -> NDArray[np.float64]:
    """A scalar or a per-slot array as n values; slots past its end get `fill`."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 0:
        return np.full(n, float(values))
    out = np.full(n, fill)
    out[:min(n, len(values))] = values[:n]
    return out
