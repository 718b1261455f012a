"""Where the P4 toolchain is (PATH or $P4_PREFIX) and the compiled program (build/)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO / "build"


def find_tool(name: str) -> str | None:
    prefix = os.environ.get("P4_PREFIX")
    if prefix:
        candidate = Path(prefix) / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if find_tool(n) is None]


@dataclass(frozen=True)
class CompiledProgram:
    name: str
    bmv2_json: Path
    p4info: Path


def _newest_source_mtime() -> float:
    return max(p.stat().st_mtime for p in (REPO / "p4src").rglob("*.p4"))


def compiled_program(name: str = "dispatcher", rebuild: bool = True) -> CompiledProgram:
    """The compiled program, (re)built with scripts/build_p4.sh when its sources are newer."""
    prog = CompiledProgram(name, BUILD_DIR / f"{name}.json", BUILD_DIR / f"{name}.p4info.txtpb")
    stale = not prog.bmv2_json.exists() or prog.bmv2_json.stat().st_mtime < _newest_source_mtime()
    if stale and rebuild:
        result = subprocess.run(["bash", str(REPO / "scripts" / "build_p4.sh")],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/build_p4.sh failed:\n{result.stderr.strip()}")
    if not prog.bmv2_json.exists():
        raise FileNotFoundError(f"{prog.bmv2_json} is missing: run scripts/build_p4.sh")
    return prog
