"""BMv2 `simple_switch_grpc` as a Mininet switch, programmed over P4Runtime.

The switch starts with `--no-p4`: it forwards nothing until a controller pushes the
pipeline (SetForwardingPipelineConfig), exactly as the dispatcher's controller does in
service. Mininet gives the switch its ports (`<name>-eth<N>` veth ends in the root
namespace); port N of the Mininet link is port N of the P4 program, so a topology that
fixes its link ports fixes the ports the controller configuration names.

The switch runs in the root namespace (as Mininet's switches do), so the controller reaches
its gRPC port on 127.0.0.1; it listens on 0.0.0.0 as the p4lang tutorials' switches do.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import IO

from mininet.node import Switch

from controller.dataplane.constants import CPU_PORT
from topo.bmv2_switch import end_process
from topo.lifetime import tied
from topo.mininet_nodes import TiedToRun
from topo.mininet_support import port_accepts
from topo.toolchain import find_tool


class SwitchStartError(RuntimeError):
    """simple_switch_grpc exited or never opened its gRPC port; the message has its last output."""


class Bmv2P4RuntimeSwitch(TiedToRun, Switch):
    """simple_switch_grpc on this switch's Mininet ports, waiting for a P4Runtime controller.

    Parameters (as `addSwitch(name, cls=Bmv2P4RuntimeSwitch, grpc_port=..., ...)`):
      grpc_port     P4Runtime server port (one per switch)
      thrift_port   simple_switch_CLI port (one per switch)
      device_id     P4Runtime device id
      log_file      BMv2 packet log; BMv2 writes `<log_file>.txt`. None: no log (fastest)
      log_level     BMv2 log level when log_file is set
      output_file   the process's own stdout/stderr (start-up errors); default /tmp/<name>-bmv2.out
      start_timeout seconds to wait for the gRPC port
    """

    def __init__(self, name: str, grpc_port: int = 9559, thrift_port: int = 9090,
                 device_id: int = 0, log_file: str | Path | None = None, log_level: str = "debug",
                 output_file: str | Path | None = None, start_timeout: float = 20.0,
                 **params) -> None:
        super().__init__(name, **params)
        self.grpc_port = grpc_port
        self.thrift_port = thrift_port
        self.device_id = device_id
        self.log_file = Path(log_file) if log_file else None
        self.log_level = log_level
        self.output_file = Path(output_file) if output_file else Path(f"/tmp/{name}-bmv2.out")
        self.start_timeout = start_timeout
        self.process: subprocess.Popen | None = None
        self._output: IO[str] | None = None

    @property
    def grpc_address(self) -> str:
        """Where a controller in the root namespace reaches this switch's P4Runtime server."""
        return f"127.0.0.1:{self.grpc_port}"

    def port_interfaces(self) -> dict[int, str]:
        """Switch port -> Linux interface, for every data port (not Mininet's `lo` control port)."""
        return {self.ports[intf]: intf.name for intf in self.intfList() if intf.name != "lo"}

    def command(self) -> list[str]:
        binary = find_tool("simple_switch_grpc")
        if binary is None:
            raise SwitchStartError("simple_switch_grpc not found on PATH or under $P4_PREFIX")
        cmd = [binary, "--no-p4", "--device-id", str(self.device_id),
               "--thrift-port", str(self.thrift_port)]
        for port, iface in sorted(self.port_interfaces().items()):
            cmd += ["-i", f"{port}@{iface}"]
        if self.log_file is not None:
            cmd += ["--log-file", str(self.log_file), "--log-level", self.log_level, "--log-flush"]
        # Target options come after `--`: the CPU port carries packet-in/out to the controller.
        cmd += ["--", "--cpu-port", str(CPU_PORT), "--grpc-server-addr", f"0.0.0.0:{self.grpc_port}"]
        return cmd

    def start(self, controllers) -> None:
        """Start the process and return once its gRPC port accepts connections."""
        for port in (self.grpc_port, self.thrift_port):
            if port_accepts(port):
                raise SwitchStartError(f"{self.name}: port {port} is already in use (another switch running?)")
        self._output = self.output_file.open("w")
        # A session of its own: a Ctrl-C aimed at the test run must not kill the switch
        # before the run's own clean-up stops it in order. Tied to the starting thread: if the
        # run is killed outright, the kernel kills the switch too.
        self.process = subprocess.Popen(tied(self.command()), stdout=self._output, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                self._close_output()
                self.process = None
                raise SwitchStartError(f"{self.name}: simple_switch_grpc exited with {code} at start:\n"
                                       f"{self.output_tail()}")
            if port_accepts(self.grpc_port):
                return
            time.sleep(0.1)
        self.stop_process()
        raise SwitchStartError(f"{self.name}: simple_switch_grpc did not open gRPC port {self.grpc_port} "
                               f"in {self.start_timeout:.0f} s:\n{self.output_tail()}")

    def alive(self) -> bool:
        """Whether the switch process still runs (a test may kill it to see the controller cope)."""
        return self.process is not None and self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.output_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop_process(self) -> None:
        """Terminate, give it a few seconds to exit, then kill: never leave a switch running."""
        if self.process is not None:
            end_process(self.process)
            self.process = None
        self._close_output()

    def stop(self, deleteIntfs: bool = True) -> None:
        self.stop_process()
        super().stop(deleteIntfs)

    def _close_output(self) -> None:
        if self._output is not None:
            self._output.close()
            self._output = None

