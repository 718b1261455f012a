"""ruff and mypy, configured in pyproject.toml, stay clean: a change that breaks either fails
here as it would in review."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (requirements.txt has it)")
    return found


@pytest.mark.parametrize("command", [["ruff", "check", "."], ["mypy"]], ids=["ruff", "mypy"])
def test_static_checks_pass(command: list[str]) -> None:
    done = subprocess.run([tool(command[0]), *command[1:]], cwd=REPO, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} found problems:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
