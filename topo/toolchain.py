"""Where the P4 toolchain is (PATH or $P4_PREFIX), and the program rebuilt when its sources change."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from controller.pipeline import BUILD_DIR, REPO, CompiledProgram, compiled_program

__all__ = ["BUILD_DIR", "CompiledProgram", "build_program", "find_tool", "missing_tools"]


def find_tool(name: str) -> str | None:
    prefix = os.environ.get("P4_PREFIX")
    if prefix:
        candidate = Path(prefix) / "bin" / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def missing_tools(*names: str) -> list[str]:
    return [n for n in names if find_tool(n) is None]


def _newest_source_mtime() -> float:
    return max(p.stat().st_mtime for p in (REPO / "p4src").rglob("*.p4"))


def build_program(name: str = "dispatcher") -> CompiledProgram:
    """The compiled program, rebuilt with scripts/build_p4.sh when its sources are newer."""
    program = CompiledProgram.in_build_dir(name)
    stale = not program.bmv2_json.exists() or program.bmv2_json.stat().st_mtime < _newest_source_mtime()
    if stale and find_tool("p4c-bm2-ss") is not None:
        result = subprocess.run(["bash", str(REPO / "scripts" / "build_p4.sh")],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/build_p4.sh failed:\n{result.stderr.strip()}")
    return compiled_program(name)
