#!/usr/bin/env python3
"""Run the PTF suite on a real BMv2: veth pairs, simple_switch_grpc, pipeline push, ptf.

    python ptf_tests/run_ptf.py                       # every test
    python ptf_tests/run_ptf.py test_dispatch         # one module
    python ptf_tests/run_ptf.py test_dispatch.DigestMatchesPacket

Every test gets a switch of its own: simple_switch_grpc keeps clone sessions across
pipeline pushes and, after a second push, delivers every clone twice, so tests that share
a switch are not independent. Exits 0 when every test passed, 1 otherwise, or 77 after one
line saying why the testbed cannot run here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from topo.bmv2_testbed import Bmv2Testbed, missing_testbed_reason  # noqa: E402
from topo.lifetime import tied  # noqa: E402

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
    # Tied: if this runner (or the pytest run around it) is killed, ptf goes too, instead of
    # sending into veths that the next testbed will recreate.
    return subprocess.run(tied(ptf_command(testbed, tests)), capture_output=True, text=True, cwd=REPO)


def test_names(selection: list[str]) -> list[str]:
    """module.Class for every test the selection names (all when empty)."""
    ptf = Path(sys.executable).parent / "ptf"
    listed = subprocess.run([sys.executable, str(ptf), "--test-dir", str(PTF_DIR), "--pypath", str(REPO),
                             "--list-test-names", *selection], capture_output=True, text=True, cwd=REPO)
    return [line.strip() for line in listed.stdout.splitlines() if "." in line and " " not in line.strip()]


def run_one(name: str) -> subprocess.CompletedProcess:
    """One test on a fresh switch."""
    (REPO / "build").mkdir(exist_ok=True)
    with Bmv2Testbed(log_file=REPO / "build" / "ptf-bmv2.log") as testbed:
        result = run([name], testbed)
        if not testbed.switch.alive():
            result.returncode = result.returncode or 1
            result.stderr += f"\nthe switch died during {name}:\n{testbed.switch.output_tail()}"
    return result


def main(argv: list[str]) -> int:
    reason = missing_testbed_reason()
    if reason:
        print(f"PTF suite skipped: {reason}")
        return SKIP_EXIT
    failed = []
    names = test_names(argv)
    for name in names:
        result = run_one(name)
        ok = result.returncode == 0
        print(f"{name} ... {'ok' if ok else 'FAILED'}", flush=True)
        if not ok:
            failed.append(name)
            sys.stdout.write(result.stderr[-4000:] + "\n")
    print(f"{len(names) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
