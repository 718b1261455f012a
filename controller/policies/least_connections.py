"""Least connections (DPR's LC): new flows go to the server with fewest active flows.

For a ring, the expected new flows of the next interval are water-filled onto the servers
with fewest connections (see water_filling.py).
"""

import numpy as np

from controller.policies.base import ClusterView, Policy
from controller.policies.water_filling import water_fill


class LeastConnections(Policy):
    name = "least_connections"

    def _weights(self, view: ClusterView) -> np.ndarray:
        return water_fill(-view.active_flows.astype(np.float64), max(view.incoming_flows, 1.0),
                          view.available)
