"""RTT samples (the data plane reports caller SYN -> caller's first ACK) and the predicted
RTT of a new flow from recent flows of its source prefix.

A new flow has no sample until its handshake completes, but flows from one prefix mostly
share a path, so the mean of that prefix's recent samples is a good first guess.
"""

from __future__ import annotations

from collections import deque

DEFAULT_RTT = 0.001      # s: used before any sample is seen (a data-centre path)
DEFAULT_HISTORY = 16     # samples kept per prefix


def rtt_sample(syn_time: float, ack_time: float) -> float | None:
    """t(ACK) - t(SYN), or None when the pair is out of order (a retransmitted SYN)."""
    rtt = ack_time - syn_time
    return rtt if rtt > 0 else None


class RttPredictor:
    """Recent RTT samples per source prefix; predicts a new flow's RTT."""

    def __init__(self, history: int = DEFAULT_HISTORY, default: float = DEFAULT_RTT) -> None:
        if history < 1 or default <= 0:
            raise ValueError("history must be >= 1 and the default RTT positive")
        self.history = history
        self.default = default
        self._samples: dict[int, deque[float]] = {}
        self._all: deque[float] = deque(maxlen=history * 4)

    def add(self, prefix: int, rtt: float) -> None:
        if not rtt > 0 or rtt != rtt or rtt == float("inf"):
            return  # a nonsense sample must not poison the prediction
        self._samples.setdefault(prefix, deque(maxlen=self.history)).append(rtt)
        self._all.append(rtt)

    def predict(self, prefix: int) -> float:
        """Mean of the prefix's recent samples; else of all recent samples; else the default."""
        samples = self._samples.get(prefix) or self._all
        return sum(samples) / len(samples) if samples else self.default
