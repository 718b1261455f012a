"""Policies that are the same thing on this data plane, found before a run so each runs once.

The switch decides every new flow by hashing it onto the ring; a policy only chooses the ring.
A policy without load feedback (round_robin, weighted_round_robin, random_hash, fixed_split)
writes a ring that depends on nothing but the servers' configuration (capacities, configured
weights, which are available), so two of them that write the same ring for the run's servers
decide every flow alike and give identical figures. round_robin and random_hash always do (an
equal ring); weighted_round_robin joins them when the configured weights are equal.
Such policies are grouped and shown as one row, labelled with every name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from controller.dispatch_ring import build_ring
from controller.policies.base import ClusterView, Policy
from controller.policies.fixed_split import FixedSplit
from controller.policies.random_hash import RandomHash
from controller.policies.round_robin import RoundRobin
from controller.policies.weighted_round_robin import WeightedRoundRobin

NOTE = ("{groups}: the same ring on these servers. Without load feedback a policy's ring depends only on "
        "the servers' configuration, and the switch hashes every new flow onto it, so these decide every "
        "flow alike (weighted_round_robin differs only when capacities differ; docs/policies.md).")


def is_static(policy: Policy) -> bool:
    """True for a policy whose weights never read measured load (only capacities, configured
    weights and availability)."""
    return isinstance(policy, (RoundRobin, WeightedRoundRobin, RandomHash, FixedSplit))


@dataclass(frozen=True)
class PolicyGroup:
    policy: Policy               # the one that runs
    names: tuple[str, ...]       # every policy whose ring is the same on this run's servers

    @property
    def label(self) -> str:
        return self.names[0] if len(self.names) == 1 else " = ".join(self.names) + " (same ring)"


def _ring_signature(policy: Policy, view: ClusterView, ring_size: int) -> tuple | None:
    """What the switch would do with this policy's flows, for a static policy; None otherwise."""
    if not is_static(policy):
        return None
    return policy.hash_on, tuple(build_ring(policy.weights(view), ring_size).tolist())


def group_same_ring(policies: Sequence[Policy], view: ClusterView, ring_size: int) -> list[PolicyGroup]:
    """The policies in order, those with the same ring on `view`'s servers merged into the first."""
    groups: list[PolicyGroup] = []
    index_of: dict[tuple, int] = {}
    for policy in policies:
        signature = _ring_signature(policy, view, ring_size)
        if signature is not None and signature in index_of:
            first = groups[index_of[signature]]
            groups[index_of[signature]] = PolicyGroup(first.policy, first.names + (policy.name,))
            continue
        if signature is not None:
            index_of[signature] = len(groups)
        groups.append(PolicyGroup(policy, (policy.name,)))
    return groups


def same_ring_note(groups: Sequence[PolicyGroup]) -> str | None:
    """The footnote for the table when some policies were merged, else None."""
    merged = [" = ".join(g.names) for g in groups if len(g.names) > 1]
    return NOTE.format(groups="; ".join(merged)) if merged else None
