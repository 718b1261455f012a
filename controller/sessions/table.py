"""The controller's session table: signalling flow -> announced flows, backend, state.

Bookkeeping only (controller/session_control.py writes the switch): which `announced_flows`
entries exist, which session each belongs to, and what happened to them. Rebuilt from the
switch's entries (their metadata) when a controller takes over.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from controller.sessions.announced import AnnouncedEntry, GroupKey, Match, group_of
from controller.sessions.model import SessionEnd

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
    hits: int = 0               # flows whose first packet took an announced entry's backend
    expired: int = 0            # entries idle for their start time (never started, or done)
    ended: int = 0              # sessions ended by BYE, TEARDOWN, control close, ...
    entries_ended: int = 0      # entries deleted because their session ended
    table_full: int = 0         # entries not written: the table was full
    no_backend: int = 0         # announcements dropped: the signalling flow's backend was not known in time
    adopted: int = 0            # entries read back from the switch at take-over
    unreadable: int = 0         # entries on the switch with metadata this controller did not write


class SessionTable:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.sessions: dict[GroupKey, Session] = {}
        self.entries: dict[Match, AnnouncedEntry] = {}
        self.counts = SessionCounts()

    def __len__(self) -> int:
        return len(self.entries)

    # ---- changes; each returns the entries to write or delete -------------------------

    def announce(self, entries: Iterable[AnnouncedEntry], now: float) -> list[AnnouncedEntry]:
        """New entries (those not there yet, as room allows); the session is made if new."""
        self.counts.announcements += 1
        new = []
        for entry in entries:
            if entry.match in self.entries:
                self.counts.reannounced += 1
                continue
            if len(self.entries) >= self.capacity:
                self.counts.table_full += 1
                continue
            self._add(entry, now)
            new.append(entry)
        return new

    def written(self, count: int) -> None:
        self.counts.entries_written += count

    def refused(self, entry: AnnouncedEntry) -> None:
        """The switch did not take the entry (full, or another error): forget it."""
        self._drop(entry.match)

    def end(self, end: SessionEnd) -> list[AnnouncedEntry]:
        """The entries of the sessions `end` ends: one session, or with an empty id every
        session of that signalling flow. RTSP's announcements made before the reply named
        the session have an empty id: its TEARDOWN takes those too."""
        if end.session:
            keys = [group_of(end.protocol, end.signalling, end.session)]
            if end.protocol == "rtsp":
                keys.append(group_of(end.protocol, end.signalling, ""))
        else:
            keys = [k for k in self.sessions if k.protocol == end.protocol and k.signalling == end.signalling]
        gone: list[AnnouncedEntry] = []
        for key in keys:
            session = self.sessions.pop(key, None)
            if session is None:
                continue
            self.counts.ended += 1
            gone += [self.entries.pop(m) for m in session.entries if m in self.entries]
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
        for match, entry in self.entries.items():
            if match.covers(key):
                self.sessions[entry.group].hits += 1
                return entry.group
        return None     # its entry expired or ended since (the flow keeps its backend all the same)

    def adopt(self, entries: Iterable[AnnouncedEntry], now: float) -> int:
        self.sessions.clear()
        self.entries.clear()
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
        session = self.sessions.setdefault(entry.group, Session(entry.backend_id, now))
        session.entries.add(entry.match)

    def _drop(self, match: Match) -> AnnouncedEntry | None:
        entry = self.entries.pop(match, None)
        if entry is None:
            return None
        session = self.sessions.get(entry.group)
        if session is not None:
            session.entries.discard(match)
            if not session.entries:
                del self.sessions[entry.group]
        return entry
