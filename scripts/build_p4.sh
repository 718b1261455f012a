#!/usr/bin/env bash
# Compiles the P4 programs into build/: BMv2 JSON and P4Info (text) for each.
#   build/dispatcher.json, build/dispatcher.p4info.txtpb        the dispatcher
#   build/minimal_forward.json, build/minimal_forward.p4info.txtpb   benchmark baseline
#   build/dispatcher_small.json, ...   the dispatcher with a 64-entry `flows` table (table-full test)
#   build/dispatcher_tinycache.json, ...   one cache set of 4 ways, so new flows collide (PTF)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/p4_toolchain.sh"

p4c=$(p4_tool p4c-bm2-ss) || {
    echo "p4c-bm2-ss not found on PATH or under \$P4_PREFIX: cannot compile p4src/ (BMv2/PTF tests will skip)" >&2
    exit 2
}
mkdir -p "$root/build"
compile() {  # compile SOURCE NAME [p4c options...]
    local source=$1 name=$2
    shift 2
    "$p4c" --arch v1model --std p4-16 "$@" \
        -o "$root/build/$name.json" \
        --p4runtime-files "$root/build/$name.p4info.txtpb" \
        "$root/$source"
    echo "built build/$name.json and build/$name.p4info.txtpb"
}
compile p4src/v1model/main.p4 dispatcher
compile p4src/bench/minimal_forward.p4 minimal_forward
compile p4src/v1model/main.p4 dispatcher_small -DFLOWS_TABLE_SIZE=64 -DFLOW_STATS_SIZE=64
compile p4src/v1model/main.p4 dispatcher_tinycache -DFLOW_CACHE_SETS=1   # one set of 4 ways: PTF collisions
