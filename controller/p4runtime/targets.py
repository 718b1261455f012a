"""What differs between the switches the controller drives: BMv2 and Tofino (TNA).

The controller speaks one P4Info vocabulary to both (the same table, action, counter and
digest names: p4src/v1model and p4src/tna are built from one source of names). What is not
a name lives here, one Target per switch:

* the CPU port (packet-in/out, the clone session to the CPU);
* device port numbers (Tofino's dev_port = pipe << 7 | port);
* the pipeline config that SetForwardingPipelineConfig carries: BMv2 takes its JSON as
  it is; the SDE's P4Runtime server (bf_switchd) takes a p4.tmp.P4DeviceConfig whose
  device_data packs the program name, tofino.bin and context.json;
* the compiler's output files, under build/ (scripts/build_p4.sh);
* the members of the new-flow digest (Tofino's learning quantum holds 48 bytes, so the
  TNA digest leaves out cache_slot and timestamp_us: p4src/tna/metadata.p4);
* the data plane's timer unit (TNA: 2^26 ns, its coarse clock), the counters that together make
  v1model's dispatch_events, and how a capture node's packets are truncated (TNA: a
  mirror session per node).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from controller.dataplane.constants import CPU_PORT
from controller.pipeline import BUILD_DIR, compiled_program

# flow_digest_t (p4src/shared/metadata.p4) and tna_flow_digest_t (p4src/tna/metadata.p4),
# in member order.
BMV2_DIGEST_FIELDS = ("src_addr", "dst_addr", "protocol", "src_port", "dst_port", "service_id",
                      "backend_id", "cache_slot", "timestamp_us", "tcp_flags", "rtt_us", "flags")
TNA_DIGEST_FIELDS = ("src_addr", "dst_addr", "protocol", "src_port", "dst_port", "service_id",
                     "backend_id", "tcp_flags", "rtt_us", "flags")

T = TypeVar("T")

TOFINO_PORTS_PER_PIPE = 128   # dev_port = pipe << 7 | port (tofino1_specs.p4: DEVPORT_PIPE)
TNA_CAPTURE_MIRROR_SESSION_BASE = 128   # p4src/tna/metadata.p4: session of capture node b = 128 + b
# p4src/tna/flow_dispatch.p4: one counter access per packet, so v1model's dispatch_events is
# split by EVENT_* index: 1-5, 6-7, 8, 9-10, 11-12, 13-14.
TNA_EVENT_COUNTERS = ("dispatch_events", "digest_events", "checksum_events", "generation_events", "entry_events",
                      "announced_events")
EVENT_DIGEST, EVENT_DIGEST_RETRY = 6, 7   # p4src/shared/constants.p4


class Program(Protocol):
    """A compiled program as the controller loads it (pipeline.CompiledProgram, TofinoProgram)."""
    @property
    def name(self) -> str: ...

    @property
    def p4info(self) -> Path: ...

    @property
    def label(self) -> str: ...

    def device_config(self) -> bytes: ...

    def cookie(self) -> int: ...


@dataclass(frozen=True)
class TofinoProgram:
    """bf-p4c's output for one chip, loaded through bf_switchd's P4Runtime server."""
    name: str
    p4info: Path
    tofino_bin: Path
    context_json: Path

    @property
    def label(self) -> str:
        return f"{self.tofino_bin.parent.parent.name}/{self.tofino_bin.name}"

    def device_config(self) -> bytes:
        return tofino_device_config(self.name, self.tofino_bin.read_bytes(), self.context_json.read_bytes())

    def cookie(self) -> int:
        digest = hashlib.sha256(self.device_config() + self.p4info.read_bytes()).digest()
        return int.from_bytes(digest[:8], "big") >> 1   # positive in a signed 64-bit field


@dataclass(frozen=True)
class PipelineFiles:
    """The compiler's output for one target: P4Info and what becomes p4_device_config."""
    p4info: Path
    device_files: tuple[Path, ...]


@dataclass(frozen=True)
class Target:
    """One kind of switch: how its ports are numbered and how its pipeline is loaded."""
    name: str
    cpu_port: int
    digest_fields: tuple[str, ...]
    ports_per_pipe: int | None = None     # None: ports are plain numbers (BMv2)
    time_unit_ns: int = 1000              # the data plane's timer unit (TNA: 2^26 ns, 67.1 ms)
    event_counters: tuple[str, ...] = ("dispatch_events",)
    capture_mirror_session_base: int | None = None   # None: truncate() in the data plane

    def timer_value(self, microseconds: int) -> int:
        """A timer for dispatch_settings, given in microseconds, in the data plane's unit
        (rounded up: a timer is never shorter than asked)."""
        return -(-microseconds * 1000 // self.time_unit_ns)

    def capture_mirror_session(self, backend_id: int) -> int | None:
        """The mirror session that truncates capture node `backend_id`'s copies, if any."""
        if self.capture_mirror_session_base is None:
            return None
        return self.capture_mirror_session_base + backend_id

    def device_port(self, port: int, pipe: int = 0) -> int:
        """The P4Runtime port number of front-panel `port` on `pipe`."""
        if self.ports_per_pipe is None:
            if pipe:
                raise ValueError(f"{self.name} has one pipe; got pipe {pipe}")
            return port
        if not 0 <= port < self.ports_per_pipe:
            raise ValueError(f"port {port} is not in 0..{self.ports_per_pipe - 1}")
        return pipe * self.ports_per_pipe + port

    def pipeline_files(self, program: str = "dispatcher", build_dir: Path = BUILD_DIR) -> PipelineFiles:
        if self.name == "bmv2":
            return PipelineFiles(build_dir / f"{program}.p4info.txtpb", (build_dir / f"{program}.json",))
        out = build_dir / "tna" / self.name
        return PipelineFiles(out / "p4info.txtpb", (out / "pipe" / "tofino.bin", out / "pipe" / "context.json"))

    def program(self, name: str = "dispatcher", build_dir: Path = BUILD_DIR) -> Program:
        """The compiled program for this target (scripts/build_p4.sh); a clear error if missing."""
        if self.name == "bmv2":
            return compiled_program(name, build_dir)
        files = self.pipeline_files(name, build_dir)
        for path in (files.p4info, *files.device_files):
            if not path.exists():
                raise FileNotFoundError(f"{path} is missing: build p4src/tna with bf-p4c "
                                        "(scripts/build_p4.sh does when bf-p4c is installed)")
        return TofinoProgram(name, files.p4info, *files.device_files)


def tofino_device_config(program: str, tofino_bin: bytes, context_json: bytes) -> bytes:
    """p4.tmp.P4DeviceConfig{device_data} as bf_switchd's P4Runtime server reads it: the
    program name, tofino.bin and context.json, each after its length (int32, little
    endian). Serialized by hand: field 3 (device_data), length-delimited."""
    data = b"".join(struct.pack("<i", len(part)) + part
                    for part in (program.encode(), tofino_bin, context_json))
    return b"\x1a" + _varint(len(data)) + data


def merge_event_counters(target: Target, readings: dict[str, dict[int, T]],
                         add: Callable[[T, T], T]) -> dict[int, T]:
    """v1model's dispatch_events from the target's event counters, read by name: TNA
    splits it by index (one counter access per packet) and counts a repeated digest at
    EVENT_DIGEST_RETRY only, where v1model counts it at EVENT_DIGEST too."""
    merged: dict[int, T] = {}
    for name in target.event_counters:
        for index, value in readings.get(name, {}).items():
            merged[index] = add(merged[index], value) if index in merged else value
    if len(target.event_counters) > 1 and EVENT_DIGEST_RETRY in merged:
        retries = merged[EVENT_DIGEST_RETRY]
        merged[EVENT_DIGEST] = add(merged[EVENT_DIGEST], retries) if EVENT_DIGEST in merged else retries
    return merged


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


BMV2 = Target("bmv2", cpu_port=CPU_PORT, digest_fields=BMV2_DIGEST_FIELDS)


def _tna(name: str, cpu_port: int) -> Target:
    return Target(name, cpu_port, TNA_DIGEST_FIELDS, ports_per_pipe=TOFINO_PORTS_PER_PIPE, time_unit_ns=1 << 26,
                  event_counters=TNA_EVENT_COUNTERS, capture_mirror_session_base=TNA_CAPTURE_MIRROR_SESSION_BASE)


# Tofino 1: the PCIe CPU port of pipe 0 is dev_port 64 (also the Tofino model's);
# Tofino 2: 0. p4src/tna/metadata.p4 compiles the same numbers in (TNA_CPU_PORT).
TOFINO = _tna("tofino", cpu_port=64)
TOFINO2 = _tna("tofino2", cpu_port=0)

TARGETS = {target.name: target for target in (BMV2, TOFINO, TOFINO2)}


def target_named(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r} (known: {', '.join(TARGETS)})") from None
