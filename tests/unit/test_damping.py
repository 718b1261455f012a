"""fb_est's anti-herding (issue 11): utilisation levels (level_fill) and damping, hand-computed."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import Config
from controller.policies import ClusterView, make_policy
from controller.policies.damping import (
    NO_DAMPING,
    Damper,
    DampingSettings,
    averaging_time,
    capacity_shares,
    damp,
    floor_share,
    step_factor,
    with_floor,
)
from controller.policies.fb_est import FbEst
from controller.policies.water_filling import level_fill, water_fill

CAPACITY = [20.0, 10.0, 5.0]      # the demo's backends, Mbit/s
ALL = [True, True, True]


# ---- level_fill: one utilisation level, not one spare-bytes level -----------------------------

def test_level_fill_known_answers():
    # Utilisation 0.5, 0.2, 1.0 and 7 to place: server 1 fills to 0.5 (3), then 0 and 1
    # together: L = (7 + 10 + 2) / 30 = 0.633..., amounts 20L - 10 = 2.67 and 10L - 2 = 4.33.
    assert level_fill(CAPACITY, [10, 2, 5], 7) == pytest.approx([8 / 3, 13 / 3, 0])
    # Much more than the imbalance: by capacity around it, L = (100 + 17) / 35.
    level = 117 / 35
    assert level_fill(CAPACITY, [10, 2, 5], 100) == pytest.approx([20 * level - 10, 10 * level - 2, 5 * level - 5])
    # Little: all of it to the least utilised.
    assert level_fill(CAPACITY, [10, 2, 5], 1).tolist() == [0, 1, 0]


def test_level_fill_idle_cluster_is_by_capacity_not_all_to_the_biggest():
    assert level_fill(CAPACITY, [0, 0, 0], 0) == pytest.approx([4 / 7, 2 / 7, 1 / 7])
    # The spare-bytes water-fill fb_est had before gave everything to the biggest (issue 11's
    # start-up ring of 100 / 0 / 0).
    assert water_fill(CAPACITY, 0).tolist() == [1, 0, 0]


def test_level_fill_at_moderate_load_uses_the_small_server():
    # The herd's structural half: at about 50 % load, levelling spare bytes/s leaves the
    # 5 Mbit/s server out (its whole capacity is below the level), levelling utilisation does not.
    load, incoming = np.array([10.0, 5.0, 0.0]), 2.0
    spare = water_fill(np.array(CAPACITY) - load, incoming)
    assert spare[2] == 0 and spare[0] == incoming
    assert level_fill(CAPACITY, load, incoming).tolist() == [0, 0, 2]


def test_level_fill_equal_capacities_is_water_fill():
    load = [5.0, 3.0, 1.0]
    for incoming in (0.5, 3, 20):
        assert level_fill([1, 1, 1], load, incoming) == pytest.approx(water_fill(-np.array(load), incoming))


def test_level_fill_skips_unavailable_servers():
    assert level_fill(CAPACITY, [0, 0, 0], 7, [False, True, True]) == pytest.approx([0, 14 / 3, 7 / 3])
    assert level_fill(CAPACITY, [0, 0, 0], 0, [False, True, True]) == pytest.approx([0, 2 / 3, 1 / 3])
    assert level_fill(CAPACITY, [0, 0, 0], 5, [False, False, False]).tolist() == [0, 0, 0]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.1, 100), st.floats(0, 200), st.booleans()), min_size=1, max_size=8),
       st.floats(0.01, 1000))
def test_level_fill_places_everything_and_levels(servers, incoming):
    capacity = np.array([s[0] for s in servers])
    load = np.array([s[1] for s in servers])
    eligible = np.array([s[2] for s in servers])
    amounts = level_fill(capacity, load, incoming, eligible)
    assert np.all(amounts >= 0) and np.all(amounts[~eligible] == 0)
    if not eligible.any():
        return
    assert amounts.sum() == pytest.approx(incoming, rel=1e-9)
    after = (load + amounts) / capacity
    filled = amounts > 1e-9 * incoming
    # Every server that got something ends at one level, and none left out is below it.
    assert np.ptp(after[filled]) == pytest.approx(0, abs=1e-6 * max(1, after[filled].max()))
    assert np.all(after[eligible & ~filled] >= after[filled].min() - 1e-9)


# ---- damping: averaging time, step, floor ---------------------------------------------------

def test_averaging_time_is_the_time_for_n_flows_at_most_max():
    s = DampingSettings(flows=20, max_seconds=1.0, floor=0.5)
    assert averaging_time(40, s) == 0.5
    assert averaging_time(3000, s) == pytest.approx(20 / 3000)
    assert averaging_time(5, s) == 1.0        # capped
    assert averaging_time(0, s) == 1.0        # no flows: the longest
    assert averaging_time(40, NO_DAMPING) == 0.0


def test_step_factor_is_exponential_in_time():
    assert step_factor(0.1, 0.0) == 1.0
    assert step_factor(0.1, 0.5) == pytest.approx(1 - math.exp(-0.2))
    # Two polls of 0.1 s go as far as one of 0.2 s: the average means the same at any poll rate.
    one = step_factor(0.2, 0.5)
    two = 1 - (1 - step_factor(0.1, 0.5)) ** 2
    assert one == pytest.approx(two)


def test_floor_fades_with_averaging_time():
    s = DampingSettings(flows=20, max_seconds=1.0, floor=0.5)
    assert floor_share(1.0, s) == 0.5
    assert floor_share(0.25, s) == 0.125
    assert floor_share(0.0, s) == 0.0
    assert with_floor([1, 0, 0], [4 / 7, 2 / 7, 1 / 7], 0.5) == pytest.approx([11 / 14, 1 / 7, 1 / 14])


def test_capacity_shares_only_over_available():
    assert capacity_shares(CAPACITY, [True, False, True]) == pytest.approx([0.8, 0, 0.2])


def test_damp_known_answer():
    # 20 flows/s with flows = 20: T = 1 s = max_seconds; a 0.1 s poll moves 1 - e^-0.1 of the way
    # from the previous average (by capacity) toward a one-hot target; then half by capacity.
    s = DampingSettings(flows=20, max_seconds=1.0, floor=0.5)
    base = np.array([4, 2, 1]) / 7
    averaged, out = damp(base, [0, 0, 1], CAPACITY, ALL, 0.1, 20.0, s)
    k = 1 - math.exp(-0.1)
    expected_avg = base + k * (np.array([0, 0, 1]) - base)
    assert averaged == pytest.approx(expected_avg)
    assert out == pytest.approx(0.5 * expected_avg + 0.5 * base)
    # The smallest server, whom a one-hot target would give every new flow, gets about 1/5.
    assert out[2] == pytest.approx(0.5 * (1 / 7 + k * 6 / 7) + 0.5 / 7)
    assert out[2] < 0.2


def test_damp_off_or_many_flows_passes_the_target_through():
    target = np.array([0.0, 0.0, 1.0])
    averaged, out = damp([0.6, 0.3, 0.1], target, CAPACITY, ALL, 0.1, 30.0, NO_DAMPING)
    assert out.tolist() == target.tolist() and averaged.tolist() == target.tolist()
    # 20,000 flows/s: T = 1 ms, a 100 ms poll takes the target all but e^-100, and the floor is 0.1 %.
    _, out = damp([0.6, 0.3, 0.1], target, CAPACITY, ALL, 0.1, 20_000.0, DampingSettings())
    assert out == pytest.approx(target, abs=2e-3)


def test_damp_first_poll_and_changed_servers_start_from_the_target():
    s = DampingSettings(flows=20, max_seconds=1.0, floor=0.0)
    averaged, out = damp(None, [1, 1, 0], CAPACITY, ALL, 0.1, 20.0, s)
    assert averaged.tolist() == [0.5, 0.5, 0.0] and out.tolist() == [0.5, 0.5, 0.0]
    averaged, _ = damp([0.5, 0.5], [1, 1, 0], CAPACITY, ALL, 0.1, 20.0, s)   # a server was added
    assert averaged.tolist() == [0.5, 0.5, 0.0]


def test_damp_unavailable_server_gets_nothing_at_once():
    # However damped, a quiesced server's share goes to 0 in this very poll.
    s = DampingSettings(flows=20, max_seconds=1.0, floor=0.5)
    averaged, out = damp([0.2, 0.2, 0.6], [0.5, 0.5, 0.5], CAPACITY, [True, True, False], 0.1, 20.0, s)
    assert out[2] == 0 and averaged[2] == 0
    assert out.sum() == pytest.approx(1.0)
    # ... and comes back through the average, from 0.
    _, back = damp(averaged, [0, 0, 1], CAPACITY, ALL, 0.1, 20.0, s)
    assert 0 < back[2] < 0.2


def test_damp_no_preference_is_by_capacity():
    _, out = damp(None, [0, 0, 0], CAPACITY, ALL, 0.1, 20.0, DampingSettings())
    assert out == pytest.approx([4 / 7, 2 / 7, 1 / 7])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=3, max_size=3), st.lists(st.floats(0, 1), min_size=3, max_size=3),
       st.floats(0.01, 1.0), st.floats(0, 10_000), st.floats(0, 100), st.floats(0.1, 5), st.floats(0, 1))
def test_damp_shares_bounds(previous, target, interval, rate, flows, max_seconds, floor):
    s = DampingSettings(flows=flows, max_seconds=max_seconds, floor=floor)
    previous = np.array(previous) / sum(previous) if sum(previous) > 0 else None
    averaged, out = damp(previous, target, CAPACITY, ALL, interval, rate, s)
    assert out.sum() == pytest.approx(1.0) and averaged.sum() == pytest.approx(1.0)
    # Each server gets at least its floor part of its capacity share.
    base = np.array([4, 2, 1]) / 7
    floor_now = floor_share(averaging_time(rate, s), s)
    assert np.all(out >= floor_now * base - 1e-12)


def test_bad_settings_refused():
    for bad in ({"flows": -1}, {"max_seconds": 0}, {"floor": 1.5}, {"flows": math.nan}, {"max_seconds": math.inf}):
        with pytest.raises(ValueError, match="damping needs"):
            DampingSettings(**bad)


# ---- the Damper over polls, and fb_est with it ------------------------------------------------

def test_damper_averages_the_flow_rate():
    d = Damper(DampingSettings(flows=20, max_seconds=1.0))
    assert d.observe(3, 0.1) == pytest.approx(30.0)
    # A quiet poll moves the rate 1 - e^-0.1 of the way to 0, not all the way.
    assert d.observe(0, 0.1) == pytest.approx(30.0 * math.exp(-0.1))


def test_damped_fb_est_does_not_follow_a_flipping_target():
    """Targets that flip between servers every poll (noise) leave the damped weights near the
    capacity split; undamped, every poll writes a one-hot ring."""
    flips = [[1, 0, 0], [0, 1, 0], [0, 0, 1]] * 10
    d = Damper(DampingSettings(flows=20, max_seconds=1.0, floor=0.5))
    out = [d.step(t, CAPACITY, ALL, 0.1, 2) for t in flips]    # 20 new flows/s: T = 1 s
    last = np.array(out[-3:])
    assert np.all(last.max(axis=1) < 0.6)
    assert np.all(last[:, 2] < 0.25)                              # 5 Mbit/s never swamped
    assert np.all(last.min(axis=0) > 0.5 * np.array([4, 2, 1]) / 7 - 1e-12)
    undamped = Damper(NO_DAMPING)
    assert [undamped.step(t, CAPACITY, ALL, 0.1, 2).tolist() for t in flips[:3]] == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_damped_fb_est_follows_a_steady_target():
    d = Damper(DampingSettings(flows=20, max_seconds=1.0, floor=0.5))
    for _ in range(60):    # 6 s of the same target at 20 new flows/s
        out = d.step([0.0, 1.0, 0.0], CAPACITY, ALL, 0.1, 2)
    # All the steered half, plus the floor's by-capacity half.
    assert out == pytest.approx(0.5 * np.array([0, 1, 0]) + 0.5 * np.array([4, 2, 1]) / 7, abs=1e-2)


def view(**fields) -> ClusterView:
    base = ClusterView.idle(fields.pop("capacity", CAPACITY))
    for name, value in fields.items():
        setattr(base, name, np.asarray(value) if isinstance(value, list) else value)
    return base


def test_fb_est_idle_cluster_is_by_capacity():
    assert FbEst().weights(view()) == pytest.approx([4 / 7, 2 / 7, 1 / 7])


def test_fb_est_undamped_is_the_level_fill():
    v = view(estimated_load=[10.0, 2.0, 5.0], incoming_rate=7.0, incoming_flows=3.0)
    assert FbEst(NO_DAMPING).weights(v) == pytest.approx(np.array([8 / 3, 13 / 3, 0]) / 7)


def test_make_policy_passes_damping_to_fb_est_only():
    assert make_policy("fb_est", NO_DAMPING).damper.settings == NO_DAMPING
    assert make_policy("fb_est").damper.settings == DampingSettings()
    assert make_policy("round_robin", NO_DAMPING).name == "round_robin"


def test_config_damping_defaults_and_validation():
    service = {"name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.1", "port": 80, "policy": "fb_est",
               "backends": [{"name": "a", "id": 1, "port": 1, "mac": "02:00:00:00:00:01"}]}
    config = Config.model_validate({"services": [service]})
    assert config.services[0].damping.settings() == DampingSettings()
    config = Config.model_validate({"services": [service | {"damping": {"flows": 0}}]})
    assert config.services[0].damping.settings().flows == 0
    for bad in ({"floor": 2}, {"max_seconds": 0}, {"flows": -1}, {"speed": 1}):
        with pytest.raises(ValueError):
            Config.model_validate({"services": [service | {"damping": bad}]})
