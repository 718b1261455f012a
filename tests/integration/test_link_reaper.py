"""topo/link_reaper.py: once the run that started it is gone, it deletes the interfaces it
was given, and only those (same name and index). Needs root: it makes a veth pair of its own
in this namespace, named after this test, and removes it whatever happens."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from topo.link_reaper import ifindex

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (makes a veth pair)")


@pytest.fixture
def veth():
    name = f"lrt{os.getpid() % 100000}"

    def make() -> int:
        subprocess.run(["ip", "link", "del", "dev", name], capture_output=True)
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p"],
                       check=True, capture_output=True)
        index = ifindex(name)
        assert index is not None
        return index
    try:
        yield name, make
    finally:
        subprocess.run(["ip", "link", "del", "dev", name], capture_output=True)


def run_and_kill(name: str, index: int) -> None:
    """A stand-in for a run: a shell that starts the reaper for it and is then killed."""
    before = ifindex(name)
    run = subprocess.Popen(["bash", "-c", f'{sys.executable} -m topo.link_reaper --interval 0.1 '
                                          f'--parent $$ {name}:{index} & sleep 60'], cwd=REPO)
    try:
        time.sleep(1.0)          # the reaper is up and watching
        assert ifindex(name) == before, "the reaper acted while its run was alive"
    finally:
        run.kill()
        run.wait()


def test_the_interfaces_of_a_killed_run_are_deleted(veth):
    name, make = veth
    index = make()
    run_and_kill(name, index)
    deadline = time.monotonic() + 10
    while ifindex(name) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ifindex(name) is None and ifindex(f"{name}p") is None


def test_an_interface_of_the_same_name_made_since_is_left_alone(veth):
    name, make = veth
    old = make()
    new = make()                 # another run's interface of that name
    assert new != old
    run_and_kill(name, old)
    time.sleep(2)
    assert ifindex(name) == new
