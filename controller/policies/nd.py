"""nd: IBM Network Dispatcher's manager. Weights from a load-metric index.

Each interval the manager takes three metrics per server, normalises each across the
servers (value / sum), and mixes them with configured proportions into a load index:
  input   - connections: active flows and new flows (what the dispatcher itself sees),
  host    - utilisation reported by the server's metric agent (view.host_metric, e.g. CPU);
            where a server has no agent report, measured rate / capacity stands in,
  forward - an advisor's probe response time (queueing delay, view.response_time).
A server's target weight falls with its index (scaled by its configured weight). Targets
are smoothed (new = old + smoothing * (target - old)) and written only when they moved by
more than the sensitivity threshold in total, so small wobbles do not rewrite the ring.

Live (issue 11): the proportions, smoothing and sensitivity can be changed at run time
(`set_proportions`, `reconfigure`); the next interval uses them. A server whose host metric
exceeds `host_limit` is quiesced by the manager (weight 0 at once, whatever the
sensitivity) and re-introduced once it has stayed at or below the limit for `cooldown_s`
(view.time); it then comes back through the smoothing, from 0 towards its target, so it is
not handed a burst of new flows. Leaving and coming back are written whatever the
sensitivity (they are not wobbles). If every available server is over the limit, the base
class spreads new flows evenly over them (there is nobody better to send them to).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from controller.policies.base import ClusterView, Policy

Proportions = tuple[float, float, float, float]   # active, new, host, forward


def normalise(metric: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each server's share of the metric; equal shares when the metric is zero everywhere."""
    metric = np.maximum(np.asarray(metric, dtype=np.float64), 0.0)
    total = metric.sum()
    return metric / total if total > 0 else np.full(len(metric), 1.0 / len(metric))


def check_proportions(proportions: Proportions) -> Proportions:
    values = tuple(float(p) for p in proportions)
    if len(values) != 4 or min(values) < 0 or sum(values) <= 0 or not all(np.isfinite(values)):
        raise ValueError(f"nd proportions are four numbers >= 0 (active, new, host, forward) with a "
                         f"positive sum, not {proportions}")
    return values[0], values[1], values[2], values[3]


def load_index(active: NDArray, new: NDArray, host: NDArray, forward: NDArray,
               proportions: Proportions) -> NDArray[np.float64]:
    """Weighted mix of the normalised metrics (proportions: active, new, host, forward)."""
    proportions = check_proportions(proportions)
    total = sum(proportions)
    metrics = (active, new, host, forward)
    index = np.zeros(len(active))
    for p, m in zip(proportions, metrics):
        index += p / total * normalise(m)
    return index


def host_utilisation(view: ClusterView) -> NDArray[np.float64]:
    """The agents' host metric where there is one, measured rate / capacity elsewhere."""
    measured = view.measured_rate / np.maximum(view.capacity, 1e-12)
    if view.host_metric is None:
        return measured
    reported = np.asarray(view.host_metric, dtype=np.float64)
    return np.where(np.isfinite(reported), reported, measured)


class NetworkDispatcher(Policy):
    name = "nd"

    def __init__(self, proportions: Proportions = (0.3, 0.2, 0.3, 0.2), smoothing: float = 0.5,
                 sensitivity: float = 0.05, host_limit: float | None = None, cooldown_s: float = 10.0) -> None:
        self.proportions = check_proportions(proportions)
        self.smoothing = smoothing
        self.sensitivity = sensitivity
        self.host_limit = host_limit
        self.cooldown_s = cooldown_s
        self.reconfigure()                                # checks the values
        self.current: NDArray[np.float64] | None = None   # the weights last written
        self.over_limit: dict[int, float] = {}            # server index -> last time over host_limit

    # ---- run-time changes (CLI, API) ----------------------------------------------------------

    def set_proportions(self, proportions: Proportions) -> None:
        """New weights of the metrics (active, new, host, forward), used from the next interval."""
        self.proportions = check_proportions(proportions)

    def reconfigure(self, *, smoothing: float | None = None, sensitivity: float | None = None,
                    host_limit: float | None = None, cooldown_s: float | None = None,
                    clear_host_limit: bool = False) -> None:
        """Change any of the manager's settings; ValueError (and nothing changed) when out of range."""
        smoothing = self.smoothing if smoothing is None else smoothing
        sensitivity = self.sensitivity if sensitivity is None else sensitivity
        limit = None if clear_host_limit else (self.host_limit if host_limit is None else host_limit)
        cooldown = self.cooldown_s if cooldown_s is None else cooldown_s
        if not 0 < smoothing <= 1 or sensitivity < 0:
            raise ValueError("nd smoothing must be in (0, 1] and sensitivity >= 0")
        if (limit is not None and not limit > 0) or cooldown < 0:
            raise ValueError("nd host_limit must be > 0 (a utilisation, e.g. 0.9) and cooldown_s >= 0")
        self.smoothing, self.sensitivity, self.host_limit, self.cooldown_s = smoothing, sensitivity, limit, cooldown

    # ---- the rule ----------------------------------------------------------------------------------

    def _weights(self, view: ClusterView) -> np.ndarray:
        host = host_utilisation(view)
        index = load_index(view.active_flows, view.new_flows, host, view.response_time, self.proportions)
        n = view.n_servers
        usable = view.available & ~self._quiesced(host, view.time, n)
        # An index of 1/n is an average share: target weight 1; twice the average: 0.
        base = view.configured_weight / max(view.configured_weight.mean(), 1e-12)
        target = base * np.clip(2.0 - index * n, 0.0, None)
        target = np.where(usable, target, 0.0)
        if self.current is None or len(self.current) != n:
            self.current = base * usable
            return self.current
        smoothed = self.current + self.smoothing * (target - self.current)
        total = max(self.current.sum(), 1e-12)
        # Past the sensitivity threshold, or at once when a server must leave (unavailable,
        # over its limit) or may come back (usable again at weight 0): those are not wobbles.
        leaving = np.any(self.current[~usable] > 0)
        returning = np.any((self.current == 0) & (target > 0))
        if np.abs(smoothed - self.current).sum() / total > self.sensitivity or leaving or returning:
            self.current = np.where(usable, smoothed, 0.0)
        return self.current

    def _quiesced(self, host: NDArray[np.float64], now: float, n: int) -> NDArray[np.bool_]:
        """Servers the manager keeps out: over the host limit, or not yet cooled down."""
        if self.host_limit is None:
            self.over_limit.clear()
            return np.zeros(n, dtype=bool)
        for over in np.flatnonzero(host > self.host_limit).tolist():
            self.over_limit[over] = now
        for server, last in list(self.over_limit.items()):
            if server >= n or now - last >= self.cooldown_s:
                del self.over_limit[server]
        out = np.zeros(n, dtype=bool)
        out[list(self.over_limit)] = True
        return out
