"""The compiled P4 program the controller pushes: BMv2 JSON and P4Info under build/.
(A Tofino build is controller/p4runtime/targets.py's TofinoProgram: the same three calls.)"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build"


@dataclass(frozen=True)
class CompiledProgram:
    name: str
    bmv2_json: Path
    p4info: Path

    @classmethod
    def in_build_dir(cls, name: str, build_dir: Path = BUILD_DIR) -> CompiledProgram:
        return cls(name, build_dir / f"{name}.json", build_dir / f"{name}.p4info.txtpb")

    @property
    def label(self) -> str:
        return self.bmv2_json.name

    def device_config(self) -> bytes:
        """SetForwardingPipelineConfig's p4_device_config: BMv2 takes its JSON as it is."""
        return self.bmv2_json.read_bytes()

    def cookie(self) -> int:
        """A 64-bit fingerprint of the program: the switch keeps it with the pipeline, so a
        controller can tell whether the switch already runs this very program."""
        digest = hashlib.sha256(self.bmv2_json.read_bytes() + self.p4info.read_bytes()).digest()
        return int.from_bytes(digest[:8], "big") >> 1   # positive in a signed 64-bit field


def compiled_program(name: str = "dispatcher", build_dir: Path = BUILD_DIR) -> CompiledProgram:
    """The program as built by scripts/build_p4.sh; a clear error when it is not there."""
    program = CompiledProgram.in_build_dir(name, build_dir)
    for path in (program.bmv2_json, program.p4info):
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run `bash scripts/build_p4.sh` (needs p4c)")
    return program
