"""Taking over switches that are already serving (issue 15, docs/multiswitch.md "Take-over"):
a backup controller becoming primary, or the controller restarted, finds the cluster
running. Pushing the pipeline again would wipe every switch's flow cache, entries and ring
state and break every connection, so the switches that still run this program are
*adopted*: their entries and rings become the controller's state, and nothing the data
plane decided is changed.

Pure functions of what was read from the switches; controller/cluster_app.py reads and
writes. What the old controller may have left half done, and how it is finished:

* Rings: the old controller wrote every ring change to the switches one after another, so
  at its end they may differ by its last write. Per slot, the entry with the highest
  generation is the cluster's (a generation names one backend per slot on every switch);
  the switches that lag get it written, which on them is an ordinary rewrite.
* Entries: a key with an entry of id 0 anywhere was replicated, which happens only after
  its home reported activation: activated. A key held by its home alone may or may not
  have been activated (the report went to the old controller, or nowhere); the home's
  `flow_stats` cell tells, since only an activated entry counts packets there
  (p4src/v1model/flow_dispatch.p4): a cell that grows after the adoption is activation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.dataplane.constants import ENTRY_ID_REPORT_ACTIVATION
from controller.dataplane.dispatcher_tables import InstalledFlow
from controller.flow_table import pack_key
from controller.takeover import RingEntries


@dataclass
class SwitchState:
    """What one running switch holds, read at take-over."""
    flows: list[InstalledFlow]
    ring: RingEntries


@dataclass
class AdoptedFlow:
    """One key's entries across the adopted switches."""
    entry: InstalledFlow                                 # the home's (or a replica's) entry
    home: str
    own: dict[str, int] = field(default_factory=dict)   # switch -> backend of its checked entry
    replicas: set[str] = field(default_factory=set)     # switches with the trusted copy (id 0)

    @property
    def activated(self) -> bool:
        """Known activated: replicas are written only once the home reported activation."""
        return bool(self.replicas)


def cluster_ring(states: Mapping[str, SwitchState]) -> RingEntries:
    """Per slot, the entry with the highest generation on any switch."""
    ring: RingEntries = {}
    for state in states.values():
        for slot, (backend, generation) in state.ring.items():
            if slot not in ring or generation > ring[slot][1]:
                ring[slot] = (backend, generation)
    return ring


def ring_fixes(state: SwitchState, ring: RingEntries) -> RingEntries:
    """The slots whose backend a switch must be given for it to decide as `ring` does (it
    lagged the old controller's last write, or missed a slot). A slot with the same backend
    under an older generation is left: a switch that joined got every slot under a fresh
    generation of its own, and the others need not follow it."""
    return {slot: entry for slot, entry in ring.items()
            if slot not in state.ring or state.ring[slot][0] != entry[0]}


def adopted_flows(states: Mapping[str, SwitchState]) -> dict[bytes, AdoptedFlow]:
    """Every key's placement. The home is the switch holding the entry that asked for its
    activation to be reported (the old controller's home entry); a key without one (its home
    is gone) is placed on its first holder."""
    flows: dict[bytes, AdoptedFlow] = {}
    for name in sorted(states):
        for entry in states[name].flows:
            key = pack_key(entry.key)
            is_home = bool(entry.entry_id & ENTRY_ID_REPORT_ACTIVATION)
            adopted = flows.get(key)
            if adopted is None:
                adopted = flows[key] = AdoptedFlow(entry, name)
            elif is_home:
                adopted.entry, adopted.home = entry, name
            if entry.entry_id == 0:
                adopted.replicas.add(name)
            else:
                adopted.own[name] = entry.backend_id
    return flows


def plain_entry_id(entry_id: int) -> int:
    """The counter part of an id (what the next fresh id must exceed)."""
    return entry_id & ~ENTRY_ID_REPORT_ACTIVATION
