"""The source's rebalancing rule, as pure functions.

After a query each node has a time T (the seconds its chunks took). A node slower than the
threshold above the mean (T > T_avg * (1 + threshold)) gives ceil((T - T_avg) / t_chunk)
randomly chosen chunks (t_chunk = its T / its chunk count) to a fast node: the slowest to the
fastest, the second slowest to the second fastest, and so on. Estimated times are updated
(a moved chunk costs the receiver its own time per chunk) and the pairing repeats until no
node is above the threshold. One guard over the source: a node never receives so many that
its estimate passes the giver's, which would only swap the roles and bounce chunks back.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_ROUNDS = 16


@dataclass(frozen=True)
class Move:
    chunk: str
    source: str
    target: str


def over_threshold(times: Mapping[str, float], threshold: float) -> list[str]:
    """Nodes slower than threshold above the mean, slowest first."""
    if not times:
        return []
    mean = sum(times.values()) / len(times)
    return sorted((n for n, t in times.items() if t > mean * (1 + threshold)), key=lambda n: -times[n])


def chunks_to_move(t_slow: float, t_avg: float, t_per_chunk: float) -> int:
    """The source's count: ceil((T_slow - T_avg) / t_per_chunk)."""
    if t_per_chunk <= 0 or t_slow <= t_avg:
        return 0
    return math.ceil((t_slow - t_avg) / t_per_chunk - 1e-9)


def plan_moves(times: Mapping[str, float], chunks: Mapping[str, Sequence[str]], threshold: float,
               rng: random.Random) -> list[Move]:
    """Which chunks go where, by the rule above. `times` and `chunks` per node."""
    est = {n: float(times.get(n, 0.0)) for n in chunks}
    held = {n: list(c) for n, c in chunks.items()}
    origin: dict[str, str] = {}
    where: dict[str, str] = {}
    for _ in range(MAX_ROUNDS):
        slow = [n for n in over_threshold(est, threshold) if held[n]]
        if not slow:
            break
        mean = sum(est.values()) / len(est)
        fast = sorted(est, key=lambda n: est[n])
        moved = False
        for giver, taker in zip(slow, fast):
            if giver == taker or est[taker] >= est[giver]:
                continue
            per_giver = est[giver] / len(held[giver])
            per_taker = est[taker] / len(held[taker]) if held[taker] and est[taker] > 0 else per_giver
            count = min(chunks_to_move(est[giver], mean, per_giver), len(held[giver]))
            while count > 0 and est[taker] + count * per_taker > est[giver] - count * per_giver:
                count -= 1
            if count == 0:
                continue
            for chunk in rng.sample(held[giver], count):
                held[giver].remove(chunk)
                held[taker].append(chunk)
                origin.setdefault(chunk, giver)
                where[chunk] = taker
            est[giver] -= count * per_giver
            est[taker] += count * per_taker
            moved = True
        if not moved:
            break
    return [Move(c, origin[c], t) for c, t in where.items() if origin[c] != t]


def keeps_bouncing(moved_in: Sequence[int], query: int, limit: int = 2, window: int = 3) -> bool:
    """A chunk that already moved after `limit` of the last `window` queries and is to move
    again: it is too big a unit for the balance, so it is split in two instead."""
    return sum(1 for q in moved_in if query - window < q <= query) >= limit
