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
  TNA digest leaves out cache_slot and timestamp_us: p4src/tna/metadata.p4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from controller.dataplane.constants import CPU_PORT
from controller.pipeline import BUILD_DIR

# flow_digest_t (p4src/shared/metadata.p4) and tna_flow_digest_t (p4src/tna/metadata.p4),
# in member order.
BMV2_DIGEST_FIELDS = ("src_addr", "dst_addr", "protocol", "src_port", "dst_port", "service_id",
                      "backend_id", "cache_slot", "timestamp_us", "tcp_flags", "rtt_us", "flags")
TNA_DIGEST_FIELDS = ("src_addr", "dst_addr", "protocol", "src_port", "dst_port", "service_id",
                     "backend_id", "tcp_flags", "rtt_us", "flags")

TOFINO_PORTS_PER_PIPE = 128   # dev_port = pipe << 7 | port (tofino1_specs.p4: DEVPORT_PIPE)


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

    def device_config(self, files: PipelineFiles, program: str = "dispatcher") -> bytes:
        """The bytes of SetForwardingPipelineConfig's p4_device_config."""
        if self.name == "bmv2":
            return files.device_files[0].read_bytes()
        binary, context = (path.read_bytes() for path in files.device_files)
        return tofino_device_config(program, binary, context)


def tofino_device_config(program: str, tofino_bin: bytes, context_json: bytes) -> bytes:
    """p4.tmp.P4DeviceConfig{device_data} as bf_switchd's P4Runtime server reads it: the
    program name, tofino.bin and context.json, each after its length (int32, little
    endian). Serialized by hand: field 3 (device_data), length-delimited."""
    data = b"".join(struct.pack("<i", len(part)) + part
                    for part in (program.encode(), tofino_bin, context_json))
    return b"\x1a" + _varint(len(data)) + data


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
# Tofino 1: the PCIe CPU port of pipe 0 is dev_port 64 (also the Tofino model's);
# Tofino 2: 0. p4src/tna/metadata.p4 compiles the same numbers in (TNA_CPU_PORT).
TOFINO = Target("tofino", cpu_port=64, digest_fields=TNA_DIGEST_FIELDS, ports_per_pipe=TOFINO_PORTS_PER_PIPE)
TOFINO2 = Target("tofino2", cpu_port=0, digest_fields=TNA_DIGEST_FIELDS, ports_per_pipe=TOFINO_PORTS_PER_PIPE)

TARGETS = {target.name: target for target in (BMV2, TOFINO, TOFINO2)}


def target_named(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r} (known: {', '.join(TARGETS)})") from None
