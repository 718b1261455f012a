"""tests/unit: no root, no P4 toolchain, no processes of their own (seconds:
`bash scripts/test.sh tests/unit`). tests/integration: real BMv2, p4c, Mininet, processes
and sockets; each skips with its one-line reason when what it needs is missing."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)
