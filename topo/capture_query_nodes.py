"""Dask on the capture cluster: the scheduler on the query host, a worker on every capture node.

Each worker runs in its capture node's network namespace, listens on the node's address of
the query network (topo/capture_cluster.py, `query_network`) and is named after the node, so
`query` (capture_query) runs each chunk on the node that holds it: where tcpdump wrote it.
Work stealing is off in the scheduler: a chunk runs where it is placed, as on the embedded
cluster. Mininet's hosts share the file system, so the store is one path every worker sees.
The processes are the cluster's (HostProcesses): they end when the cluster stops.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from topo.capture_cluster import QUERY_HOST, QUERY_HOST_ADDRESS, CaptureCluster
from topo.toolchain import REPO

SCHEDULER_PORT = 8786      # inside the query host's namespace: no other process is there


class CaptureQueryNodes:
    def __init__(self, cluster: CaptureCluster) -> None:
        if not cluster.spec.query_network:
            raise ValueError("the capture cluster was built without its query network")
        self.cluster = cluster
        self.address = f"tcp://{QUERY_HOST_ADDRESS}:{SCHEDULER_PORT}"
        self._env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": "False"}

    def start(self, timeout: float = 120.0) -> str:
        """The scheduler and a worker per node; returns the scheduler's address once every
        worker has joined."""
        spec, dask = self.cluster.spec, str(Path(sys.executable).with_name("dask"))
        self.cluster.processes.start(
            self.cluster.host(QUERY_HOST),
            [dask, "scheduler", "--host", QUERY_HOST_ADDRESS, "--port", str(SCHEDULER_PORT), "--no-dashboard"],
            "dask scheduler", output=self.cluster.workdir / "dask-scheduler.out", env=self._env)
        for k in spec.probe_indices():
            name = spec.probe_name(k)
            self.cluster.processes.start(
                self.cluster.host(name),
                [dask, "worker", self.address, "--name", name, "--nthreads", "1", "--no-nanny",
                 "--host", spec.probe_query_address(k), "--no-dashboard", "--memory-limit", "1GiB"],
                f"dask worker {name}", output=self.cluster.workdir / f"dask-worker-{name}.out", env=self._env)
        waited = self.run(
            [sys.executable, "-c", "import sys; from distributed import Client; "
             f"c = Client({self.address!r}, timeout={timeout}); c.wait_for_workers({spec.probes}, timeout={timeout})"],
            "wait for the Dask workers", timeout + 30)
        if waited.returncode != 0:
            logs = "".join(p.read_text(errors="replace")[-1500:]
                           for p in sorted(self.cluster.workdir.glob("dask-*.out")))
            raise RuntimeError(f"the Dask workers did not all join in {timeout:.0f} s:\n"
                               f"{waited.stderr[-1500:]}\n{logs}")
        return self.address

    def run(self, args: list[str], label: str, timeout: float) -> subprocess.CompletedProcess:
        """A command on the query host (the `query` command line, say), to completion."""
        return self.cluster.run_in(self.cluster.host(QUERY_HOST), args, label, timeout, cwd=REPO, env=self._env)
