"""Carrying out the rebalancing rule on the store after a query.

rebalance.py decides which chunks go where (pure); this applies it: each chosen chunk is
moved, except one that keeps bouncing (it moved after 2 of the last 3 queries): that one
is too big a unit for the balance, so it is cut in two flow-complete halves, one stays and
the other moves. A chunk that is one flow cannot be cut and just moves.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from capture_query.rebalance import keeps_bouncing, plan_moves
from capture_query.store import Store


@dataclass
class Rebalanced:
    moves: list[dict] = field(default_factory=list)    # {"chunk", "from", "to"}: what moved
    splits: list[str] = field(default_factory=list)    # chunks cut in two (by their old id)


class Rebalancer:
    def __init__(self, store: Store, threshold: float, rng: random.Random) -> None:
        self.store, self.threshold, self.rng = store, threshold, rng

    def apply(self, node_seconds: Mapping[str, float]) -> Rebalanced:
        """Plan from this query's node times and carry it out (the caller saves the manifest)."""
        manifest = self.store.manifest
        held = {n: [c.id for c in manifest.chunks if c.node == n] for n in manifest.nodes}
        done = Rebalanced()
        for move in plan_moves(node_seconds, held, self.threshold, self.rng):
            chunk = self.store.by_id(move.chunk)
            if keeps_bouncing(chunk.moved_in, manifest.queries):
                halves = self.store.split(chunk)
                if len(halves) == 2:
                    done.splits.append(chunk.id)
                    chunk = halves[1]
            self.store.move(chunk, move.target)
            done.moves.append({"chunk": chunk.id, "from": move.source, "to": move.target})
        return done
