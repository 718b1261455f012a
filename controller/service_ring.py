"""One service's dispatch ring on the switch, and when to rewrite it.

A policy gives weights every poll; the ring (controller/dispatch_ring.py) turns them into
slots with the fewest changes. Small changes are noise at a 100 ms poll, so the ring is
rewritten only when at least `threshold` of its slots would change, or at once when a
backend that may no longer take new flows (quiesced, draining, removed) still holds slots.
Rewriting a slot never moves a flow that has packets: those sit in `flows` or the cache.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.dispatch_ring import build_ring

EMPTY_SLOT = -1


class ServiceRing:
    def __init__(self, service_id: int, size: int, threshold: float) -> None:
        self.service_id = service_id
        self.size = size
        self.threshold = threshold
        self.slots: NDArray[np.int64] = np.full(size, EMPTY_SLOT, dtype=np.int64)  # backend ids
        self.rewrites = 0
        self.slots_written = 0
        self.warned_no_backend = False   # log "no backend takes new flows" once per episode
        self.punt_written = False        # reactive services: the switch's ring all punts

    def adopt(self, slots: dict[int, int]) -> None:
        """The ring as read from the switch (slot -> backend id); missing slots are empty."""
        self.slots[:] = EMPTY_SLOT
        self.punt_written = False
        for slot, backend_id in slots.items():
            if 0 <= slot < self.size:
                self.slots[slot] = backend_id

    def plan(self, backend_ids: list[int], weights: NDArray[np.float64],
             force: bool = False) -> dict[int, int]:
        """Slots to rewrite (slot -> backend id) for these weights; empty when not worth it."""
        ids = np.asarray(backend_ids, dtype=np.int64)
        if ids.size == 0 or not np.any(weights > 0):
            return {}
        index_of = {b: i for i, b in enumerate(backend_ids)}
        previous = np.array([index_of.get(int(b), -1) for b in self.slots], dtype=np.int64)
        if np.all(previous < 0):
            ring = build_ring(weights, self.size)
        else:
            ring = build_ring(weights, self.size, previous)
        new_slots = ids[ring]
        changed = np.flatnonzero(new_slots != self.slots)
        if changed.size == 0:
            return {}
        # Slots held by a backend that must take no new flows (or an empty slot) always go.
        outcast = (previous < 0) | (weights[np.maximum(previous, 0)] <= 0)
        must = bool(np.any(outcast))
        if not (force or must or changed.size >= self.threshold * self.size):
            return {}
        return {int(s): int(new_slots[s]) for s in changed}

    def commit(self, changes: dict[int, int]) -> None:
        """The changes are on the switch."""
        for slot, backend_id in changes.items():
            self.slots[slot] = backend_id
        if changes:
            self.rewrites += 1
            self.slots_written += len(changes)

    def shares(self) -> dict[int, float]:
        """Fraction of the ring per backend id."""
        ids, counts = np.unique(self.slots[self.slots >= 0], return_counts=True)
        return {int(b): int(c) / self.size for b, c in zip(ids, counts)}
