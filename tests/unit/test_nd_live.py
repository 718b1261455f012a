"""nd live: proportions and tuning changed at run time, the agents' host metric, and a server
over its host limit taken out at once and brought back after a cool-down."""

import numpy as np
import pytest

from controller.policies.base import ClusterView
from controller.policies.nd import NetworkDispatcher, host_utilisation


def view(host=None, response=(0.0, 0.0, 0.0), active=(0, 0, 0), time=0.0, rate=(0.0, 0.0, 0.0)):
    v = ClusterView.idle([100.0, 100.0, 100.0])
    v.active_flows = np.array(active, dtype=np.int64)
    v.response_time = np.array(response, dtype=np.float64)
    v.measured_rate = np.array(rate, dtype=np.float64)
    v.host_metric = None if host is None else np.array(host, dtype=np.float64)
    v.time = time
    return v


def test_the_host_metric_comes_from_agents_where_they_report():
    v = view(host=[0.9, np.nan, 0.1], rate=[10.0, 50.0, 10.0])
    assert host_utilisation(v).tolist() == [0.9, 0.5, 0.1]
    assert host_utilisation(view(rate=[10.0, 50.0, 10.0])).tolist() == [0.1, 0.5, 0.1]


def test_proportions_change_at_run_time():
    nd = NetworkDispatcher(proportions=(0, 0, 1, 0), smoothing=1.0, sensitivity=0.0)
    v = view(host=[0.6, 0.2, 0.2], response=[0.0, 0.0, 0.4])
    nd.weights(v)                                       # first call: configured weights
    # host only: index 0.6, 0.2, 0.2 -> targets 2 - 3 x index = 0.2, 1.4, 1.4
    assert nd.weights(v) == pytest.approx([0.2, 1.4, 1.4])
    nd.set_proportions((0, 0, 0, 1))                     # forward only: server 2 is the slow one
    assert nd.weights(v) == pytest.approx([2.0, 2.0, 0.0])
    with pytest.raises(ValueError, match="four numbers"):
        nd.set_proportions((0, 0, 0, 0))
    with pytest.raises(ValueError, match="four numbers"):
        nd.set_proportions((1, -1, 0, 1))
    assert nd.proportions == (0, 0, 0, 1)               # a refused change changes nothing


def test_sensitivity_keeps_small_moves_off_the_ring_and_reconfigure_changes_it():
    nd = NetworkDispatcher(proportions=(0, 0, 1, 0), smoothing=1.0, sensitivity=0.5)
    nd.weights(view(host=[0.3, 0.3, 0.4]))
    assert nd.weights(view(host=[0.3, 0.3, 0.4])).tolist() == [1.0, 1.0, 1.0]   # moved 0.2 of 3: kept
    nd.reconfigure(sensitivity=0.0)
    assert nd.weights(view(host=[0.3, 0.3, 0.4])) == pytest.approx([1.1, 1.1, 0.8])
    with pytest.raises(ValueError):
        nd.reconfigure(smoothing=0.0)
    assert nd.smoothing == 1.0


def test_a_server_over_its_host_limit_is_out_at_once_and_back_after_the_cool_down():
    nd = NetworkDispatcher(proportions=(1, 0, 0, 0), smoothing=0.5, sensitivity=0.5, host_limit=0.9, cooldown_s=10)
    nd.weights(view(host=[0.5, 0.5, 0.5], time=0.0))
    w = nd.weights(view(host=[0.95, 0.5, 0.5], time=1.0))
    assert w[0] == 0.0 and w[1] > 0 and w[2] > 0       # out despite the high sensitivity
    assert nd.over_limit == {0: 1.0}
    assert nd.weights(view(host=[0.5, 0.5, 0.5], time=10.9))[0] == 0.0    # cooling down
    w = nd.weights(view(host=[0.5, 0.5, 0.5], time=11.0))
    assert w[0] == pytest.approx(0.5)                   # back, smoothed from 0 towards 1
    assert nd.over_limit == {}


def test_a_limit_touched_again_restarts_the_cool_down():
    nd = NetworkDispatcher(proportions=(1, 0, 0, 0), smoothing=1.0, sensitivity=0.0, host_limit=0.9, cooldown_s=10)
    nd.weights(view(host=[0.5, 0.5, 0.5], time=0.0))
    nd.weights(view(host=[0.95, 0.5, 0.5], time=1.0))
    nd.weights(view(host=[0.95, 0.5, 0.5], time=5.0))
    assert nd.weights(view(host=[0.5, 0.5, 0.5], time=14.0))[0] == 0.0
    assert nd.weights(view(host=[0.5, 0.5, 0.5], time=15.0))[0] == 1.0
    nd.reconfigure(clear_host_limit=True)
    assert nd.weights(view(host=[0.99, 0.5, 0.5], time=16.0))[0] == 1.0


def test_everyone_over_the_limit_spreads_evenly_rather_than_nowhere():
    nd = NetworkDispatcher(proportions=(1, 0, 0, 0), host_limit=0.9)
    nd.weights(view(host=[0.5, 0.5, 0.5]))
    assert nd.weights(view(host=[0.95, 0.99, 0.97], time=1.0)).tolist() == [1.0, 1.0, 1.0]
