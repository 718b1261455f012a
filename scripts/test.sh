#!/usr/bin/env bash
# Set up (idempotent) and run every test. The BMv2/PTF tests run when root and the
# toolchain are here, and skip with their reason otherwise. Extra arguments go to pytest.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
# Paths among the arguments choose the tests (`bash scripts/test.sh tests/unit`); with none,
# every test under tests/.
paths=tests
for arg in "$@"; do
    case "$arg" in -*) ;; *) [ -e "${arg%%::*}" ] && paths= ;; esac
done
set +e
.venv/bin/python -m pytest -ra "$@" $paths
status=$?
set -e
# pytest's 5 means "no tests collected": not a failure of the code under test.
[ $status -eq 5 ] && status=0
exit $status
