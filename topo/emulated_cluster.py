"""The life of an emulated cluster: build the Mininet network, start it, set its hosts up,
and take everything down again, whatever failed on the way.

A cluster owns its network, the BMv2 switch process (through the switch node) and every
process it starts in its hosts. Subclasses say what the network is (`build_topo`), how the
hosts are set up (`configure_hosts`), and what controller configuration fits it.
Mininet is imported only when a network is built, so the pure parts (addresses, ports,
configurations) load and can be tested where Mininet is missing.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from topo.lifetime import teardown
from topo.mininet_support import HostProcesses, links_named_after, remove_leftover_links, switches_using
from topo.static_pipeline import push_pipeline
from topo.toolchain import REPO

DISPATCHER = "disp1"          # the BMv2 switch's node name (its ports: disp1-eth<N>)


class EmulatedCluster:
    """Context manager: `with Cluster(spec, workdir) as cluster:` starts, the exit stops."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir)
        self.net: Any = None          # a mininet.net.Mininet while started
        self.processes = HostProcesses()
        self.link_reaper: subprocess.Popen | None = None

    # ---- what a subclass provides ---------------------------------------------------

    def node_names(self) -> list[str]:
        """Every node's name: clean-up removes interfaces named after them."""
        raise NotImplementedError

    def build_topo(self):
        """The mininet.topo.Topo of this cluster."""
        raise NotImplementedError

    def configure_hosts(self) -> None:
        """Addresses, routes, ARP and sysctls once the network is up."""
        raise NotImplementedError

    @property
    def program(self) -> str:
        return "dispatcher"

    # ---- life --------------------------------------------------------------------------

    def start(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet

        from topo.mininet_nodes import TiedHost

        setLogLevel("warning")
        # Importing mininet.log makes every logger created afterwards a MininetLogger (its own
        # console handler, level "output"): the controller's loggers, created when the demo
        # starts it, would then drop INFO (ring rewrites) and miss the demo's log file.
        logging.setLoggerClass(logging.Logger)
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A run that crashed before its clean-up leaves veth ends and bridges in the root
        # namespace, and Mininet would fail on the names; but a network of the same names
        # that is running (a demo) is not ours to remove.
        running = switches_using(self.node_names())
        if running:
            raise RuntimeError(f"a network with these node names is running (switch pid {running}): "
                               "stop it first, or kill that pid if a crashed run left it")
        remove_leftover_links(self.node_names())
        # No Mininet controller (the P4Runtime client is ours), no automatic addresses, MACs
        # or ARP: the topology sets them all, deliberately. Built inside start(), not by the
        # constructor, so that a failure half-way through leaves a `net` to stop. Hosts are
        # TiedHosts: their shells and processes die with this thread if the run is killed.
        self.net = Mininet(topo=self.build_topo(), controller=None, host=TiedHost, autoSetMacs=False,
                           autoStaticArp=False, waitConnected=False, build=False)
        try:
            self.net.build()          # nodes (their shells) and links
            self._start_link_reaper()
            self.net.start()          # starts the switches (BMv2 waits for gRPC)
            self.configure_hosts()
        except BaseException:
            self.stop()
            raise

    def _start_link_reaper(self) -> None:
        """A watcher that deletes this network's root-namespace interfaces (the switch's ports)
        if this process dies without stop(): a killed run's hosts die with it, but sockets may
        keep their namespaces, and so those interfaces, for minutes (topo/link_reaper.py).
        Not tied to this process, on purpose; stop() ends it."""
        links = links_named_after(self.node_names())
        if not links:
            return
        with (self.workdir / "link-reaper.out").open("w") as out:
            self.link_reaper = subprocess.Popen(
                [sys.executable, "-m", "topo.link_reaper", "--parent", str(os.getpid()),
                 *(f"{name}:{index}" for name, index in links.items())],
                cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)   # a Ctrl-C at the terminal is not for it

    def stop(self) -> None:
        """Processes first (they hold interfaces), then the network, then any leftover link.

        Every step is tried even if one before it failed (the first error is raised at the
        end), and a stop signal arriving meanwhile waits until all of them are done
        (topo.lifetime.teardown): half a clean-up is what leaves a network of these names
        running for the next run to trip over.
        """
        with teardown():
            try:
                self.processes.stop_all()
            finally:
                try:
                    if self.net is not None:
                        try:
                            self.net.stop()
                        finally:
                            self.net = None
                finally:
                    try:
                        remove_leftover_links(self.node_names())
                    finally:
                        # Last: until here a kill of this process would still leave it to act.
                        if self.link_reaper is not None:
                            self.link_reaper.kill()
                            self.link_reaper.wait()
                            self.link_reaper = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- access --------------------------------------------------------------------------

    @property
    def switch(self):
        """The BMv2 node (a topo.mininet_bmv2.Bmv2P4RuntimeSwitch)."""
        return self.net.get(DISPATCHER)

    def host(self, name: str):
        return self.net.get(name)

    def connect(self, election_id: int = 1) -> tuple[P4RuntimeClient, P4InfoIndex]:
        """A primary P4Runtime session with this cluster's program pushed (the caller closes it)."""
        return push_pipeline(self.switch.grpc_address, self.program, self.switch.device_id, election_id)

    def wait_for_listener(self, host, port: int, timeout: float = 10.0) -> None:
        """Until something in `host` listens on TCP `port` (a server started with popen)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if host.cmd(f"ss -ltnH 'sport = :{port}'").strip():
                return
            time.sleep(0.1)
        raise TimeoutError(f"nothing listens on port {port} in {host.name} after {timeout:.0f} s")

    def run_in(self, host, args: list[str], label: str, timeout: float,
               **popen_args) -> subprocess.CompletedProcess:
        """Run a command in a host to completion (tracked, so a stuck one is ended at stop)."""
        proc = self.processes.start(host, args, label, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    **popen_args)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.processes.stop(proc)
            out, err = proc.communicate()
            raise TimeoutError(f"{label} in {host.name} did not finish in {timeout:.0f} s:\n"
                               f"{err.decode(errors='replace')[-2000:]}") from None
        return subprocess.CompletedProcess(args, proc.returncode, out.decode(errors="replace"),
                                           err.decode(errors="replace"))
