"""A BMv2 simple_switch_grpc process: start it on given interfaces, wait for P4Runtime, stop it."""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from controller.dataplane.constants import CPU_PORT
from topo.lifetime import tied
from topo.toolchain import find_tool


class SwitchError(RuntimeError):
    """The switch did not start, or died."""


def end_process(process: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate, give it `grace` seconds to exit, then kill: never leave a switch running."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class Bmv2Switch:
    interfaces: dict[int, str]          # switch port -> Linux interface
    grpc_port: int = 9559
    thrift_port: int = 9090
    device_id: int = 0
    log_file: Path | None = None        # None: no packet log (fastest); BMv2 writes <log_file>.txt
    log_level: str = "debug"
    netns: str | None = None            # run inside this network namespace
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    _stderr_path: Path | None = None
    _stderr_file: IO[str] | None = None

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def command(self) -> list[str]:
        binary = find_tool("simple_switch_grpc")
        if binary is None:
            raise SwitchError("simple_switch_grpc not found on PATH or under $P4_PREFIX")
        cmd = [binary, "--no-p4", "--device-id", str(self.device_id),
               "--thrift-port", str(self.thrift_port)]
        for port, iface in sorted(self.interfaces.items()):
            cmd += ["-i", f"{port}@{iface}"]
        if self.log_file is not None:
            cmd += ["--log-file", str(self.log_file), "--log-level", self.log_level, "--log-flush"]
        cmd += self.extra_args
        cmd += ["--", "--grpc-server-addr", f"127.0.0.1:{self.grpc_port}", "--cpu-port", str(CPU_PORT)]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        return cmd

    def start(self, timeout: float = 15.0) -> None:
        if _port_open("127.0.0.1", self.grpc_port):
            raise SwitchError(f"port {self.grpc_port} is already in use: another switch is running?")
        self._stderr_path = Path(f"/tmp/bmv2-{self.grpc_port}.stderr")
        self._stderr_file = self._stderr_path.open("w")
        # Its own session (a Ctrl-C reaches the caller, which stops the switch in order), and
        # tied to the starting thread, so a caller killed outright leaves no switch running.
        self.process = subprocess.Popen(tied(self.command()), stdout=self._stderr_file, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SwitchError(f"simple_switch_grpc exited with {self.process.returncode}: {self.output_tail()}")
            if _port_open("127.0.0.1", self.grpc_port):
                return
            time.sleep(0.1)
        self.stop()
        raise SwitchError(f"simple_switch_grpc did not open port {self.grpc_port} in {timeout:.0f} s")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        return "\n".join(self._stderr_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        end_process(self.process)
        self.process = None
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def __enter__(self) -> Bmv2Switch:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
