"""fb_least: the largest residual capacity now, from the per-backend counters.

Residual = capacity - measured rate over the last polling interval. It sees flows that
just ended as load and flows just assigned as nothing: what FB_EST improves on.
"""

import numpy as np

from controller.estimators.server_load import residual_capacity
from controller.policies.base import ClusterView, Policy
from controller.policies.water_filling import water_fill


class FbLeast(Policy):
    name = "fb_least"

    def _weights(self, view: ClusterView) -> np.ndarray:
        return water_fill(residual_capacity(view.capacity, view.measured_rate), view.incoming_rate,
                          view.available)
