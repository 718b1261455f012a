"""The TNA (Tofino) program's checkers: bf-p4c when installed, else p4test with TNA's includes.

Nothing of the Tofino toolchain ships with this project. bf-p4c (the p4c driver for the
Tofino backend, also installed as p4c-barefoot's front) is looked for on PATH, under
$P4_PREFIX and $SDE_INSTALL; TNA's include files (tna.p4, t2na.p4 and what they include)
in $TNA_P4INCLUDE, beside bf-p4c (../share/p4c/p4include) or under $SDE_INSTALL.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.pipeline import REPO
from topo.toolchain import find_tool

TNA_MAIN = REPO / "p4src" / "tna" / "main.p4"


@dataclass(frozen=True)
class TofinoChip:
    target: str        # bf-p4c --target
    arch: str          # bf-p4c --arch
    version: int       # __TARGET_TOFINO__


TOFINO1 = TofinoChip("tofino", "tna", 1)
TOFINO2 = TofinoChip("tofino2", "t2na", 2)
CHIPS = (TOFINO1, TOFINO2)


def _sde_install() -> Path | None:
    sde = os.environ.get("SDE_INSTALL")
    return Path(sde) if sde else None


def find_bf_p4c() -> str | None:
    """The Tofino compiler's driver, if installed."""
    for name in ("bf-p4c", "p4c-barefoot"):
        found = find_tool(name)
        if found:
            return found
        sde = _sde_install()
        if sde and os.access(sde / "bin" / name, os.X_OK):
            return str(sde / "bin" / name)
    return None


def find_tna_include() -> Path | None:
    """A directory holding tna.p4 and t2na.p4."""
    candidates = []
    if os.environ.get("TNA_P4INCLUDE"):
        candidates.append(Path(os.environ["TNA_P4INCLUDE"]))
    bf_p4c = find_bf_p4c()
    if bf_p4c:
        candidates.append(Path(bf_p4c).resolve().parent.parent / "share" / "p4c" / "p4include")
    sde = _sde_install()
    if sde:
        candidates.append(sde / "share" / "p4c" / "p4include")
    candidates.append(Path("/opt/p4c-tofino/share/p4c/p4include"))   # where NOTES put it here
    for directory in candidates:
        if (directory / "tna.p4").is_file() and (directory / "t2na.p4").is_file():
            return directory
    return None


def missing_checker() -> str | None:
    """None when some checker can compile p4src/tna; else why none can."""
    if find_bf_p4c() is not None:
        return None
    if find_tool("p4test") is None:
        return "neither bf-p4c / p4c-barefoot nor p4test found (PATH, $P4_PREFIX, $SDE_INSTALL)"
    if find_tna_include() is None:
        return ("bf-p4c not found, and p4test has no TNA include files (tna.p4: set $TNA_P4INCLUDE "
                "or install bf-p4c's p4include)")
    return None


def bf_p4c_command(chip: TofinoChip, out_dir: Path, defines: dict[str, str | int] | None = None) -> list[str]:
    command = [str(find_bf_p4c()), "--target", chip.target, "--arch", chip.arch, "--std", "p4-16",
               "-o", str(out_dir), "--p4runtime-files", str(out_dir / "p4info.txtpb")]
    command += [f"-D{name}={value}" for name, value in (defines or {}).items()]
    return command + [str(TNA_MAIN)]


def p4test_command(chip: TofinoChip, include: Path) -> list[str]:
    # p4test's own uninitialized-use analysis does not know that a RegisterAction's body
    # runs inside execute(): warnings only, kept visible.
    return [str(find_tool("p4test")), "-I", str(include), f"-D__TARGET_TOFINO__={chip.version}",
            "--Wdisable=uninitialized_out_param", str(TNA_MAIN)]


def p4test_tables_p4info(chip: TofinoChip, out: Path) -> Path | None:
    """The P4Info p4test writes for the TNA program: tables, actions and packet metadata are
    there; it then stops on TNA's externs (counters, registers, digests), which only
    bf-p4c's P4Runtime serializer knows (p4test 1.2.4.11 exits with a crash there). None
    when it wrote nothing."""
    include = find_tna_include()
    if include is None or find_tool("p4test") is None:
        return None
    command = p4test_command(chip, include) + ["--p4runtime-files", str(out)]
    subprocess.run(command, capture_output=True, text=True)
    return out if out.exists() and out.stat().st_size > 0 else None


def check_tna(chip: TofinoChip, out_dir: Path) -> subprocess.CompletedProcess[str]:
    """Compile p4src/tna for `chip` with the best checker here (bf-p4c, else p4test)."""
    if find_bf_p4c() is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        command = bf_p4c_command(chip, out_dir)
    else:
        include = find_tna_include()
        if include is None:
            raise FileNotFoundError(missing_checker())
        command = p4test_command(chip, include)
    return subprocess.run(command, capture_output=True, text=True)
