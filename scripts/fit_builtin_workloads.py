"""Fit (or check) the built-in flow-size models of sim/builtin_workloads.py against published CDFs.

    python scripts/fit_builtin_workloads.py compare [DIR]   # built-ins vs DIR/<name>.cdf (numpy only)
    python scripts/fit_builtin_workloads.py fit [DIR]       # refit the parameters (needs scipy)

DIR defaults to ../shared/data/flowsize (the published curves as `<bytes> <percent>` points).
This is a development tool: the project never reads those files at run time.

The fit: for each model's structure (which components, in which order), least squares on the
CDF at the published points, in percentage points, plus a small penalty on the log of the
mean's ratio to the curve's own mean (linear interpolation, as FlowSizeCdf reads it), so the
arrival rate a given load implies stays close too. Nelder-Mead from several starts; the best
is printed with its error at each point, its mean and median. Rounded values go into
sim/builtin_workloads.py by hand, and `compare` shows what the rounded ones give.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The development corpus beside the checkout, unless P4DISPATCH_SHARED_DATA names another.
os.environ.setdefault("P4DISPATCH_SHARED_DATA", str(REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

from sim.builtin_workloads import BUILTIN, BoundedPareto, LogNormal, SizeMix  # noqa: E402
from sim.flow_sizes import FlowSizeCdf  # noqa: E402
from sim.shared_data import shared_data_dir  # noqa: E402

# Structure and a starting point for each model: ("LN", median, sigma) or ("BP", low, alpha),
# and the first component's share.
STARTS: dict[str, list[tuple[str, float, float]]] = {
    "websearch": [("LN", 3e4, 1.0), ("BP", 2e5, 0.5)],
    "fb_hadoop": [("LN", 500, 0.5), ("BP", 2e4, 0.5)],
    "ali_storage": [("LN", 6000, 0.3), ("BP", 1.6e4, 0.5)],
}
MEAN_WEIGHT = 0.05
# A narrower lognormal body is a spike at one size: it fits the jumps of a coarse published
# curve (ali_storage: 46 % of flows between 4 and 8 KB) rather than anything measured.
MIN_SIGMA = 0.2


def build(name: str, structure: list[tuple[str, float, float]], p: np.ndarray, low: float, high: float) -> SizeMix:
    k = len(structure)
    logits = np.concatenate([[0.0], p[:k - 1]])
    weights = np.exp(logits) / np.exp(logits).sum()
    parts: list[tuple[float, LogNormal | BoundedPareto]] = []
    for i, (kind, _, _) in enumerate(structure):
        a, b = math.exp(p[k - 1 + 2 * i]), math.exp(p[k + 2 * i])
        parts.append((float(weights[i]), LogNormal(a, b) if kind == "LN" else BoundedPareto(a, high, b)))
    return SizeMix(name, tuple(parts), low, high)


def errors(model: SizeMix, curve: FlowSizeCdf) -> np.ndarray:
    """Model minus published, in percentage points, at the published points inside the range."""
    inner = slice(1, -1)
    return (model.cdf(curve.size[inner]) - curve.cumulative[inner]) * 100


def curve_median(curve: FlowSizeCdf) -> float:
    return float(np.interp(0.5, curve.cumulative, curve.size))


def fit(name: str, curve: FlowSizeCdf, starts: int = 12) -> SizeMix:
    from scipy.optimize import minimize

    structure = STARTS[name]
    low, high = 1.0, float(curve.size[-1])
    target = curve.mean()

    def objective(p: np.ndarray) -> float:
        try:
            model = build(name, structure, p, low, high)
        except (ValueError, OverflowError):
            return 1e12
        if any(isinstance(part, LogNormal) and part.sigma < MIN_SIGMA for _, part in model.parts):
            return 1e12
        value = float(np.sum(errors(model, curve) ** 2) + MEAN_WEIGHT * (100 * math.log(model.mean() / target)) ** 2)
        return value if math.isfinite(value) else 1e12

    first = [0.0] * (len(structure) - 1) + [math.log(v) for _, a, b in structure for v in (a, b)]
    rng = np.random.default_rng(0)
    best = None
    for attempt in range(starts):
        p0 = np.array(first) + (rng.normal(0, 0.5, len(first)) if attempt else 0.0)
        result = minimize(objective, p0, method="Nelder-Mead", options={"maxfev": 6000, "xatol": 1e-5, "fatol": 1e-6})
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    return build(name, structure, best.x, low, high)


def report(model: SizeMix, curve: FlowSizeCdf) -> str:
    err = errors(model, curve)
    points = ", ".join(f"{int(s)}: {e:+.1f}" for s, e in zip(curve.size[1:-1], err))
    parts = "; ".join(f"{w:.3f} x {part}" for w, part in model.parts)
    return (f"{model.name}: {parts}\n"
            f"  mean {model.mean():,.0f} B (published curve {curve.mean():,.0f}), median {model.median():,.0f} B "
            f"(published {curve_median(curve):,.0f}); largest error {np.abs(err).max():.1f} points\n"
            f"  error at each published point (bytes: model - published, points): {points}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["compare", "fit"])
    parser.add_argument("dir", nargs="?", type=Path, help="directory of <name>.cdf files")
    args = parser.parse_args()
    shared = shared_data_dir()
    directory = args.dir or (shared / "flowsize" if shared else None)
    if directory is None or not directory.is_dir():
        print("no directory of published CDFs: give one (../shared/data/flowsize is not here)", file=sys.stderr)
        return 2
    for name in STARTS if args.what == "fit" else BUILTIN:
        path = directory / f"{name}.cdf"
        if not path.exists():
            print(f"{name}: no {path}, skipped")
            continue
        curve = FlowSizeCdf.load(path)
        print(report(fit(name, curve) if args.what == "fit" else BUILTIN[name], curve))
    return 0


if __name__ == "__main__":
    sys.exit(main())
