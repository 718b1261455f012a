"""FB_EST eq. 2: a flow's arrival rate by exponential averaging over irregular intervals.

    r_new = (1 - e^(-T/K)) * l/T + e^(-T/K) * r_old

T is the time since the last synchronisation point, l the bytes seen in it, K the time
constant. Weighting by e^(-T/K) (not a fixed alpha) keeps the memory K seconds long whatever
the polling interval, so late or irregular polls do not change what the estimate means.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_TIME_CONSTANT = 0.2   # K = 200 ms, as in the FB_EST paper


def decay_factor(interval: ArrayLike, time_constant: float = DEFAULT_TIME_CONSTANT) -> NDArray[np.float64]:
    """e^(-T/K): the weight the old estimate keeps after an interval T."""
    if time_constant <= 0:
        raise ValueError(f"time constant must be positive, not {time_constant}")
    interval = np.asarray(interval, dtype=np.float64)
    return np.exp(-np.maximum(interval, 0.0) / time_constant)


def update_rate(old_rate: ArrayLike, bytes_seen: ArrayLike, interval: ArrayLike,
                time_constant: float = DEFAULT_TIME_CONSTANT) -> NDArray[np.float64]:
    """Eq. 2 (vectorised). A zero or negative interval leaves the estimate unchanged."""
    old_rate = np.asarray(old_rate, dtype=np.float64)
    bytes_seen = np.asarray(bytes_seen, dtype=np.float64)
    interval = np.asarray(interval, dtype=np.float64)
    keep = decay_factor(interval, time_constant)
    # (1 - e^(-T/K)) / T via expm1 stays finite for tiny T (its limit is 1/K), where l/T
    # alone would overflow.
    positive = interval > 0
    safe_t = np.where(positive, interval, 1.0)
    gain = np.where(positive, -np.expm1(-safe_t / time_constant) / safe_t, 0.0)
    return np.maximum(gain * bytes_seen + keep * old_rate, 0.0)
