"""A BMv2 switch wired to veth pairs on this host: the testbed for PTF, replay and benchmarks.

Switch port N is the veth end `<prefix>-swN`; test traffic enters and leaves at `<prefix>-hN`.
Everything is torn down on exit, even after a failure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from controller.p4runtime import P4InfoIndex, P4RuntimeClient
from topo.bmv2_switch import Bmv2Switch
from topo.mininet_support import free_tcp_port
from topo.toolchain import BUILD_DIR, CompiledProgram, build_program, find_tool
from topo.veth_pairs import VethPairs


def missing_testbed_reason() -> str | None:
    """Why a BMv2 testbed cannot run here, in one line; None when it can."""
    if os.geteuid() != 0:
        return "needs root (veth pairs and raw sockets)"
    if find_tool("simple_switch_grpc") is None:
        return "simple_switch_grpc (BMv2 with P4Runtime) not found on PATH or under $P4_PREFIX"
    if find_tool("p4c-bm2-ss") is None and not (BUILD_DIR / "dispatcher.json").exists():
        return "p4c-bm2-ss not found and build/dispatcher.json not built"
    return None


def run_prefix() -> str:
    """Interface names of this process's testbeds: two runs side by side (a developer's and
    CI's, or two test sessions) never take each other's veths."""
    return f"t{os.getpid() % 100_000}"


@dataclass
class Bmv2Testbed:
    ports: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    program: str = "dispatcher"
    # Free ports by default, for the same reason as run_prefix().
    grpc_port: int = field(default_factory=free_tcp_port)
    thrift_port: int = field(default_factory=free_tcp_port)
    log_file: Path | None = None
    prefix: str = field(default_factory=run_prefix)   # veth names: <prefix>-sw<N> / <prefix>-h<N>
    veths: VethPairs | None = None
    switch: Bmv2Switch | None = None
    compiled: CompiledProgram | None = None

    def host_interface(self, port: int) -> str:
        assert self.veths is not None
        return self.veths.host_side(port)

    def connect(self) -> tuple[P4RuntimeClient, P4InfoIndex]:
        """A primary P4Runtime session with the testbed's program loaded (the caller closes it)."""
        assert self.switch is not None and self.compiled is not None
        info = P4InfoIndex.load(self.compiled.p4info)
        client = P4RuntimeClient(self.switch.grpc_address)
        client.connect()
        client.set_pipeline_files(info.p4info, self.compiled.bmv2_json)
        return client, info

    def __enter__(self) -> Bmv2Testbed:
        self.compiled = build_program(self.program)
        self.veths = VethPairs(self.ports, prefix=self.prefix)
        self.veths.create()
        try:
            self.start_switch()
        except BaseException:
            self.veths.destroy()
            raise
        return self

    def start_switch(self) -> None:
        """A fresh simple_switch_grpc on the testbed's veths (again, after kill_switch)."""
        assert self.veths is not None
        self.switch = Bmv2Switch({p: self.veths.switch_side(p) for p in self.ports},
                                 grpc_port=self.grpc_port, thrift_port=self.thrift_port,
                                 log_file=self.log_file)
        self.switch.start()

    def kill_switch(self) -> None:
        """SIGKILL, as a crash: the switch forgets its pipeline and every entry."""
        assert self.switch is not None and self.switch.process is not None
        self.switch.process.kill()
        self.switch.process.wait(timeout=5)
        self.switch.stop()

    def __exit__(self, *exc) -> None:
        # The veths go even if stopping the switch failed: left over, they would make the
        # next testbed of this prefix fail.
        try:
            if self.switch is not None:
                self.switch.stop()
        finally:
            if self.veths is not None:
                self.veths.destroy()
