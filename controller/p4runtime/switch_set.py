"""Several switches written as one (issue 15, docs/multiswitch.md): the same updates to every
member, in the same order, a batch at a time.

A `SwitchSet` has the `Writer` interface of controller/flow_manager.py (`write`,
`write_async`), so what writes configuration and rings to one switch can write them to
several. Each batch goes to every member at once (one Write RPC per member, in parallel
over their channels) and the next batch waits until all answered, so every member sees the
writes in one order. A member whose session fails (P4RuntimeError that is not a per-update
refusal: the switch is gone) leaves the set and is reported to `on_lost`; the write counts
as done for the others, which never wait for a dead switch. Per-update refusals (WriteError)
are merged by position: an update failed if it failed on any member, with the code of the
first member (in the set's order) that refused it.

Nothing here decides *what* goes to which switch (home entries and replicas do not go to
every switch): that is the flow manager's; this is the fan-out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from finsy.proto import p4r

from controller.p4runtime.client import P4RuntimeError, UpdateFailure, WriteError

log = logging.getLogger("controller")


class _Pending(Protocol):
    done_at: float | None

    def result(self) -> None: ...


class Member(Protocol):
    """What a SwitchSet needs of a switch's session (a P4RuntimeClient)."""

    def write_async(self, updates: Sequence[p4r.Update]) -> _Pending: ...


class AllSwitchesLost(P4RuntimeError):
    """Every member of the set failed: nothing is left to write to."""


class FanOutWrite:
    """One batch in flight on every member; result() waits for all (the PendingWrite interface)."""

    def __init__(self, owner: SwitchSet, pending: dict[str, _Pending], total: int) -> None:
        self._owner = owner
        self._pending = pending
        self._total = total
        self.failures_by_switch: dict[str, list[UpdateFailure]] = {}
        # When the last member answered; set by result() (the flow manager reads it after).
        self.done_at: float | None = None

    def result(self) -> None:
        merged: dict[int, UpdateFailure] = {}
        answered = 0
        for name, pending in self._pending.items():
            try:
                pending.result()
                answered += 1
            except WriteError as exc:
                answered += 1
                self.failures_by_switch[name] = exc.failures
                for failure in exc.failures:
                    merged.setdefault(failure.index, failure)
            except P4RuntimeError as exc:
                self._owner.lose(name, str(exc))
        times = [p.done_at for p in self._pending.values()]
        self.done_at = None if any(t is None for t in times) else max(t for t in times if t is not None)
        if answered == 0:
            raise AllSwitchesLost(f"no switch of the set answered a write of {self._total} updates")
        if merged:
            raise WriteError([merged[i] for i in sorted(merged)], self._total)


class SwitchSet:
    """Members by name, in the order they were added; writes go to all of them."""

    def __init__(self, members: dict[str, Member] | None = None) -> None:
        self._members: dict[str, Member] = dict(members or {})
        self.lost: dict[str, str] = {}                 # name -> why it left
        self.on_lost: list[Callable[[str, str], None]] = []
        self.batches = 0                               # batches written (each to every member)

    @property
    def names(self) -> list[str]:
        return list(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def member(self, name: str) -> Member:
        return self._members[name]

    def add(self, name: str, member: Member) -> None:
        """A switch joins: every write from now on goes to it too (a returning switch joins
        before its bulk restore, so that nothing written meanwhile passes it by)."""
        if name in self._members:
            raise ValueError(f"switch {name} is in the set already")
        self._members[name] = member
        self.lost.pop(name, None)

    def lose(self, name: str, reason: str) -> None:
        """A member's session failed: it leaves the set, and the listeners hear of it once."""
        if self._members.pop(name, None) is None:
            return
        self.lost[name] = reason
        log.error("switch %s left the set: %s", name, reason)
        for listener in self.on_lost:
            listener(name, reason)

    def write_async(self, updates: Sequence[p4r.Update]) -> FanOutWrite:
        if not self._members:
            raise AllSwitchesLost("no switch to write to")
        pending: dict[str, _Pending] = {}
        for name, member in list(self._members.items()):
            try:
                pending[name] = member.write_async(updates)
            except P4RuntimeError as exc:
                self.lose(name, str(exc))
        if not pending:
            raise AllSwitchesLost(f"every switch of the set failed a write of {len(updates)} updates")
        self.batches += 1
        return FanOutWrite(self, pending, len(updates))

    def write(self, updates: Sequence[p4r.Update], batch_size: int = 1000) -> None:
        """Batches in order, each on every member before the next; raises WriteError with the
        merged refusals (positions in `updates`), AllSwitchesLost when no member is left."""
        failures: list[UpdateFailure] = []
        for start in range(0, len(updates), batch_size):
            batch = updates[start:start + batch_size]
            try:
                self.write_async(batch).result()
            except WriteError as exc:
                failures += [UpdateFailure(f.index + start, f.code, f.message) for f in exc.failures]
        if failures:
            raise WriteError(failures, len(updates))

