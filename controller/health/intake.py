"""The door for agents' datagrams: what passes is a well-formed, authentic, new message from a
known host; everything else is counted by reason and dropped before it can change anything.

Order matters: size and tag first (an unauthenticated message's host id means nothing),
then the host, then the sequence number, which is recorded only for messages that passed
everything else (a forged or unknown one must not move the replay window).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

from controller.health.messages import (
    Codec,
    MalformedMessage,
    Message,
    ReplayedMessage,
    ReplayGuard,
    UnauthenticatedMessage,
)

DROP_REASONS = ("malformed", "unauthenticated", "unknown_host", "replayed")


class MessageIntake:
    """`accept(datagram)` -> the message, or None (and `dropped[reason] += 1`)."""

    def __init__(self, codec: Codec, known_hosts: Collection[int]) -> None:
        self.codec = codec
        self.known_hosts = set(known_hosts)
        self.replays = ReplayGuard()
        self.accepted: Counter[str] = Counter({"heartbeat": 0, "report": 0})
        self.dropped: Counter[str] = Counter(dict.fromkeys(DROP_REASONS, 0))
        self.last_error: str | None = None   # the latest drop, for the operator's status

    def accept(self, datagram: bytes) -> Message | None:
        try:
            message = self.codec.decode(datagram)
            if message.host_id not in self.known_hosts:
                self._drop("unknown_host", f"{message.kind} from unknown host id {message.host_id}")
                return None
            self.replays.admit(message)
        except MalformedMessage as exc:
            self._drop("malformed", str(exc))
            return None
        except UnauthenticatedMessage as exc:
            self._drop("unauthenticated", str(exc))
            return None
        except ReplayedMessage as exc:
            self._drop("replayed", str(exc))
            return None
        self.accepted[message.kind] += 1
        return message

    def _drop(self, reason: str, detail: str) -> None:
        self.dropped[reason] += 1
        self.last_error = f"{reason}: {detail}"
