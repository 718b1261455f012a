"""SA2C against hand-computed values: the load estimate, levels, drop probabilities and the
moving thresholds (T2 linear, T3 multiplicative, both reset below T1)."""

import math

import pytest
from pydantic import ValidationError

from controller.admission_control import (
    LOAD_CEILING,
    AdmissionControl,
    AdmissionSettings,
    cluster_load,
    level_for,
    needs_write,
    new_flow_budget,
    server_utilisation,
)
from controller.dataplane.constants import AdmissionLevel as L

SETTINGS = AdmissionSettings(t1=0.6, t2=0.8, t3=0.9, c=0.98, smoothing=0.5, t2_slope=0.5, t3_factor=0.5,
                             min_gap=0.01, max_degrade_prob=0.5)


def test_server_utilisation_is_the_bottleneck_resource():
    # cpu, bytes sent / capacity, connections / limit; NaN: not reported
    u = server_utilisation([[0.5, 0.7, 0.1], [math.nan, 0.2, math.nan], [math.nan] * 3])
    assert u.tolist() == [0.7, 0.2, 0.0]


def test_cluster_load_is_capacity_weighted_over_servers_that_are_up():
    assert cluster_load([0.5, 1.0, 0.9], [2.0, 1.0, 5.0], [True, True, False]) == pytest.approx((1.0 + 1.0) / 3.0)
    assert cluster_load([0.5], [1.0], [False]) == LOAD_CEILING
    assert cluster_load([9.0], [1.0], [True]) == LOAD_CEILING


@pytest.mark.parametrize("load, level, p", [
    (0.59, L.ADMIT_ALL, 0.0),
    (0.6, L.DROP_NEW_PROB, 0.0),
    (0.65, L.DROP_NEW_PROB, 0.25),
    (0.75, L.DROP_NEW_PROB, 0.75),
    (0.8, L.ESTABLISHED_ONLY, 0.0),
    (0.9, L.DEGRADE_ESTABLISHED, 0.0),
    (0.94, L.DEGRADE_ESTABLISHED, 0.5 * 0.04 / 0.08),
    (0.98, L.REJECT_ALL, 1.0),
])
def test_levels_between_the_thresholds(load, level, p):
    got_level, got_p = level_for(load, 0.6, 0.8, 0.9, 0.98, max_degrade_prob=0.5)
    assert got_level == level and got_p == pytest.approx(p)


def test_smoothing_and_moving_thresholds_step_by_step():
    sa2c = AdmissionControl(SETTINGS)
    # 1: rho = 0.7 (first value). Below T2 = 0.8: no excess, thresholds stay. p = 0.1 / 0.2.
    d = sa2c.update(0.7)
    assert (d.load, d.t2, d.t3, d.level) == (0.7, 0.8, 0.9, L.DROP_NEW_PROB) and d.drop_prob == pytest.approx(0.5)
    # 2: rho = 0.7 + 0.5 (1.0 - 0.7) = 0.85; e = 0.05; T2 = 0.8 - 0.025 = 0.775;
    #    T3 = 0.9 (1 - 0.025) = 0.8775; 0.775 <= 0.85 < 0.8775: established only.
    d = sa2c.update(1.0)
    assert d.load == pytest.approx(0.85) and d.raw_load == 1.0
    assert (d.t2, d.t3) == (pytest.approx(0.775), pytest.approx(0.8775))
    assert d.level == L.ESTABLISHED_ONLY
    # 3: rho = 0.85 + 0.5 (1.0 - 0.85) = 0.925; e = 0.125; T2 = 0.775 - 0.0625 = 0.7125;
    #    T3 = 0.8775 (1 - 0.0625) = 0.82265625; degrade with p = 0.5 (0.925 - T3) / (0.98 - T3).
    d = sa2c.update(1.0)
    assert d.load == pytest.approx(0.925)
    assert (d.t2, d.t3) == (pytest.approx(0.7125), pytest.approx(0.82265625))
    assert d.level == L.DEGRADE_ESTABLISHED
    assert d.drop_prob == pytest.approx(0.5 * (0.925 - 0.82265625) / (0.98 - 0.82265625))
    # 4: rho = 0.925 + 0.5 (0.4 - 0.925) = 0.6625; no excess over T2 = 0.8, above T1: the
    #    thresholds stay where they came down to, so shedding is steeper than with T2 = 0.8:
    #    p = (0.6625 - 0.6) / (0.7125 - 0.6) = 0.5556 (0.3125 with the configured T2).
    d = sa2c.update(0.4)
    assert d.load == pytest.approx(0.6625) and d.t2 == pytest.approx(0.7125)
    assert d.level == L.DROP_NEW_PROB and d.drop_prob == pytest.approx(0.0625 / 0.1125)
    # 5: rho = 0.6625 + 0.5 (0.3 - 0.6625) = 0.48125 < T1: both reset, admit all.
    d = sa2c.update(0.3)
    assert (d.t2, d.t3, d.level, d.drop_prob) == (0.8, 0.9, L.ADMIT_ALL, 0.0)


def test_thresholds_stop_at_their_floors():
    sa2c = AdmissionControl(SETTINGS)
    for _ in range(50):
        d = sa2c.update(0.97)
    assert d.t2 == pytest.approx(0.61) and d.t3 == pytest.approx(0.62)     # T1 + gap, T2 + gap
    assert d.level == L.DEGRADE_ESTABLISHED


def test_near_capacity_established_flows_are_degraded_not_refused_by_default():
    d = AdmissionControl(SETTINGS).update(1.5)
    assert d.wanted == L.REJECT_ALL
    assert (d.level, d.drop_prob) == (L.DEGRADE_ESTABLISHED, 0.5)
    strict = AdmissionControl(SETTINGS.model_copy(update={"refuse_established": True})).update(1.5)
    assert (strict.level, strict.drop_prob) == (L.REJECT_ALL, 1.0)


def test_nan_or_infinite_load_counts_as_full():
    assert AdmissionControl(SETTINGS).update(math.inf).raw_load == LOAD_CEILING
    assert AdmissionControl(SETTINGS).update(math.nan).raw_load == LOAD_CEILING


def test_reset():
    sa2c = AdmissionControl(SETTINGS)
    sa2c.update(1.0)
    sa2c.update(1.0)
    sa2c.reset()
    assert (sa2c.load, sa2c.t2, sa2c.t3) == (None, 0.8, 0.9)


def test_needs_write():
    sa2c = AdmissionControl(SETTINGS)
    first = sa2c.update(0.7)
    assert needs_write(None, first)
    assert not needs_write(first, sa2c.update(0.702))       # rho 0.701: p 0.5 -> 0.505
    assert needs_write(first, AdmissionControl(SETTINGS).update(0.5))


def test_settings_must_be_ordered():
    with pytest.raises(ValidationError, match="T1 < T2 < T3 < C"):
        AdmissionSettings(t1=0.8, t2=0.7)
    with pytest.raises(ValidationError, match="T1 < T2 < T3 < C"):
        AdmissionSettings(t3=0.99, c=0.98)
    with pytest.raises(ValidationError):
        AdmissionSettings(smoothing=0)
    with pytest.raises(ValidationError):
        AdmissionSettings(unknown=1)


def test_reopening_is_gradual_and_closing_immediate():
    """After refusing every new flow, the admitted share climbs by reopen_step per period
    (refused clients' SYN retries would all get in at once otherwise); it falls at once."""
    control = AdmissionControl(AdmissionSettings(smoothing=1.0, reopen_step=0.25))
    assert control.update(0.85).level == L.ESTABLISHED_ONLY            # a = 0
    steps = [control.update(0.1) for _ in range(5)]                    # SA2C alone would say ADMIT_ALL
    assert [d.wanted for d in steps] == [L.ADMIT_ALL] * 5
    assert [d.level for d in steps] == [L.DROP_NEW_PROB] * 3 + [L.ADMIT_ALL] * 2
    assert [d.drop_prob for d in steps[:3]] == pytest.approx([0.75, 0.5, 0.25])
    assert control.update(0.75).level == L.DROP_NEW_PROB and control.admitted == pytest.approx(0.5)
    assert control.update(0.95).level == L.DEGRADE_ESTABLISHED          # closes at once
    assert control.update(0.1).drop_prob == pytest.approx(0.75)        # SA2C says admit all; reopening from 0


def test_without_reopen_step_sa2c_reopens_at_once():
    control = AdmissionControl(AdmissionSettings(smoothing=1.0))
    control.update(0.85)
    assert control.update(0.1).level == L.ADMIT_ALL


def test_the_budget_caps_the_share_by_the_offered_new_flows():
    """A herd of retries: 30 admitted last period at a = 0.5 means 60 offered; a budget of 15
    admits a quarter of them. The budget never raises the share SA2C or reopen_step allow."""
    control = AdmissionControl(AdmissionSettings(smoothing=1.0))
    control.admitted = 0.5
    d = control.update(0.5, budget=15, admitted_last=30)
    assert d.wanted == L.ADMIT_ALL and d.level == L.DROP_NEW_PROB and d.drop_prob == pytest.approx(0.75)
    d = control.update(0.5, budget=0, admitted_last=10)
    assert d.level == L.ESTABLISHED_ONLY and control.admitted == 0
    d = control.update(0.5, budget=100, admitted_last=0)     # nothing offered known: SA2C decides
    assert d.level == L.ADMIT_ALL
    d = control.update(0.75, budget=1000, admitted_last=5)
    assert d.level == L.DROP_NEW_PROB and d.drop_prob == pytest.approx(0.5)


def test_new_flow_budget_is_the_room_under_the_window_less_what_is_on_the_way():
    assert new_flow_budget(limit=60, connections=40, admitted_last=None, fill=0.8) == pytest.approx(8)
    # 5 admitted last period that the reports may not count yet
    assert new_flow_budget(limit=60, connections=40, admitted_last=5, fill=0.8) == pytest.approx(3)
    assert new_flow_budget(limit=60, connections=70, admitted_last=0, fill=0.8) == 0
