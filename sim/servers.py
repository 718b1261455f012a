"""Token-bucket servers: each serves C bytes/s (a fixed service time per packet) from a
buffer of B bytes; what arrives when the buffer is full is dropped.

Simulated as a fluid over short bins, all servers at once: per bin, the backlog grows by
the arrivals, shrinks by C x bin, and overflows above B. The queueing delay a packet sees
is the backlog over C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass
class ServedBins:
    dropped: NDArray[np.float64]   # bytes per (bin, server)
    delay: NDArray[np.float64]     # queueing delay at the end of each (bin, server), s


class ServerQueues:
    def __init__(self, capacity: NDArray[np.float64], buffer_bytes: NDArray[np.float64]) -> None:
        self.capacity = np.asarray(capacity, dtype=np.float64)
        self.buffer = np.asarray(buffer_bytes, dtype=np.float64)
        if np.any(self.capacity <= 0) or np.any(self.buffer < 0):
            raise ValueError("server capacities must be positive and buffers non-negative")
        self.backlog = np.zeros_like(self.capacity)

    def serve(self, arrivals: NDArray[np.float64], bin_seconds: float) -> ServedBins:
        """Arrivals in bytes per (bin, server), in time order."""
        dropped = np.empty_like(arrivals)
        delay = np.empty_like(arrivals)
        per_bin = self.capacity * bin_seconds
        backlog = self.backlog
        for b in range(arrivals.shape[0]):
            backlog = np.maximum(backlog + arrivals[b] - per_bin, 0.0)
            dropped[b] = np.maximum(backlog - self.buffer, 0.0)
            backlog = np.minimum(backlog, self.buffer)
            delay[b] = backlog / self.capacity
        self.backlog = backlog
        return ServedBins(dropped, delay)
