"""Empirical flow-size distributions (../shared/data/flowsize/*.cdf) and sampling from them.

File format: one point per line, `<flow size in bytes> <cumulative percent>`; sizes are
interpolated linearly between points (inverse-transform sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


class CdfError(ValueError):
    """A flow-size CDF file that cannot be used, naming the file and line."""


@dataclass(frozen=True)
class FlowSizeCdf:
    name: str
    size: NDArray[np.float64]         # bytes, non-decreasing
    cumulative: NDArray[np.float64]   # 0..1, non-decreasing, ends at 1

    @classmethod
    def load(cls, path: str | Path) -> "FlowSizeCdf":
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise CdfError(f"{path}: cannot read ({exc.strerror})") from None
        sizes, cumulative = [], []
        for number, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            fields = line.split()
            try:
                size, percent = float(fields[0]), float(fields[1])
            except (ValueError, IndexError):
                raise CdfError(f"{path} line {number}: expected '<bytes> <percent>', got {line!r}") from None
            if sizes and (size < sizes[-1] or percent < cumulative[-1] * 100):
                raise CdfError(f"{path} line {number}: sizes and percentages must not decrease")
            sizes.append(size)
            cumulative.append(percent / 100)
        if len(sizes) < 2 or abs(cumulative[-1] - 1) > 1e-6 or min(sizes) < 0:
            raise CdfError(f"{path}: needs at least two points, sizes >= 0, and to end at 100 percent")
        return cls(path.stem, np.array(sizes), np.array(cumulative))

    def sample(self, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
        """Flow sizes in bytes (at least one byte)."""
        return np.maximum(np.interp(rng.random(count), self.cumulative, self.size), 1.0)

    def mean(self) -> float:
        """Mean of the piecewise-linear distribution: midpoint of each segment times its mass."""
        mass = np.diff(self.cumulative)
        return float(np.sum(mass * (self.size[1:] + self.size[:-1]) / 2))
