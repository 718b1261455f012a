"""Policies: hand-computed weights for each rule; quiesced servers never get new flows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.policies import POLICIES, ClusterView, NoServerAvailable, make_policy
from controller.policies.damping import NO_DAMPING
from controller.policies.fb_est import FbEst, fb_est_score
from controller.policies.fb_least import FbLeast
from controller.policies.fixed_split import FixedSplit
from controller.policies.inverse_load import InverseLoad
from controller.policies.least_connections import LeastConnections
from controller.policies.nd import NetworkDispatcher, load_index, normalise
from controller.policies.round_robin import RoundRobin
from controller.policies.shell import Shell, linear_forecast, normalised_error
from controller.policies.water_filling import water_fill
from controller.policies.weighted_round_robin import WeightedRoundRobin


def view(**fields) -> ClusterView:
    base = ClusterView.idle(fields.pop("capacity", [100.0, 100.0, 100.0]))
    for name, value in fields.items():
        setattr(base, name, np.asarray(value) if isinstance(value, list) else value)
    return base


def test_water_fill_known_answers():
    # Headroom 10, 5, 1 and 3 to place: all fits in the first (10 -> 7 still above 5).
    assert water_fill([10, 5, 1], 3).tolist() == [3, 0, 0]
    # 20 to place: level L with (10-L)+(5-L)+(1-L) = 20 -> L = -4/3.
    assert water_fill([10, 5, 1], 20) == pytest.approx([34 / 3, 19 / 3, 7 / 3])
    # Nothing coming: the argmax servers share.
    assert water_fill([10, 10, 1], 0).tolist() == [0.5, 0.5, 0]
    # Ineligible servers get nothing even with the most headroom.
    assert water_fill([50, 5, 1], 4, [False, True, True]).tolist() == [0, 4, 0]


def test_round_robin_and_weighted():
    assert RoundRobin().weights(view()).tolist() == [1, 1, 1]
    assert WeightedRoundRobin().weights(view(configured_weight=[4.0, 1.0, 1.0])).tolist() == [4, 1, 1]


def test_fixed_split_hashes_on_source_and_keeps_its_shares():
    policy = FixedSplit([4, 1, 1])
    assert policy.hash_on == "source"
    busy = view(measured_rate=[1000.0, 0.0, 0.0])
    assert policy.weights(busy).tolist() == [4, 1, 1]       # never reacts to load
    with pytest.raises(ValueError, match="3 servers"):
        FixedSplit([1, 1]).weights(view())


def test_least_connections_fills_the_emptiest():
    # 5, 2, 2 active; 4 new flows expected: servers 1 and 2 take 2 each (all at 4, below 5).
    weights = LeastConnections().weights(view(active_flows=[5, 2, 2], incoming_flows=4.0))
    assert weights.tolist() == [0, 2, 2]


def test_inverse_load_known_answer():
    # Utilisation 0.5, 0.25 and 0 (floored at 0.01): weights 2, 4, 100.
    weights = InverseLoad().weights(view(measured_rate=[50.0, 25.0, 0.0]))
    assert weights == pytest.approx([2, 4, 100])


def test_fb_least_uses_counters_fb_est_uses_estimates():
    # Server 0's counters still show a flow that just ended (80 B/s); the estimator knows it is gone.
    v = view(measured_rate=[80.0, 30.0, 30.0], estimated_load=[0.0, 30.0, 30.0], incoming_rate=10.0)
    assert FbLeast().weights(v).tolist() == [0, 5, 5]
    # fb_est's weights are shares (damped; damping itself: test_damping.py).
    assert FbEst(NO_DAMPING).weights(v).tolist() == [1, 0, 0]


def test_eq1_score_known_answer():
    # t_RTT = 0.01 s. Server 0: R = 1000 * 0.01 = 10 B; flows 400 B/s busy 0.5 and 200 B/s busy 1:
    # 10 - 0.01 * (200 + 200) = 6. Server 1: R = 5 B, flow 100 B/s busy 1: 5 - 1 = 4.
    score = fb_est_score([1000, 500], 0.01, [0, 0, 1], [400, 200, 100], [0.5, 1.0, 1.0])
    assert score == pytest.approx([6.0, 4.0])


def test_nd_index_smoothing_and_sensitivity():
    assert normalise(np.array([1.0, 3.0])).tolist() == [0.25, 0.75]
    assert normalise(np.zeros(4)).tolist() == [0.25] * 4
    # Only the host metric (proportion 1): index = utilisation share.
    index = load_index(np.zeros(2), np.zeros(2), np.array([0.6, 0.2]), np.zeros(2), (0, 0, 1, 0))
    assert index.tolist() == pytest.approx([0.75, 0.25])
    nd = NetworkDispatcher(proportions=(0, 0, 1, 0), smoothing=0.5, sensitivity=0.05)
    v = view(capacity=[100.0, 100.0], measured_rate=[60.0, 20.0])
    assert nd.weights(v).tolist() == [1, 1]                  # first call: configured weights
    # Target = 2 - index * n: [2 - 1.5, 2 - 0.5] = [0.5, 1.5]; half way from [1, 1]: [0.75, 1.25].
    assert nd.weights(v) == pytest.approx([0.75, 1.25])
    # A move below the threshold (5 % of the total weight) is not written.
    nd.sensitivity = 1.0
    assert nd.weights(v) == pytest.approx([0.75, 1.25])


def test_shell_forecast_and_damping():
    # Loads 10, 20, 30: the line says 40 next.
    assert linear_forecast(np.array([[10.0], [20.0], [30.0]])) == pytest.approx([40.0])
    assert normalised_error(np.array([12.0, 0.0, 3.0]), np.array([10.0, 0.0, 0.0])).tolist() == \
        pytest.approx([0.2, 0.0, 1.0])
    shell = Shell(window=4)
    for load in ([10.0, 50.0], [20.0, 50.0]):
        weights = shell.weights(view(capacity=[100.0, 100.0], measured_rate=load, incoming_rate=1.0))
    # Second call: forecast [30, 50] but the first forecast (= [10, 50]) erred by 50 % and 0 %.
    # Damped: server 0 = 20 + (30 - 20) * 0.5 = 25, server 1 = 50: headroom 75 vs 50.
    assert weights.tolist() == [1, 0]


def test_make_policy_knows_every_name():
    for name in POLICIES:
        assert make_policy(name).name == name
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_policy("nope")


def test_no_server_available_is_an_error_not_a_ring():
    v = view(available=np.zeros(3, dtype=bool))
    for name in POLICIES:
        with pytest.raises(NoServerAvailable):
            make_policy(name).weights(v)


metric = st.lists(st.floats(0, 1e9), min_size=4, max_size=4).map(np.array)


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(POLICIES)), out=st.lists(st.booleans(), min_size=4, max_size=4),
       rate=metric, est=metric, flows=st.lists(st.integers(0, 10_000), min_size=4, max_size=4),
       incoming=st.floats(0, 1e9), rounds=st.integers(1, 3))
def test_quiesced_servers_never_chosen(name, out, rate, est, flows, incoming, rounds):
    if all(out):
        out[0] = False
    policy = make_policy(name)
    v = view(capacity=[1e6, 2e6, 1e6, 5e5], available=~np.array(out), measured_rate=rate,
             estimated_load=est, active_flows=np.array(flows), new_flows=np.array(flows),
             response_time=rate / 1e9, incoming_rate=incoming, incoming_flows=incoming / 1e3)
    for _ in range(rounds):   # stateful policies (nd, shell) too
        weights = policy.weights(v)
        assert np.all(np.isfinite(weights)) and np.all(weights >= 0)
        assert np.all(weights[np.array(out)] == 0)
        assert weights.sum() > 0
