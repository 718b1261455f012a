"""Random / stateless hash: a flow's server is a pure function of its key hash.

The ring is written once with equal weights and never again: no state, no feedback.
The difference from round robin shows only when servers come and go (round robin follows
availability at each sync, and so does this; neither reads load).
"""

import numpy as np

from controller.policies.base import ClusterView, Policy


class RandomHash(Policy):
    name = "random_hash"

    def _weights(self, view: ClusterView) -> np.ndarray:
        return np.ones(view.n_servers)
