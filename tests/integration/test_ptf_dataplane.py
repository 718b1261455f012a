"""The PTF suite (ptf_tests/) on a real BMv2, one pytest case per PTF test.

Every PTF test gets a fresh switch (see ptf_tests/run_ptf.py for why). Skips with the
reason when root or the toolchain is missing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from topo.bmv2_testbed import missing_testbed_reason

PTF_DIR = Path(__file__).resolve().parents[2] / "ptf_tests"


def ptf_test_names() -> list[str]:
    """module.Class for every class in ptf_tests/test_*.py that defines runTest."""
    names = []
    for path in sorted(PTF_DIR.glob("test_*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(
                    isinstance(n, ast.FunctionDef) and n.name == "runTest" for n in node.body):
                names.append(f"{path.stem}.{node.name}")
    return names


@pytest.mark.parametrize("name", ptf_test_names())
def test_ptf(name):
    reason = missing_testbed_reason()
    if reason:
        pytest.skip(reason)
    from ptf_tests.run_ptf import run_one
    result = run_one(name)
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_suite_is_not_empty():
    assert len(ptf_test_names()) >= 20
