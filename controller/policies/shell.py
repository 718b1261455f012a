"""shell (SARA): a short-term forecast of each server's load, damped by its own error.

Per server, a line is fitted to the last `window` load samples and extended one interval
ahead. The forecast's error last time, normalised by the load, says how far to trust it:
damped = now + (forecast - now) * (1 - min(1, error)). New flows are water-filled onto the
largest forecast headroom (capacity - damped forecast).
"""

from __future__ import annotations

from collections import deque

import numpy as np
from numpy.typing import NDArray

from controller.policies.base import ClusterView, Policy
from controller.policies.water_filling import water_fill


def linear_forecast(history: NDArray[np.float64]) -> NDArray[np.float64]:
    """Least-squares line through each column's samples (one per interval), one step ahead.

    history has shape (samples, servers); one sample forecasts itself.
    """
    history = np.asarray(history, dtype=np.float64)
    samples = history.shape[0]
    if samples < 2:
        return history[-1].copy()
    t = np.arange(samples, dtype=np.float64)
    slope, intercept = np.polyfit(t, history, 1)
    return slope * samples + intercept


def normalised_error(predicted: NDArray[np.float64], actual: NDArray[np.float64]) -> NDArray[np.float64]:
    """|predicted - actual| / actual (0 when both are 0, 1 when only the actual is 0)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.abs(predicted - actual) / np.abs(actual)
    return np.where(actual == 0, np.where(predicted == 0, 0.0, 1.0), error)


class Shell(Policy):
    name = "shell"

    def __init__(self, window: int = 8) -> None:
        if window < 2:
            raise ValueError(f"shell window must be >= 2 samples, not {window}")
        self.history: deque[NDArray[np.float64]] = deque(maxlen=window)
        self.last_forecast: NDArray[np.float64] | None = None

    def _weights(self, view: ClusterView) -> np.ndarray:
        load = view.measured_rate.astype(np.float64)
        if self.history and len(self.history[-1]) != len(load):
            self.history.clear()
            self.last_forecast = None
        self.history.append(load)
        error = (np.ones(len(load)) if self.last_forecast is None
                 else normalised_error(self.last_forecast, load))
        forecast = np.maximum(linear_forecast(np.array(self.history)), 0.0)
        self.last_forecast = forecast
        damped = load + (forecast - load) * (1.0 - np.minimum(error, 1.0))
        return water_fill(view.capacity - damped, view.incoming_rate, view.available)
