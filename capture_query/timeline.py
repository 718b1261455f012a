"""A per-worker timeline of a query: one bar per chunk, where and when it ran."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from capture_query.engine import ChunkResult


def plot_timeline(results: Sequence[ChunkResult], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        return
    t0 = min(r.start for r in results)
    workers = sorted({r.worker for r in results})
    fig, ax = plt.subplots(figsize=(9, 1 + 0.5 * len(workers)))
    for row, worker in enumerate(workers):
        spans = [(r.start - t0, r.seconds) for r in results if r.worker == worker]
        ax.broken_barh(spans, (row - 0.4, 0.8), edgecolor="black", linewidth=0.3)
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_xlabel("seconds since the first chunk started")
    ax.set_title("chunks per worker")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
