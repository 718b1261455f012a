"""One service's dispatch ring on the switch, and when to rewrite it.

A policy gives weights every poll; `plan_ring` (controller/dispatch_ring.py) turns them into
the slots to rewrite. One notion of "worth writing", in shares of the ring:

* `threshold` (config `ring_threshold`) is the hysteresis: nothing is written while every
  backend's slot count is within `threshold` x ring size slots of its target. Small changes
  are noise at a 100 ms poll.
* `max_change` (config `ring_max_change`) caps a write at that share of the ring, moving slots
  from the most over-served backends to the most under-served first; the next polls continue.
* Slots of a backend that may take no new flows (quiesced, draining, removed) and empty slots
  always go at once, whatever the threshold and the cap. `force` (an operator's change,
  take-over) skips the threshold, not the cap.

Rewriting a slot never moves a flow that has packets: those sit in `flows` or the cache, or
hold the slot's older generation while stateless (docs/consistency.md).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.dispatch_ring import plan_ring

EMPTY_SLOT = -1


class ServiceRing:
    def __init__(self, service_id: int, size: int, threshold: float, max_change: float | None = None) -> None:
        if not 0 <= threshold <= 1 or (max_change is not None and not 0 < max_change <= 1):
            raise ValueError(f"ring threshold must be in [0, 1] and max change in (0, 1] "
                             f"(shares of the ring), not {threshold} and {max_change}")
        self.service_id = service_id
        self.size = size
        self.threshold = threshold       # hysteresis, as a share of the ring per backend
        self.max_change = max_change     # cap per write, as a share of the ring (None: no cap)
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

    def plan(self, backend_ids: list[int], weights: NDArray[np.float64], force: bool = False,
             available: NDArray[np.bool_] | None = None) -> dict[int, int]:
        """Slots to rewrite (slot -> backend id) for these weights; empty when not worth it.
        `available`: which backends take new flows (default: those with a positive weight);
        a policy's weight 0 for an available backend is not a reason to bypass the cap."""
        ids = np.asarray(backend_ids, dtype=np.int64)
        if ids.size == 0 or not np.any(weights > 0):
            return {}
        index_of = {b: i for i, b in enumerate(backend_ids)}
        previous = np.array([index_of.get(int(b), -1) for b in self.slots], dtype=np.int64)
        cap = None if self.max_change is None else max(1, int(self.max_change * self.size))
        ring = plan_ring(previous, weights, max_change=cap,
                         hysteresis=0.0 if force else self.threshold * self.size, available=available)
        new_slots = ids[ring]
        changed = np.flatnonzero(new_slots != self.slots)
        return {int(s): int(new_slots[s]) for s in changed}

    def spare(self, changes: dict[int, int], keep: set[int], movable: set[int]) -> dict[int, int]:
        """The changes with the slots in `keep` left alone (several switches, rule 5 of
        docs/multiswitch.md: a slot that decided a flow not yet on every switch), each change
        taken instead by another slot of the same backend that is neither kept nor changing.
        Only slots of backends in `movable` (those that still take flows) are spared: a
        backend that left loses its slots at once. A change with no such slot waits for a
        later write."""
        spared = dict(changes)
        for slot in sorted(s for s in changes if s in keep):
            old = int(self.slots[slot])
            if old == EMPTY_SLOT or old not in movable:
                continue
            backend = spared.pop(slot)
            for other in np.flatnonzero(self.slots == old):
                if int(other) not in spared and int(other) not in keep:
                    spared[int(other)] = backend
                    break
        return spared

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
