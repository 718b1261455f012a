"""Balance and flow metrics of a run: per-server load over time, and the summary numbers.

Balance is judged per time window (1 s by default): utilisation of each server (offered
bytes / (capacity x window)), then max/mean and the coefficient of variation across
servers; the summary gives their mean, median and 99th percentile over windows. Flow completion
time slowdown is kept in a log-spaced histogram so memory does not grow with flows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sim.switch_model import SwitchCounters


class LoadRecorder:
    """Offered and dropped bytes per server per polling interval."""

    def __init__(self, n_servers: int) -> None:
        self.n_servers = n_servers
        self.times: list[float] = []
        self.offered: list[NDArray[np.float64]] = []
        self.dropped: list[NDArray[np.float64]] = []

    def add(self, start: float, offered: NDArray[np.float64], dropped: NDArray[np.float64]) -> None:
        self.times.append(start)
        self.offered.append(offered)
        self.dropped.append(dropped)

    def table(self) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
        if not self.times:
            empty = np.zeros((0, self.n_servers))
            return np.zeros(0), empty, empty
        return np.array(self.times), np.vstack(self.offered), np.vstack(self.dropped)


def windowed(values: NDArray[np.float64], rows_per_window: int) -> NDArray[np.float64]:
    """Sum consecutive rows into windows (a trailing part window is dropped unless it is all)."""
    whole = values.shape[0] // rows_per_window
    if whole == 0:
        return values.sum(axis=0, keepdims=True)
    return values[:whole * rows_per_window].reshape(whole, rows_per_window, -1).sum(axis=1)


def balance(utilisation: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per window (row): max/mean and coefficient of variation across servers; idle windows left out."""
    mean = utilisation.mean(axis=1)
    busy = mean > 0
    u, m = utilisation[busy], mean[busy]
    return u.max(axis=1) / m, u.std(axis=1) / m


class SlowdownHistogram:
    """Flow completion-time slowdowns (>= 1) in log-spaced bins: mean exact, percentiles to 1 %."""

    EDGES = np.concatenate([[1.0], np.logspace(0.0, 5.0, 501)[1:], [np.inf]])

    def __init__(self) -> None:
        self.counts = np.zeros(len(self.EDGES) - 1, dtype=np.int64)
        self.total = 0.0
        self.flows = 0

    def add(self, slowdown: NDArray[np.float64]) -> None:
        slowdown = np.maximum(np.asarray(slowdown, dtype=np.float64), 1.0)
        self.counts += np.histogram(slowdown, self.EDGES)[0]
        self.total += float(slowdown.sum())
        self.flows += slowdown.size

    def mean(self) -> float:
        return self.total / self.flows if self.flows else float("nan")

    def percentile(self, q: float) -> float:
        if not self.flows:
            return float("nan")
        index = int(np.searchsorted(np.cumsum(self.counts), q / 100 * self.flows))
        return float(self.EDGES[min(index + 1, len(self.EDGES) - 2)])   # the bin's upper edge


@dataclass
class RunSummary:
    policy: str
    max_mean_mean: float       # mean over windows of max/mean server utilisation
    max_mean_p99: float
    cov_mean: float            # mean over windows of the coefficient of variation
    cov_p99: float
    drop_percent: float        # dropped bytes / offered bytes
    slowdown_mean: float
    slowdown_p99: float
    flows: int
    packets: int
    ring_churn: int            # ring slots rewritten over the run
    split_flows: int           # flows whose packets were given two backends (sim/switch_model.py)
    split_design_flows: int = 0   # ... within docs/consistency.md's flows (a T_c silence before the entry ends one)
    collisions: int = 0        # flows that found their cache set (legacy: slot) full
    held: int = 0              # decisions that kept a ring entry's older generation
    applied: int = 0           # generations applied at ring entries
    churn_mean: float = 0.0    # slots changed per poll
    churn_p99: float = 0.0
    churn_max: int = 0
    peak_live_ways: int = 0    # most cache ways (legacy: slots) live at a poll
    entries_activated: int = 0  # `flows` entries activated (generations model)
    entries_stale: int = 0      # entries found stale: from an earlier flow's late digest, not used
    switch: str = ""           # switch model
    churn_cap: float | None = None   # ring write cap, share of the ring
    max_mean_p50: float = float("nan")   # median over windows of max/mean

    COLUMNS = ("policy", "switch", "cap", "max/mean mean", "max/mean p50", "max/mean p99", "CoV mean", "CoV p99",
               "drops %", "slowdown mean", "slowdown p99", "flows", "packets", "ring churn", "churn/poll mean/p99/max",
               "split flows", "split design", "collisions", "held", "applied", "peak ways",
               "entries activated/stale")

    def row(self) -> list[str]:
        cap = "-" if self.churn_cap is None else f"{self.churn_cap:.0%}"
        return [self.policy, self.switch, cap, f"{self.max_mean_mean:.3f}", f"{self.max_mean_p50:.3f}",
                f"{self.max_mean_p99:.3f}",
                f"{self.cov_mean:.3f}", f"{self.cov_p99:.3f}", f"{self.drop_percent:.3f}", f"{self.slowdown_mean:.2f}",
                f"{self.slowdown_p99:.2f}", str(self.flows), str(self.packets), str(self.ring_churn),
                f"{self.churn_mean:.1f}/{self.churn_p99:.0f}/{self.churn_max}", str(self.split_flows),
                str(self.split_design_flows),
                str(self.collisions), str(self.held), str(self.applied), str(self.peak_live_ways),
                "-" if self.switch == "legacy" else f"{self.entries_activated}/{self.entries_stale}"]

    @property
    def label(self) -> str:
        cap = "" if self.churn_cap is None else f", cap {self.churn_cap:.0%}"
        return f"{self.policy} ({self.switch}{cap})" if self.switch else self.policy


def summarise(policy: str, recorder: LoadRecorder, capacity: NDArray[np.float64], interval: float,
              window: float, slowdowns: SlowdownHistogram, packets: int, switch: SwitchCounters,
              until: float | None = None) -> RunSummary:
    """Summary over the windows that start before `until` (the end of arrivals: a draining
    cluster with a few flows left says nothing about balance)."""
    times, offered, dropped = recorder.table()
    if until is not None and until > 0 and times.size:
        keep = times < until
        offered, dropped = offered[keep], dropped[keep]
    rows = max(1, int(round(window / interval)))
    per_window = windowed(offered, rows) if offered.size else np.zeros((0, len(capacity)))
    utilisation = per_window / (capacity * rows * interval)
    ratio, cov = balance(utilisation) if utilisation.size else (np.zeros(0), np.zeros(0))

    def stat(values: NDArray[np.float64], p: float | None) -> float:
        if not values.size:
            return float("nan")
        return float(np.percentile(values, p)) if p is not None else float(values.mean())

    total = float(offered.sum())
    churn_mean, churn_p99, churn_max = switch.churn_stats(until)
    return RunSummary(policy=policy, max_mean_mean=stat(ratio, None), max_mean_p50=stat(ratio, 50),
                      max_mean_p99=stat(ratio, 99),
                      cov_mean=stat(cov, None), cov_p99=stat(cov, 99),
                      drop_percent=100 * float(dropped.sum()) / total if total else 0.0,
                      slowdown_mean=slowdowns.mean(), slowdown_p99=slowdowns.percentile(99),
                      flows=slowdowns.flows, packets=packets, ring_churn=int(sum(switch.churn)),
                      split_flows=switch.split_flows, split_design_flows=switch.split_design_flows,
                      collisions=switch.collisions, held=switch.held,
                      applied=switch.applied, churn_mean=churn_mean, churn_p99=churn_p99, churn_max=churn_max,
                      peak_live_ways=switch.peak_live_ways, entries_activated=switch.entries_activated,
                      entries_stale=switch.entries_stale)
