#!/usr/bin/env bash
# The main job: set up (idempotent), compile the P4 program, and run the data-plane demo
# on BMv2 (root and the P4 toolchain needed). Extra arguments go to the demo.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/python -m controller demo-dataplane "$@"
