"""Run-time changes to a service's nd manager (issue 11): its proportions and tuning, from
the API (`POST /api/services/NAME/nd`) and the CLI (`p4dispatch nd NAME ...`).

Run by the serving loop like every operator command; the next counter poll uses them. A
change is all or nothing: a value out of range refuses the whole request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controller.policies.nd import NetworkDispatcher, check_proportions


class NdChange(BaseModel):
    """What a request may change; fields left out stay as they are."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    proportions: tuple[float, float, float, float] | None = Field(
        default=None, description="weights of the metrics: active connections, new connections, host, forward")
    smoothing: float | None = None
    sensitivity: float | None = None
    host_limit: float | None = None
    cooldown_s: float | None = None
    clear_host_limit: bool = False


def nd_settings(policy: NetworkDispatcher) -> dict[str, Any]:
    return {"proportions": dict(zip(("active", "new", "host", "forward"), policy.proportions)),
            "smoothing": policy.smoothing, "sensitivity": policy.sensitivity,
            "host_limit": policy.host_limit, "cooldown_s": policy.cooldown_s}


def apply_nd_change(policy: NetworkDispatcher, change: NdChange) -> dict[str, Any]:
    """Apply every field or none (ValueError naming the problem); returns the settings now in force."""
    proportions = check_proportions(change.proportions) if change.proportions is not None else None
    policy.reconfigure(smoothing=change.smoothing, sensitivity=change.sensitivity, host_limit=change.host_limit,
                       cooldown_s=change.cooldown_s, clear_host_limit=change.clear_host_limit)
    if proportions is not None:     # checked above: cannot fail after reconfigure did
        policy.set_proportions(proportions)
    return nd_settings(policy)
