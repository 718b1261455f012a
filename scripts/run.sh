#!/usr/bin/env bash
# The main job: set up (idempotent), compile the P4 program, and run the cluster demo: an
# emulated server cluster in Mininet with the BMv2 dispatcher, the controller and real HTTP
# traffic (root, Mininet and the P4 toolchain needed). Extra arguments go to the demo, e.g.
#   sudo bash scripts/run.sh --topo capture
#   sudo bash scripts/run.sh --policy round_robin --duration 60
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh
exec .venv/bin/p4dispatch demo "$@"
