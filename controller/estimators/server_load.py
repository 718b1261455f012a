"""Per-server load from per-flow estimates, and the residual capacity it leaves."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def server_load(flow_server: ArrayLike, flow_rate: ArrayLike, flow_busy: ArrayLike,
                n_servers: int) -> NDArray[np.float64]:
    """Sum over each server's flows of r_j * p_j (bytes/s expected in the next RTT)."""
    flow_server = np.asarray(flow_server, dtype=np.int64)
    expected = np.asarray(flow_rate, dtype=np.float64) * np.asarray(flow_busy, dtype=np.float64)
    if flow_server.size and (flow_server.min() < 0 or flow_server.max() >= n_servers):
        raise ValueError(f"flow assigned to a server outside 0..{n_servers - 1}")
    return np.bincount(flow_server, weights=expected, minlength=n_servers).astype(np.float64)


def residual_capacity(capacity: ArrayLike, load: ArrayLike) -> NDArray[np.float64]:
    """Capacity minus load; negative when a server is overloaded (it says by how much)."""
    return np.asarray(capacity, dtype=np.float64) - np.asarray(load, dtype=np.float64)
