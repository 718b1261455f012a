"""The dispatch ring: a policy's weights as the switch's (service, hash & (size-1)) -> backend table.

Each server gets slots in proportion to its weight, rounded by largest remainder so every
share is within one slot of exact. When the weights change, a server keeps as many of its
old slots as it is still owed and only the excess moves: the fewest slots possible change,
so few table entries are rewritten and few not-yet-installed flows can move.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from controller.dataplane.constants import MAX_RING_SIZE


def check_ring_size(size: int) -> int:
    """A ring is a power of two (the switch masks the hash) of at most MAX_RING_SIZE slots."""
    if not (1 <= size <= MAX_RING_SIZE) or size & (size - 1):
        raise ValueError(f"expected a power of two from 1 to {MAX_RING_SIZE} (the switch masks the hash), not {size}")
    return size


def slot_counts(weights: ArrayLike, size: int) -> NDArray[np.int64]:
    """Slots per server: floor of the exact share, the remainder to the largest fractions."""
    check_ring_size(size)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be finite and >= 0, not {weights.tolist()}")
    total = weights.sum()
    if total <= 0:
        raise ValueError("no server has a positive weight: the ring would be empty")
    exact = weights / total * size
    counts = np.floor(exact).astype(np.int64)
    short = size - int(counts.sum())
    if short:
        # Stable order: on equal fractions the lower index wins, so rings are reproducible.
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[:short]] += 1
    return counts


def _interleaved(servers: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """The servers repeated by count, spread out: each one's copies sit at evenly spaced ranks."""
    repeated = np.repeat(servers, counts)
    if repeated.size == 0:
        return repeated
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rank = np.arange(repeated.size) - starts
    position = (rank + 0.5) / np.repeat(counts, counts)
    return repeated[np.argsort(position, kind="stable")]


def build_ring(weights: ArrayLike, size: int, previous: ArrayLike | None = None) -> NDArray[np.int64]:
    """A ring of `size` slots for these weights; with `previous`, changing as few slots as possible."""
    counts = slot_counts(weights, size)
    servers = np.arange(len(counts), dtype=np.int64)
    if previous is None:
        return _interleaved(servers, counts)
    ring = np.array(previous, dtype=np.int64, copy=True)
    if ring.shape != (size,):
        raise ValueError(f"previous ring has {ring.size} slots, not {size}")
    # Slots of servers no longer in the weight vector are free.
    free = [np.flatnonzero((ring < 0) | (ring >= len(counts)))]
    old_counts = np.bincount(ring[(ring >= 0) & (ring < len(counts))], minlength=len(counts))
    for server in np.flatnonzero(old_counts > counts):
        held = np.flatnonzero(ring == server)
        # Release an evenly spread subset so the kept slots stay spread too.
        release = held[np.linspace(0, held.size - 1, old_counts[server] - counts[server]).round().astype(np.int64)]
        free.append(np.unique(release) if release.size else release)
        # linspace can repeat an index when releasing almost all: top up from the rest.
        missing = old_counts[server] - counts[server] - free[-1].size
        if missing:
            rest = np.setdiff1d(held, free[-1])
            free.append(rest[:missing])
    free_slots = np.sort(np.concatenate(free))
    deficit = np.maximum(counts - old_counts, 0)
    ring[free_slots] = _interleaved(servers, deficit)
    return ring


def ring_churn(old: ArrayLike, new: ArrayLike) -> int:
    """Number of slots whose server differs between two rings of the same size."""
    old = np.asarray(old)
    new = np.asarray(new)
    if old.shape != new.shape:
        raise ValueError(f"rings differ in size: {old.size} and {new.size} slots")
    return int(np.count_nonzero(old != new))


def minimal_churn(old: ArrayLike, weights: ArrayLike) -> int:
    """The fewest slots any ring for `weights` must change from `old` (sum of excess slots)."""
    old = np.asarray(old, dtype=np.int64)
    counts = slot_counts(weights, old.size)
    valid = (old >= 0) & (old < len(counts))
    old_counts = np.bincount(old[valid], minlength=len(counts))
    return int(np.maximum(old_counts - counts, 0).sum() + np.count_nonzero(~valid))
