"""Object sizes and arrivals of the load generator: they follow the CDF and the rate asked for."""

from __future__ import annotations

import numpy as np
import pytest

from sim.builtin_workloads import BUILTIN
from sim.flow_sizes import CdfError
from sim.shared_data import shared_data_reason
from workload.load_client import main, poisson_schedule
from workload.object_sizes import ObjectSizes, available_sizes

SHARED_FLOWSIZE_MISSING = shared_data_reason("flowsize")


def test_the_builtin_sizes_need_no_files():
    assert {"websearch", "fb_hadoop", "ali_storage"} <= set(available_sizes())
    assert ObjectSizes.load("fb_hadoop").distribution is BUILTIN["fb_hadoop"]


@pytest.mark.parametrize("name", ["websearch", "fb_hadoop", "ali_storage"])
def test_builtin_sizes_are_whole_bytes_following_the_model(name):
    sizes = ObjectSizes.load(name)
    drawn = np.array(sizes.sample(np.random.default_rng(7), 200_000))
    assert drawn.dtype.kind == "i" and drawn.min() >= 1
    model = BUILTIN[name]
    for q in (0.25, 0.5, 0.9):
        size = model.quantile(q)
        assert np.mean(drawn <= size) == pytest.approx(q, abs=0.006), f"{name} at {size:.0f} bytes"


@pytest.mark.skipif(SHARED_FLOWSIZE_MISSING is not None, reason=f"published CDFs absent: {SHARED_FLOWSIZE_MISSING}")
@pytest.mark.parametrize("name", ["websearch", "fb_hadoop", "ali_storage"])
def test_shared_sizes_follow_the_cdf(name):
    sizes = ObjectSizes.load(f"shared:{name}")
    drawn = np.array(sizes.sample(np.random.default_rng(7), 200_000))
    # At every point of the file, the share of draws at or below its size is its percentage
    # (within sampling noise and the rounding to whole bytes).
    for size, cumulative in zip(sizes.distribution.size, sizes.distribution.cumulative):
        assert np.mean(drawn <= size) == pytest.approx(cumulative, abs=0.006), f"{name} at {size} bytes"


def test_a_cap_clips_only_the_tail():
    capped = ObjectSizes.load("websearch", max_bytes=100_000)
    drawn = np.array(capped.sample(np.random.default_rng(1), 50_000))
    assert drawn.max() == 100_000
    # Every draw over 100 kB (47 % of websearch flows) is clipped to it; the rest are untouched.
    model = BUILTIN["websearch"]
    assert np.mean(drawn == 100_000) == pytest.approx(1 - model.cdf(100_000), abs=0.01)
    assert np.mean(drawn < 10_000) == pytest.approx(model.cdf(10_000), abs=0.01)


def test_the_same_seed_draws_the_same_sizes():
    sizes = ObjectSizes.load("fb_hadoop")
    assert sizes.sample(np.random.default_rng(3), 100) == sizes.sample(np.random.default_rng(3), 100)


def test_an_unknown_name_is_a_usage_error_listing_the_choices(capsys):
    with pytest.raises(CdfError):
        ObjectSizes.load("nope")
    with pytest.raises(SystemExit) as stop:
        main(["--target", "127.0.0.1:9", "--rate", "1", "--requests", "1", "--cdf", "nope"])
    assert stop.value.code == 2
    assert "--cdf: no flow-size distribution named 'nope'; choose one of websearch" in capsys.readouterr().err


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
