"""Captures as simulator traffic: frames from controller/traces, keyed like the data plane.

Several captures can be merged into one trace; each is shifted to start at time 0 so they
overlap. Timestamps that go backwards are clamped (the packet counts as arriving with the
previous one), and silent gaps longer than `max_gap` are shortened to it, so a capture
with a day-long pause does not simulate a day of nothing. `speedup` then divides every
time (a capture replayed faster: more new flows per second, flows shorter), and `copies`
overlays that many copies, started evenly over the trace's length, each with its
addresses changed (more clients running the same traffic: the captures hold only a few
thousand flows, too few to sustain a high new-flow rate for long). A flow ends
when idle for `flow_timeout` (simulated seconds, like the switch's timers). Non-IP frames
are flows the switch never caches (dispatched statelessly by their MAC pair). A corrupt
capture raises CaptureError (file and byte offset).
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from controller.dataplane.flow_key import FlowKey, flow_key, key_hash
from sim.pcap_frames import read_frames
from sim.traffic import EndedFlows, NewFlows, SlotAllocator, TrafficBatch

__all__ = ["key_hash"]   # re-exported: the simulator hashes keys as the switch does


def source_prefix(address: int) -> int:
    """/24 for IPv4 (IPv4-mapped), /48 for IPv6."""
    if address >> 32 == 0xFFFF:
        return address & ~0xFF
    return address >> 80 << 80


def prefix_rtt(prefix: int) -> float:
    """A stable stand-in RTT per prefix (captures carry no handshake timing we trust): 0.1-5 ms."""
    fraction = zlib.crc32(prefix.to_bytes(16, "big")) / 2**32
    return float(np.exp(np.log(1e-4) + fraction * (np.log(5e-3) - np.log(1e-4))))


CACHE_PACKETS = 20_000_000      # about 1 GB of batches


def is_ip_frame(frame: bytes) -> bool:
    """Whether the data plane keys this frame by its 5-tuple (IPv4 or IPv6, as
    controller/dataplane/flow_key.py parses it) rather than by its MAC pair."""
    if len(frame) < 14:
        return False
    ethertype, offset = int.from_bytes(frame[12:14], "big"), 14
    if ethertype == 0x8100 and len(frame) >= 18:
        ethertype, offset = int.from_bytes(frame[16:18], "big"), 18
    return ((ethertype == 0x0800 and len(frame) >= offset + 20)
            or (ethertype == 0x86DD and len(frame) >= offset + 40))


class CaptureTrace:
    """A TrafficSource replaying one or more captures."""

    def __init__(self, paths: list[Path], symmetric: bool = False, max_gap: float = 1.0,
                 flow_timeout: float = 2.0, speedup: float = 1.0, copies: int = 1) -> None:
        if not paths:
            raise ValueError("no capture given")
        if speedup <= 0:
            raise ValueError(f"speed-up must be positive, not {speedup}")
        if copies < 1:
            raise ValueError(f"copies must be at least 1, not {copies}")
        self.copies = copies
        self._base: list[tuple[float, FlowKey, int, bool]] | None = None
        self._batches: dict[float, list[TrafficBatch]] = {}
        self.paths = [Path(p) for p in paths]
        self.symmetric = symmetric
        self.max_gap = max_gap
        self.flow_timeout = flow_timeout
        self.speedup = speedup
        self.duration, self.total_bytes, self.packet_count, self.per_second = self._measure()

    def _packets(self) -> Iterator[tuple[float, FlowKey, int, bool]]:
        """(time, key, wire bytes, is IP) of every copy, merged in time order."""
        if self.copies == 1:
            yield from self._merged()
            return
        if self._base is None:
            self._base = list(self._merged())    # read once; captures are small
        base = self._base
        length = base[-1][0] if base else 0.0

        def copy(c: int) -> Iterator[tuple[float, FlowKey, int, bool]]:
            offset, salt = c * length / self.copies, c << 8   # IPv4-mapped stays IPv4-mapped
            for t, (src, dst, protocol, sport, dport), size, ip in base:
                yield t + offset, (src ^ salt, dst ^ salt, protocol, sport, dport), size, ip

        yield from heapq.merge(*(copy(c) for c in range(self.copies)), key=lambda item: item[0])

    def _merged(self) -> Iterator[tuple[float, FlowKey, int, bool]]:
        """(time, key, wire bytes, is IP), merged over captures, each rebased to 0, gaps
        shortened, sped up. Frames too short for a key are keyed (0, 0, 0, 0, 0)."""
        def one(path: Path) -> Iterator[tuple[float, int, FlowKey, int, bool]]:
            previous: float | None = None    # the latest timestamp so far (None: first frame)
            clock = 0.0
            for frame in read_frames(path):
                t = frame.timestamp
                if previous is None:
                    previous = t
                step = min(max(t - previous, 0.0), self.max_gap)
                previous = max(previous, t)
                clock += step
                yield (clock / self.speedup, 0, flow_key(frame.data, self.symmetric) or (0, 0, 0, 0, 0),
                       frame.wire_len, is_ip_frame(frame.data))

        for t, _, key, size, ip in heapq.merge(*(one(p) for p in self.paths), key=lambda item: item[0]):
            yield t, key, size, ip

    def _measure(self) -> tuple[float, float, int, np.ndarray]:
        """Duration, bytes, packets, and bytes in each second that carries traffic (read
        once, up front, so a corrupt capture fails before any simulation)."""
        duration = total = 0.0
        count = 0
        per_second: dict[int, float] = {}
        for t, _, size, _ in self._packets():
            duration, total, count = t, total + size, count + 1
            per_second[int(t)] = per_second.get(int(t), 0.0) + size
        return duration, total, count, np.array(list(per_second.values()))

    def batches(self, interval: float) -> Iterator[TrafficBatch]:
        """The trace one interval at a time. A trace of up to CACHE_PACKETS packets is kept
        after the first pass (the simulator replays it once per policy and never changes a
        batch), so it is keyed and hashed once; a longer one is read again, in constant memory."""
        if self.packet_count > CACHE_PACKETS:
            yield from self._make_batches(interval)
            return
        cached = self._batches.get(interval)
        if cached is None:
            cached = self._batches[interval] = list(self._make_batches(interval))
        yield from cached

    def _make_batches(self, interval: float) -> Iterator[TrafficBatch]:
        slots = SlotAllocator()
        live: dict[FlowKey, list] = {}        # key -> [slot, first, last, bytes]
        packets = iter(self._packets())
        upcoming = next(packets, None)
        t0 = 0.0
        while upcoming is not None or live:
            t1 = t0 + interval
            times, flow_slots, sizes = [], [], []
            new: dict[str, list] = {name: [] for name in
                                    ("slot", "hash", "source_hash", "source", "rtt", "first", "cacheable")}
            while upcoming is not None and upcoming[0] < t1:
                t, key, size, ip = upcoming
                flow = live.get(key)
                if flow is None:
                    slot = int(slots.take(1)[0])
                    flow = live[key] = [slot, t, t, 0.0]
                    prefix = source_prefix(key[0])
                    new["slot"].append(slot)
                    new["hash"].append(key_hash(key))
                    new["source_hash"].append(zlib.crc32(prefix.to_bytes(16, "big")))
                    new["source"].append(new["source_hash"][-1])
                    new["rtt"].append(prefix_rtt(prefix))
                    new["first"].append(t)
                    new["cacheable"].append(ip)
                flow[2] = t
                flow[3] += size
                times.append(t)
                flow_slots.append(flow[0])
                sizes.append(size)
                upcoming = next(packets, None)
            touched = {}
            for slot, t in zip(flow_slots, times):
                touched[slot] = t
            # Flows idle past the timeout end, and every flow ends with the trace.
            finished = [k for k, f in live.items() if upcoming is None or t1 - f[2] > self.flow_timeout]
            ended = [live.pop(k) for k in finished]
            yield TrafficBatch(
                start=t0, end=t1,
                new=NewFlows(np.array(new["slot"], np.int64), np.array(new["hash"], np.uint32),
                             np.array(new["source_hash"], np.uint32), np.array(new["source"], np.int64),
                             np.array(new["rtt"]), np.array(new["first"]), np.array(new["cacheable"], bool)),
                packet_time=np.array(times), packet_slot=np.array(flow_slots, np.int64),
                packet_bytes=np.array(sizes, np.float64),
                touched_slot=np.array(list(touched), np.int64), touched_last=np.array(list(touched.values())),
                ended=EndedFlows(np.array([f[0] for f in ended], np.int64), np.array([f[1] for f in ended]),
                                 np.array([f[2] for f in ended]), np.array([f[3] for f in ended])))
            slots.give_back(np.array([f[0] for f in ended], np.int64))
            t0 = t1
