"""What share of a backend's traffic the switch counts, learned per backend from its agent.

Under direct server return (or IP-in-IP) the switch sees only the clients' side of a
connection, mostly ACKs; the policies need the servers' side, what each server sends. The
agent reports the bytes its server sent (cumulative); the switch's per-backend counter
gives what the switch forwarded to it. Over each window between two reports:

    ratio sample = (switch bytes now - at the window's start) / (served bytes now - at its start)

and the ratio is the quotient of the two smoothed sums (an exponential average of each
with factor `smoothing`), so a window with much traffic weighs more than a quiet one and a
near-empty window cannot swing it. Robustness:

  * a window closes only when the server sent at least `min_served_bytes`; quieter windows
    stay open and grow (a missing report merely makes a window longer);
  * a counter that went backwards (switch restarted, interface re-created, agent restarted:
    its uptime went back) discards the open window; the next report starts a new one;
  * each sample is clipped to `bounds`.

Until `min_samples` windows have closed, and for backends without an agent, the ratio is
the configured fallback (`visible_load_ratio`, controller/config.py). A backend whose agent
has been silent for `stale_after_s` keeps its learned ratio (the traffic mix does not change
because the agent died) and says so: `source()` is MEASURED, HELD or FALLBACK.

    vis = VisibilityEstimator({backend_id: service.load_visibility, ...})
    vis.switch_bytes(backend_id, counter_bytes)                 # every counter poll
    vis.served_bytes(backend_id, report.tx_bytes, uptime_s, at) # every agent report
    capacity_seen = capacity * vis.ratios(backend_ids, now)     # per backend, for the view
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray


class RatioSource(StrEnum):
    MEASURED = "measured"     # learned, agent reporting
    HELD = "held"             # learned, agent silent: the last learned ratio
    FALLBACK = "fallback"     # the configured fixed ratio


@dataclass
class _Track:
    fallback: float
    switch_last: float | None = None       # latest switch counter reading
    switch_start: float | None = None      # the open window's start
    served_start: float | None = None
    served_last: float | None = None
    uptime_last: float | None = None
    smoothed_switch: float = 0.0
    smoothed_served: float = 0.0
    samples: int = 0
    last_report_at: float | None = None


class VisibilityEstimator:
    def __init__(self, fallback: Mapping[int, float], smoothing: float = 0.2, min_served_bytes: float = 256e3,
                 min_samples: int = 3, stale_after_s: float = 10.0, bounds: tuple[float, float] = (1e-4, 10.0)) -> None:
        if not 0 < smoothing <= 1 or min_samples < 1 or min_served_bytes <= 0 or not 0 < bounds[0] < bounds[1]:
            raise ValueError("visibility estimator: smoothing in (0, 1], min_samples >= 1, "
                             "min_served_bytes > 0 and 0 < bounds[0] < bounds[1]")
        self.smoothing = smoothing
        self.min_served_bytes = min_served_bytes
        self.min_samples = min_samples
        self.stale_after_s = stale_after_s
        self.bounds = bounds
        self.resets = 0
        self._tracks: dict[int, _Track] = {}
        for backend_id, ratio in fallback.items():
            self.set_fallback(backend_id, ratio)

    def set_fallback(self, backend_id: int, ratio: float) -> None:
        """The configured ratio for a backend (added at run time, or its service changed)."""
        if not ratio > 0:
            raise ValueError(f"fallback ratio must be > 0, got {ratio}")
        track = self._tracks.get(backend_id)
        if track is None:
            self._tracks[backend_id] = _Track(fallback=ratio)
        else:
            track.fallback = ratio

    def forget(self, backend_id: int) -> None:
        self._tracks.pop(backend_id, None)

    # ---- inputs --------------------------------------------------------------------------

    def switch_bytes(self, backend_id: int, total: float) -> None:
        """The switch's per-backend byte counter as read (cumulative)."""
        track = self._tracks.get(backend_id)
        if track is None:
            return
        if track.switch_last is not None and total < track.switch_last:
            self._discard(track)        # the switch restarted: its counter began again
        track.switch_last = float(total)

    def served_bytes(self, backend_id: int, total: float, uptime_s: float, at: float) -> None:
        """An agent's report: bytes its server sent (cumulative) and the agent's uptime."""
        track = self._tracks.get(backend_id)
        if track is None:
            return
        track.last_report_at = at
        went_back = (track.uptime_last is not None and uptime_s < track.uptime_last) or \
            (track.served_last is not None and total < track.served_last)
        track.uptime_last, track.served_last = uptime_s, float(total)
        if went_back:
            self._discard(track)
        if track.switch_last is None:
            return
        if track.served_start is None or track.switch_start is None:
            track.served_start, track.switch_start = float(total), track.switch_last
            return
        served = total - track.served_start
        if served < self.min_served_bytes:
            return                      # too little to say anything: let the window grow
        seen = track.switch_last - track.switch_start
        low, high = self.bounds
        seen = min(max(seen, low * served), high * served)
        a = self.smoothing if track.samples else 1.0
        track.smoothed_switch += a * (seen - track.smoothed_switch)
        track.smoothed_served += a * (served - track.smoothed_served)
        track.samples += 1
        track.served_start, track.switch_start = float(total), track.switch_last

    def _discard(self, track: _Track) -> None:
        self.resets += 1
        track.served_start = track.switch_start = None

    # ---- outputs ---------------------------------------------------------------------------

    def source(self, backend_id: int, now: float) -> RatioSource:
        track = self._tracks.get(backend_id)
        if track is None or track.samples < self.min_samples:
            return RatioSource.FALLBACK
        if track.last_report_at is None or now - track.last_report_at > self.stale_after_s:
            return RatioSource.HELD
        return RatioSource.MEASURED

    def ratio(self, backend_id: int, now: float) -> float:
        """Switch-counted bytes per byte the server sends (1.0 for an unknown backend)."""
        track = self._tracks.get(backend_id)
        if track is None:
            return 1.0
        if self.source(backend_id, now) == RatioSource.FALLBACK:
            return track.fallback
        return track.smoothed_switch / track.smoothed_served

    def ratios(self, backend_ids: Iterable[int], now: float) -> NDArray[np.float64]:
        return np.array([self.ratio(b, now) for b in backend_ids], dtype=np.float64)

    def on_fallback(self, now: float) -> list[int]:
        """Backends whose load is scaled by the configured ratio (for the status)."""
        return sorted(b for b in self._tracks if self.source(b, now) == RatioSource.FALLBACK)
