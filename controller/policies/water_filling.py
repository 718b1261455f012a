"""From "pick the server with the most headroom" to ring weights.

Policies like least connections, fb_least and fb_est choose argmax of a headroom per flow.
The ring must say in advance where the next interval's new flows go. Giving each of a
stream of small new flows to the current argmax, and counting what it adds, fills the
servers like water: the emptiest rises until it meets the next one, and so on. The share
each server gets is what it takes to bring it to the common level. With no load coming,
everything goes to the argmax (ties shared).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def water_fill(headroom: ArrayLike, incoming: float, eligible: ArrayLike | None = None) -> NDArray[np.float64]:
    """Amount of `incoming` each server takes so the eligible servers' headroom ends level.

    Returns max(0, headroom_i - level) with level chosen so the amounts sum to `incoming`;
    with incoming <= 0, the argmax servers share equally (weights sum to 1).
    """
    headroom = np.asarray(headroom, dtype=np.float64)
    eligible = np.ones(len(headroom), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    if not eligible.any():
        return np.zeros(len(headroom))
    room = np.where(eligible, headroom, -np.inf)
    if incoming > 0:
        # Sort descending; with the k best filled to level L: sum_{i<k}(h_i - L) = incoming.
        ordered = np.sort(room[eligible])[::-1]
        k = np.arange(1, len(ordered) + 1)
        levels = (np.cumsum(ordered) - incoming) / k
        # The right k is the largest for which the level is still below the k-th headroom.
        valid = np.flatnonzero(levels < ordered)
        if valid.size:   # none when incoming is lost in rounding next to the headroom
            amounts = np.where(eligible, np.maximum(room - levels[valid[-1]], 0.0), 0.0)
            if amounts.sum() > 0:
                return amounts
    best = room == room.max()
    return best / best.sum()


def level_fill(capacity: ArrayLike, load: ArrayLike, incoming: float,
               eligible: ArrayLike | None = None) -> NDArray[np.float64]:
    """Amount of `incoming` each server takes so the eligible servers end at one utilisation.

    water_fill levels spare bytes/s; this levels load / capacity: server i takes
    max(0, L * capacity_i - load_i), with the level L chosen so the amounts sum to `incoming`.
    On equal capacities it is water_fill on capacity - load. Little incoming goes to the least
    utilised servers; much of it is spread in proportion to capacity. With incoming <= 0 the
    least utilised servers share in proportion to capacity (weights sum to 1), so an idle
    cluster gets a capacity-proportional split, not everything on the biggest server.
    """
    cap = np.asarray(capacity, dtype=np.float64)
    used = np.asarray(load, dtype=np.float64)
    n = len(cap)
    able = np.ones(n, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    able = able & (cap > 0) & np.isfinite(used)
    if not able.any():
        return np.zeros(n)
    utilisation = np.where(able, used / np.where(able, cap, 1.0), np.inf)
    if incoming > 0:
        # Ascending utilisation; with the k least utilised filled to level L:
        # sum_{i<k} (L c_i - load_i) = incoming, so L = (incoming + sum load) / sum c.
        order = np.argsort(utilisation, kind="stable")[:int(able.sum())]
        levels = (incoming + np.cumsum(used[order])) / np.cumsum(cap[order])
        # The right k is the first whose level does not reach the next server's utilisation.
        following = np.append(utilisation[order][1:], np.inf)
        k = int(np.flatnonzero(levels <= following)[0])
        amounts = np.where(able, np.maximum(levels[k] * cap - used, 0.0), 0.0)
        if amounts.sum() > 0:
            return amounts
    least = able & (utilisation <= utilisation[able].min())
    return np.where(least, cap, 0.0) / cap[least].sum()
