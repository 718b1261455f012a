"""FB_EST estimators: known answers computed by hand, and sane values on any input."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.estimators import (
    FlowEstimates,
    RttPredictor,
    busy_this_interval,
    decay_factor,
    residual_capacity,
    rtt_sample,
    server_load,
    update_busy,
    update_rate,
)


def test_eq2_known_answer():
    # T = K = 0.2 s: keep e^-1 = 0.367879 of the old rate; new sample 1000 B / 0.2 s = 5000 B/s.
    # 0.632121 * 5000 + 0.367879 * 2000 = 3160.60 + 735.76 = 3896.36
    assert float(update_rate(2000.0, 1000.0, 0.2)) == pytest.approx(3896.362, rel=1e-3)


def test_eq2_irregular_intervals_weigh_by_time():
    # A 10 ms interval keeps e^(-0.05) = 0.951229 of the old estimate: it moves only 4.9 %.
    assert float(decay_factor(0.01)) == pytest.approx(0.951229, rel=1e-6)
    assert float(update_rate(0.0, 100.0, 0.01)) == pytest.approx((1 - math.exp(-0.05)) * 10_000, rel=1e-9)
    # A long silence forgets the old rate almost completely.
    assert float(update_rate(1e6, 0.0, 5.0)) < 1e-4


def test_eq2_zero_interval_keeps_the_estimate():
    assert float(update_rate(123.0, 50.0, 0.0)) == 123.0


def test_busy_ends_after_n_rtts_of_silence():
    rtt = 0.01
    # Sent bytes: busy. Silent for 3 RTTs with N = 4: still one busy period. Silent 5 RTTs: ended.
    assert busy_this_interval([10, 0, 0], [0.5, 0.03, 0.05], rtt, idle_rtts=4).tolist() == [1, 1, 0]


def test_busy_probability_decays_at_each_sync():
    # p = 1, idle interval of K: p = e^-1 = 0.3679; another: e^-2 = 0.1353.
    p = update_busy(1.0, 0.0, 0.2)
    assert float(p) == pytest.approx(math.exp(-1), rel=1e-9)
    assert float(update_busy(p, 0.0, 0.2)) == pytest.approx(math.exp(-2), rel=1e-9)
    assert float(update_busy(0.0, 1.0, 0.2)) == pytest.approx(1 - math.exp(-1), rel=1e-9)


def test_rtt_prediction_from_the_source_prefix():
    assert rtt_sample(1.000, 1.004) == pytest.approx(0.004, rel=1e-9)
    assert rtt_sample(1.0, 0.9) is None
    rtts = RttPredictor(history=2, default=0.5)
    assert rtts.predict(7) == 0.5
    rtts.add(7, 0.010)
    rtts.add(7, 0.020)
    rtts.add(7, 0.030)           # history 2: the 10 ms sample is gone
    rtts.add(9, 0.100)
    assert rtts.predict(7) == pytest.approx(0.025, rel=1e-9)
    assert rtts.predict(8) == pytest.approx((0.01 + 0.02 + 0.03 + 0.1) / 4, rel=1e-9)   # unknown prefix: all recent
    rtts.add(7, float("nan"))
    rtts.add(7, -1.0)
    assert rtts.predict(7) == pytest.approx(0.025, rel=1e-9)


def test_server_load_and_residual_known_answer():
    # Server 0: 100 * 0.5 + 40 * 1 = 90. Server 1: 200 * 0.25 = 50. Server 2: none.
    load = server_load([0, 0, 1], [100, 40, 200], [0.5, 1.0, 0.25], 3)
    assert load.tolist() == [90, 50, 0]
    assert residual_capacity([100, 100, 10], load).tolist() == [10, 50, 10]


def test_flow_estimates_track_sync_and_forget():
    est = FlowEstimates(n_servers=2, time_constant=0.2, idle_rtts=4, capacity=2)
    est.track([0, 3], servers=[1, 0], rtts=[0.01, 0.01], initial_rate=0.0)   # grows past 2 slots
    # Slot 0 sends 1000 B in 0.2 s, slot 3 is silent for 1 s (> 4 RTT): it stops counting.
    est.sync(np.array([1000.0, 0, 0, 0]), np.array([0.0, 0, 0, 1.0]), 0.2)
    rate0 = (1 - math.exp(-1)) * 5000
    assert est.rate[0] == pytest.approx(rate0, rel=1e-9)
    assert est.busy[0] == 1.0 and est.busy[3] == pytest.approx(math.exp(-1), rel=1e-9)
    assert est.server_load().tolist() == pytest.approx([0.0, rate0], rel=1e-9)
    est.forget([0])
    assert est.server_load().tolist() == [0.0, 0.0]


finite = st.floats(min_value=0, max_value=1e12, allow_nan=False)


@given(finite, finite, st.floats(min_value=0, max_value=1e4), st.floats(min_value=1e-3, max_value=10))
def test_rate_estimate_finite_non_negative_and_between(old, seen, interval, k):
    new = float(update_rate(old, seen, interval, k))
    assert math.isfinite(new) and new >= 0
    if interval > 0:   # a convex mix of the old rate and the new sample
        sample = seen / interval
        assert min(old, sample) * (1 - 1e-9) - 1e-9 <= new <= max(old, sample) * (1 + 1e-9) + 1e-9


@given(st.floats(0, 1), st.sampled_from([0.0, 1.0]), st.floats(0, 1e4))
def test_busy_probability_stays_a_probability(old, busy, interval):
    p = float(update_busy(old, busy, interval))
    assert 0.0 <= p <= 1.0
