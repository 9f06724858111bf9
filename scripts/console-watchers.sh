#!/usr/bin/env bash
# Runs `flash-sale` with N operator consoles watching it: once the api is
# ready, logs in to /console with ADMIN_TOKEN and holds N live-update streams
# (GET /console/live) open, reading every event, until it is stopped. Used
# as the "new" binary of scripts/bench-pairs.sh to measure what open
# consoles cost a sale:
#
#   CONSOLE_WATCHERS=50 scripts/bench-pairs.sh --old target/release/flash-sale \
#       --new scripts/console-watchers.sh -- --clients 256 --requests 40000
#
# FLASH_SALE_BIN (default target/release/flash-sale) is what runs; API_ADDR
# and ADMIN_TOKEN come from the environment, as the server reads them.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FLASH_SALE_BIN:-$here/target/release/flash-sale}
watchers=${CONSOLE_WATCHERS:-50}
addr=${API_ADDR:-127.0.0.1:8080}
: "${ADMIN_TOKEN:?ADMIN_TOKEN must be set}"

jar=$(mktemp /tmp/console-watchers.XXXXXX)
pids=()
server=""
stop() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    rm -f "$jar"
}
trap stop EXIT
trap 'exit 0' TERM INT

"$bin" &
server=$!
for _ in $(seq 1 300); do
    curl -fs "http://$addr/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
csrf=$(curl -fs -c "$jar" -b "$jar" "http://$addr/console/login" |
    grep -o 'name="csrf" value="[^"]*"' | sed 's/.*value="//; s/"$//')
curl -fs -o /dev/null -c "$jar" -b "$jar" --data-urlencode "token=$ADMIN_TOKEN" \
    --data-urlencode "csrf=$csrf" "http://$addr/console/login"
grep -q flash_console "$jar" || { echo "console-watchers: login failed" >&2; exit 1; }
for _ in $(seq 1 "$watchers"); do
    curl -fsN -b "$jar" "http://$addr/console/live" >/dev/null 2>&1 &
    pids+=($!)
done
echo "console-watchers: $watchers live consoles open on $addr" >&2
wait "$server"
