"""tests/unit: no root, no P4 toolchain, no processes of their own (seconds:
`bash scripts/test.sh tests/unit`). tests/integration: real BMv2, p4c, Mininet, processes
and sockets; each skips with its one-line reason when what it needs is missing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# The optional corpus (real captures, published CDFs): the tests use the development copy
# beside the checkout unless P4DISPATCH_SHARED_DATA names another; absent, its tests skip.
os.environ.setdefault("P4DISPATCH_SHARED_DATA", str(REPO.parent / "shared" / "data"))
# The repository (controller, topo, ...) and tests/ itself (helpers both folders import,
# such as switch_stub.py) are importable from tests/unit and tests/integration alike.
for path in (REPO, REPO / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in Path(str(item.fspath)).parts:
            item.add_marker(pytest.mark.integration)


from topo.lifetime import ProcessId, descendants, kill_all, tied  # noqa: E402


class Children:
    """Processes a test starts, and everything they start, ended when the test ends.

    Each child gets a session of its own (a signal to its group reaches it and whatever it
    started in that group), SIGINT and SIGTERM at their defaults whatever this test run
    inherited (pytest run as a background job has SIGINT ignored, and so would its children),
    and a parent-death signal (if the test run is killed, so are they). At the end of the
    test, a child still running gets SIGTERM and `grace` seconds to stop, then SIGKILL to its
    group; and every process found below a child, before it was signalled, is killed too:
    processes in sessions of their own (a switch, Mininet's hosts) are not in its group.
    """

    def __init__(self) -> None:
        self.started: list[subprocess.Popen] = []
        self.below: set[ProcessId] = set()

    def start(self, args: list[str], **popen_args) -> subprocess.Popen:
        popen_args.setdefault("start_new_session", True)
        proc = subprocess.Popen(tied(args), **popen_args)
        self.started.append(proc)
        return proc

    def note_descendants(self, proc: subprocess.Popen) -> list[ProcessId]:
        """Remember what runs below `proc` now (to end it even after `proc` is gone)."""
        found = descendants(proc.pid)
        self.below.update(found)
        return found

    def signal_group(self, proc: subprocess.Popen, signum: int) -> None:
        self.note_descendants(proc)
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signum)

    def end_all(self, grace: float = 30.0) -> None:
        for proc in self.started:
            if proc.poll() is None:
                self.signal_group(proc, signal.SIGTERM)
                try:
                    proc.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self.signal_group(proc, signal.SIGKILL)
                    proc.wait(timeout=10)
            else:
                # Its group may outlive it (children that did not die with it).
                with suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
            for stream in (proc.stdout, proc.stderr, proc.stdin):
                if stream is not None:
                    stream.close()
        left = kill_all(self.below)
        assert not left, f"processes that would not die: {left}"


@pytest.fixture
def children() -> Iterator[Children]:
    """Start processes with `children.start([...])`; all of them, and what they started, end
    with the test, passed or failed."""
    started = Children()
    try:
        yield started
    finally:
        started.end_all()
