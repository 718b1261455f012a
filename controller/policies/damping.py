"""Damping for a policy that steers new flows by measured load (fb_est): pure functions, and
a small `Damper` that keeps what they need from one poll to the next.

Why (issue 11; docs/policies.md, "Herding"): the policy's target for a poll is the expected
new load of that poll water-filled onto the servers. With thousands of new flows a second
that is a safe bet: their load is close to its expectation, and each server's estimate sums
many flows. With a handful per poll (the Mininet demo: 3, most bytes in a few large objects)
the water-filled target is nearly one-hot, it flips with estimates that single large flows
dominate, and what a poll's bet cost shows only polls later. The ring then chases targets
that point at each server in turn, and whole seconds go by with one server given nothing or
everything.

Damping, each poll, from the policy's target shares:

1. Averaging. The target is averaged over the time `flows` new flows take to arrive,
   T = flows / (new flows per second), at most `max_seconds`: each poll moves the weights
   1 - e^(-interval / T) of the way to the target (exponential smoothing, time constant T,
   the form of FB_EST's own eq. 2). Thousands of flows a second make T far shorter than a
   poll, and the target is taken at once; 20 a second make it a second.
2. Floor. floor x T / max_seconds of new flows are spread in proportion to capacity
   (weighted round robin), whatever the target says; the rest follow the averaged target.
   However wrong the estimates, no available server's share falls below that part of its
   capacity share, nor can the steered part alone pile all new flows onto one server. It
   fades with T: where new flows are many, the estimates are trusted.

`flows = 0` turns both off (the target is written as it is). Servers that may take no new
flows get 0 at once, never smoothed: that is correctness, not balance. A server that comes
back starts from 0 and is averaged in. When the servers change (one added or removed) the
average starts again from the target.

How far the ring itself moves per write is the ring's cap (`ring_max_change`,
controller/service_ring.py): damping decides where the ring should go, the cap how fast it
may get there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class DampingSettings:
    """The knobs (controller/config.py: a service's `damping`; `p4dispatch simulate --damping`)."""
    flows: float = 20.0          # new flows to average the target over (0: no damping)
    max_seconds: float = 1.0     # the longest averaging time, s
    floor: float = 0.5           # share of new flows spread by capacity at the longest averaging

    def __post_init__(self) -> None:
        values = (self.flows, self.max_seconds, self.floor)
        if not (all(math.isfinite(v) for v in values) and self.flows >= 0 and self.max_seconds > 0
                and 0 <= self.floor <= 1):
            raise ValueError(f"damping needs flows >= 0, max_seconds > 0 and floor in [0, 1], "
                             f"not {self.flows}, {self.max_seconds}, {self.floor}")


NO_DAMPING = DampingSettings(flows=0.0)


def shares(weights: ArrayLike) -> NDArray[np.float64]:
    """Weights as shares summing to 1 (negative ones count as 0; all zero stays all zero)."""
    weights = np.maximum(np.asarray(weights, dtype=np.float64), 0.0)
    total = weights.sum()
    return weights / total if total > 0 else weights


def capacity_shares(capacity: ArrayLike, available: ArrayLike) -> NDArray[np.float64]:
    """Weighted round robin: each available server's share of the available capacity."""
    return shares(np.where(np.asarray(available, dtype=bool), np.asarray(capacity, dtype=np.float64), 0.0))


def averaging_time(flows_per_second: float, settings: DampingSettings) -> float:
    """T = flows / (new flows per second), at most max_seconds (also when no flows arrive);
    0 when damping is off."""
    if settings.flows <= 0:
        return 0.0
    if not flows_per_second > 0:
        return settings.max_seconds
    return min(settings.max_seconds, settings.flows / flows_per_second)


def step_factor(interval: float, averaging: float) -> float:
    """The part of the way to the target one poll goes: 1 - e^(-interval / T); 1 when T is 0."""
    if averaging <= 0:
        return 1.0
    return float(-np.expm1(-max(interval, 0.0) / averaging))


def floor_share(averaging: float, settings: DampingSettings) -> float:
    """The share of new flows spread by capacity: floor x T / max_seconds."""
    return settings.floor * min(averaging / settings.max_seconds, 1.0)


def average(previous: ArrayLike, target: ArrayLike, factor: float) -> NDArray[np.float64]:
    """previous + factor x (target - previous)."""
    previous = np.asarray(previous, dtype=np.float64)
    return previous + factor * (np.asarray(target, dtype=np.float64) - previous)


def with_floor(steered: ArrayLike, base: ArrayLike, floor: float) -> NDArray[np.float64]:
    """(1 - floor) x steered + floor x base."""
    return (1.0 - floor) * np.asarray(steered, dtype=np.float64) + floor * np.asarray(base, dtype=np.float64)


def damp(previous: ArrayLike | None, target: ArrayLike, capacity: ArrayLike, available: ArrayLike,
         interval: float, flows_per_second: float,
         settings: DampingSettings) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One poll: (the averaged target, to pass as `previous` next poll; the shares to write).

    `previous` None (the first poll, or the servers changed): the target as it is."""
    available = np.asarray(available, dtype=bool)
    base = capacity_shares(capacity, available)
    target = shares(np.where(available, target, 0.0))
    if target.sum() <= 0:             # nothing to prefer: by capacity
        target = base
    averaging = averaging_time(flows_per_second, settings)
    if previous is None or np.shape(previous) != target.shape:
        averaged = target
    else:
        averaged = shares(np.where(available, average(previous, target, step_factor(interval, averaging)), 0.0))
        if averaged.sum() <= 0:       # every server that had a share left: start again
            averaged = target
    return averaged, with_floor(averaged, base, floor_share(averaging, settings))


class Damper:
    """What damping remembers between polls: the averaged target, and the new-flow rate
    (itself averaged over max_seconds, so one quiet or busy poll does not swing it)."""

    def __init__(self, settings: DampingSettings = DampingSettings()) -> None:
        self.settings = settings
        self.averaged: NDArray[np.float64] | None = None
        self.flows_per_second: float | None = None

    def observe(self, new_flows: float, interval: float) -> float:
        """This poll's new flows into the averaged new-flow rate (flows/s), which it returns."""
        if interval > 0:
            rate = max(float(new_flows), 0.0) / interval
            if self.flows_per_second is None:
                self.flows_per_second = rate
            else:
                self.flows_per_second += step_factor(interval, self.settings.max_seconds) * (
                    rate - self.flows_per_second)
        return self.flows_per_second or 0.0

    def step(self, target: ArrayLike, capacity: ArrayLike, available: ArrayLike, interval: float,
             new_flows: float) -> NDArray[np.float64]:
        """The shares to write this poll for the policy's target weights; `new_flows`: the new
        flows seen in the interval that just ended."""
        rate = self.observe(new_flows, interval)
        self.averaged, out = damp(self.averaged, target, capacity, available, interval, rate, self.settings)
        return out
