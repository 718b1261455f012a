"""The switch as the simulator sees it: dispatch ring, flow cache, delayed flow entries.

A new flow's backend is ring[hash >> 16 & (size - 1)], kept in the cache slot hash & 0xFFFF
until the controller's `flows` entry exists (digest at the caller's first ACK, one RTT
after the first packet, then the install delay). A flow whose cache slot is held by another
live flow is not cached: until its entry exists each packet follows the ring, and if the
ring is rewritten in that time its packets can reach two servers (counted as split).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.dispatch_ring import build_ring, check_ring_size, ring_churn

CACHE_SLOTS = 1 << 16


class SwitchModel:
    def __init__(self, ring_size: int, cache_timeout: float) -> None:
        self.ring_size = check_ring_size(ring_size)
        self.mask = ring_size - 1
        self.cache_timeout = cache_timeout
        self.ring: NDArray[np.int64] | None = None
        self._cache_busy_until = np.full(CACHE_SLOTS, -np.inf)
        # Uncached (colliding) flows still waiting for their entry: ring index, backend, install time.
        self._uncached = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
        self.churn = 0
        self.split_flows = 0
        self.collisions = 0

    def ring_index(self, key_hash: NDArray[np.uint32]) -> NDArray[np.int64]:
        return (key_hash.astype(np.int64) >> 16) & self.mask

    def write_ring(self, weights: NDArray[np.float64], now: float) -> int:
        """Rewrite the ring (fewest slots changed); returns the slots changed."""
        new = build_ring(weights, self.ring_size, self.ring)
        changed = 0 if self.ring is None else ring_churn(self.ring, new)
        self.churn += changed
        if changed:
            index, backend, installed = self._uncached
            waiting = installed > now
            moved = waiting & (new[index] != backend)
            self.split_flows += int(np.count_nonzero(moved))
            keep = waiting & ~moved   # a split flow is counted once
            self._uncached = (index[keep], backend[keep], installed[keep])
        self.ring = new
        return changed

    def dispatch_new(self, key_hash: NDArray[np.uint32], ring_key: NDArray[np.uint32],
                     first: NDArray[np.float64], installed: NDArray[np.float64]) -> NDArray[np.int64]:
        """Backends for new flows (in time order); records which ones missed the cache."""
        index = self.ring_index(ring_key)
        backend = self.ring[index]
        cache_slot = key_hash.astype(np.int64) & (CACHE_SLOTS - 1)
        held = self._cache_busy_until[cache_slot] > first
        winner = np.zeros(first.size, dtype=bool)
        winner[np.unique(cache_slot, return_index=True)[1]] = True   # the first of a batch's flows per slot
        winner &= ~held
        # The slot is refreshed by every miss, so it stays held until the entry exists, plus the timeout.
        self._cache_busy_until[cache_slot[winner]] = installed[winner] + self.cache_timeout
        lost = ~winner
        self.collisions += int(np.count_nonzero(lost))
        if lost.any():
            old_index, old_backend, old_installed = self._uncached
            self._uncached = (np.concatenate([old_index, index[lost]]),
                              np.concatenate([old_backend, backend[lost]]),
                              np.concatenate([old_installed, installed[lost]]))
        return backend
