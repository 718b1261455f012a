#!/usr/bin/env bash
# The simulator half of issue 10's proof: every policy, the switch before (legacy) and after
# (generations, docs/consistency.md), with and without the ring churn cap, the ring
# rewritten at every poll (no hysteresis). Tables into docs/figures/e-consistency-*.md,
# quoted in docs/policies.md and docs/consistency.md.
#
#   bash scripts/simulate_consistency.sh [e1|e2|e2cap|e3 ...]     (default: all)
#
# SHARED points at the shared data (default ../shared/data, beside the checkout).
# Two cores: e1 about 5 minutes; e2 and e2cap about 12 minutes each (run them side by
# side); e3 about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
shared=${SHARED:-../shared/data}
out=docs/figures
mkdir -p "$out"
sim() { .venv/bin/p4dispatch simulate --quiet "$@"; }
hadoop=(--workload "$shared/flowsize/fb_hadoop.cdf" --load 0.85 --seed 102 --duration 30 --policies all
        --hysteresis 0)

run() {
    case $1 in
    # About 26,000 new flows/s: fb_hadoop on 8 unequal servers (the issue's run).
    e1) sim "${hadoop[@]}" --capacity 1,1,2,2,4,4,8,8 --switch-model legacy,generations \
            --churn-cap none,0.05 --out "$out/e1-26k" > "$out/e1-26k.md" ;;
    # About 106,000 new flows/s: the same workload on a cluster four times as large.
    e2) sim "${hadoop[@]}" --capacity 4,4,8,8,16,16,32,32 --switch-model legacy,generations \
            --churn-cap none --out "$out/e2-100k" > "$out/e2-100k.md" ;;
    e2cap) sim "${hadoop[@]}" --capacity 4,4,8,8,16,16,32,32 --switch-model legacy,generations \
            --churn-cap 0.05 --out "$out/e2cap-100k" > "$out/e2cap-100k.md" ;;
    # Captures sped up: the 17 with the most flows, 40x faster, 250 copies started evenly
    # over the trace (about 100,000 new flows/s), capture mode.
    e3) pcaps=()
        for name in synscan.pcap WebattackRCE.pcap alexa-app.pcapng EAQ.pcap webex.pcap bitcoin.pcap \
                    whatsapp_login_call.pcap netflix.pcap opera-vpn.pcapng ethereum.pcap android.pcap \
                    reddit.pcap sites.pcapng telegram.pcap starcraft_battle.pcap tumblr.pcap iphone.pcap; do
            pcaps+=("$shared/pcaps/$name")
        done
        sim --pcap "${pcaps[@]}" --symmetric --speedup 40 --copies 250 --servers 8 --load 0.85 \
            --buffer-ms 100 --policies all --hysteresis 0 --switch-model legacy,generations \
            --churn-cap none,0.05 --out "$out/e3-captures" > "$out/e3-captures.md" ;;
    *) echo "unknown set $1 (e1, e2, e2cap, e3)" >&2; exit 2 ;;
    esac
    find "$out" -path "$out/$1-*" -name 'load-*.csv' -delete
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(e1 e2 e2cap e3)
for set in "${sets[@]}"; do
    start=$(date +%s)
    run "$set"
    echo "$set: $(( $(date +%s) - start )) s"
done
