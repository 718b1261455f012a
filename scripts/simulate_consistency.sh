#!/usr/bin/env bash
# The simulator half of issue 10's proof: every policy, the switch before (legacy) and after
# (generations, docs/consistency.md), with and without the ring churn cap, the ring
# rewritten at every poll (no hysteresis). Tables into docs/figures/e-consistency-*.md,
# quoted in docs/policies.md and docs/consistency.md.
#
#   bash scripts/simulate_consistency.sh [e1|e2|e2cap|e3|e4|e5|e6 ...]     (default: all)
#
# SHARED points at the shared data (default ../shared/data, beside the checkout).
# Two cores: e1 about 5 minutes; e2 and e2cap about 12 minutes each (run them side by
# side); e3 about 10 minutes, e4 about 6, e5 half a minute, e6 two minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
# The development corpus beside the checkout, unless the variable names another.
export P4DISPATCH_SHARED_DATA=${P4DISPATCH_SHARED_DATA:-$(pwd)/../shared/data}
shared=${SHARED:-$P4DISPATCH_SHARED_DATA}
export P4DISPATCH_SHARED_DATA=$shared
out=docs/figures
mkdir -p "$out"
sim() { .venv/bin/p4dispatch simulate --quiet "$@"; }
hadoop=(--workload "$shared/flowsize/fb_hadoop.cdf" --load 0.85 --seed 102 --duration 30 --policies all
        --hysteresis 0)

# The 17 captures with the most flows (4,169 in all; synscan.pcap alone has 2,011).
pcaps=()
for name in synscan.pcap WebattackRCE.pcap alexa-app.pcapng EAQ.pcap webex.pcap bitcoin.pcap \
            whatsapp_login_call.pcap netflix.pcap opera-vpn.pcapng ethereum.pcap android.pcap \
            reddit.pcap sites.pcapng telegram.pcap starcraft_battle.pcap tumblr.pcap iphone.pcap; do
    pcaps+=("$shared/pcaps/$name")
done

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
    e3) sim --pcap "${pcaps[@]}" --symmetric --speedup 40 --copies 250 --servers 8 --load 0.85 \
            --buffer-ms 100 --policies all --hysteresis 0 --switch-model legacy,generations \
            --churn-cap none,0.05 --out "$out/e3-captures" > "$out/e3-captures.md" ;;
    # What the held rule costs depends on how often stateless flows stamp each ring entry:
    # the 106,000 flows/s run again on the largest ring (65,536 entries, 16x fewer stamps each).
    e4) sim "${hadoop[@]}" --capacity 4,4,8,8,16,16,32,32 --policies inverse_load,fb_least,fb_est,nd,shell \
            --ring-size 65536 --switch-model legacy,generations --churn-cap none \
            --out "$out/e4-100k-ring64k" > "$out/e4-100k-ring64k.md" ;;
    # The proof's gap (docs/consistency.md): the same captures at their own speed with a slow
    # controller (entries 1.5 s after the digest, longer than T_c): flows silent for T_c after
    # their digest are forgotten, the next packet of the key is decided again, then meets the
    # old digest's entry.
    e5) sim --pcap "${pcaps[@]}" --symmetric --servers 8 --load 0.85 --buffer-ms 100 --policies all \
            --hysteresis 0 --install-delay 1.5 --switch-model legacy,generations \
            --out "$out/e5-slow-controller" > "$out/e5-slow-controller.md" ;;
    # How tight a cap: e1's policies that move many slots, under 10 % and 25 % caps.
    e6) sim "${hadoop[@]}" --capacity 1,1,2,2,4,4,8,8 --policies inverse_load,fb_least,fb_est,nd,shell \
            --switch-model generations --churn-cap 0.1,0.25 --out "$out/e6-26k-caps" > "$out/e6-26k-caps.md" ;;
    *) echo "unknown set $1 (e1, e2, e2cap, e3, e4, e5, e6)" >&2; exit 2 ;;
    esac
    find "$out" -path "$out/$1-*" -name 'load-*.csv' -delete
}

sets=("$@")
[ ${#sets[@]} -gt 0 ] || sets=(e1 e2 e2cap e3 e4 e5 e6)
for set in "${sets[@]}"; do
    start=$(date +%s)
    run "$set"
    echo "$set: $(( $(date +%s) - start )) s"
done
