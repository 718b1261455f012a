"""SA2C, SARA's admission control: an admission level per service from a smoothed estimate of
the cluster's load, with thresholds that move down while the cluster stays overloaded.

Pure (numbers in, numbers out): one `AdmissionControl` per service, stepped once per period.

Load. Each server i has a load vector: its utilisation by each measured resource, already
divided by what the server can take (CPU fraction, bytes sent / capacity, connections /
their limit, ...; NaN where unknown). Its utilisation is the largest component (the
bottleneck resource), and the cluster's raw load is the capacity-weighted mean over the
servers that are up:

    u_i   = max_k v_ik                                   (0 when nothing is known)
    x     = sum_up c_i u_i / sum_up c_i                  (LOAD_CEILING when nobody is up)
    rho_k = rho_{k-1} + alpha (x_k - rho_{k-1})          (rho_0 = x_0; alpha: `smoothing`)

Thresholds, as fractions of the cluster's capacity: T1 < T2 < T3 < C. Each period, first
the thresholds move, then the level is read off them (T2⁰, T3⁰: the configured values):

    rho < T1:  T2 = T2⁰, T3 = T3⁰                                  (reset)
    else:      e  = max(0, rho - T2⁰)                             (excess over the configured T2)
               T2 = max(T1 + g, T2 - a e)                          (linear: `t2_slope` a)
               T3 = max(T2 + g, T3 (1 - min(b e, 1)))              (multiplicative: `t3_factor` b)

so while shedding new sessions keeps the load under T2⁰ the thresholds stay, and while it
does not they come down, period after period, until the load falls below T1 (g: `min_gap`).

Levels (controller/dataplane/constants.py AdmissionLevel) and drop probabilities p:

    rho <  T1        ADMIT_ALL             p = 0
    T1 <= rho < T2   DROP_NEW_PROB         p = (rho - T1) / (T2 - T1)     (new flows)
    T2 <= rho < T3   ESTABLISHED_ONLY      p = 0 (every new flow refused)
    T3 <= rho < C    DEGRADE_ESTABLISHED   p = pmax (rho - T3) / (C - T3) (established packets)
    rho >= C         REJECT_ALL            p = 1

pmax is `max_degrade_prob`. A flow the switch has already admitted is never refused
(issue 11) unless `refuse_established` is set: without it REJECT_ALL is written as
DEGRADE_ESTABLISHED with p = pmax (established flows slowed, not cut); `wanted` keeps the
level SA2C asked for. The data plane (p4src/v1model/admission.p4) reads p as drop_prob/65536.

Reopening gradually (not in SARA; `reopen_step` r, None: off). Refused clients retry their
SYNs (after 1, 3, 7 s ...), so a cluster that goes from refusing every new flow to ADMIT_ALL
in one period admits, in that period, every client that was refused meanwhile: a herd that
overshoots the load as much as the refusals lasted (measured: docs/health.md, Overload). So
the share of new flows admitted may rise by at most r per period, while it may fall at once:

    a_k = 1 - p at DROP_NEW_PROB, 1 at ADMIT_ALL, 0 at the levels that refuse new flows
    a_k <= a_{k-1} + r        (written as DROP_NEW_PROB with p = 1 - a_k while below 1)

New-flow budget (not in SARA either; with the `connections` load component). The retries
make the offered new flows many times the arrivals, so no fixed share is right for long.
Where each server's connection limit is known, the controller knows how many more
connections the cluster takes this period, B (new_flow_budget: the room under T2 of the
limit less last period's admissions), and how many new flows were
offered last period, O: the admitted ones plus the switch's refused ones where the
controller can attribute those (one service refusing), else n / a_{k-1}:

    a_k <= B / O                      (when O > 0)

so about B new flows get in per period however large the herd of retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict, Field, model_validator

from controller.dataplane.constants import AdmissionLevel

LOAD_CEILING = 2.0     # the raw load is clipped here (and is this when no server is up)

# A server's load vector, each component already divided by what the server can take:
#   cpu          the agent's CPU utilisation
#   served       bytes/s the agent saw sent / capacity
#   switch       bytes/s the switch counted towards it / learned visibility ratio / capacity
#   connections  established connections (agent) / the backend's max_connections
# The byte components stop at about 1.0 when a link is full, however large the excess;
# the connection backlog does not, which is what an overload controller needs to see.
LoadComponent = Literal["cpu", "served", "switch", "connections"]
LOAD_COMPONENTS: tuple[LoadComponent, ...] = ("cpu", "served", "switch", "connections")


class AdmissionSettings(BaseModel):
    """SA2C's parameters; usable as a config section (`[services.admission]` or `[admission]`)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    t1: float = Field(default=0.70, gt=0, description="below: admit all")
    t2: float = Field(default=0.80, gt=0, description="above: established sessions only")
    t3: float = Field(default=0.90, gt=0, description="above: degrade established sessions")
    c: float = Field(default=0.98, gt=0, le=LOAD_CEILING, description="at or above: refuse (near capacity)")
    smoothing: float = Field(default=0.3, gt=0, le=1, description="alpha of the cluster-load average")
    t2_slope: float = Field(default=0.5, ge=0, description="T2 falls t2_slope * excess per period")
    t3_factor: float = Field(default=0.5, ge=0, description="T3 shrinks by (1 - t3_factor * excess) per period")
    min_gap: float = Field(default=0.01, gt=0, description="smallest T2 - T1 and T3 - T2 while they move")
    max_degrade_prob: float = Field(default=0.5, ge=0, le=1)
    refuse_established: bool = False
    reopen_step: float | None = Field(default=None, gt=0, le=1,
                                      description="largest rise of the admitted share of new flows per period")
    load_components: tuple[LoadComponent, ...] = Field(
        default=("cpu", "served", "switch"), min_length=1,
        description="the server load vector's components SA2C takes the bottleneck of")

    @model_validator(mode="after")
    def _ordered(self) -> AdmissionSettings:
        if not (self.t1 + self.min_gap <= self.t2 and self.t2 + self.min_gap <= self.t3 and self.t3 < self.c):
            raise ValueError(f"SA2C needs T1 < T2 < T3 < C at least min_gap ({self.min_gap}) apart, got "
                             f"T1 {self.t1}, T2 {self.t2}, T3 {self.t3}, C {self.c}")
        if len(set(self.load_components)) != len(self.load_components):
            raise ValueError(f"load_components lists a component twice: {list(self.load_components)}")
        return self


@dataclass(frozen=True)
class AdmissionDecision:
    level: AdmissionLevel       # what to write to the switch
    drop_prob: float            # p for that level (0 where the level does not use it)
    load: float                 # the smoothed cluster load rho
    raw_load: float             # this period's x
    t2: float                   # thresholds in force this period
    t3: float
    wanted: AdmissionLevel      # SA2C's level before the refuse_established cap


def server_utilisation(load_vectors: ArrayLike) -> np.ndarray:
    """Per server (rows) the largest of its normalised load components (columns); NaN ignored."""
    vectors = np.atleast_2d(np.asarray(load_vectors, dtype=np.float64))
    known = np.where(np.isfinite(vectors), vectors, -np.inf)
    utilisation = known.max(axis=1) if vectors.shape[1] else np.full(len(vectors), -np.inf)
    return np.where(np.isfinite(utilisation), np.maximum(utilisation, 0.0), 0.0)


def cluster_load(utilisation: ArrayLike, capacity: ArrayLike, up: ArrayLike) -> float:
    """Capacity-weighted mean utilisation of the servers that are up (LOAD_CEILING if none)."""
    u = np.asarray(utilisation, dtype=np.float64)
    c = np.asarray(capacity, dtype=np.float64) * np.asarray(up, dtype=bool)
    if c.sum() <= 0:
        return LOAD_CEILING
    return float(min((c * u).sum() / c.sum(), LOAD_CEILING))


def level_for(load: float, t1: float, t2: float, t3: float, c: float,
              max_degrade_prob: float) -> tuple[AdmissionLevel, float]:
    """The level and drop probability for a smoothed load and the thresholds in force."""
    if load < t1:
        return AdmissionLevel.ADMIT_ALL, 0.0
    if load < t2:
        return AdmissionLevel.DROP_NEW_PROB, min(max((load - t1) / (t2 - t1), 0.0), 1.0)
    if load < t3:
        return AdmissionLevel.ESTABLISHED_ONLY, 0.0
    if load < c:
        return AdmissionLevel.DEGRADE_ESTABLISHED, max_degrade_prob * min(max((load - t3) / (c - t3), 0.0), 1.0)
    return AdmissionLevel.REJECT_ALL, 1.0


class AdmissionControl:
    """One service's SA2C state: the smoothed load and the moving thresholds."""

    def __init__(self, settings: AdmissionSettings | None = None) -> None:
        self.settings = settings or AdmissionSettings()
        self.load: float | None = None
        self.t2 = self.settings.t2
        self.t3 = self.settings.t3
        self.admitted = 1.0         # share of new flows the last decision admitted (a_{k-1})

    def update(self, raw_load: float, budget: float | None = None, admitted_last: int | None = None,
               offered_last: int | None = None) -> AdmissionDecision:
        """One period: smooth the load, move the thresholds, read off the level; then cap the
        share of new flows by reopen_step and, given them, by the new-flow budget (connections
        the cluster takes this period) and the new flows admitted last period."""
        s = self.settings
        x = min(max(float(raw_load), 0.0), LOAD_CEILING) if np.isfinite(raw_load) else LOAD_CEILING
        rho = x if self.load is None else self.load + s.smoothing * (x - self.load)
        self.load = rho
        if rho < s.t1:
            self.t2, self.t3 = s.t2, s.t3
        else:
            excess = max(0.0, rho - s.t2)
            self.t2 = max(s.t1 + s.min_gap, self.t2 - s.t2_slope * excess)
            self.t3 = max(self.t2 + s.min_gap, self.t3 * (1 - min(s.t3_factor * excess, 1.0)))
        wanted, p = level_for(rho, s.t1, self.t2, self.t3, s.c, s.max_degrade_prob)
        level = wanted
        if wanted == AdmissionLevel.REJECT_ALL and not s.refuse_established:
            level, p = AdmissionLevel.DEGRADE_ESTABLISHED, s.max_degrade_prob
        admitted = cap = new_flow_share(level, p)
        if s.reopen_step is not None:
            cap = min(cap, self.admitted + s.reopen_step)
        offered = offered_last if offered_last is not None else (
            admitted_last / self.admitted if admitted_last and self.admitted > 0 else None)
        if budget is not None and offered:
            cap = min(cap, max(budget, 0.0) / offered)
        if cap < admitted:
            admitted = cap
            level, p = ((AdmissionLevel.DROP_NEW_PROB, 1.0 - admitted) if admitted > 0
                        else (AdmissionLevel.ESTABLISHED_ONLY, 0.0))
        self.admitted = admitted
        return AdmissionDecision(level, p, rho, x, self.t2, self.t3, wanted)

    def reset(self) -> None:
        self.load, self.t2, self.t3 = None, self.settings.t2, self.settings.t3
        self.admitted = 1.0


def new_flow_share(level: AdmissionLevel, p: float) -> float:
    """The share of new flows a level admits."""
    if level == AdmissionLevel.ADMIT_ALL:
        return 1.0
    if level == AdmissionLevel.DROP_NEW_PROB:
        return 1.0 - p
    return 0.0


def needs_write(previous: AdmissionDecision | None, new: AdmissionDecision, p_step: float = 0.01) -> bool:
    """Whether the switch's entry must change: another level, or p moved by p_step or more."""
    if previous is None:
        return True
    return previous.level != new.level or abs(previous.drop_prob - new.drop_prob) >= p_step


def new_flow_budget(limit: float, connections: float, admitted_last: int | None, fill: float) -> float:
    """New connections the cluster takes this period: the room under `fill` (T2) of its
    connection limit, less last period's admissions, which the agents' latest reports may not
    count yet. A window, as TCP's: the connections in service plus those on the way stay under
    the limit however stale the reports, and the cluster takes more only as it sees some finish.
    (Crediting the connections expected to finish instead overshoots whenever the reports lag.)"""
    return max(0.0, fill * limit - connections - (admitted_last or 0))
