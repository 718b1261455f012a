"""Object sizes for the load generator, drawn from the flow-size distributions the simulator uses.

The names and the sampling are the simulator's (sim/flow_sizes.py): a built-in model
(websearch, fb_hadoop, ali_storage; no data files needed), `shared:NAME` from
$P4DISPATCH_SHARED_DATA/flowsize, or a path to a .cdf file. So an emulated run and a simulated
run of "websearch" draw from the same distribution. Here sizes become whole bytes, and may be
capped: a 30 MB websearch object through a 10 Mb/s emulated backend takes 24 s, too long for
a test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.flow_sizes import FlowSizeDistribution, distribution_names, flow_size_distribution


def available_sizes() -> list[str]:
    """The names `ObjectSizes.load` accepts here (besides a path to a .cdf file)."""
    return distribution_names()


@dataclass(frozen=True)
class ObjectSizes:
    distribution: FlowSizeDistribution
    max_bytes: int | None = None    # cap (clip) on a drawn size; None: the distribution as it is

    @classmethod
    def load(cls, name_or_path: str, max_bytes: int | None = None) -> ObjectSizes:
        """By name or .cdf path; sim.flow_sizes.CdfError (listing the names) if unknown."""
        return cls(flow_size_distribution(name_or_path), max_bytes)

    def sample(self, rng: np.random.Generator, count: int) -> list[int]:
        """`count` sizes in whole bytes, at least 1, at most max_bytes."""
        sizes = np.rint(self.distribution.sample(rng, count)).astype(np.int64)
        sizes = np.maximum(sizes, 1)
        if self.max_bytes is not None:
            sizes = np.minimum(sizes, self.max_bytes)
        return sizes.tolist()
