#!/usr/bin/env bash
# Regenerate the simulator result sets of docs/policies.md into docs/figures/.
# One core, a few minutes. Every number in docs/policies.md comes from these commands.
# They were run on the published flow-size CDFs and real captures of ../shared/data
# (shared:NAME; P4DISPATCH_SHARED_DATA names it when elsewhere), so this needs that folder;
# the built-in models of the same names (the default) give close figures (docs/policies.md).
set -euo pipefail
cd "$(dirname "$0")/.."
# The development corpus beside the checkout, unless the variable names another.
export P4DISPATCH_SHARED_DATA=${P4DISPATCH_SHARED_DATA:-$(pwd)/../shared/data}
shared=${P4DISPATCH_SHARED_DATA:-../shared/data}
if [ ! -d "$shared/flowsize" ] || [ ! -d "$shared/pcaps" ]; then
    echo "simulate_results.sh: needs $shared/flowsize and $shared/pcaps (the data these results were run on)" >&2
    exit 2
fi
export P4DISPATCH_SHARED_DATA=$shared
sim() { .venv/bin/p4dispatch simulate --quiet "$@"; }
out=docs/figures
mkdir -p "$out"

# (a) short flows: round robin, fb_least and fb_est close; a static prefix split worse.
sim --workload shared:ali_storage --servers 3 --load 0.8 --duration 30 \
    --policies round_robin,fb_least,fb_est,fixed_split --out "$out/a-ali_storage" > "$out/a-ali_storage.md"

# (b) heavy-tailed: fb_hadoop, websearch, pathological mix; 3 and 8 servers; equal and unequal.
for workload in fb_hadoop websearch pathological; do
    args=(--workload "shared:$workload")
    [ "$workload" = pathological ] && args=(--workload shared:ali_storage --heavy-share 0.5)
    for cluster in 3eq:1,1,1 3uneq:0.5,1,2 8eq:1,1,1,1,1,1,1,1 8uneq:0.5,0.5,1,1,1,1,2,2; do
        name=${cluster%%:*}; capacity=${cluster#*:}
        sim "${args[@]}" --capacity "$capacity" --load 0.8 --duration 30 \
            --policies round_robin,weighted_round_robin,fb_least,fb_est \
            --out "$out/b-$workload-$name" > "$out/b-$workload-$name.md"
    done
done

# (c) the DPR paper's comparison: a skewed static split (RR-DNS 4:1:1), random, least connections.
sim --workload shared:websearch --servers 3 --load 0.7 --duration 30 --fixed-shares 4,1,1 \
    --policies fixed_split,random_hash,least_connections,inverse_load,fb_est --out "$out/c-dpr" > "$out/c-dpr.md"

# (d) real captures merged into one trace (capture mode: both directions to one node).
# The twenty largest captures, each starting at time 0; servers sized for load 0.7 in the
# seconds that carry traffic; a 100 ms buffer because real traffic is bursty.
# (sed reads all of ls's output: head would leave ls to die of SIGPIPE, and pipefail stop the script)
pcaps=$(ls -S "$shared"/pcaps/*.pcap "$shared"/pcaps/*.pcapng | sed -n 1,20p)
sim --pcap $pcaps --symmetric --servers 3 --load 0.7 --buffer-ms 100 --window 5 \
    --policies round_robin,fixed_split,least_connections,fb_least,fb_est,nd,shell \
    --out "$out/d-captures" > "$out/d-captures.md"

# Keep the figures, the summaries and tables; the per-interval CSVs are regenerated on demand.
find "$out" -name 'load-*.csv' -delete
