"""What a benchmark says it ran on: the BMv2 build's logging read from the header installed
with the binary, and the CPU of a process that reported its own."""

from __future__ import annotations

import os
import time
from pathlib import Path

from topo.run_environment import CpuMeter, bmv2_build, summary_line


def fake_install(root: Path, config_h: str | None) -> str:
    (root / "bin").mkdir(parents=True)
    binary = root / "bin" / "simple_switch_grpc"
    binary.write_text("#!/bin/sh\necho 1.15.5-test\n")
    binary.chmod(0o755)
    if config_h is not None:
        (root / "include" / "bm").mkdir(parents=True)
        (root / "include" / "bm" / "config.h").write_text(config_h)
    return str(binary)


def test_logging_build_is_read_from_the_installed_header(tmp_path: Path) -> None:
    default = bmv2_build(fake_install(tmp_path / "default", "#ifndef BM_LOG_DEBUG_ON\n#define BM_LOG_DEBUG_ON /**/\n"
                                                          "#define BM_ELOG_ON /**/\n"))
    speed = bmv2_build(fake_install(tmp_path / "speed", "/* #undef LOG_DEBUG_ON */\n/* #undef ELOG_ON */\n"))
    assert default["version"] == "1.15.5-test"
    assert (default["logging_compiled_in"], default["event_logger_compiled_in"]) == (True, True)
    assert (speed["logging_compiled_in"], speed["event_logger_compiled_in"]) == (False, False)


def test_summary_names_the_build_and_says_when_it_cannot_tell(tmp_path: Path) -> None:
    env = {"cpu": "cpu", "cores": 2, "load_average_before": (0.5, 0.5, 0.5), "protobuf": "6 (upb)",
           "bmv2": bmv2_build(fake_install(tmp_path / "speed", "/* #undef LOG_DEBUG_ON */\n"))}
    assert "logging compiled out" in summary_line(env)
    if not Path("/usr/include/bm/config.h").exists():
        env["bmv2"] = bmv2_build(fake_install(tmp_path / "bare", None))
        assert "logging build unknown" in summary_line(env)


def test_cpu_meter_counts_what_a_process_reported_itself() -> None:
    meter = CpuMeter({"me": os.getpid()})
    before = time.monotonic()
    meter.start()
    time.sleep(0.2)
    meter.record("generator", 0.1)
    cores = meter.stop()
    elapsed = time.monotonic() - before
    assert 0.1 / elapsed <= cores["generator"] <= 0.1 / 0.2     # 0.1 s of CPU over the interval
    assert set(cores) == {"me", "generator", "machine"}
