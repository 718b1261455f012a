"""Generated traffic: Poisson flow arrivals at an offered load, sizes from a flow-size distribution,
each flow sending at its own steady rate (so long flows stay on their server for long),
optionally with a few very large downloads mixed in (the FB_EST paper's wget test).

With `fair_share` the flows behave like TCP behind a bottleneck: each interval, every server's
capacity is shared max-min among the flows it serves, a flow's own rate being its ceiling, so a
busy server makes its flows slower (and longer) instead of dropping what they send. The
engine tells the source where flows go (`attach`); a new flow's server is the ring's choice.

Packets are produced one polling interval at a time, straight into numpy arrays, from the
flows active in that interval: memory follows active flows, not the trace length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from sim.flow_sizes import FlowSizeDistribution
from sim.traffic import EndedFlows, NewFlows, SlotAllocator, TrafficBatch, empty_new_flows

PACKET_BYTES = 1500


@dataclass(frozen=True)
class WorkloadSpec:
    cdf: FlowSizeDistribution            # flow sizes: a built-in model or a CDF file
    offered_rate: float                  # bytes/s averaged over the run (load x total capacity)
    duration: float                      # s of flow arrivals
    flow_rate: tuple[float, float]       # a flow's sending rate: log-uniform in this range, bytes/s
    prefixes: int = 256                  # client source prefixes, Zipf-popular (a few big clients)
    prefix_skew: float = 1.0             # Zipf exponent of prefix popularity
    heavy_share: float = 0.0             # share of the offered load in very large downloads
    heavy_size: float = 200e6            # bytes per large download
    heavy_rate: float = 0.0              # bytes/s per large download
    seed: int = 1
    # TCP-like: a server's capacity is shared max-min among its flows each interval (module doc).
    fair_share: bool = False


class Placement(Protocol):
    """Where flows are served, for fair sharing (the simulation engine implements it)."""
    capacity: NDArray[np.float64]

    def backend_of(self, slots: NDArray[np.int64], key_hash: NDArray[np.uint32], source_hash: NDArray[np.uint32],
                   new: NDArray[np.bool_]) -> NDArray[np.int64]:
        """The server of each flow: its own for known flows, the ring's choice for `new` ones."""
        ...


def max_min_rates(ceiling: NDArray[np.float64], server: NDArray[np.int64],
                  capacity: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each flow's max-min fair rate on its server: flows below the fair level keep their
    ceiling, the others share what is left equally."""
    ceiling = np.asarray(ceiling, dtype=np.float64)
    rate = ceiling.copy()
    for s in np.unique(server):
        on = np.flatnonzero(server == s)
        order = on[np.argsort(ceiling[on], kind="stable")]
        c = ceiling[order]
        # With the k smallest ceilings kept, the rest share what they leave equally.
        k = np.arange(c.size)
        level = (capacity[s] - np.concatenate(([0.0], np.cumsum(c)[:-1]))) / (c.size - k)
        limited = np.flatnonzero(c > level)
        if limited.size:
            first = limited[0]
            rate[order[first:]] = max(level[first], 0.0)
    return rate


class GeneratedWorkload:
    """A TrafficSource drawing flows from a WorkloadSpec."""

    def __init__(self, spec: WorkloadSpec) -> None:
        if spec.offered_rate <= 0 or spec.duration <= 0:
            raise ValueError("offered rate and duration must be positive")
        if not 0 <= spec.heavy_share < 1:
            raise ValueError(f"heavy share must be in [0, 1), not {spec.heavy_share}")
        self.spec = spec
        self.duration = spec.duration
        rng = np.random.default_rng(spec.seed)
        popularity = 1.0 / np.arange(1, spec.prefixes + 1) ** spec.prefix_skew
        self._prefix_p = popularity / popularity.sum()
        self._prefix_hash = rng.integers(0, 2**32, spec.prefixes, dtype=np.uint32)
        # Clients of one prefix share a path: a base RTT per prefix, 0.1-5 ms log-uniform.
        self._prefix_rtt = np.exp(rng.uniform(np.log(1e-4), np.log(5e-3), spec.prefixes))
        short_rate = spec.offered_rate * (1 - spec.heavy_share)
        self._short_arrivals = short_rate / spec.cdf.mean()
        heavy_rate = spec.offered_rate * spec.heavy_share
        self._heavy_arrivals = heavy_rate / spec.heavy_size if spec.heavy_share > 0 else 0.0
        if self._heavy_arrivals and spec.heavy_rate <= 0:
            raise ValueError("heavy downloads need a positive rate")
        self._placement: Placement | None = None

    def attach(self, placement: Placement) -> None:
        """The engine, before a run: where flows go (used by fair sharing only)."""
        self._placement = placement

    @property
    def flows_per_second(self) -> float:
        return self._short_arrivals + self._heavy_arrivals

    def batches(self, interval: float) -> Iterator[TrafficBatch]:
        spec = self.spec
        rng = np.random.default_rng(spec.seed + 1)
        slots = SlotAllocator()
        # Active flows, structure of arrays (of several dtypes).
        active: dict[str, NDArray] = {name: np.zeros(0, dtype) for name, dtype in (
            ("slot", np.int64), ("first", np.float64), ("size", np.float64), ("gap", np.float64),
            ("packets", np.int64), ("key", np.uint32), ("source", np.uint32), ("sent", np.int64),
            ("next", np.float64))}
        if spec.fair_share and self._placement is None:
            raise ValueError("fair sharing needs the engine to attach() where flows go")
        t0 = 0.0
        while True:
            t1 = t0 + interval
            new = self._arrivals(rng, t0, min(t1, spec.duration), slots) if t0 < spec.duration else None
            if new is not None:
                new_flows, size, rate = new
                packets = np.ceil(size / PACKET_BYTES).astype(np.int64)
                for name, values in (("slot", new_flows.slot), ("first", new_flows.first), ("size", size),
                                     ("gap", PACKET_BYTES / rate), ("packets", packets),
                                     ("key", new_flows.key_hash), ("source", new_flows.source_hash),
                                     ("sent", np.zeros(size.size, np.int64)),
                                     ("next", new_flows.first)):
                    active[name] = np.concatenate([active[name], values])
            else:
                new_flows = empty_new_flows()
            if t0 >= spec.duration and active["slot"].size == 0:
                return
            if spec.fair_share:
                batch, done = self._shared_packets(active, new_flows, t0, t1)
            else:
                batch, done = self._packets(active, new_flows, t0, t1)
            slots.give_back(active["slot"][done])
            keep = ~done
            for name in active:
                active[name] = active[name][keep]
            yield batch
            t0 = t1

    def _arrivals(self, rng: np.random.Generator, t0: float, t1: float, slots: SlotAllocator):
        spec = self.spec
        n_short = rng.poisson(self._short_arrivals * (t1 - t0))
        n_heavy = rng.poisson(self._heavy_arrivals * (t1 - t0)) if self._heavy_arrivals else 0
        count = n_short + n_heavy
        first = np.sort(rng.uniform(t0, t1, count))
        size = np.concatenate([spec.cdf.sample(rng, n_short), np.full(n_heavy, spec.heavy_size)])
        low, high = spec.flow_rate
        rate = np.concatenate([np.exp(rng.uniform(np.log(low), np.log(high), n_short)),
                               np.full(n_heavy, spec.heavy_rate)])
        order = rng.permutation(count)           # heavy flows at random times among the rest
        size, rate = size[order], rate[order]
        prefix = rng.choice(spec.prefixes, size=count, p=self._prefix_p)
        rtt = self._prefix_rtt[prefix] * rng.uniform(0.8, 1.25, count)
        new = NewFlows(slot=slots.take(count), key_hash=rng.integers(0, 2**32, count, dtype=np.uint32),
                       source_hash=self._prefix_hash[prefix], source=prefix.astype(np.int64),
                       rtt=rtt, first=first)
        return new, size, rate

    def _shared_packets(self, active: dict[str, NDArray], new_flows: NewFlows, t0: float, t1: float
                        ) -> tuple[TrafficBatch, NDArray[np.bool_]]:
        """Fair sharing: this interval's rate of every flow is its max-min share of its server,
        and its packets follow on from where the last interval left it."""
        assert self._placement is not None
        is_new = np.isin(active["slot"], new_flows.slot)
        server = self._placement.backend_of(active["slot"], active["key"], active["source"], is_new)
        rate = max_min_rates(PACKET_BYTES / active["gap"], server, self._placement.capacity)
        gap = PACKET_BYTES / np.maximum(rate, 1e-9)
        nxt, sent, packets = active["next"], active["sent"], active["packets"]
        count = np.where(nxt < t1, np.ceil((t1 - nxt) / gap), 0).astype(np.int64)
        count = np.clip(count, 0, packets - sent)
        flow = np.repeat(np.arange(nxt.size), count)
        offsets = np.cumsum(count) - count
        k = np.arange(flow.size, dtype=np.int64) - np.repeat(offsets, count)   # 0.. within this interval
        packet_time = nxt[flow] + k * gap[flow]
        last_bytes = active["size"] - (packets - 1) * PACKET_BYTES
        packet_bytes = np.where(sent[flow] + k == packets[flow] - 1, last_bytes[flow], float(PACKET_BYTES))
        sent_now = count > 0
        last_time = nxt + (count - 1) * gap
        active["sent"] = sent + count
        active["next"] = nxt + count * gap
        done = active["sent"] >= packets
        batch = TrafficBatch(
            start=t0, end=t1, new=new_flows, packet_time=packet_time,
            packet_slot=active["slot"][flow], packet_bytes=packet_bytes,
            touched_slot=active["slot"][sent_now], touched_last=last_time[sent_now],
            ended=EndedFlows(slot=active["slot"][done], first=active["first"][done], last=last_time[done],
                             size=active["size"][done]))
        return batch, done

    @staticmethod
    def _packets(active: dict[str, NDArray], new_flows: NewFlows, t0: float, t1: float
                 ) -> tuple[TrafficBatch, NDArray[np.bool_]]:
        first, gap, packets = active["first"], active["gap"], active["packets"]
        # Packet k of a flow leaves at first + k * gap; those in [t0, t1) are k_lo .. k_hi - 1.
        k_lo = np.clip(np.ceil((t0 - first) / gap), 0, packets).astype(np.int64)
        k_hi = np.clip(np.ceil((t1 - first) / gap), 0, packets).astype(np.int64)
        count = k_hi - k_lo
        flow = np.repeat(np.arange(first.size), count)
        offsets = np.cumsum(count) - count
        k = np.arange(flow.size, dtype=np.int64) - np.repeat(offsets - k_lo, count)
        packet_time = first[flow] + k * gap[flow]
        last_bytes = active["size"] - (packets - 1) * PACKET_BYTES
        packet_bytes = np.where(k == packets[flow] - 1, last_bytes[flow], float(PACKET_BYTES))
        sent = count > 0
        done = k_hi >= packets
        last_time = first + (k_hi - 1) * gap
        batch = TrafficBatch(
            start=t0, end=t1, new=new_flows, packet_time=packet_time,
            packet_slot=active["slot"][flow], packet_bytes=packet_bytes,
            touched_slot=active["slot"][sent], touched_last=last_time[sent],
            ended=EndedFlows(slot=active["slot"][done], first=first[done], last=last_time[done],
                             size=active["size"][done]))
        return batch, done

