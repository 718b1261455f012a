"""Flow-size distributions by name: the built-in models, or empirical CDF files.

`flow_size_distribution(spec)` resolves what `--workload` / `--cdf` say:
  * a built-in name (sim/builtin_workloads.py: websearch, fb_hadoop, ali_storage), the default;
  * `shared:NAME`: $P4DISPATCH_SHARED_DATA/flowsize/NAME.cdf, only where that is given;
  * a path to a .cdf file.
All of them are sampled the same way (FlowSizeDistribution).

CDF file format: one point per line, `<flow size in bytes> <cumulative percent>`; sizes are
interpolated linearly between points (inverse-transform sampling).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sim.builtin_workloads import BUILTIN
from sim.shared_data import shared_data_dir, shared_data_reason

SHARED_PREFIX = "shared:"


class CdfError(ValueError):
    """A flow-size distribution that cannot be used: an unknown name, or a CDF file naming the
    file and line."""


class FlowSizeDistribution(Protocol):
    """What the simulator's workload and the load client's object sizes draw from."""

    @property
    def name(self) -> str: ...

    def sample(self, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
        """Flow sizes in bytes (at least one byte)."""
        ...

    def mean(self) -> float: ...


@dataclass(frozen=True)
class FlowSizeCdf:
    name: str
    size: NDArray[np.float64]         # bytes, non-decreasing
    cumulative: NDArray[np.float64]   # 0..1, non-decreasing, ends at 1

    @classmethod
    def load(cls, path: str | Path) -> FlowSizeCdf:
        path = Path(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise CdfError(f"{path}: cannot read ({exc.strerror})") from None
        sizes: list[float] = []
        cumulative: list[float] = []
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


@dataclass(frozen=True)
class ClippedSizes:
    """Another distribution with every size clipped to `largest` bytes, as the demo's load
    client clips objects (`--max-bytes`): `p4dispatch simulate --max-size`."""
    inner: FlowSizeDistribution
    largest: float
    MEAN_SAMPLES = 1_000_000          # the mean is estimated from this many draws, seed 0

    @property
    def name(self) -> str:
        return f"{self.inner.name} <= {self.largest:g} B"

    def sample(self, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
        return np.minimum(self.inner.sample(rng, count), self.largest)

    def mean(self) -> float:
        """Monte Carlo (fixed seed, so every run offers the same load): within about 0.5 % for
        the heavy-tailed built-ins."""
        return float(self.sample(np.random.default_rng(0), self.MEAN_SAMPLES).mean())


def shared_cdf_names() -> list[str]:
    """`shared:NAME` for each $P4DISPATCH_SHARED_DATA/flowsize/NAME.cdf (none when not given)."""
    shared = shared_data_dir()
    folder = shared / "flowsize" if shared else None
    if folder is None or not folder.is_dir():
        return []
    return sorted(SHARED_PREFIX + p.stem for p in folder.glob("*.cdf"))


def distribution_names() -> list[str]:
    """Every name `flow_size_distribution` accepts here (besides a path to a .cdf file)."""
    return list(BUILTIN) + shared_cdf_names()


def _looks_like_path(spec: str) -> bool:
    return spec.endswith(".cdf") or "/" in spec or Path(spec).is_file()


def flow_size_distribution(spec: str) -> FlowSizeDistribution:
    """A built-in name, `shared:NAME`, or a path to a .cdf file; CdfError naming the choices otherwise."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    if spec.startswith(SHARED_PREFIX):
        reason = shared_data_reason("flowsize")
        shared = shared_data_dir()
        if reason or shared is None:
            raise CdfError(f"{spec!r} needs the shared flow-size CDFs, but {reason}; the built-in "
                           f"{', '.join(BUILTIN)} need nothing")
        path = shared / "flowsize" / f"{spec[len(SHARED_PREFIX):]}.cdf"
        if not path.is_file():
            raise CdfError(f"no shared flow-size CDF {spec!r}; there are {', '.join(shared_cdf_names())}")
        return replace(FlowSizeCdf.load(path), name=spec)   # labelled apart from the built-in of that name
    if _looks_like_path(spec):
        # Labelled by file name, so "fb_hadoop.cdf" in a table is not taken for the built-in.
        return replace(FlowSizeCdf.load(spec), name=Path(spec).name)
    raise CdfError(f"no flow-size distribution named {spec!r}; choose one of "
                   f"{', '.join(distribution_names())}, or give a path to a .cdf file")
