"""Built-in flow-size distributions: parametric models, so the project needs no data files.

Each is a mixture of a few components, each truncated to the distribution's [low, high]:
a lognormal body (most flows) and a bounded Pareto or second lognormal for the heavy tail
(most bytes). The parameters were fitted by least squares to the published data-center
flow-size CDFs the names refer to (scripts/fit_builtin_workloads.py; fit, mean and median
against the published curves in docs/policies.md, "Built-in flow sizes"), then rounded.
Nothing here reads a file.

They are sampled like a FlowSizeCdf (sim/flow_sizes.py): `sample(rng, count)`, `mean()`,
`name`, so the simulator's workload and the load client's object sizes use either unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _normal_cdf(z: ArrayLike) -> NDArray[np.float64]:
    return 0.5 * (1.0 + _erf(np.asarray(z, dtype=np.float64) / math.sqrt(2.0)))


class Component(Protocol):
    """One part of a mixture, before truncation."""

    def cdf(self, x: ArrayLike) -> NDArray[np.float64]: ...

    def partial_mean(self, a: float, b: float) -> float:
        """Integral of x dF(x) over [a, b]."""
        ...

    def draw_between(self, rng: np.random.Generator, count: int, a: float, b: float) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class LogNormal:
    """ln(size) is normal: median `median` bytes, standard deviation `sigma` (of ln bytes)."""
    median: float
    sigma: float

    def __post_init__(self) -> None:
        if self.median <= 0 or self.sigma <= 0:
            raise ValueError(f"lognormal needs median > 0 and sigma > 0, not {self}")

    def _z(self, x: ArrayLike) -> NDArray[np.float64]:
        return (np.log(np.maximum(np.asarray(x, dtype=np.float64), 1e-300)) - math.log(self.median)) / self.sigma

    def cdf(self, x: ArrayLike) -> NDArray[np.float64]:
        return _normal_cdf(self._z(x))

    def partial_mean(self, a: float, b: float) -> float:
        # E[X; a <= X <= b] = e^(mu + s^2/2) (Phi(z_b - s) - Phi(z_a - s)).
        za, zb = self._z(a), self._z(b)
        shifted = _normal_cdf(np.array([zb - self.sigma, za - self.sigma]))
        return float(self.median * math.exp(self.sigma ** 2 / 2) * (shifted[0] - shifted[1]))

    def draw_between(self, rng: np.random.Generator, count: int, a: float, b: float) -> NDArray[np.float64]:
        # Rejection: redraw what falls outside. SizeMix requires most of the mass inside,
        # so this ends after a few rounds (numpy has no inverse normal CDF to do it in one).
        out = rng.lognormal(math.log(self.median), self.sigma, count)
        bad = (out < a) | (out > b)
        while bad.any():
            out[bad] = rng.lognormal(math.log(self.median), self.sigma, int(bad.sum()))
            bad = (out < a) | (out > b)
        return out


@dataclass(frozen=True)
class BoundedPareto:
    """Pareto with shape `alpha` between `low` and `high` bytes: P(X > x) ~ x^-alpha."""
    low: float
    high: float
    alpha: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high or self.alpha <= 0:
            raise ValueError(f"bounded Pareto needs 0 < low < high and alpha > 0, not {self}")

    def _norm(self) -> float:
        return 1.0 - (self.low / self.high) ** self.alpha

    def cdf(self, x: ArrayLike) -> NDArray[np.float64]:
        x = np.clip(np.asarray(x, dtype=np.float64), self.low, self.high)
        return (1.0 - (self.low / x) ** self.alpha) / self._norm()

    def partial_mean(self, a: float, b: float) -> float:
        a, b = max(a, self.low), min(b, self.high)
        if a >= b:
            return 0.0
        scale = self.alpha * self.low ** self.alpha / self._norm()
        if abs(self.alpha - 1.0) < 1e-12:
            return scale * math.log(b / a)
        return scale * (a ** (1 - self.alpha) - b ** (1 - self.alpha)) / (self.alpha - 1)

    def draw_between(self, rng: np.random.Generator, count: int, a: float, b: float) -> NDArray[np.float64]:
        # Inverse transform restricted to [a, b]: u uniform between F(a) and F(b).
        fa, fb = self.cdf([a, b])
        u = rng.uniform(fa, fb, count)
        return self.low * (1.0 - u * self._norm()) ** (-1.0 / self.alpha)


@dataclass(frozen=True)
class SizeMix:
    """Flow sizes in bytes: with probability weight_i from component i, truncated to [low, high]."""
    name: str
    parts: tuple[tuple[float, LogNormal | BoundedPareto], ...]
    low: float
    high: float
    about: str = ""

    def __post_init__(self) -> None:
        weights = [w for w, _ in self.parts]
        if not self.parts or min(weights) <= 0 or abs(sum(weights) - 1) > 1e-9:
            raise ValueError(f"{self.name}: component weights must be positive and sum to 1, not {weights}")
        if not 0 < self.low < self.high:
            raise ValueError(f"{self.name}: need 0 < low < high, not [{self.low}, {self.high}]")
        for _, part in self.parts:
            # Truncation renormalises each part; with little mass left inside, its shape
            # would be mostly outside the range (and rejection sampling slow).
            if self._inside(part) < 0.5:
                raise ValueError(f"{self.name}: {part} has under half its mass in [{self.low}, {self.high}]")

    def _inside(self, part: Component) -> float:
        lo, hi = part.cdf([self.low, self.high])
        return float(hi - lo)

    def cdf(self, x: ArrayLike) -> NDArray[np.float64]:
        """P(size <= x)."""
        x = np.clip(np.asarray(x, dtype=np.float64), self.low, self.high)
        total = np.zeros_like(x)
        for weight, part in self.parts:
            total += weight * (part.cdf(x) - part.cdf(self.low)) / self._inside(part)
        return total

    def mean(self) -> float:
        return sum(weight * part.partial_mean(self.low, self.high) / self._inside(part)
                   for weight, part in self.parts)

    def quantile(self, q: float) -> float:
        """The size below which a share q of flows falls (bisection in log space)."""
        if not 0 <= q <= 1:
            raise ValueError(f"quantile must be in [0, 1], not {q}")
        a, b = math.log(self.low), math.log(self.high)
        for _ in range(100):
            mid = (a + b) / 2
            if self.cdf(math.exp(mid)) < q:
                a = mid
            else:
                b = mid
        return math.exp(b)

    def median(self) -> float:
        return self.quantile(0.5)

    def byte_share_above(self, size: float) -> float:
        """Share of all bytes carried by flows larger than `size`."""
        size = min(max(size, self.low), self.high)
        above = sum(weight * part.partial_mean(size, self.high) / self._inside(part) for weight, part in self.parts)
        return above / self.mean()

    def sample(self, rng: np.random.Generator, count: int) -> NDArray[np.float64]:
        """Flow sizes in bytes (at least one byte)."""
        which = rng.choice(len(self.parts), size=count, p=[w for w, _ in self.parts])
        out = np.empty(count, dtype=np.float64)
        for index, (_, part) in enumerate(self.parts):
            chosen = which == index
            out[chosen] = part.draw_between(rng, int(chosen.sum()), self.low, self.high)
        return np.maximum(out, 1.0)


# Fitted parameters (see the module docstring); the published figures each one follows are in
# `about`, and what a user can check them against in docs/policies.md.
BUILTIN: dict[str, SizeMix] = {mix.name: mix for mix in (
    SizeMix(
        "websearch", low=1.0, high=30e6,
        parts=((0.70, LogNormal(median=37_700, sigma=1.41)),
               (0.30, BoundedPareto(low=1.165e6, high=30e6, alpha=0.606))),
        about="web search back end (DCTCP, SIGCOMM 2010): most flows under 100 KB, most bytes in "
              "flows over 1 MB; mean about 1.7 MB, largest 30 MB"),
    SizeMix(
        "fb_hadoop", low=1.0, high=10e6,
        parts=((0.68, LogNormal(median=534, sigma=0.49)),
               (0.32, BoundedPareto(low=22_400, high=10e6, alpha=0.600))),
        about="Facebook Hadoop cluster (Roy et al., SIGCOMM 2015): median about 700 B, 70 % of flows "
              "under 10 KB, a long tail; mean about 120 KB, largest 10 MB"),
    SizeMix(
        "ali_storage", low=1.0, high=2e6,
        parts=((0.61, LogNormal(median=4_800, sigma=0.39)),
               (0.39, BoundedPareto(low=3_350, high=2e6, alpha=0.467))),
        about="Alibaba storage cluster (2019): most flows 4-8 KB (storage blocks), 90 % under 32 KB; "
              "mean about 40 KB, largest 2 MB"),
)}


def builtin_names() -> list[str]:
    return list(BUILTIN)
