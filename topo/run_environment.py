"""What a benchmark ran on and where its time went, printed with its figures so that a
number can be compared across machines: the BMv2 binary and how it was built, the CPU, the
load before the run, and the CPU each process used during it (switch, traffic generator,
controller)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from topo.toolchain import find_tool


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def bmv2_build(binary: str | None = None) -> dict[str, object]:
    """The switch binary, its version, and whether it logs: a build with logging macros and
    the event logger (BMv2's default) is several times slower than one without them. The
    binary's options are the same either way; the answer is in the `bm/config.h` installed
    with it (`BM_LOG_DEBUG_ON`, `BM_ELOG_ON`), None when that header is not there."""
    binary = binary or find_tool("simple_switch_grpc")
    if binary is None:
        return {"binary": None}
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    found: dict[str, object] = {"binary": binary, "version": version,
                                "logging_compiled_in": None, "event_logger_compiled_in": None}
    prefix = Path(binary).resolve().parent.parent
    for header in (prefix / "include" / "bm" / "config.h", Path("/usr/include/bm/config.h")):
        if header.exists():
            text = header.read_text(errors="replace")
            found["logging_compiled_in"] = "#define BM_LOG_DEBUG_ON" in text
            found["event_logger_compiled_in"] = "#define BM_ELOG_ON" in text
            found["config_header"] = str(header)
            break
    return found


def protobuf_runtime() -> str:
    """protobuf's version and backend: the pure-Python one (what p4runtime-shell's pin to
    protobuf < 3.21 gives) encodes a batch of table writes many times slower than upb, and
    that time counts in the controller's write latency."""
    try:
        from google.protobuf import __version__
        from google.protobuf.internal import api_implementation
    except ImportError:
        return "absent"
    return f"{__version__} ({api_implementation.Type()})"


def describe() -> dict[str, object]:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "load_average_before": os.getloadavg(),
            "kernel": platform.release(), "python": platform.python_version(),
            "protobuf": protobuf_runtime(), "bmv2": bmv2_build()}


@dataclass
class CpuMeter:
    """CPU used by named processes (their threads, not their children) between start() and stop()."""
    pids: dict[str, int]
    _start: dict[str, float] = field(default_factory=dict)
    _self_reported: dict[str, float] = field(default_factory=dict)
    _t0: float = 0.0

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            return float(sum(psutil.Process(pid).cpu_times()[:2]))
        except psutil.NoSuchProcess:
            return 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        psutil.cpu_percent(interval=None)   # the machine's figure counts from here
        self._start = {name: self._cpu(pid) for name, pid in self.pids.items()}

    def record(self, name: str, cpu_seconds: float) -> None:
        """CPU that a process measured itself (one that exits before stop() can no longer be
        read from outside)."""
        self._self_reported[name] = cpu_seconds

    def stop(self) -> dict[str, float]:
        """Cores used by each process over the interval (1.0 = one core busy all along), and
        the whole machine's for comparison."""
        seconds = max(time.monotonic() - self._t0, 1e-9)
        used = {name: (self._cpu(pid) - self._start.get(name, 0.0)) / seconds for name, pid in self.pids.items()}
        used.update({name: cpu / seconds for name, cpu in self._self_reported.items()})
        used["machine"] = psutil.cpu_percent(interval=None) / 100 * (os.cpu_count() or 1)
        return used


def summary_line(env: dict[str, object], cores: dict[str, float] | None = None) -> str:
    bmv2 = env["bmv2"]
    assert isinstance(bmv2, dict)
    logging = bmv2.get("logging_compiled_in")
    build = ("no BMv2" if not bmv2.get("binary") else "logging build unknown" if logging is None
             else "logging compiled in" if logging else "logging compiled out")
    load = env["load_average_before"]
    assert isinstance(load, tuple)
    line = (f"ran on: {env['cpu']}, {env['cores']} cores, load {load[0]:.2f} before; "
            f"BMv2 {bmv2.get('binary')} ({build}); protobuf {env.get('protobuf', '?')}")
    if cores:
        line += "; cores used: " + ", ".join(f"{name} {value:.2f}" for name, value in cores.items())
    return line
