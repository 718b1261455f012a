"""fb_est (FB_EST eq. 1): the server with the largest estimated residual capacity one RTT ahead.

    argmax_i  R_i - sum_j t_RTT * r_j * p_j      (j over the flows on server i)

R_i is server i's capacity over one RTT, r_j a flow's rate (eq. 2) and p_j its busy
probability. Flows that ended drop out of the sum at once and flows just assigned count
from their digest on, which the per-backend counters (fb_least) cannot do.

As ring weights (docs/policies.md, "Herding"): the next poll's expected new load is
water-filled to one utilisation level (`level_fill`: residual capacity relative to
capacity, so servers of unequal capacity end equally busy), and the result is damped
(damping.py): averaged over the time a few tens of new flows take to arrive, with part of
new flows always spread by capacity, both fading where new flows are many.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from controller.policies.base import ClusterView, Policy
from controller.policies.damping import Damper, DampingSettings
from controller.policies.water_filling import level_fill


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

    def __init__(self, damping: DampingSettings | None = None) -> None:
        self.damper = Damper(damping if damping is not None else DampingSettings())

    def target(self, view: ClusterView) -> NDArray[np.float64]:
        """The undamped target: the next poll's expected new load, levelled by utilisation
        (view.estimated_load is eq. 1's sum_j r_j p_j per server, per second)."""
        return level_fill(view.capacity, view.estimated_load, view.incoming_rate, view.available)

    def _weights(self, view: ClusterView) -> NDArray[np.float64]:
        return self.damper.step(self.target(view), view.capacity, view.available, view.interval,
                                view.incoming_flows)
