"""Object sizes and arrivals of the load generator: they follow the CDF and the rate asked for."""

from __future__ import annotations

import numpy as np
import pytest

from workload.load_client import poisson_schedule
from workload.object_sizes import FLOWSIZE_DIR, ObjectSizes, available_cdfs, cdf_path


def test_the_shared_cdfs_are_found():
    assert {"websearch", "fb_hadoop", "ali_storage"} <= set(available_cdfs())
    assert cdf_path("fb_hadoop") == FLOWSIZE_DIR / "fb_hadoop.cdf"


@pytest.mark.parametrize("name", ["websearch", "fb_hadoop", "ali_storage"])
def test_sizes_follow_the_cdf(name):
    sizes = ObjectSizes.load(name)
    drawn = np.array(sizes.sample(np.random.default_rng(7), 200_000))
    assert drawn.dtype.kind == "i" and drawn.min() >= 1
    # At every point of the file, the share of draws at or below its size is its percentage
    # (within sampling noise and the rounding to whole bytes).
    for size, cumulative in zip(sizes.cdf.size, sizes.cdf.cumulative):
        assert np.mean(drawn <= size) == pytest.approx(cumulative, abs=0.006), f"{name} at {size} bytes"


def test_a_cap_clips_only_the_tail():
    capped = ObjectSizes.load("websearch", max_bytes=100_000)
    drawn = np.array(capped.sample(np.random.default_rng(1), 50_000))
    assert drawn.max() == 100_000
    # websearch has 60 % at or below 200 kB, so about 45 % of draws are over 100 kB and clipped.
    assert 0.35 < np.mean(drawn == 100_000) < 0.55
    assert np.mean(drawn < 10_000) == pytest.approx(0.15, abs=0.01)


def test_the_same_seed_draws_the_same_sizes():
    sizes = ObjectSizes.load("fb_hadoop")
    assert sizes.sample(np.random.default_rng(3), 100) == sizes.sample(np.random.default_rng(3), 100)


def test_poisson_arrivals_have_the_rate_and_exponential_gaps():
    times = np.array(poisson_schedule(np.random.default_rng(5), rate=300.0, duration=100.0))
    assert len(times) == pytest.approx(30_000, rel=0.03)
    assert np.all(np.diff(times) >= 0) and times[-1] < 100.0
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(1 / 300, rel=0.03)
    # Exponential: the standard deviation equals the mean, and P(gap > mean) = 1/e.
    assert gaps.std() == pytest.approx(gaps.mean(), rel=0.05)
    assert np.mean(gaps > gaps.mean()) == pytest.approx(np.exp(-1), abs=0.01)


def test_poisson_arrivals_by_count():
    assert len(poisson_schedule(np.random.default_rng(1), rate=10.0, count=25)) == 25
    with pytest.raises(ValueError):
        poisson_schedule(np.random.default_rng(1), rate=0.0, count=5)
