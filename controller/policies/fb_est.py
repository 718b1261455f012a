"""fb_est (FB_EST eq. 1): the server with the largest estimated residual capacity one RTT ahead.

    argmax_i  R_i - sum_j t_RTT * r_j * p_j      (j over the flows on server i)

R_i is server i's capacity over one RTT, r_j a flow's rate (eq. 2) and p_j its busy
probability. Flows that ended drop out of the sum at once and flows just assigned count
from their digest on, which the per-backend counters (fb_least) cannot do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from controller.policies.base import ClusterView, Policy
from controller.policies.water_filling import water_fill


def fb_est_score(capacity: ArrayLike, rtt: float, flow_server: ArrayLike, flow_rate: ArrayLike,
                 flow_busy: ArrayLike) -> NDArray[np.float64]:
    """Eq. 1's quantity per server, in bytes per RTT: R_i - sum_j t_RTT r_j p_j."""
    capacity = np.asarray(capacity, dtype=np.float64)
    expected = np.bincount(np.asarray(flow_server, dtype=np.int64),
                           weights=np.asarray(flow_rate, dtype=np.float64) * np.asarray(flow_busy, dtype=np.float64),
                           minlength=len(capacity))
    return capacity * rtt - rtt * expected


class FbEst(Policy):
    name = "fb_est"
    needs_flow_estimates = True

    def _weights(self, view: ClusterView) -> np.ndarray:
        # view.estimated_load is sum_j r_j p_j per server; eq. 1 scaled by 1/t_RTT is bytes/s,
        # the same units as the incoming load to water-fill.
        score_per_rtt = view.capacity * view.rtt - view.rtt * view.estimated_load
        return water_fill(score_per_rtt / view.rtt, view.incoming_rate, view.available)
