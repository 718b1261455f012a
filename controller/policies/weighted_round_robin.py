"""Weighted round robin: shares follow the operator's configured weights (often capacity)."""

import numpy as np

from controller.policies.base import ClusterView, Policy


class WeightedRoundRobin(Policy):
    name = "weighted_round_robin"

    def _weights(self, view: ClusterView) -> np.ndarray:
        return view.configured_weight
