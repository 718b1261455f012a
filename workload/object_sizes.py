"""Object sizes for the load generator, drawn from the flow-size CDFs the simulator uses.

The CDF reading and inverse-transform sampling are the simulator's (sim/
flow_sizes.py), so an emulated run and a simulated run of "websearch" draw from the same
distribution. Here sizes become whole bytes, and may be capped: a 30 MB websearch object
through a 10 Mb/s emulated backend takes 24 s, too long for a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.flow_sizes import FlowSizeCdf

FLOWSIZE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flowsize"


def cdf_path(name_or_path: str | Path) -> Path:
    """`websearch`, `fb_hadoop`, `ali_storage` (../shared/data/flowsize), or a path to a .cdf file."""
    path = Path(name_or_path)
    if path.suffix == ".cdf" or path.exists():
        return path
    return FLOWSIZE_DIR / f"{name_or_path}.cdf"


def available_cdfs() -> list[str]:
    return sorted(p.stem for p in FLOWSIZE_DIR.glob("*.cdf"))


@dataclass(frozen=True)
class ObjectSizes:
    cdf: FlowSizeCdf
    max_bytes: int | None = None    # cap (clip) on a drawn size; None: the CDF as it is

    @classmethod
    def load(cls, name_or_path: str | Path, max_bytes: int | None = None) -> "ObjectSizes":
        return cls(FlowSizeCdf.load(cdf_path(name_or_path)), max_bytes)

    def sample(self, rng: np.random.Generator, count: int) -> list[int]:
        """`count` sizes in whole bytes, at least 1, at most max_bytes."""
        sizes = np.rint(self.cdf.sample(rng, count)).astype(np.int64)
        sizes = np.maximum(sizes, 1)
        if self.max_bytes is not None:
            sizes = np.minimum(sizes, self.max_bytes)
        return sizes.tolist()
