"""Inverse-load probabilistic choice (DPR): P(server i) proportional to 1 / load_i.

Load is the server's utilisation from its last report (measured rate / capacity); a floor
keeps an idle server from taking everything.
"""

import numpy as np

from controller.policies.base import ClusterView, Policy

UTILISATION_FLOOR = 0.01


class InverseLoad(Policy):
    name = "inverse_load"

    def _weights(self, view: ClusterView) -> np.ndarray:
        utilisation = view.measured_rate / np.maximum(view.capacity, 1e-12)
        return 1.0 / np.maximum(utilisation, UTILISATION_FLOOR)
