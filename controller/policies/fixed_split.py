"""Fixed split: a static split of client source prefixes over servers (the FB_EST paper's
FIXED IP, or RR-DNS with a skewed 4:1:1 record set as in the DPR paper).

The ring is indexed by the source prefix only, so all flows of one client network go to
one server whatever their size, and the split never reacts to load.
"""

import numpy as np

from controller.policies.base import ClusterView, Policy


class FixedSplit(Policy):
    name = "fixed_split"
    hash_on = "source"

    def __init__(self, shares: list[float] | None = None) -> None:
        if shares is not None and (any(s < 0 for s in shares) or sum(shares) <= 0):
            raise ValueError(f"fixed split shares must be >= 0 with a positive sum, not {shares}")
        self.shares = shares

    def _weights(self, view: ClusterView) -> np.ndarray:
        if self.shares is None:
            return view.configured_weight
        if len(self.shares) != view.n_servers:
            raise ValueError(f"fixed split has {len(self.shares)} shares for {view.n_servers} servers")
        return np.asarray(self.shares, dtype=np.float64)
