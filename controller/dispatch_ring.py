"""The dispatch ring: a policy's weights as the switch's (service, hash & (size-1)) -> backend table.

Each server gets slots in proportion to its weight, rounded by largest remainder so every
share is within one slot of exact. When the weights change, a server keeps as many of its
old slots as it is still owed and only the excess moves: the fewest slots possible change,
so few table entries are rewritten.

Churn per write is bounded (`plan_ring`): a write moves at most `max_change` slots, taken
from the most over-served servers and given to the most under-served (relative to their
targets), so a partial step still improves balance; and no write happens while every
server's slot count is within `hysteresis` slots of its target. Slots that must go (held by a
server whose weight is 0: quiesced, draining, removed; by an unknown server; or empty) always
go at once, whatever the cap: such a server must take no new flow.

Why bound churn at all when consistency no longer depends on it (docs/consistency.md): a
changed slot takes its new backend only once no stateless flow holds it, each write costs
table writes on the switch, and a policy that swings hundreds of slots per 100 ms poll is
mostly chasing noise.
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
    if np.shape(previous) != (size,):
        raise ValueError(f"previous ring has {np.size(previous)} slots, not {size}")
    return ring_for_counts(previous, counts)


def ring_for_counts(previous: ArrayLike, counts: ArrayLike) -> NDArray[np.int64]:
    """`previous` changed in as few slots as possible so that server i holds counts[i] slots.

    Slots of servers outside 0..len(counts)-1 (e.g. -1, empty) are free and always rewritten."""
    counts = np.asarray(counts, dtype=np.int64)
    ring = np.array(previous, dtype=np.int64, copy=True)
    if ring.ndim != 1 or int(counts.sum()) != ring.size or np.any(counts < 0):
        raise ValueError(f"counts {counts.tolist()} do not fill a ring of {ring.size} slots")
    servers = np.arange(len(counts), dtype=np.int64)
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


def _ranked_units(counts: NDArray[np.int64], units: NDArray[np.int64], target: NDArray[np.int64],
                  step: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """One entry per slot a server could give (step -1) or take (step +1): the server, and its
    load relative to its target before that slot moves (slot counts over target counts)."""
    server = np.repeat(np.arange(len(counts), dtype=np.int64), units)
    nth = np.arange(server.size) - np.repeat(np.cumsum(units) - units, units)
    before = counts[server] + step * nth
    return server, before / np.maximum(target[server], 1e-9)   # target 0: infinitely over-served


def _give(counts: NDArray[np.int64], target: NDArray[np.int64], slots: int) -> NDArray[np.int64]:
    """`slots` more slots, each to the server then the most under-served relative to its target."""
    want = np.maximum(target - counts, 0)
    if slots <= 0:
        return np.zeros_like(counts)
    server, load = _ranked_units(counts, want, target, +1)
    chosen = server[np.lexsort((server, load))[:slots]]     # lowest load first; ties: lower index
    return np.bincount(chosen, minlength=len(counts))


def _take(counts: NDArray[np.int64], target: NDArray[np.int64], slots: int) -> NDArray[np.int64]:
    """`slots` slots taken back, each from the server then the most over-served."""
    excess = np.maximum(counts - target, 0)
    if slots <= 0:
        return np.zeros_like(counts)
    server, load = _ranked_units(counts, excess, target, -1)
    chosen = server[np.lexsort((server, -load))[:slots]]    # highest load first; ties: lower index
    return np.bincount(chosen, minlength=len(counts))


def step_counts(current: ArrayLike, target: ArrayLike, max_moves: int | None) -> NDArray[np.int64]:
    """Slot counts after moving at most `max_moves` slots from `current` toward `target`.

    Each move takes a slot from the server that is then the most over-served relative to its
    target (count / target) and gives it to the most under-served, so after k moves the worst
    over- and under-service are as small as k moves can make them. Both vectors sum to the ring
    size; None moves everything (the result is `target`)."""
    current = np.asarray(current, dtype=np.int64)
    target = np.asarray(target, dtype=np.int64)
    if current.shape != target.shape or current.sum() != target.sum():
        raise ValueError(f"current {current.tolist()} and target {target.tolist()} differ in servers or slots")
    needed = int(np.maximum(current - target, 0).sum())
    if max_moves is None or max_moves >= needed:
        return target.copy()
    moves = max(int(max_moves), 0)
    return current - _take(current, target, moves) + _give(current, target, moves)


def must_move(previous: ArrayLike, weights: ArrayLike, available: ArrayLike | None = None) -> NDArray[np.bool_]:
    """Slots that must change at once: empty, held by a server not in `weights`, or by one that
    may take no new flow (`available` False: quiesced, draining, failed, removed). Without
    `available`, a weight of 0 is taken to mean that; with it, a server a policy merely gives
    weight 0 this poll (water-filling does) is only the most over-served one."""
    ring = np.asarray(previous, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.float64)
    takes = weights > 0 if available is None else np.asarray(available, dtype=bool)
    if takes.shape != weights.shape:
        raise ValueError(f"{takes.size} availability flags for {weights.size} servers")
    known = (ring >= 0) & (ring < len(weights))
    out = ~known
    out[known] = ~takes[ring[known]]
    return out


def plan_ring(previous: ArrayLike, weights: ArrayLike, max_change: int | None = None,
              hysteresis: float = 0.0, available: ArrayLike | None = None) -> NDArray[np.int64]:
    """The next ring after `previous` (server index per slot, -1 for empty) for these weights.

    * Slots that must move (`must_move`, with `available`) always move, whatever the cap, each
      to the server then the most under-served.
    * Otherwise nothing changes while every server's slot count is within `hysteresis` slots of
      its target (`slot_counts`); with hysteresis 0 any difference is written.
    * At most `max_change` slots change in all (None: no cap); the forced ones count against it
      first. The moves go from the most over-served servers to the most under-served
      (`step_counts`: a server whose weight is 0 but which is available counts as infinitely
      over-served, so its slots go first), and within a server the fewest, evenly spread slots
      change (`ring_for_counts`).
    """
    ring = np.array(previous, dtype=np.int64, copy=True)
    if available is not None:   # a server that takes no new flows is owed nothing, whatever its weight
        available = np.asarray(available, dtype=bool)
        weights = np.asarray(weights, dtype=np.float64)
        if available.shape != weights.shape:
            raise ValueError(f"{available.size} availability flags for {weights.size} servers")
        weights = np.where(available, weights, 0.0)
    target = slot_counts(weights, ring.size)
    if max_change is not None and max_change < 0:
        raise ValueError(f"max_change must be >= 0 slots, not {max_change}")
    if hysteresis < 0:
        raise ValueError(f"hysteresis must be >= 0 slots, not {hysteresis}")
    forced = must_move(ring, weights, available)
    ring[forced] = -1
    current = np.bincount(ring[~forced], minlength=target.size)
    if not forced.any() and np.all(np.abs(current - target) <= hysteresis):
        return ring
    # The forced slots are filled first: that is the least any plan must change.
    counts = current + _give(current, target, int(np.count_nonzero(forced)))
    budget = None if max_change is None else max(max_change - int(np.count_nonzero(forced)), 0)
    return ring_for_counts(ring, step_counts(counts, target, budget))


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
