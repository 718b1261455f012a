"""The controller's record of the switch's `flows` entries: key -> (backend, stats slot).

Sized for a million flows in a few hundred bytes each: a key is kept as its 37 packed bytes
(not a tuple of five Python ints), backend and slot share one int, and free statistics
slots sit in a C array. Statistics slots index the switch's `flow_stats` counter; when every
slot is taken, further flows share slot 0 (counted, but with no per-flow figures).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

import numpy as np

from controller.dataplane.constants import MAX_BACKENDS
from controller.dataplane.flow_key import FlowKey, pack_key, unpack_key

__all__ = ["MAX_BACKENDS", "SHARED_STATS_SLOT", "FlowKey", "FlowTable", "pack_key", "unpack_key"]

SHARED_STATS_SLOT = 0                      # flows beyond the counter's size all count here
_BACKEND_BITS = 10                         # backend id bits packed beside the stats slot


class FlowTable:
    """Installed flows, their backends and statistics slots; per-backend flow counts."""

    def __init__(self, stats_slots: int) -> None:
        if stats_slots < 2:
            raise ValueError("need at least two statistics slots (slot 0 is shared)")
        self.stats_slots = stats_slots
        self.clear()

    def clear(self) -> None:
        """Forget every flow and free every slot (before adopting the switch's view)."""
        stats_slots = self.stats_slots
        self._entries: dict[bytes, int] = {}
        self._slot_used = np.zeros(stats_slots, dtype=bool)
        self._slot_used[SHARED_STATS_SLOT] = True
        self._free = array("I", range(stats_slots - 1, 0, -1))   # pop() gives slot 1 first
        self.per_backend = np.zeros(MAX_BACKENDS, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: bytes) -> bool:
        return key in self._entries

    def get(self, key: bytes) -> tuple[int, int] | None:
        value = self._entries.get(key)
        return None if value is None else _split(value)

    def allocate_slot(self) -> int:
        if not self._free:
            return SHARED_STATS_SLOT
        slot = self._free.pop()
        self._slot_used[slot] = True
        return slot

    def release_slot(self, slot: int) -> None:
        if slot != SHARED_STATS_SLOT and 0 < slot < self.stats_slots and self._slot_used[slot]:
            self._slot_used[slot] = False
            self._free.append(slot)

    def add(self, key: bytes, backend_id: int, slot: int) -> None:
        """Record an installed entry (its slot already allocated, or adopted from the switch)."""
        if not 0 <= backend_id < MAX_BACKENDS:
            raise ValueError(f"backend id {backend_id} outside 0..{MAX_BACKENDS - 1}")
        old = self._entries.get(key)
        if old is not None:
            self.per_backend[_split(old)[0]] -= 1
        self._entries[key] = backend_id | slot << _BACKEND_BITS
        self.per_backend[backend_id] += 1

    def adopt(self, key: bytes, backend_id: int, slot: int) -> int:
        """Record an entry found on the switch; returns the slot it keeps (0 if out of range)."""
        if not 0 <= slot < self.stats_slots:
            slot = SHARED_STATS_SLOT
        elif not self._slot_used[slot]:
            self._slot_used[slot] = True
        self.add(key, backend_id, slot)
        return slot

    def rebuild_free_slots(self) -> None:
        """After adopting: the free list is every slot no adopted entry holds."""
        self._free = array("I", np.flatnonzero(~self._slot_used)[::-1].astype(np.uint32).tolist())

    def remove(self, key: bytes) -> tuple[int, int] | None:
        """Forget an entry and free its slot; returns its (backend, slot) if it was known."""
        value = self._entries.pop(key, None)
        if value is None:
            return None
        backend_id, slot = _split(value)
        self.per_backend[backend_id] -= 1
        self.release_slot(slot)
        return backend_id, slot

    def keys_of_backend(self, backend_id: int) -> list[bytes]:
        return [k for k, v in self._entries.items() if v & ((1 << _BACKEND_BITS) - 1) == backend_id]

    def items(self) -> Iterator[tuple[bytes, int, int]]:
        for key, value in self._entries.items():
            backend_id, slot = _split(value)
            yield key, backend_id, slot

    @property
    def free_slots(self) -> int:
        return len(self._free)


def _split(value: int) -> tuple[int, int]:
    return value & ((1 << _BACKEND_BITS) - 1), value >> _BACKEND_BITS
