"""Ring builder: shares within one slot of the weights, and the fewest slots change."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from controller.dispatch_ring import MAX_RING_SIZE, build_ring, minimal_churn, ring_churn, slot_counts


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
