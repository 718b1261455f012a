"""The probability that a flow is sending (FB_EST's busy probability).

A flow is busy from its first packet until it has been idle for more than N round-trip
times: a TCP sender waiting for ACKs pauses for about one RTT, so shorter gaps are part of
one busy period. At each synchronisation point the probability is decayed toward what the
last interval showed (busy or not), with the same e^(-T/K) weighting as the rate (eq. 2).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from controller.estimators.flow_rate import DEFAULT_TIME_CONSTANT, decay_factor

DEFAULT_IDLE_RTTS = 4   # N: idle longer than N x RTT ends a busy period


def busy_this_interval(bytes_seen: ArrayLike, idle_time: ArrayLike, rtt: ArrayLike,
                       idle_rtts: float = DEFAULT_IDLE_RTTS) -> NDArray[np.float64]:
    """1.0 where the flow counts as busy at this sync point, else 0.0.

    Busy if it sent bytes in the interval or its current idle gap is at most N x RTT.
    """
    bytes_seen = np.asarray(bytes_seen, dtype=np.float64)
    idle_time = np.asarray(idle_time, dtype=np.float64)
    rtt = np.asarray(rtt, dtype=np.float64)
    return ((bytes_seen > 0) | (idle_time <= idle_rtts * rtt)).astype(np.float64)


def update_busy(old_probability: ArrayLike, busy: ArrayLike, interval: ArrayLike,
                time_constant: float = DEFAULT_TIME_CONSTANT) -> NDArray[np.float64]:
    """p_new = (1 - e^(-T/K)) * busy + e^(-T/K) * p_old, clipped to [0, 1]."""
    keep = decay_factor(interval, time_constant)
    busy = np.asarray(busy, dtype=np.float64)
    old = np.asarray(old_probability, dtype=np.float64)
    return np.clip((1.0 - keep) * busy + keep * old, 0.0, 1.0)
