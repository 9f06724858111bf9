#!/usr/bin/env bash
# Memory soak (docs/BENCHMARKS.md, "Memory"): one release build of the
# all-in-one `flash-sale` under loadgen's full flow (hold, order, pay) for
# SOAK_SECS with nothing scraping /metrics, its RSS sampled every 5 s. Then a
# burst of 1,000 connections (wrk, holds), and its RSS each second for 30 s.
#
#   scripts/soak.sh [BIN] [--secs 600] [--csv FILE]
#
# Passes when the RSS at the end of the soak is within 10 MB of the RSS
# after its first minute (no leak), and, 30 s after the burst, under twice
# the idle RSS measured before any load. BIN defaults to
# target/release/flash-sale; loadgen is target/release/loadgen. Needs wrk,
# MariaDB and RabbitMQ on their default ports, rabbitmqctl and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/release/flash-sale secs=${SOAK_SECS:-600} csv=""
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) secs=$2; shift 2 ;;
        --csv) csv=$2; shift 2 ;;
        -*) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
        *) bin=$1; shift ;;
    esac
done
loadgen=target/release/loadgen
[ -x "$bin" ] && [ -x "$loadgen" ] || { echo "needs $bin and $loadgen (cargo build --release)" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || true

source scripts/lib/stack.sh
stack_init soak fs_soak
stack_start "$bin" PARTITIONS=16
server=${stack_pids[0]}
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$server/status"; }
csv=${csv:-$work/rss.csv}
echo "phase,second,rss_kb" >"$csv"

sleep 2
idle=$(rss_kb)
echo "soak: idle RSS $((idle / 1024)) MB; ${secs}s of full-flow load, nothing scraping /metrics"

# The load: full-flow runs back to back until the time is up.
touch "$work/loadgen.json"
(
    while :; do
        "$loadgen" --url "$base" --admin-token "$ADMIN_TOKEN" --webhook-secret "$WEBHOOK_SECRET" \
            --mode pipeline --flow full --clients 64 --requests 20000 --quiet --json \
            >>"$work/loadgen.json" 2>>"$work/loadgen.err" || echo "loadgen run failed" >>"$work/loadgen.err"
    done
) &
load=$!
stack_track_pid "$load"
start=$(date +%s)
after_first_minute=""
while :; do
    now=$(($(date +%s) - start))
    [ "$now" -ge "$secs" ] && break
    rss=$(rss_kb)
    echo "soak,$now,$rss" >>"$csv"
    [ -z "$after_first_minute" ] && [ "$now" -ge 60 ] && after_first_minute=$rss
    sleep 5
done
pkill -P "$load" 2>/dev/null || true
kill "$load" 2>/dev/null || true
wait "$load" 2>/dev/null || true
end=$(rss_kb)
# loadgen --json prints one (multi-line) document per run.
read -r runs failed < <(python3 -c '
import json, sys
text, decoder, at, runs, bad = open(sys.argv[1]).read(), json.JSONDecoder(), 0, 0, 0
while True:
    while at < len(text) and text[at].isspace():
        at += 1
    if at >= len(text):
        break
    try:
        doc, at = decoder.raw_decode(text, at)
    except ValueError:
        break  # the run stopped mid-report by the end of the soak
    runs += 1
    bad += not doc.get("pass")
print(runs, bad)' "$work/loadgen.json")
after_first_minute=${after_first_minute:-$end}
growth=$(((end - after_first_minute) / 1024))
echo "soak: RSS $((after_first_minute / 1024)) MB after the first minute, $((end / 1024)) MB at ${secs}s (${growth} MB); ${runs} loadgen runs, ${failed} failed their checks"

# The burst: 1,000 connections of holds for 10 s, then 30 s of quiet.
product=$(curl -fsS -X POST "$base/api/v1/admin/products" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name": "Soak burst", "price": 100, "stock": 5000000}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' \
    "'{\"product_id\": $product, \"qty\": 1}'" >"$work/hold.lua"
wrk -t2 -c1000 -d10s -s "$work/hold.lua" "$base/api/v1/holds" >"$work/wrk.txt" 2>&1 || true
peak=$(rss_kb)
back_after=""
for s in $(seq 1 30); do
    sleep 1
    rss=$(rss_kb)
    echo "after_burst,$s,$rss" >>"$csv"
    [ -z "$back_after" ] && [ "$rss" -lt $((2 * idle)) ] && back_after=$s
done
final=$(rss_kb)
# Pages the allocator gave back with MADV_FREE count in RSS until the kernel
# needs them; this says how much of the RSS they are.
lazy_free=$(awk '/^LazyFree/ { print int($2 / 1024) }' "/proc/$server/smaps_rollup" 2>/dev/null || echo "?")
echo "burst: $(grep -Eo '[0-9]+ requests in' "$work/wrk.txt" | head -1) 10 s at 1,000 connections; RSS $((peak / 1024)) MB at its end, $((final / 1024)) MB 30 s later (idle was $((idle / 1024)) MB); under 2x idle after ${back_after:-never (>30)} s; ${lazy_free} MB of it lazily freed (MADV_FREE)"
echo "samples: $csv"

status=0
if [ "$growth" -gt 10 ] || [ "$growth" -lt -10 ]; then
    echo "soak: FAIL, RSS moved ${growth} MB after the first minute (allowed: 10)"; status=1
fi
if [ "$failed" != 0 ]; then
    echo "soak: FAIL, ${failed} loadgen runs failed their checks; the last errors:"
    tail -n 5 "$work/loadgen.err"
    status=1
fi
[ -n "$back_after" ] || { echo "burst: FAIL, RSS not under 2x idle within 30 s"; status=1; }
[ "$status" = 0 ] && echo "soak: PASS"
exit "$status"
