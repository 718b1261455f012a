"""Ring builder: shares within one slot of the weights, and the fewest slots change."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.dispatch_ring import (
    MAX_RING_SIZE,
    build_ring,
    minimal_churn,
    must_move,
    plan_ring,
    ring_churn,
    slot_counts,
    step_counts,
)


def test_known_ring():
    # 2:1:1 over 8 slots: 4, 2, 2, spread out rather than in blocks.
    ring = build_ring([2, 1, 1], 8)
    assert ring.tolist() == [0, 1, 2, 0, 0, 1, 2, 0]
    assert slot_counts([1, 1, 1], 8).tolist() == [3, 3, 2]      # remainder to the lowest index


def test_weight_change_moves_only_the_excess():
    old = build_ring([2, 1, 1], 8)
    new = build_ring([1, 1, 2], 8, previous=old)
    assert np.bincount(new).tolist() == [2, 2, 4]
    assert ring_churn(old, new) == 2 == minimal_churn(old, [1, 1, 2])
    # Slots of server 1 (unchanged share) stay where they were.
    assert np.array_equal(old == 1, new == 1)


def test_removed_server_loses_all_its_slots():
    old = build_ring([1, 1, 1, 1], 16)
    new = build_ring([1, 1, 0, 1], 16, previous=old)
    assert not np.any(new == 2)
    assert ring_churn(old, new) == 4


def test_bad_sizes_and_weights_are_refused_with_reasons():
    for size in (0, 3, 2 * MAX_RING_SIZE):
        with pytest.raises(ValueError, match="power of two"):
            build_ring([1], size)
    with pytest.raises(ValueError, match="positive weight"):
        build_ring([0, 0], 8)
    with pytest.raises(ValueError, match="finite"):
        build_ring([1, float("nan")], 8)
    with pytest.raises(ValueError, match="8 slots, not 16"):
        build_ring([1], 16, previous=np.zeros(8, dtype=int))


weights = st.lists(st.floats(0, 1000), min_size=1, max_size=12).filter(lambda w: sum(w) > 1e-6)
sizes = st.sampled_from([1 << k for k in range(0, 17)])


@settings(max_examples=80, deadline=None)
@given(weights, sizes)
def test_shares_within_one_slot_of_the_weights(w, size):
    ring = build_ring(w, size)
    counts = np.bincount(ring, minlength=len(w))
    exact = np.array(w) / sum(w) * size
    assert ring.size == size
    assert np.all(np.abs(counts - exact) < 1 + 1e-9)
    assert np.all(counts[np.array(w) == 0] == 0)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0, 100), min_size=n, max_size=n), st.lists(st.floats(0, 100), min_size=n, max_size=n))),
    sizes)
def test_rewrite_churn_is_minimal(pair, size):
    before, after = pair
    assume(sum(before) > 1e-6 and sum(after) > 1e-6)
    old = build_ring(before, size)
    new = build_ring(after, size, previous=old)
    assert np.array_equal(np.bincount(new, minlength=len(after)), slot_counts(after, size))
    assert ring_churn(old, new) == minimal_churn(old, after)


# Bounded churn: plan_ring (cap and hysteresis), step_counts, must_move.

def test_cap_moves_at_most_max_change_slots_from_the_most_over_served_first():
    # 4 servers, 512 slots, all equal; the policy now wants 1:1:1:5 (server 3 under-served).
    old = build_ring([1, 1, 1, 1], 512)
    target = slot_counts([1, 1, 1, 5], 512)                   # 64, 64, 64, 320
    new = plan_ring(old, [1, 1, 1, 5], max_change=30)
    assert ring_churn(old, new) == 30
    counts = np.bincount(new, minlength=4)
    assert counts.tolist() == [118, 118, 118, 158], "10 slots from each over-served server"
    # The next writes continue from there and reach the target, never exceeding the cap.
    steps = 0
    while not np.array_equal(np.bincount(new, minlength=4), target):
        before, new = new, plan_ring(new, [1, 1, 1, 5], max_change=30)
        assert 0 < ring_churn(before, new) <= 30
        steps += 1
    assert steps == 6, "192 slots to move, 30 a write: 1 + 6 writes"


def test_a_partial_step_takes_from_the_relatively_most_over_served():
    # Server 0 holds 30 slots for a target of 10 (3x), server 1 holds 70 for 60 (1.17x):
    # a 10-slot step takes all 10 from server 0, and gives them to the emptiest (server 2).
    current = np.array([30, 70, 28])
    target = np.array([10, 60, 58])
    assert step_counts(current, target, 10).tolist() == [20, 70, 38]
    assert step_counts(current, target, None).tolist() == target.tolist()
    assert step_counts(current, target, 0).tolist() == current.tolist()
    with pytest.raises(ValueError, match="differ"):
        step_counts([1, 2], [1, 1], 1)


def test_hysteresis_holds_the_ring_while_every_server_is_within_it():
    old = build_ring([1, 1], 256)                              # 128, 128
    assert np.array_equal(plan_ring(old, [1.04, 0.96], hysteresis=6), old), "133/123: 5 slots off, within 6"
    moved = plan_ring(old, [1.2, 0.8], hysteresis=6)           # 154/102: 26 off
    assert np.bincount(moved).tolist() == [154, 102] and ring_churn(old, moved) == 26
    assert ring_churn(old, plan_ring(old, [1.04, 0.96], hysteresis=0)) == 5, "0: any difference is written"
    with pytest.raises(ValueError, match=">= 0"):
        plan_ring(old, [1, 1], hysteresis=-1)
    with pytest.raises(ValueError, match=">= 0"):
        plan_ring(old, [1, 1], max_change=-1)


def test_slots_that_must_go_go_at_once_whatever_the_cap_and_hysteresis():
    old = build_ring([1, 1, 1, 1], 64)                         # 16 each
    new = plan_ring(old, [1, 1, 0, 1], max_change=2, hysteresis=64)
    assert not np.any(new == 2), "the quiesced server keeps no slot"
    assert ring_churn(old, new) == 16, "its 16 slots, and nothing else (the cap is spent)"
    assert set(old[old != new].tolist()) == {2}
    # Empty and unknown slots are filled too, each to the most under-served server.
    adopted = np.array([0, 0, 0, 0, -1, 7, -1, -1])
    filled = plan_ring(adopted, [1, 1], max_change=1)
    assert np.bincount(filled).tolist() == [4, 4] and np.all(filled[:4] == 0)
    assert must_move(adopted, [1, 1]).tolist() == [False] * 4 + [True] * 4


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.tuples(
    st.lists(st.floats(0.01, 100), min_size=n, max_size=n), st.lists(st.floats(0, 100), min_size=n, max_size=n))),
    st.sampled_from([16, 256, 4096]), st.integers(0, 300), st.floats(0, 20))
def test_capped_plans_bound_churn_and_never_worsen_the_worst_share(pair, size, cap, hysteresis):
    before, after = pair
    assume(sum(after) > 1e-6)
    old = build_ring(before, size)
    new = plan_ring(old, after, max_change=cap, hysteresis=hysteresis)
    forced = int(must_move(old, after).sum())
    assert ring_churn(old, new) <= max(cap, forced)
    assert ring_churn(old, new) >= forced
    assert not np.any(np.array(after)[new] <= 0), "no slot left on a zero-weight server"
    target = slot_counts(after, size)
    old_counts = np.bincount(old, minlength=len(after))
    new_counts = np.bincount(new, minlength=len(after))
    # The worst over-service relative to target (zero-weight servers aside) never gets worse;
    # forced slots only fill servers up to their targets (ratio 1).
    live = np.array(after) > 0
    worst = lambda c: float(np.max(c[live] / np.maximum(target[live], 1)))   # noqa: E731
    assert worst(new_counts) <= max(worst(old_counts), 1.0) + 1e-9
    if not forced and np.all(np.abs(old_counts - target) <= hysteresis):
        assert ring_churn(old, new) == 0
    if cap >= minimal_churn(old, after) and hysteresis == 0:
        assert np.array_equal(new_counts, target) and ring_churn(old, new) == minimal_churn(old, after)


def test_a_policys_zero_weight_is_not_a_quiesce_when_availability_is_given():
    # Water-filling gives a loaded but available server weight 0 this poll: its slots are the
    # most over-served and go first, but under the cap; only unavailable servers bypass it.
    old = build_ring([1, 1, 1, 1], 64)                         # 16 each
    capped = plan_ring(old, [1, 1, 0, 1], max_change=4, available=[True] * 4)
    assert ring_churn(old, capped) == 4 and set(old[old != capped].tolist()) == {2}
    quiesced = plan_ring(old, [1, 1, 0, 1], max_change=4, available=[True, True, False, True])
    assert ring_churn(old, quiesced) == 16 and not np.any(quiesced == 2)
    # An unavailable server is owed nothing, whatever weight it is given.
    assert not np.any(plan_ring(old, [1, 1, 5, 1], available=[True, True, False, True]) == 2)
    with pytest.raises(ValueError, match="3 availability flags for 4 servers"):
        plan_ring(old, [1, 1, 1, 1], available=[True] * 3)
