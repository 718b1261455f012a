#!/usr/bin/env bash
# Compiles the P4 programs into build/: BMv2 JSON and P4Info (text) for each.
#   build/dispatcher.json, build/dispatcher.p4info.txtpb        the dispatcher
#   build/minimal_forward.json, build/minimal_forward.p4info.txtpb   benchmark baseline
#   build/dispatcher_small.json, ...   the dispatcher with a 64-entry `flows` table (table-full test)
#   build/dispatcher_tinycache.json, ...   one cache set of 4 ways, so new flows collide (PTF)
#   build/tna/tofino{,2}/...   the TNA program, when bf-p4c is installed (below)
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

# ---- TNA (Tofino), when the Tofino compiler is installed -----------------------------------
#   build/tna/tofino/{p4info.txtpb,pipe/tofino.bin,pipe/context.json,...}   Tofino 1 (tna)
#   build/tna/tofino2/...                                                   Tofino 2 (t2na)
# bf-p4c is not part of this project (nor is a recipe to build it); a failed TNA build
# is reported and does not stop the BMv2 build above. Rebuilt only when p4src/ changed.
bfp4c=$(p4_tool bf-p4c || p4_tool p4c-barefoot || { [ -n "${SDE_INSTALL:-}" ] && [ -x "$SDE_INSTALL/bin/bf-p4c" ] && echo "$SDE_INSTALL/bin/bf-p4c"; }) || true
if [ -z "$bfp4c" ]; then
    echo "bf-p4c / p4c-barefoot not found: TNA program not built (tests/integration/test_tna_program.py checks it with p4test and TNA's include files where present)"
    exit 0
fi
newest_source=$(find "$root/p4src" -name '*.p4' -newer "$root/build/tna/.built" 2>/dev/null | head -1 || true)
if [ -f "$root/build/tna/.built" ] && [ -z "$newest_source" ]; then
    echo "build/tna is up to date"
    exit 0
fi
tna_ok=1
for chip in "tofino tna" "tofino2 t2na"; do
    set -- $chip
    out="$root/build/tna/$1"
    mkdir -p "$out"
    if "$bfp4c" --target "$1" --arch "$2" --std p4-16 -o "$out" \
            --p4runtime-files "$out/p4info.txtpb" "$root/p4src/tna/main.p4" > "$out/compile.log" 2>&1; then
        echo "built build/tna/$1 (bf-p4c --target $1 --arch $2)"
    else
        echo "TNA build for $1 failed: see build/tna/$1/compile.log" >&2
        tna_ok=0
    fi
done
[ "$tna_ok" = 1 ] && touch "$root/build/tna/.built"
exit 0
