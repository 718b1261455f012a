#!/usr/bin/env bash
# Compiles the P4 programs into build/: BMv2 JSON and P4Info (text) for each.
#   build/dispatcher.json, build/dispatcher.p4info.txtpb        the dispatcher
#   build/minimal_forward.json, build/minimal_forward.p4info.txtpb   benchmark baseline
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/p4_toolchain.sh"

p4c=$(p4_tool p4c-bm2-ss) || {
    echo "p4c-bm2-ss not found on PATH or under \$P4_PREFIX: cannot compile p4src/ (BMv2/PTF tests will skip)" >&2
    exit 2
}
mkdir -p "$root/build"
compile() {  # compile SOURCE NAME
    "$p4c" --arch v1model --std p4-16 \
        -o "$root/build/$2.json" \
        --p4runtime-files "$root/build/$2.p4info.txtpb" \
        "$root/$1"
    echo "built build/$2.json and build/$2.p4info.txtpb"
}
compile p4src/v1model/main.p4 dispatcher
compile p4src/bench/minimal_forward.p4 minimal_forward
