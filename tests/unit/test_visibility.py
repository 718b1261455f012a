"""The learned switch-to-served ratio: converges, survives resets and gaps, falls back and says so."""

import numpy as np
import pytest

from controller.estimators.visibility import RatioSource, VisibilityEstimator

DSR = 0.023


def feed(vis, backend, seconds, served_rate, ratio, start=0.0, switch0=0.0, served0=0.0, uptime0=0.0,
         rng=None, report_every=1.0, polls_per_report=10, skip_reports=()):
    """A server sending served_rate bytes/s, the switch seeing ratio of it (with noise if rng)."""
    switch, served, t = switch0, served0, start
    for k in range(int(seconds / report_every)):
        for _ in range(polls_per_report):
            dt = report_every / polls_per_report
            t += dt
            sent = served_rate * dt * (rng.uniform(0.5, 1.5) if rng is not None else 1.0)
            served += sent
            switch += sent * ratio * (rng.uniform(0.9, 1.1) if rng is not None else 1.0)
            vis.switch_bytes(backend, switch)
        if k not in skip_reports:
            vis.served_bytes(backend, served, uptime0 + t - start, at=t)
    return switch, served, t


def test_converges_to_the_true_ratio_under_noise():
    vis = VisibilityEstimator({1: DSR, 2: DSR})
    rng = np.random.default_rng(1)
    feed(vis, 1, 60, 10e6, 0.05, rng=rng)
    feed(vis, 2, 60, 10e6, 0.01, rng=rng)
    assert vis.ratio(1, 60.0) == pytest.approx(0.05, rel=0.05)
    assert vis.ratio(2, 60.0) == pytest.approx(0.01, rel=0.05)
    assert vis.source(1, 60.0) == RatioSource.MEASURED
    assert vis.ratios([2, 1], 60.0) == pytest.approx([0.01, 0.05], rel=0.05)


def test_fallback_until_enough_windows_and_for_backends_without_an_agent():
    vis = VisibilityEstimator({1: DSR, 2: 0.5}, min_samples=3)
    feed(vis, 1, 3, 10e6, 0.05)                         # 3 reports: the first only opens a window
    assert vis.source(1, 3.0) == RatioSource.FALLBACK and vis.ratio(1, 3.0) == DSR
    feed(vis, 1, 1, 10e6, 0.05, start=3.0, switch0=3 * 10e6 * 0.05, served0=3 * 10e6, uptime0=3.0)
    assert vis.source(1, 4.0) == RatioSource.MEASURED and vis.ratio(1, 4.0) == pytest.approx(0.05)
    assert vis.ratio(2, 4.0) == 0.5 and vis.on_fallback(4.0) == [2]
    assert vis.ratio(99, 4.0) == 1.0                     # unknown backend: counted as is


def test_quiet_windows_grow_instead_of_counting():
    vis = VisibilityEstimator({1: DSR}, min_served_bytes=1e6, min_samples=1)
    feed(vis, 1, 10, 200e3, 0.05)                        # 200 kB/s: a window closes every 5 reports
    assert vis.ratio(1, 10.0) == pytest.approx(0.05)


def test_missing_reports_only_make_a_window_longer():
    vis = VisibilityEstimator({1: DSR}, min_samples=1)
    feed(vis, 1, 20, 10e6, 0.05, skip_reports=range(2, 15))
    assert vis.ratio(1, 20.0) == pytest.approx(0.05)


def test_held_when_the_agent_falls_silent():
    vis = VisibilityEstimator({1: DSR}, stale_after_s=5.0)
    feed(vis, 1, 10, 10e6, 0.05)
    assert vis.source(1, 14.9) == RatioSource.MEASURED
    assert vis.source(1, 15.1) == RatioSource.HELD and vis.ratio(1, 15.1) == pytest.approx(0.05)
    assert vis.on_fallback(15.1) == []


@pytest.mark.parametrize("reset", ["agent", "interface", "switch"])
def test_counter_resets_discard_the_open_window_only(reset):
    vis = VisibilityEstimator({1: DSR}, smoothing=1.0, min_samples=1)
    switch, served, t = feed(vis, 1, 10, 10e6, 0.05)
    resets = vis.resets
    # After the reset the counters start again from 0 (or the agent's uptime does); a window
    # spanning the reset would give nonsense (a negative or a huge ratio).
    feed(vis, 1, 10, 10e6, 0.05, start=t,
         switch0=0.0 if reset == "switch" else switch,
         served0=0.0 if reset == "interface" else served,
         uptime0=0.0 if reset == "agent" else t)
    assert vis.resets == resets + 1
    assert vis.ratio(1, 20.0) == pytest.approx(0.05)


def test_outliers_are_clipped():
    vis = VisibilityEstimator({1: DSR}, smoothing=1.0, min_samples=1, bounds=(1e-3, 2.0))
    feed(vis, 1, 3, 10e6, 50.0)                          # the switch "saw" 50x what was sent
    assert vis.ratio(1, 3.0) == pytest.approx(2.0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        VisibilityEstimator({}, smoothing=0)
    with pytest.raises(ValueError, match="> 0"):
        VisibilityEstimator({1: 0.0})
