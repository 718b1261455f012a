"""What a traffic source hands the simulator: one polling interval of packets at a time.

Flows are named by small slot numbers the source recycles when they end, so the
simulator's per-flow arrays grow with the number of active flows, not with the trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray


@dataclass
class NewFlows:
    slot: NDArray[np.int64]
    key_hash: NDArray[np.uint32]      # CRC32 of the flow key (ring: high 16 bits, cache set: low bits)
    source_hash: NDArray[np.uint32]   # CRC32 of the source prefix (a fixed split's ring index)
    source: NDArray[np.int64]         # source prefix id (RTT prediction)
    rtt: NDArray[np.float64]          # the RTT sample the data plane would report, s
    first: NDArray[np.float64]        # first packet time
    # False for flows the switch never caches and never gives an entry (non-IP capture
    # frames: dispatched statelessly by their MAC pair); None: all are cacheable.
    cacheable: NDArray[np.bool_] | None = None


@dataclass
class EndedFlows:
    slot: NDArray[np.int64]
    first: NDArray[np.float64]
    last: NDArray[np.float64]
    size: NDArray[np.float64]         # bytes


@dataclass
class TrafficBatch:
    """Traffic in [start, end). Ended flows' slots may be reused by the next batch."""
    start: float
    end: float
    new: NewFlows
    packet_time: NDArray[np.float64]
    packet_slot: NDArray[np.int64]
    packet_bytes: NDArray[np.float64]
    touched_slot: NDArray[np.int64]    # slots with packets in this batch
    touched_last: NDArray[np.float64]  # ... and the time of their last one
    ended: EndedFlows


class TrafficSource(Protocol):
    duration: float                    # seconds of traffic (for the progress bar)

    def batches(self, interval: float) -> Iterator[TrafficBatch]: ...


def empty_new_flows() -> NewFlows:
    return NewFlows(np.zeros(0, np.int64), np.zeros(0, np.uint32), np.zeros(0, np.uint32),
                    np.zeros(0, np.int64), np.zeros(0), np.zeros(0))


class SlotAllocator:
    """Hands out the lowest free flow slots; ended flows give theirs back."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0

    def take(self, count: int) -> NDArray[np.int64]:
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = np.arange(self._next, self._next + count - len(reused), dtype=np.int64)
        self._next += len(fresh)
        return np.concatenate([np.array(reused, dtype=np.int64), fresh])

    def give_back(self, slots: NDArray[np.int64]) -> None:
        self._free.extend(int(s) for s in slots)

    @property
    def high_water(self) -> int:
        return self._next
