"""Wire formats: SARA's 11-byte heartbeat and the load report byte for byte, HMAC, malformed
input with clear errors, replay protection, and the intake that counts every drop."""

import hashlib
import hmac
import math
import struct

import pytest

from controller.health.intake import MessageIntake
from controller.health.messages import (
    HEARTBEAT,
    REPORT,
    SEQUENCE_MODULO,
    TAG_SIZE,
    Codec,
    Heartbeat,
    HeartbeatFlag,
    LoadReport,
    MalformedMessage,
    ReplayedMessage,
    ReplayGuard,
    UnauthenticatedMessage,
    initial_sequence,
    is_newer,
    load_key,
)

KEY = b"0123456789abcdef0123456789abcdef"


def report(host_id=7, seq=1, **changes) -> LoadReport:
    fields = dict(host_id=host_id, seq=seq, uptime_ms=1500, tx_bytes=10**12, tx_packets=10**9, cpu_percent=42.5,
                  memory_percent=12.34, load_average=1.5, cpus=4, connections=17, custom=3.25)
    fields.update(changes)
    return LoadReport(**fields)


def test_heartbeat_is_sara_s_11_bytes_field_by_field():
    data = Codec().encode(Heartbeat(0x0102, 0x03040506, HeartbeatFlag.PLANNED_FAILURE, 0x0708090A))
    assert data == bytes([1, 2, 3, 4, 5, 6, 2, 7, 8, 9, 10])
    assert HEARTBEAT.size == 11


def test_report_layout():
    data = Codec().encode(report())
    assert len(data) == REPORT.size == 51
    assert data[:3] == b"LR\x01"
    assert struct.unpack("!H", data[3:5]) == (7,)
    assert struct.unpack("!Q", data[13:21]) == (10**12,)
    assert struct.unpack("!H", data[29:31]) == (4250,)          # CPU in 1/100 %
    assert struct.unpack("!I", data[33:37]) == (1500,)          # load average in 1/1000
    assert struct.unpack("!d", data[43:51]) == (3.25,)


@pytest.mark.parametrize("key", [None, KEY])
def test_round_trip(key):
    codec = Codec(key)
    for flag in HeartbeatFlag:
        beat = Heartbeat(65535, SEQUENCE_MODULO - 1, flag, 123456)
        assert codec.decode(codec.encode(beat)) == beat
    decoded = codec.decode(codec.encode(report()))
    assert decoded == report(memory_percent=12.34)
    nan = codec.decode(codec.encode(report(custom=math.nan)))
    assert math.isnan(nan.custom)


def test_signed_message_carries_a_truncated_hmac_sha256():
    data = Codec(KEY).encode(Heartbeat(1, 2, HeartbeatFlag.UP, 3))
    assert len(data) == 11 + TAG_SIZE
    assert data[11:] == hmac.new(KEY, data[:11], hashlib.sha256).digest()[:16]


def test_authentication_failures():
    codec = Codec(KEY)
    signed = codec.encode(Heartbeat(1, 2, HeartbeatFlag.UP, 3))
    altered = bytes([signed[0] ^ 1]) + signed[1:]
    with pytest.raises(UnauthenticatedMessage, match="does not match"):
        codec.decode(altered)
    with pytest.raises(UnauthenticatedMessage, match="does not match"):
        Codec(b"another key of 16+ bytes").decode(signed)
    with pytest.raises(UnauthenticatedMessage, match="no HMAC tag"):
        codec.decode(Codec().encode(Heartbeat(1, 2, HeartbeatFlag.UP, 3)))
    with pytest.raises(MalformedMessage, match="no key"):
        Codec().decode(signed)


@pytest.mark.parametrize("data, match", [
    (b"", "0 bytes"),
    (b"\x00" * 10, "expected 11 .heartbeat. or 51"),
    (b"\x00" * 12, "12 bytes"),
    (b"\x00" * 6 + b"\x09" + b"\x00" * 4, "flag 9"),
    (b"XX" + b"\x01" + b"\x00" * 48, "magic"),
    (b"LR" + b"\x02" + b"\x00" * 48, "version 2"),
])
def test_malformed(data, match):
    with pytest.raises(MalformedMessage, match=match):
        Codec().decode(data)


def test_malformed_report_fields():
    good = bytearray(Codec().encode(report()))
    good[29:31] = struct.pack("!H", 10001)
    with pytest.raises(MalformedMessage, match="above 100"):
        Codec().decode(bytes(good))
    good = bytearray(Codec().encode(report()))
    good[43:51] = struct.pack("!d", math.inf)
    with pytest.raises(MalformedMessage, match="infinite"):
        Codec().decode(bytes(good))


def test_encoding_refuses_values_that_do_not_fit():
    with pytest.raises(ValueError, match="host id"):
        Codec().encode(Heartbeat(70000, 1, HeartbeatFlag.UP, 0))
    with pytest.raises(ValueError, match="cpu percent"):
        Codec().encode(report(cpu_percent=-1))
    with pytest.raises(ValueError, match="at least 16"):
        Codec(b"short")


def test_replay_guard_per_host_and_kind_with_wrap():
    guard = ReplayGuard()
    guard.admit(Heartbeat(1, 10, HeartbeatFlag.UP, 0))
    guard.admit(report(host_id=1, seq=3))                    # its own sequence
    guard.admit(Heartbeat(2, 5, HeartbeatFlag.UP, 0))        # another host
    for seq in (10, 9, 10 - SEQUENCE_MODULO // 2 % SEQUENCE_MODULO):
        with pytest.raises(ReplayedMessage, match="not newer than 10"):
            guard.admit(Heartbeat(1, seq % SEQUENCE_MODULO, HeartbeatFlag.UP, 0))
    guard.admit(Heartbeat(1, 11, HeartbeatFlag.UP, 0))
    guard.admit(Heartbeat(3, SEQUENCE_MODULO - 1, HeartbeatFlag.UP, 0))
    guard.admit(Heartbeat(3, 0, HeartbeatFlag.UP, 0))        # wrapped: newer
    assert is_newer(0, SEQUENCE_MODULO - 1) and not is_newer(SEQUENCE_MODULO - 1, 0)


def test_a_restarted_agent_starts_above_its_earlier_numbers():
    # An agent numbers its messages from initial_sequence() + 1 on.
    last_of_first_run = initial_sequence(1_800_000_000.0) + 3600 * 10    # ten a second for an hour
    first_of_second_run = initial_sequence(1_800_000_000.0 + 3600.1) + 1
    assert first_of_second_run > last_of_first_run


def test_load_key(tmp_path):
    path = tmp_path / "key"
    path.write_bytes(KEY + b"\n")
    assert load_key(path) == KEY
    path.write_bytes(b"short\n")
    with pytest.raises(ValueError, match="5 bytes, at least 16"):
        load_key(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_key(tmp_path / "missing")


def test_intake_counts_and_drops_bad_input_without_remembering_it():
    sender = Codec(KEY)
    intake = MessageIntake(Codec(KEY), known_hosts={1})
    beat = sender.encode(Heartbeat(1, 100, HeartbeatFlag.UP, 0))
    assert intake.accept(beat) == Heartbeat(1, 100, HeartbeatFlag.UP, 0)
    assert intake.accept(beat) is None                                         # replayed
    assert intake.accept(b"garbage") is None                                   # malformed
    assert intake.accept(Codec(b"x" * 16).encode(Heartbeat(1, 500, HeartbeatFlag.UP, 0))) is None   # forged
    assert intake.accept(sender.encode(Heartbeat(9, 1, HeartbeatFlag.UP, 0))) is None   # unknown host
    assert intake.accept(Codec().encode(Heartbeat(1, 600, HeartbeatFlag.UP, 0))) is None   # unsigned
    assert intake.dropped == {"malformed": 1, "unauthenticated": 2, "unknown_host": 1, "replayed": 1}
    assert "unauthenticated" in intake.last_error
    # The forged 500 and unsigned 600 did not move the window: 101 is still new.
    assert intake.accept(sender.encode(Heartbeat(1, 101, HeartbeatFlag.UP, 0))) is not None
    assert intake.accept(sender.encode(report(host_id=1, seq=1))) is not None
    assert intake.accepted == {"heartbeat": 2, "report": 1}


def test_values_past_their_range_saturate_rather_than_fail():
    decoded = Codec().decode(Codec().encode(report(cpu_percent=130.0, load_average=1e9)))
    assert decoded.cpu_percent == 100.0 and decoded.load_average == (2**32 - 1) / 1000
