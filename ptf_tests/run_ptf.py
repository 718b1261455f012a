#!/usr/bin/env python3
"""Run the PTF suite on a real BMv2: veth pairs, simple_switch_grpc, pipeline push, ptf.

    python ptf_tests/run_ptf.py                       # every test
    python ptf_tests/run_ptf.py test_dispatch         # one module
    python ptf_tests/run_ptf.py test_dispatch.DigestMatchesPacket

Exits with ptf's status, or 77 after one line saying why the testbed cannot run here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason  # noqa: E402

PTF_DIR = REPO / "ptf_tests"
SKIP_EXIT = 77


def ptf_command(testbed: Bmv2Testbed, tests: list[str]) -> list[str]:
    ptf = Path(sys.executable).parent / "ptf"
    assert testbed.switch is not None and testbed.compiled is not None
    params = (f"grpcaddr='{testbed.switch.grpc_address}';"
              f"p4info='{testbed.compiled.p4info}';bmv2_json='{testbed.compiled.bmv2_json}'")
    cmd = [sys.executable, str(ptf), "--test-dir", str(PTF_DIR), "--pypath", str(REPO),
           "--test-params", params, "--disable-ipv6", "--log-file", str(REPO / "build" / "ptf.log")]
    for port in testbed.ports:
        cmd += ["--interface", f"{port}@{testbed.host_interface(port)}"]
    return cmd + tests


def run(tests: list[str], testbed: Bmv2Testbed) -> subprocess.CompletedProcess:
    return subprocess.run(ptf_command(testbed, tests), capture_output=True, text=True, cwd=REPO)


def main(argv: list[str]) -> int:
    reason = missing_testbed_reason()
    if reason:
        print(f"PTF suite skipped: {reason}")
        return SKIP_EXIT
    with Bmv2Testbed(log_file=REPO / "build" / "ptf-bmv2.log") as testbed:
        result = run(argv, testbed)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
