"""Dispatch policies: one module each, all behind policies.base.Policy.

`make_policy(name)` builds one by its name (as the CLI and the simulator spell it); `damping`
is for the policies that damp their weights (fb_est; damping.py), the others ignore it.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.policies.base import ClusterView, NoServerAvailable, Policy
from controller.policies.damping import DampingSettings
from controller.policies.fb_est import FbEst
from controller.policies.fb_least import FbLeast
from controller.policies.fixed_split import FixedSplit
from controller.policies.inverse_load import InverseLoad
from controller.policies.least_connections import LeastConnections
from controller.policies.nd import NetworkDispatcher
from controller.policies.random_hash import RandomHash
from controller.policies.round_robin import RoundRobin
from controller.policies.shell import Shell
from controller.policies.weighted_round_robin import WeightedRoundRobin

POLICIES: dict[str, Callable[[], Policy]] = {
    cls.name: cls for cls in (RoundRobin, WeightedRoundRobin, RandomHash, FixedSplit,
                              LeastConnections, InverseLoad, FbLeast, FbEst, NetworkDispatcher, Shell)
}


DAMPED = {FbEst.name}   # the policies that take `damping`


def make_policy(name: str, damping: DampingSettings | None = None) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    if name == FbEst.name:
        return FbEst(damping)
    return POLICIES[name]()


__all__ = ["ClusterView", "DampingSettings", "NoServerAvailable", "Policy", "POLICIES", "DAMPED", "make_policy"]
