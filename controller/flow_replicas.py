"""Where each flow's entries are when several switches share a cluster (issue 15; rules 2-4,
8 and case (C) of docs/multiswitch.md). Bookkeeping only: it says what to write where and
when a flow may go; the flow manager and a SwitchSet do the writing.

* A flow's first digest makes the reporting switch its **home**: the home entry (fresh id,
  checked by activation) goes there only.
* The home's `ACTIVATED` report makes **replicas** (id 0, trusted) due on every other switch
  in service, except those holding an entry of their own.
* A digest from another switch before its replica was written there: that switch gets an
  entry of its own (fresh id, checked against its own state). A different backend means the
  move split the flow: counted.
* A flow goes (every entry of it, in one round) once every switch holding one has reported
  it idle, each report no older than `idle_window_s` (BMv2 repeats its notification while
  an expired entry stays, so a report that old means the entry was hit since), and no
  holder's statistics cell for it has counted a packet since its report (read just before
  the delete: an entry counts the packets it decides there, so a count that grew is a hit).
* A switch that comes back holds nothing: every replicated flow's replica is due there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum


class Write(Enum):
    NOTHING = "nothing"       # a duplicate
    HOME = "home"             # a home entry on the reporting switch
    OWN = "own"               # an entry of its own on a switch the flow moved to before its replica


@dataclass
class Placement:
    backend: int
    home: str
    own: dict[str, int] = field(default_factory=dict)     # switch -> backend of its own entry (home included)
    replicas: set[str] = field(default_factory=set)
    activated: bool = False
    idle: dict[str, float] = field(default_factory=dict)  # switch -> time of its latest idle report
    idle_packets: dict[str, int] = field(default_factory=dict)   # switch -> its cell's packets then

    def holders(self) -> set[str]:
        return set(self.own) | self.replicas


class FlowReplicas:
    def __init__(self, switches: Iterable[str], idle_window_s: float = 2.0) -> None:
        self.in_service: list[str] = list(switches)
        self.idle_window_s = idle_window_s
        self.flows: dict[bytes, Placement] = {}
        self.cross_switch_splits = 0

    # ---- digests --------------------------------------------------------------------------

    def on_digest(self, switch: str, key: bytes, backend: int) -> Write:
        placed = self.flows.get(key)
        if placed is None:
            self.flows[key] = Placement(backend, switch, own={switch: backend})
            return Write.HOME
        if switch in placed.holders():
            return Write.NOTHING      # a repeat, or sent before the replica landed there
        if backend != placed.backend:
            self.cross_switch_splits += 1
        placed.own[switch] = backend
        return Write.OWN

    def on_activated(self, switch: str, key: bytes) -> list[str]:
        """The home activated its entry: the switches a replica is now due on (the caller
        writes them, then calls replicated())."""
        placed = self.flows.get(key)
        if placed is None or switch != placed.home:
            return []
        placed.activated = True
        return [s for s in self.in_service if s not in placed.holders()]

    def replicated(self, key: bytes, switches: Iterable[str]) -> None:
        placed = self.flows.get(key)
        if placed is not None:
            placed.replicas.update(switches)

    def is_replicated(self, key: bytes) -> bool:
        placed = self.flows.get(key)
        return placed is not None and all(s in placed.holders() for s in self.in_service)

    def unreplicated_ring_entries(self, ring_entry_of: Callable[[bytes], int]) -> set[int]:
        """Rule 5: the ring entries a rewrite must leave alone for now."""
        return {ring_entry_of(k) for k in self.flows if not self.is_replicated(k)}

    # ---- idleness ----------------------------------------------------------------------------

    def on_idle(self, switch: str, key: bytes, now: float, packets: int | None = None) -> list[str]:
        """An idle report (`packets`: the entry's statistics cell on that switch then);
        returns the flow's holders when every holder's latest report is recent (the caller
        then checks hit_since_idle() and deletes), else []."""
        placed = self.flows.get(key)
        if placed is None:
            return []
        placed.idle[switch] = now
        if packets is not None:
            placed.idle_packets[switch] = packets
        holders = placed.holders()
        if all(now - placed.idle.get(s, float("-inf")) <= self.idle_window_s for s in holders):
            return sorted(holders)
        return []

    def hit_since_idle(self, key: bytes, packets: dict[str, int]) -> list[str]:
        """The holders whose cell counted packets since their idle report (`packets`: each
        holder's cell now); their reports no longer count, so the flow stays until they idle
        again."""
        placed = self.flows.get(key)
        if placed is None:
            return []
        hit = [s for s, now in packets.items() if s in placed.idle_packets and now != placed.idle_packets[s]]
        for s in hit:
            placed.idle.pop(s, None)
            placed.idle_packets.pop(s, None)
        return hit

    # ---- switches ------------------------------------------------------------------------------

    def switch_lost(self, switch: str) -> list[bytes]:
        """Out of service: its entries are gone with it (a restart wipes them) or unreachable.
        Returns the flows forgotten (their only entry was there)."""
        if switch in self.in_service:
            self.in_service.remove(switch)
        forgotten: list[bytes] = []
        for key, placed in list(self.flows.items()):
            placed.replicas.discard(switch)
            placed.own.pop(switch, None)
            placed.idle.pop(switch, None)
            placed.idle_packets.pop(switch, None)
            if not placed.holders():
                # Its only entry was there (never activated, so never replicated): the flow
                # has no entry anywhere now and digests again from wherever ECMP sends it.
                del self.flows[key]
                forgotten.append(key)
        return forgotten

    def switch_joined(self, switch: str) -> list[bytes]:
        """Back (syncing): the replica of every flow whose home entry is activated is due
        there; the caller writes them (id 0) and calls replicated() for each. The others get
        theirs with everyone else's when their home activates (a home entry that never
        activates is an earlier flow's, and no switch may trust it)."""
        if switch not in self.in_service:
            self.in_service.append(switch)
        return [key for key, placed in self.flows.items() if placed.activated]
