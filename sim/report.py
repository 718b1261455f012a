"""Run outputs: per-server load CSV, a figure like FB_EST's fig. 4, the summary table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sim.engine import SimulationResult
from sim.metrics import RunSummary


def write_load_csv(path: Path, result: SimulationResult, capacity: np.ndarray, interval: float) -> None:
    """One row per polling interval: time, then each server's utilisation and dropped bytes."""
    times, offered, dropped = result.loads.table()
    n = len(capacity)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["time_s"] + [f"load_{i}" for i in range(n)] + [f"dropped_bytes_{i}" for i in range(n)])
        utilisation = offered / (capacity * interval)
        for t, u, d in zip(times, utilisation, dropped):
            writer.writerow([f"{t:.3f}"] + [f"{x:.4f}" for x in u] + [f"{x:.0f}" for x in d])


def plot_loads(path: Path, results: list[SimulationResult], capacity: np.ndarray, interval: float,
               window: float, title: str) -> None:
    """Load over time per server, one panel per policy (smoothed over `window`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(results), 1, figsize=(7, 1.6 * len(results) + 0.6), sharex=True,
                             squeeze=False)
    rows = max(1, int(round(window / interval)))
    for ax, result in zip(axes[:, 0], results):
        times, offered, _ = result.loads.table()
        if len(times) >= rows:
            kernel = np.ones(rows) / rows
            smoothed = np.column_stack([np.convolve(offered[:, i], kernel, mode="valid")
                                        for i in range(offered.shape[1])])
            times = times[rows - 1:]
        else:
            smoothed = offered
        for i in range(smoothed.shape[1]):
            ax.plot(times, smoothed[:, i] / (capacity[i] * interval), lw=0.8, label=f"server {i}")
        ax.set_ylabel("load")
        ax.set_title(result.summary.label, fontsize=9, loc="left")
        ax.axhline(1.0, color="grey", lw=0.5, ls=":")
    axes[-1, 0].set_xlabel("time (s)")
    if len(capacity) <= 8:
        axes[0, 0].legend(fontsize=6, ncol=min(len(capacity), 8), loc="upper right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def summary_table(summaries: list[RunSummary]) -> str:
    """A Markdown table (readable on a terminal too)."""
    rows = [list(RunSummary.COLUMNS)] + [s.row() for s in summaries]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def write_summary_csv(path: Path, summaries: list[RunSummary]) -> None:
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(RunSummary.COLUMNS)
        writer.writerows(s.row() for s in summaries)
