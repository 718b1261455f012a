"""Round robin: every available server gets the same share of new flows.

On the switch this is an equal-weight ring: the flow hash spreads new flows evenly in
expectation (not in strict turn, which would need per-packet state in the data plane).
"""

import numpy as np

from controller.policies.base import ClusterView, Policy


class RoundRobin(Policy):
    name = "round_robin"

    def _weights(self, view: ClusterView) -> np.ndarray:
        return np.ones(view.n_servers)
