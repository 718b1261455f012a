"""The controller's session table: signalling flow -> announced flows, backend, state.

Bookkeeping only (controller/session_control.py writes the switch): which `announced_flows`
entries exist, which session each belongs to, and what happened to them. Rebuilt from the
switch's entries (their metadata) when a controller takes over.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from controller.p4runtime.encoding import flow_address
from controller.sessions.announced import AnnouncedEntry, GroupKey, Match, session_key
from controller.sessions.model import SessionEnd, flow_ends

SessionState = Literal["announced", "started"]


@dataclass
class Session:
    backend_id: int
    created: float
    entries: set[Match] = field(default_factory=set)
    hits: int = 0               # flows that took this session's backend from an announced entry

    @property
    def state(self) -> SessionState:
        return "started" if self.hits else "announced"


@dataclass
class SessionCounts:
    """Totals since start (status and metrics)."""
    announcements: int = 0      # announcements turned into entries (or found already there)
    entries_written: int = 0
    reannounced: int = 0        # an entry already there (retransmission, re-INVITE)
    contested: int = 0          # entries not written or withdrawn: another live session, on another
                                # backend, announced the same match (a media server's shared port)
    hits: int = 0               # flows whose first packet took an announced entry's backend
    missed: int = 0             # flows to an announced endpoint decided by the ring: they started
                                # before their entry was written, or found their cache set full
    expired: int = 0            # entries idle for their start time (never started, or done)
    ended: int = 0              # sessions ended by BYE, TEARDOWN, control close, ...
    entries_ended: int = 0      # entries deleted because their session ended
    table_full: int = 0         # entries not written: the table was full
    no_backend: int = 0         # announcements dropped: the signalling flow's backend was not known in time
    adopted: int = 0            # entries read back from the switch at take-over
    unreadable: int = 0         # entries on the switch with metadata this controller did not write


@dataclass
class Announced:
    """What an announcement changes on the switch."""
    write: list[AnnouncedEntry] = field(default_factory=list)
    withdraw: list[AnnouncedEntry] = field(default_factory=list)   # entries found contested


class SessionTable:
    """Invariant: no two live sessions on different backends both have an entry with one match.

    Two sessions may announce the same end: a media server that answers every call from one
    port (SIPp's uas does), an FTP server reusing a passive port. Entries with one match are one
    entry on the switch, and two matches that differ in peer only can tie in priority, so an
    entry shared by sessions on different backends would send a flow to whichever session the
    switch picks. Such a match is *contested*: its entry is withdrawn and not written again
    until the longest start time of the sessions that announced it has passed. The flows are
    then decided by the ends the sessions do not share (each call's own port), or by the ring.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sessions: dict[GroupKey, Session] = {}
        self.entries: dict[Match, AnnouncedEntry] = {}
        self.counts = SessionCounts()
        self._contested: dict[Match, float] = {}     # contested match -> until when
        # (IP protocol, 128-bit address, port) of every announced end -> its entries, so a
        # new flow is checked against the table in two lookups, not a scan.
        self._ends: dict[tuple[int, int, int], set[Match]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    # ---- changes; each returns the entries to write or delete -------------------------

    def announce(self, entries: Iterable[AnnouncedEntry], now: float) -> Announced:
        """New entries to write (those not there yet, as room allows; the session is made if
        new), and entries to withdraw because this announcement contests them."""
        self.counts.announcements += 1
        done = Announced()
        for entry in entries:
            match = entry.match
            until = self._contested.get(match)
            if until is not None and until > now:
                self._contested[match] = max(until, now + entry.ttl_s)
                self.counts.contested += 1
                continue
            self._contested.pop(match, None)
            existing = self.entries.get(match)
            if existing is not None and existing.backend_id == entry.backend_id:
                self.counts.reannounced += 1     # a retransmission, or a second session on the same backend
                continue
            if existing is not None:
                self._drop(match)
                done.withdraw.append(existing)
                self._contest(match, now + max(existing.ttl_s, entry.ttl_s))
                self.counts.contested += 2
                continue
            if len(self.entries) >= self.capacity:
                self.counts.table_full += 1
                continue
            self._add(entry, now)
            done.write.append(entry)
        return done

    def _contest(self, match: Match, until: float) -> None:
        self._contested[match] = until
        if len(self._contested) > self.capacity:     # bounded: the oldest records go first
            del self._contested[next(iter(self._contested))]

    def written(self, count: int) -> None:
        self.counts.entries_written += count

    def refused(self, entry: AnnouncedEntry) -> None:
        """The switch did not take the entry (full, or another error): forget it."""
        self._drop(entry.match)

    def end(self, end: SessionEnd) -> list[AnnouncedEntry]:
        """The entries of the sessions `end` ends: one session, or with an empty id every
        session of that signalling flow. RTSP's announcements made before the reply named
        the session have an empty id: its TEARDOWN takes those too."""
        # Either orientation: a tracker that met the flow mid-stream (after a take-over) takes
        # its first sender for the initiator.
        ends = flow_ends(end.signalling)
        keys = [k for k in self.sessions if k.protocol == end.protocol and flow_ends(k.signalling) == ends
                and (not end.session or k.session == session_key(end.session)
                     or (end.protocol == "rtsp" and k.session == ""))]
        gone: list[AnnouncedEntry] = []
        for key in keys:
            session = self.sessions.pop(key, None)
            if session is None:
                continue
            self.counts.ended += 1
            for match in list(session.entries):
                entry = self._drop(match)
                if entry is not None:
                    gone.append(entry)
        self.counts.entries_ended += len(gone)
        return gone

    def expired(self, match: Match) -> AnnouncedEntry | None:
        """An idle-timeout notification for `match`: the entry to delete (None: not ours)."""
        entry = self._drop(match)
        if entry is not None:
            self.counts.expired += 1
        return entry

    def hit(self, key: tuple[int, int, int, int, int]) -> GroupKey | None:
        """A flow that took an announced backend (its digest said so): the session it joins."""
        self.counts.hits += 1
        entry = self.covering(key)
        if entry is None:
            return None     # its entry expired or ended since (the flow keeps its backend all the same)
        self.sessions[entry.group].hits += 1
        return entry.group

    def installed(self, key: tuple[int, int, int, int, int]) -> None:
        """A flow decided by the ring: count it when it goes to an announced end (not when it
        is the signalling flow itself, which an FTP control connection's entry covers)."""
        if not self._ends:
            return
        entry = self.covering(key)
        if entry is not None and not _is_signalling(key, entry.group):
            self.counts.missed += 1

    def covering(self, key: tuple[int, int, int, int, int]) -> AnnouncedEntry | None:
        """The entry a flow key matches (highest priority first), or None."""
        src, dst, protocol, sport, dport = key
        candidates = (self._ends.get((protocol, src, sport), set()) | self._ends.get((protocol, dst, dport), set())
                      | self._ends.get((protocol, dst, ANY_PORT), set()))
        matching = [m for m in candidates if m.covers(key)]
        if not matching:
            return None
        return self.entries[max(matching, key=lambda m: m.priority)]

    def adopt(self, entries: Iterable[AnnouncedEntry], now: float) -> int:
        self.sessions.clear()
        self.entries.clear()
        self._ends.clear()
        count = 0
        for entry in entries:
            self._add(entry, now)
            count += 1
        self.counts.adopted += count
        return count

    # ---- reading ------------------------------------------------------------------------

    def by_state(self) -> dict[SessionState, int]:
        counts: dict[SessionState, int] = {"announced": 0, "started": 0}
        for session in self.sessions.values():
            counts[session.state] += 1
        return counts

    def __iter__(self) -> Iterator[AnnouncedEntry]:
        return iter(list(self.entries.values()))

    def _add(self, entry: AnnouncedEntry, now: float) -> None:
        self.entries[entry.match] = entry
        self._ends.setdefault(_end_of(entry.match), set()).add(entry.match)
        session = self.sessions.setdefault(entry.group, Session(entry.backend_id, now))
        session.entries.add(entry.match)

    def _drop(self, match: Match) -> AnnouncedEntry | None:
        entry = self.entries.pop(match, None)
        if entry is None:
            return None
        end = _end_of(match)
        self._ends[end].discard(match)
        if not self._ends[end]:
            del self._ends[end]
        session = self.sessions.get(entry.group)
        if session is not None:
            session.entries.discard(match)
            if not session.entries:
                del self.sessions[entry.group]
        return entry


def _is_signalling(key: tuple[int, int, int, int, int], group: GroupKey) -> bool:
    src, dst, protocol, sport, dport = group.signalling
    ends = sorted(((flow_address(src), sport), (flow_address(dst), dport)))
    return key[2] == protocol and sorted(((key[0], key[3]), (key[1], key[4]))) == ends


ANY_PORT = 0     # the end of an entry that matches no port: its destination address, any port


def _end_of(match: Match) -> tuple[int, int, int]:
    """The announced end of an entry: the side whose port is matched (neither: the destination)."""
    if match.dst_port[1]:
        return (match.protocol, match.dst_addr[0], match.dst_port[0])
    if match.src_port[1]:
        return (match.protocol, match.src_addr[0], match.src_port[0])
    return (match.protocol, match.dst_addr[0], ANY_PORT)

