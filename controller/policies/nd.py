"""nd: IBM Network Dispatcher's manager. Weights from a load-metric index.

Each interval the manager takes three metrics per server, normalises each across the
servers (value / sum), and mixes them with configured proportions into a load index:
  input   - connections: active flows and new flows (what the dispatcher itself sees),
  host    - utilisation reported by the server's metric agent (measured rate / capacity),
  forward - an advisor's probe response time (queueing delay).
A server's target weight falls with its index (scaled by its configured weight). Targets
are smoothed (new = old + smoothing * (target - old)) and written only when they moved by
more than the sensitivity threshold in total, so small wobbles do not rewrite the ring.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.policies.base import ClusterView, Policy


def normalise(metric: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each server's share of the metric; equal shares when the metric is zero everywhere."""
    metric = np.maximum(np.asarray(metric, dtype=np.float64), 0.0)
    total = metric.sum()
    return metric / total if total > 0 else np.full(len(metric), 1.0 / len(metric))


def load_index(active: NDArray, new: NDArray, host: NDArray, forward: NDArray,
               proportions: tuple[float, float, float, float]) -> NDArray[np.float64]:
    """Weighted mix of the normalised metrics (proportions: active, new, host, forward)."""
    total = sum(proportions)
    if total <= 0 or min(proportions) < 0:
        raise ValueError(f"nd proportions must be >= 0 with a positive sum, not {proportions}")
    metrics = (active, new, host, forward)
    return sum(p / total * normalise(m) for p, m in zip(proportions, metrics))


class NetworkDispatcher(Policy):
    name = "nd"

    def __init__(self, proportions: tuple[float, float, float, float] = (0.3, 0.2, 0.3, 0.2),
                 smoothing: float = 0.5, sensitivity: float = 0.05) -> None:
        if not 0 < smoothing <= 1 or sensitivity < 0:
            raise ValueError("nd smoothing must be in (0, 1] and sensitivity >= 0")
        self.proportions = proportions
        self.smoothing = smoothing
        self.sensitivity = sensitivity
        self.current: NDArray[np.float64] | None = None   # the weights last written

    def _weights(self, view: ClusterView) -> np.ndarray:
        index = load_index(view.active_flows, view.new_flows,
                           view.measured_rate / np.maximum(view.capacity, 1e-12),
                           view.response_time, self.proportions)
        n = view.n_servers
        # An index of 1/n is an average share: target weight 1; twice the average: 0.
        base = view.configured_weight / max(view.configured_weight.mean(), 1e-12)
        target = base * np.clip(2.0 - index * n, 0.0, None)
        target = np.where(view.available, target, 0.0)
        if self.current is None or len(self.current) != n:
            self.current = base * view.available
            return self.current
        smoothed = self.current + self.smoothing * (target - self.current)
        total = max(self.current.sum(), 1e-12)
        if np.abs(smoothed - self.current).sum() / total > self.sensitivity or np.any(self.current[~view.available] > 0):
            self.current = np.where(view.available, smoothed, 0.0)
        return self.current
