"""Wire formats between the backend agents (agent/) and the controller, in one place.

Both ends import this module and nothing else from each other; it uses the standard library
only. Every integer is in network byte order (big-endian).

Heartbeat: SARA's 11-byte message, sent every period.

    offset size field
    0      2    host id
    2      4    sequence number
    6      1    flag: 0 up, 1 application down, 2 planned failure
    7      4    timestamp, ms:
                  flag 0, 1: the sender's wall clock, Unix time in ms modulo 2**32
                             (diagnostics only: nothing depends on synchronised clocks)
                  flag 2:    ms from sending until the planned failure (0: now)

The planned failure's time is relative on purpose: the controller adds it to the time it
received the heartbeat, so agent and controller clocks need not agree, and every repeated
heartbeat refreshes the countdown.

Load report, 51 bytes, sent every period after the heartbeat:

    offset size field
    0      2    magic b"LR"
    2      1    version (1)
    3      2    host id
    5      4    sequence number (a sequence of its own, apart from the heartbeats')
    9      4    agent uptime, ms modulo 2**32 (the agent's monotonic clock: rates from
                counter deltas use the agent's own interval, not arrival times)
    13     8    bytes sent on the service interface (cumulative, as the kernel counts)
    21     8    packets sent on the service interface (cumulative)
    29     2    CPU utilisation, 1/100 % (0..10000)
    31     2    memory utilisation, 1/100 % (0..10000)
    33     4    1-minute load average (run queue), 1/1000
    37     2    logical CPUs (to normalise the load average)
    39     4    TCP connections in service on the service port (established, or closed with data in flight)
    43     8    a configured command's number (IEEE 754 double; NaN: none)

Authentication (optional): with a shared key, HMAC-SHA256(key, message) truncated to its
first 16 bytes is appended (27-byte heartbeats, 67-byte reports). A controller with a key
refuses unsigned messages; one without a key refuses signed ones as malformed (it cannot
check them). Without a key anyone who reaches the port can forge messages: listen on
loopback or a management network only.

Replay protection: per host and per message kind, a sequence number is accepted only if it
is newer than the last accepted one (serial-number arithmetic, RFC 1982, so the 32-bit
counter may wrap). A restarted agent must not start below its previous run: it starts at
the wall clock in tenths of a second since 2024-01-01 (`initial_sequence`), which stays
ahead of its earlier numbers as long as it sent at most 10 messages of a kind per second
(periods >= 0.1 s) and the clock did not step back. A restarted controller accepts the
first message of each host (it has no memory); a replayed old message can then be taken
once, until the agent's next one.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import struct
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import ClassVar, Literal

HEARTBEAT = struct.Struct("!HIBI")
REPORT = struct.Struct("!2sBHIIQQHHIHId")
REPORT_MAGIC = b"LR"
REPORT_VERSION = 1
TAG_SIZE = 16                    # HMAC-SHA256 truncated to 128 bits (RFC 2104 section 5)
MIN_KEY_SIZE = 16
MAX_DATAGRAM = 512               # anything longer is not ours
SEQUENCE_MODULO = 1 << 32
SEQUENCE_EPOCH = 1_704_067_200   # 2024-01-01T00:00:00Z
SEQUENCE_TICKS_PER_S = 10
MIN_PERIOD_S = 1 / SEQUENCE_TICKS_PER_S

MessageKind = Literal["heartbeat", "report"]


class HeartbeatFlag(IntEnum):
    UP = 0
    APPLICATION_DOWN = 1
    PLANNED_FAILURE = 2


class MessageError(ValueError):
    """A datagram the controller drops; the subclass says why."""


class MalformedMessage(MessageError):
    """Wrong size, magic, version or a field out of range."""


class UnauthenticatedMessage(MessageError):
    """Missing or wrong HMAC tag."""


class ReplayedMessage(MessageError):
    """A sequence number not newer than the last one accepted from that host."""


@dataclass(frozen=True)
class Heartbeat:
    host_id: int
    seq: int
    flag: HeartbeatFlag
    timestamp_ms: int          # see the module docstring: wall clock, or ms until the failure

    kind: ClassVar[MessageKind] = "heartbeat"

    @property
    def planned_failure_in_s(self) -> float | None:
        """Seconds from sending until the announced failure; None unless flag is planned."""
        return self.timestamp_ms / 1000 if self.flag == HeartbeatFlag.PLANNED_FAILURE else None


@dataclass(frozen=True)
class LoadReport:
    host_id: int
    seq: int
    uptime_ms: int
    tx_bytes: int
    tx_packets: int
    cpu_percent: float
    memory_percent: float
    load_average: float        # 1-minute load average
    cpus: int
    connections: int           # TCP connections in service on the service port (agent/host_sampler.py)
    custom: float = math.nan   # a configured command's number; NaN when none

    kind: ClassVar[MessageKind] = "report"

    @property
    def run_queue_per_cpu(self) -> float:
        return self.load_average / max(self.cpus, 1)


Message = Heartbeat | LoadReport


def initial_sequence(unix_time: float) -> int:
    """A fresh agent's first sequence number: above any number its earlier runs used."""
    return int((unix_time - SEQUENCE_EPOCH) * SEQUENCE_TICKS_PER_S) % SEQUENCE_MODULO


def is_newer(seq: int, last: int) -> bool:
    """RFC 1982 serial-number comparison on 32 bits: seq comes after last."""
    return 0 < (seq - last) % SEQUENCE_MODULO < SEQUENCE_MODULO // 2


def load_key(path: str | Path) -> bytes:
    """The shared key: the file's bytes, surrounding whitespace stripped, >= 16 bytes
    (e.g. `head -c 32 /dev/urandom | base64 > health.key`)."""
    path = Path(path)
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the health key ({exc.strerror})") from None
    if len(key) < MIN_KEY_SIZE:
        raise ValueError(f"{path}: the health key has {len(key)} bytes, at least {MIN_KEY_SIZE} are needed")
    return key


def _check(name: str, value: int, bits: int) -> int:
    if not 0 <= value < 1 << bits:
        raise ValueError(f"{name} must fit {bits} bits unsigned, got {value}")
    return value


def _fixed(name: str, value: float, scale: int, bits: int) -> int:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return min(round(value * scale), (1 << bits) - 1)   # saturate rather than fail on a spike


class Codec:
    """Encodes and decodes both messages, signing and verifying when it has a key."""

    def __init__(self, key: bytes | None = None) -> None:
        if key is not None and len(key) < MIN_KEY_SIZE:
            raise ValueError(f"the health key needs at least {MIN_KEY_SIZE} bytes, got {len(key)}")
        self.key = key
        self.tag_size = TAG_SIZE if key is not None else 0

    # ---- encoding (agent) --------------------------------------------------------------

    def encode(self, message: Message) -> bytes:
        if isinstance(message, Heartbeat):
            body = HEARTBEAT.pack(_check("host id", message.host_id, 16), _check("sequence", message.seq, 32),
                                  HeartbeatFlag(message.flag), _check("timestamp", message.timestamp_ms, 32))
        else:
            m = message
            body = REPORT.pack(
                REPORT_MAGIC, REPORT_VERSION, _check("host id", m.host_id, 16), _check("sequence", m.seq, 32),
                m.uptime_ms % SEQUENCE_MODULO, _check("tx bytes", m.tx_bytes, 64),
                _check("tx packets", m.tx_packets, 64),
                # Percentages saturate at 100 (a decoder refuses more); others at their width.
                _fixed("cpu percent", min(m.cpu_percent, 100.0), 100, 16),
                _fixed("memory percent", min(m.memory_percent, 100.0), 100, 16),
                _fixed("load average", m.load_average, 1000, 32), _check("cpus", m.cpus, 16),
                _check("connections", m.connections, 32), float(m.custom))
        return body + self._tag(body)

    def _tag(self, body: bytes) -> bytes:
        if self.key is None:
            return b""
        return hmac.new(self.key, body, hashlib.sha256).digest()[:TAG_SIZE]

    # ---- decoding (controller) -----------------------------------------------------------

    def decode(self, datagram: bytes) -> Message:
        """The message in a datagram; MalformedMessage or UnauthenticatedMessage otherwise."""
        size = len(datagram)
        signed = (HEARTBEAT.size + TAG_SIZE, REPORT.size + TAG_SIZE)
        unsigned = (HEARTBEAT.size, REPORT.size)
        if self.key is None and size in signed and size not in unsigned:
            raise MalformedMessage(f"{size} bytes: a signed message, but this controller has no key")
        if self.key is not None and size in unsigned:
            raise UnauthenticatedMessage(f"{size} bytes: no HMAC tag, and this controller requires one")
        body_size = size - self.tag_size
        if body_size not in unsigned:
            raise MalformedMessage(f"{size} bytes: expected {HEARTBEAT.size + self.tag_size} (heartbeat) "
                                   f"or {REPORT.size + self.tag_size} (load report)")
        body, tag = datagram[:body_size], datagram[body_size:]
        if self.key is not None and not hmac.compare_digest(tag, self._tag(body)):
            raise UnauthenticatedMessage("HMAC tag does not match (wrong key, or altered on the way)")
        if body_size == HEARTBEAT.size:
            return self._heartbeat(body)
        return self._report(body)

    @staticmethod
    def _heartbeat(body: bytes) -> Heartbeat:
        host_id, seq, flag, timestamp = HEARTBEAT.unpack(body)
        try:
            flag = HeartbeatFlag(flag)
        except ValueError:
            raise MalformedMessage(f"heartbeat flag {flag} is none of "
                                   f"{', '.join(f'{f.value} ({f.name.lower()})' for f in HeartbeatFlag)}") from None
        return Heartbeat(host_id, seq, flag, timestamp)

    @staticmethod
    def _report(body: bytes) -> LoadReport:
        (magic, version, host_id, seq, uptime, tx_bytes, tx_packets, cpu, memory, load, cpus,
         connections, custom) = REPORT.unpack(body)
        if magic != REPORT_MAGIC:
            raise MalformedMessage(f"load report magic {magic!r}, expected {REPORT_MAGIC!r}")
        if version != REPORT_VERSION:
            raise MalformedMessage(f"load report version {version}, this controller reads {REPORT_VERSION}")
        if cpu > 10000 or memory > 10000:
            raise MalformedMessage(f"load report utilisation above 100 % (cpu {cpu / 100}, memory {memory / 100})")
        if math.isinf(custom):
            raise MalformedMessage("load report custom metric is infinite")
        return LoadReport(host_id, seq, uptime, tx_bytes, tx_packets, cpu / 100, memory / 100, load / 1000,
                          cpus, connections, custom)


class ReplayGuard:
    """The newest sequence number accepted per (host, kind); older or equal ones are replays.

    Record only messages that passed authentication: a forged high number would otherwise
    lock the real agent out.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[int, MessageKind], int] = {}

    def admit(self, message: Message) -> None:
        """Accept and remember the message's number, or raise ReplayedMessage."""
        key = (message.host_id, message.kind)
        last = self._last.get(key)
        if last is not None and not is_newer(message.seq, last):
            raise ReplayedMessage(f"{message.kind} from host {message.host_id}: sequence {message.seq} "
                                  f"is not newer than {last}")
        self._last[key] = message.seq

    def forget(self, host_id: int) -> None:
        for kind in ("heartbeat", "report"):
            self._last.pop((host_id, kind), None)
