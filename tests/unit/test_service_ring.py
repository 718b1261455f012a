"""When the controller rewrites a service's ring, and what it writes."""

from __future__ import annotations

import numpy as np
import pytest

from controller.service_ring import EMPTY_SLOT, ServiceRing


def test_first_plan_fills_every_slot_by_weight():
    ring = ServiceRing(1, 64, threshold=0.05)
    changes = ring.plan([10, 11, 12], np.array([2.0, 1.0, 1.0]))
    assert len(changes) == 64
    ring.commit(changes)
    assert ring.shares() == {10: 0.5, 11: 0.25, 12: 0.25}


def test_small_changes_wait_for_the_threshold():
    ring = ServiceRing(1, 256, threshold=0.05)
    ring.commit(ring.plan([10, 11], np.array([1.0, 1.0])))
    assert ring.plan([10, 11], np.array([1.02, 0.98])) == {}, "1 % of slots: below 5 %"
    changes = ring.plan([10, 11], np.array([1.2, 0.8]))
    assert len(changes) == round(0.1 * 256), "exactly the slots that must move"
    assert set(changes.values()) == {10}


def test_a_quiesced_backend_leaves_at_once_whatever_the_threshold():
    ring = ServiceRing(1, 256, threshold=0.5)
    ring.commit(ring.plan([10, 11, 12], np.ones(3)))
    before = ring.slots.copy()
    changes = ring.plan([10, 11, 12], np.array([1.0, 1.0, 0.0]))
    ring.commit(changes)
    assert 12 not in ring.shares()
    moved = np.flatnonzero(before != ring.slots)
    assert set(before[moved]) == {12}, "only the quiesced backend's slots move"


def test_a_removed_backend_and_adopted_gaps_are_replaced():
    ring = ServiceRing(1, 8, threshold=1.0)
    ring.adopt({0: 10, 1: 11, 2: 99, 3: 10})          # 99 no longer exists; 4..7 missing
    changes = ring.plan([10, 11], np.array([1.0, 1.0]))
    ring.commit(changes)
    assert EMPTY_SLOT not in ring.slots and 99 not in ring.slots
    assert ring.slots[0] == 10 and ring.slots[1] == 11 and ring.slots[3] == 10, "kept slots stay"


def test_the_cap_spreads_a_large_change_over_polls():
    ring = ServiceRing(1, 1024, threshold=0.0, max_change=0.05)     # 51 slots a write
    ring.commit(ring.plan([10, 11], np.array([1.0, 1.0])))          # the first fill is not capped
    assert ring.shares() == {10: 0.5, 11: 0.5}
    writes = []
    while changes := ring.plan([10, 11], np.array([3.0, 1.0])):
        assert set(changes.values()) == {10}
        writes.append(len(changes))
        ring.commit(changes)
    assert writes == [51] * 5 + [1], "256 slots move, 51 at a time"
    assert ring.shares() == {10: 0.75, 11: 0.25}


def test_threshold_is_per_backend_share_and_force_skips_it_but_not_the_cap():
    ring = ServiceRing(1, 1024, threshold=0.02, max_change=0.05)    # 20.48 slots, 51 slots
    ring.commit(ring.plan([10, 11, 12, 13], np.ones(4)))            # 256 each
    small = np.array([1.07, 1.0, 1.0, 0.93])                        # 274/256/256/238: 18 slots off
    assert ring.plan([10, 11, 12, 13], small) == {}
    assert len(ring.plan([10, 11, 12, 13], small, force=True)) == 18
    large = np.array([2.0, 1.0, 1.0, 0.0])                          # backend 13 quiesced
    changes = ring.plan([10, 11, 12, 13], large)
    assert len(changes) == 256 and 13 not in changes.values(), "its 256 slots go at once, over the cap"
    with pytest.raises(ValueError, match="shares of the ring"):
        ServiceRing(1, 64, threshold=0.0, max_change=0.0)


def test_available_backends_with_weight_zero_move_under_the_cap():
    ring = ServiceRing(1, 1024, threshold=0.0, max_change=0.05)
    ring.commit(ring.plan([10, 11], np.array([1.0, 1.0])))
    changes = ring.plan([10, 11], np.array([1.0, 0.0]), available=np.array([True, True]))
    assert len(changes) == 51, "backend 11 is only the policy's last choice this poll"
    changes = ring.plan([10, 11], np.array([1.0, 0.0]), available=np.array([True, False]))
    assert len(changes) == 512, "backend 11 is quiesced: all its slots go"


def test_spared_slots_keep_their_backend_and_another_slot_of_it_moves_instead():
    ring = ServiceRing(1, 8, threshold=0.0)
    ring.commit({s: 10 if s < 4 else 11 for s in range(8)})
    spared = ring.spare({0: 12, 1: 12, 4: 12}, keep={0, 4, 5, 6, 7}, movable={10, 11})
    # Slot 0 stays 10 and slot 2 moves in its place; 11 has no slot left to give (all kept).
    assert spared == {1: 12, 2: 12}
    # A backend that no longer takes flows loses its slots, kept or not.
    assert ring.spare({0: 12}, keep={0}, movable={11}) == {0: 12}
