"""What every policy sees (ClusterView) and gives back (a weight per server).

A policy's output is the share of the next new flows each server should get; the ring
builder turns it into the switch's dispatch ring. Policies are numbers in, numbers out, so
the controller and the simulator run the same code. Quiesced and failed servers
(available == False) always get weight 0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray


@dataclass
class ClusterView:
    """The controller's picture of the cluster at one synchronisation point.

    Rates are bytes/s. Everything is as late as the counters: `measured_rate` covers the
    last polling interval, not now.
    """
    capacity: NDArray[np.float64]                 # service rate of each server
    available: NDArray[np.bool_]                  # False: quiesced or failed
    configured_weight: NDArray[np.float64]        # operator's static weights (WRR, fixed split)
    measured_rate: NDArray[np.float64]            # per-backend counter delta / interval
    active_flows: NDArray[np.int64]               # flows the controller tracks per server
    new_flows: NDArray[np.int64]                  # flows that started in the last interval
    estimated_load: NDArray[np.float64]           # FB_EST: sum_j r_j p_j over the server's flows
    response_time: NDArray[np.float64]            # advisor probe: queueing delay seen, s
    incoming_rate: float = 0.0                    # load new flows will add in the next interval
    incoming_flows: float = 0.0                   # new flows expected in the next interval
    interval: float = 0.1                         # polling interval, s
    rtt: float = 0.001                            # predicted RTT of the next new flows, s
    time: float = 0.0
    # Host metric from the servers' agents: utilisation 0..1 (e.g. CPU); NaN where a server
    # has no agent or its report is stale. None: no agents at all.
    host_metric: NDArray[np.float64] | None = None

    @classmethod
    def idle(cls, capacity: NDArray[np.float64] | list[float]) -> ClusterView:
        """A cluster with nothing measured yet (all available, equal configured weights)."""
        capacity = np.asarray(capacity, dtype=np.float64)
        n = len(capacity)
        return cls(capacity=capacity, available=np.ones(n, dtype=bool),
                   configured_weight=np.ones(n), measured_rate=np.zeros(n),
                   active_flows=np.zeros(n, dtype=np.int64), new_flows=np.zeros(n, dtype=np.int64),
                   estimated_load=np.zeros(n), response_time=np.zeros(n))

    @property
    def n_servers(self) -> int:
        return len(self.capacity)


class NoServerAvailable(ValueError):
    """Every server is quiesced or failed: there is nobody to send new flows to."""


class Policy(ABC):
    """Turns a ClusterView into a weight per server (>= 0, 0 for unavailable servers)."""

    name: str = "policy"
    # Which bits of the flow key the ring is indexed by: the whole 5-tuple, or only the
    # source prefix (a static split of clients, like DNS or the paper's FIXED IP).
    hash_on: Literal["flow", "source"] = "flow"
    # Whether the policy reads view.estimated_load (the simulator then runs the estimator).
    needs_flow_estimates: bool = False

    def weights(self, view: ClusterView) -> NDArray[np.float64]:
        """Weights for the next interval; raises NoServerAvailable if every server is out."""
        if not np.any(view.available):
            raise NoServerAvailable("every server is quiesced or failed")
        raw = np.asarray(self._weights(view), dtype=np.float64)
        raw = np.where(view.available & np.isfinite(raw), np.maximum(raw, 0.0), 0.0)
        if raw.sum() <= 0:  # nothing to prefer: spread over whoever is available
            raw = view.available.astype(np.float64)
        return raw

    @abstractmethod
    def _weights(self, view: ClusterView) -> NDArray[np.float64]:
        """The policy's own rule; the base class masks unavailable servers afterwards."""
