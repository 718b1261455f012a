"""What every Mininet topology here needs: a check that it can run, free ports, commands in
hosts that fail loudly, and clean-up that touches only what this run made. Nothing here
imports Mininet, so the topologies' pure parts load where it is missing.

Clean-up is deliberately narrower than `mn -c`, which kills every `mnexec` and controller on
the machine and deletes /tmp/*.log: here only interfaces named after this topology's nodes
and processes this run started are removed, so a demo or another test run is left alone.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from topo.lifetime import missing_lifetime_tools
from topo.toolchain import BUILD_DIR, find_tool


def missing_mininet_reason(program: str = "dispatcher") -> str | None:
    """Why a Mininet topology with a BMv2 switch cannot run here, in one line; None when it can."""
    if os.geteuid() != 0:
        return "Mininet needs root (network namespaces, veth pairs)"
    if importlib.util.find_spec("mininet") is None:
        return "mininet is not importable (Debian package `mininet`, linked into .venv by scripts/setup.sh)"
    for tool in ("mnexec", "ip", "tc", "ethtool"):
        if shutil.which(tool) is None:
            return f"{tool} not found on PATH (needed by Mininet topologies)"
    lifetime = missing_lifetime_tools()
    if lifetime:
        return lifetime
    if find_tool("simple_switch_grpc") is None:
        return "simple_switch_grpc (BMv2 with P4Runtime) not found on PATH or under $P4_PREFIX"
    if find_tool("p4c-bm2-ss") is None and not (BUILD_DIR / f"{program}.json").exists():
        return f"p4c-bm2-ss not found and build/{program}.json not built"
    return None


def plain_logging() -> None:
    """Undo what importing Mininet does to logging: it makes every logger created afterwards a
    MininetLogger with a console handler of its own (no newline), so the controller's loggers,
    created when the controller is, would print to the console whatever the root logger says.
    Call before the controller is created; loggers made earlier lose those handlers."""
    if importlib.util.find_spec("mininet") is None:
        return
    import mininet.log

    logging.setLoggerClass(logging.Logger)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, mininet.log.MininetLogger) and name != "mininet":
            for handler in list(logger.handlers):
                logger.removeHandler(handler)


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port (a switch's gRPC server is up)."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def free_tcp_port() -> int:
    """A TCP port nothing listens on now, so parallel test runs and a running demo don't collide."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True)


def checked_cmd(node, command: str) -> None:
    """Run a quiet command (ip, sysctl -q) in a Mininet node; any output is its error.

    node.cmd() returns output and no exit status, so without this a failed `ip route add`
    would surface only later, as traffic that goes nowhere.
    """
    output = node.cmd(command).strip()
    if output:
        raise RuntimeError(f"{node.name}: `{command}` failed: {output}")


def set_sysctls(node, values: Mapping[str, str | int]) -> None:
    checked_cmd(node, "sysctl -qw " + " ".join(f"{k}={v}" for k, v in values.items()))


def switches_using(node_names: list[str]) -> list[int]:
    """Pids of running BMv2 switches whose ports (`-i N@<node>-ethM`) are named after these
    nodes: a live network with our names, which clean-up must not tear down."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue              # ended while we looked
        ports = [a.decode(errors="replace").partition("@")[2] for a in args if b"@" in a]
        if any(p.startswith(f"{n}-eth") for p in ports for n in node_names):
            pids.append(int(cmdline.parent.name))
    return pids


def links_named_after(node_names: list[str]) -> dict[str, int]:
    """Root-namespace interfaces named after these nodes (`<node>-eth*`, or a node's own name,
    as a bridge has): name -> interface index."""
    links = {}
    for line in _sh("ip", "-o", "link", "show").stdout.splitlines():
        # "12: disp1-eth1@if11: <...>" -> 12, disp1-eth1
        index, name = line.split(":", 2)[:2]
        name = name.strip().split("@")[0]
        if name in node_names or any(name.startswith(f"{n}-eth") for n in node_names):
            links[name] = int(index)
    return links


def remove_leftover_links(node_names: list[str]) -> list[str]:
    """Delete root-namespace interfaces a crashed run of this topology left: `<node>-eth*` and
    bridges named like a node. Returns what was deleted."""
    return [name for name in links_named_after(node_names) if _sh("ip", "link", "del", name).returncode == 0]


@dataclass
class HostProcesses:
    """Processes started inside Mininet hosts (servers, tcpdump, tcpreplay, clients).

    Mininet's net.stop() ends the hosts' shells but not what was started with host.popen(),
    so every such process is tracked here and ended by its own pid: interrupt first (tcpdump
    then flushes its file), terminate, kill. (If the run is killed outright, nothing here
    runs: then the hosts' parent-death signal ends them, see topo/mininet_nodes.TiedHost.)
    """

    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, host, args: list[str], label: str, output: Path | None = None,
              **popen_args) -> subprocess.Popen:
        """host.popen(args); stdout and stderr to `output` if given, else discarded unless
        popen_args says otherwise."""
        sink = output.open("w") if output is not None else None
        popen_args.setdefault("stdout", sink if sink is not None else subprocess.DEVNULL)
        popen_args.setdefault("stderr", subprocess.STDOUT if sink is not None else subprocess.DEVNULL)
        try:
            proc = host.popen(args, **popen_args)
        finally:
            if sink is not None:
                sink.close()          # the process has its own copy
        self.procs.append((label, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
        if proc.poll() is None:
            for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
                try:
                    proc.send_signal(sig)
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
                except ProcessLookupError:
                    break
        return proc.poll()

    def stop_all(self) -> None:
        """Every process, newest first; one that cannot be stopped does not keep the others
        running (the first error is raised once all were tried)."""
        error: BaseException | None = None
        for _, proc in reversed(self.procs):
            try:
                self.stop(proc)
            except BaseException as exc:      # re-raised below, once the rest were tried
                error = error or exc
        self.procs.clear()
        if error is not None:
            raise error
