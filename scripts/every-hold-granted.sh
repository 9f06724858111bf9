#!/usr/bin/env bash
# The "every hold granted" benchmark (docs/BENCHMARKS.md): a product with
# stock to spare, wrk firing anonymous holds at one release build of the
# all-in-one `flash-sale` for a fixed time, then the numbers a big sale is
# bounded by, read from where they happen:
#   - accept and decided rates (decided over the whole span, and during the
#     burst), and time to outcome p50/p99/p99.9/max, from the database's own
#     created_at / completed_at (view job_states);
#   - CPU seconds of flash-sale, mariadbd and RabbitMQ (beam.smp) from /proc,
#     from the first request until the last job is decided and MariaDB has
#     purged what the burst left behind, per decided job;
#   - jobs relayed (flash_jobs_relayed_total: 0 in a run without faults);
#   - the server's RSS before and after.
#
#   scripts/every-hold-granted.sh BIN [--duration 10] [--connections 256] [--json FILE]
#   scripts/every-hold-granted.sh --old BIN --new BIN [--pairs 3] [--duration 10] ...
#
# The second form alternates the two builds (old first, then new first, ...),
# each run on a fresh database and vhost, and prints every run and the
# medians. Needs wrk, MariaDB and RabbitMQ on their default local ports,
# rabbitmqctl, the mysql client and python3. The server runs with its
# defaults (PARTITIONS 16, rate limits and buyer tokens off) and a one-hour
# hold TTL, so no sweep runs during the measurement.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=10 connections=256 json="" old="" new="" pairs=3 bin=""
args=("$@")
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) duration=$2; shift 2 ;;
        --connections) connections=$2; shift 2 ;;
        --json) json=$2; shift 2 ;;
        --old) old=$2; shift 2 ;;
        --new) new=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        -*) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
        *) bin=$1; shift ;;
    esac
done

if [ -n "$old$new" ]; then
    [ -x "$old" ] && [ -x "$new" ] || { echo "need --old and --new binaries" >&2; exit 2; }
    out=${BENCH_OUT:-$(mktemp -d /tmp/every-hold-granted.XXXXXX)}
    mkdir -p "$out"
    one() { # side pair
        local b=$old
        [ "$1" = new ] && b=$new
        "$0" "$b" --duration "$duration" --connections "$connections" --json "$out/$1-$2.json" |
            sed "s/^/[$1 $2] /" || true
    }
    for pair in $(seq 1 "$pairs"); do
        if [ $((pair % 2)) = 1 ]; then one old "$pair"; one new "$pair"; else one new "$pair"; one old "$pair"; fi
    done
    python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])
def load(side):
    runs = []
    for p in range(1, pairs + 1):
        try:
            runs.append(json.load(open(f"{out}/{side}-{p}.json")))
        except (OSError, ValueError):
            pass
    return runs
sides = {s: load(s) for s in ("old", "new")}
keys = ["accept_per_s", "decided_per_s", "decided_in_burst_per_s", "tto_p50_ms", "tto_p99_ms", "tto_p999_ms", "tto_max_ms",
        "cpu_us_flash-sale", "cpu_us_mariadbd", "cpu_us_rabbitmq", "cpu_us_total", "relayed",
        "worker_batch_mean_jobs", "worker_batch_mean_ms", "cache_reload_mean_ms", "rss_after_mb"]
print(f"\n{'figure':20} {'old runs':30} {'new runs':30} {'old med':>9} {'new med':>9} {'new/old':>8}")
for k in keys:
    v = {s: [r[k] for r in sides[s] if r.get(k) is not None] for s in sides}
    if not v["old"] or not v["new"]:
        continue
    mo, mn = statistics.median(v["old"]), statistics.median(v["new"])
    fmt = lambda xs: ", ".join(f"{x:,.1f}" for x in xs)
    ratio = f"{mn / mo:8.3f}" if mo else "       -"
    print(f"{k:20} {fmt(v['old']):30} {fmt(v['new']):30} {mo:9,.1f} {mn:9,.1f} {ratio}")
print(f"reports: {out}")
PY
    exit 0
fi

[ -x "$bin" ] || { echo "usage: $0 BIN [--duration S] [--connections N] [--json FILE]" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }

# The previous run's database is dropped and its job rows' old versions
# purged in the background; counted in this run's mariadbd CPU, that made
# later runs of the same build up to 40 % dearer. Wait (60 s at most) for
# the purge queue to empty and the server to idle: under 5 % of a core
# over a second.
quiesce() {
    local mpid t0 t1
    mpid=$(pgrep -xo mariadbd) || return 0
    for _ in $(seq 1 60); do
        t0=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$mpid/stat")
        sleep 1
        t1=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$mpid/stat")
        hist=$(mysql -N -h127.0.0.1 -uroot -e "SELECT count FROM information_schema.innodb_metrics WHERE name = 'trx_rseg_history_len'")
        [ "${hist:-0}" -lt 1000 ] && [ $((t1 - t0)) -lt $(($(getconf CLK_TCK) / 20)) ] && return 0
    done
    echo "warning: the database did not go idle" >&2
}
quiesce
source scripts/lib/stack.sh
stack_init every-hold-granted fs_ehg
stack_start "$bin" PARTITIONS=16 HOLD_TTL_SECS=3600
server=${stack_pids[0]}
sql() { mysql -N -h127.0.0.1 -uroot "$db_name" -e "$1"; }

product=$(curl -fsS -X POST "$base/api/v1/admin/products" -H "Authorization: Bearer $ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name": "Every hold granted", "price": 100, "stock": 5000000}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
cat >"$work/hold.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"product_id": $product, "qty": 1}'
LUA

# utime + stime in clock ticks (fields 14 and 15; the name in field 2 may hold spaces).
ticks() { [ -r "/proc/$1/stat" ] && awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" || echo 0; }
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
declare -A pid=([flash-sale]=$server [mariadbd]=$(pgrep -xo mariadbd || true) [rabbitmq]=$(pgrep -o beam.smp || true))
declare -A before
for p in "${!pid[@]}"; do before[$p]=$(ticks "${pid[$p]}"); done
rss_idle=$(rss_kb "$server")

# From migration 0019 a granted hold's job keeps its `queued` status and the
# view job_states shows what a client sees; an older build has neither.
if [ -n "$(sql "SELECT 1 FROM information_schema.views WHERE table_schema = DATABASE() AND table_name = 'job_states'")" ]; then
    jobs_view=job_states
    undecided="SELECT 1 FROM job_queue LIMIT 1"
else
    jobs_view=jobs
    undecided="SELECT 1 FROM jobs WHERE status = 'queued' LIMIT 1"
fi

wrk -t2 -c"$connections" -d"${duration}s" --latency -s "$work/hold.lua" "$base/api/v1/holds" >"$work/wrk.txt"
# Until the last job is decided (120 s at most); the probe stops at the
# first queued job, so it costs the database next to nothing.
for _ in $(seq 1 600); do
    [ -z "$(sql "$undecided")" ] && break
    sleep 0.2
done
# Then until MariaDB has purged the burst's old row versions: that work is
# the burst's too, and a run that ends sooner (no relay tail) would
# otherwise leave more of it uncounted than one that ends later.
quiesce
cpu_args=()
for p in "${!pid[@]}"; do cpu_args+=("$p=$(($(ticks "${pid[$p]}") - ${before[$p]}))"); done
rss_after=$(rss_kb "$server")
curl -fsS "$base/metrics" >"$work/metrics.txt"
relayed=$(awk '/^flash_jobs_relayed_total/ { s += $NF } END { print s + 0 }' "$work/metrics.txt")
# The worker's hold batches: how many, how large, how long each took.
batches=$(awk '/^flash_worker_batch_size_count\{kind="hold"\}/ { c = $NF } /^flash_worker_batch_size_sum\{kind="hold"\}/ { n = $NF }
    /^flash_worker_batch_seconds_sum\{kind="hold"\}/ { t = $NF } END { print c + 0, n + 0, t + 0 }' "$work/metrics.txt")
# The api's product cache reloads on every stock event (one per batch).
reloads=$(awk '/^flash_api_cache_reload_seconds_count\{kind="changed"\}/ { c = $NF }
    /^flash_api_cache_reload_seconds_sum\{kind="changed"\}/ { t = $NF } END { print c + 0, t + 0 }' "$work/metrics.txt")
sql "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, completed_at), UNIX_TIMESTAMP(created_at), \
     UNIX_TIMESTAMP(completed_at), status FROM $jobs_view WHERE kind = 'hold'" >"$work/jobs.tsv"

python3 - "$work/jobs.tsv" "$work/wrk.txt" "$(getconf CLK_TCK)" "$rss_idle" "$rss_after" "$relayed" "${json:-}" "$batches" "$reloads" "${cpu_args[@]}" <<'PY'
import json, re, sys
tsv, wrk, hz, rss_idle, rss_after, relayed, out, batches, reloads = sys.argv[1:10]
hz = float(hz)
cpu = {k: int(v) / hz for k, v in (a.split("=") for a in sys.argv[10:])}
r_count, r_secs = (float(x) for x in reloads.split())
b_count, b_jobs, b_secs = (float(x) for x in batches.split())
rows = [l.rstrip("\n").split("\t") for l in open(tsv) if l.strip()]
queued = sum(1 for r in rows if r[3] == "queued")
done = [r for r in rows if r[3] != "queued"]
granted = sum(1 for r in done if r[3] == "succeeded")
tto = sorted(int(r[0]) / 1000 for r in done)
def pct(p):
    if not tto:
        return None
    i = max(0, min(len(tto) - 1, -(-len(tto) * p // 100) - 1))
    return round(tto[int(i)], 1)
created = [float(r[1]) for r in rows]
completed = [float(r[2]) for r in done]
accept_span = max(created) - min(created) if created else 0
decided_span = max(completed) - min(created) if done else 0
# Decided while the burst lasted: jobs decided before the last one was
# recorded, over the burst's span. A few jobs left to the relay (a build
# with the hang-up tail) stretch the span above by RELAY_AFTER_SECS.
burst_end = max(created) if created else 0
in_burst = sum(1 for c in completed if c <= burst_end)
text = open(wrk).read()
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
report = {
    "jobs": len(rows), "granted": granted, "failed": len(done) - granted, "undecided": queued,
    "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    "socket_errors": errors.group(1) if errors else None,
    "accept_per_s": round(len(rows) / accept_span, 1) if accept_span else None,
    "decided_per_s": round(len(done) / decided_span, 1) if decided_span else None,
    "decided_in_burst_per_s": round(in_burst / accept_span, 1) if accept_span else None,
    "tto_p50_ms": pct(50), "tto_p99_ms": pct(99), "tto_p999_ms": pct(99.9), "tto_max_ms": pct(100),
    "relayed": int(float(relayed)),
    "rss_idle_mb": round(int(rss_idle) / 1024, 1), "rss_after_mb": round(int(rss_after) / 1024, 1),
    "worker_batches": int(b_count),
    "worker_batch_mean_jobs": round(b_jobs / b_count, 1) if b_count else None,
    "worker_batch_mean_ms": round(b_secs * 1000 / b_count, 1) if b_count else None,
    "cache_reloads": int(r_count),
    "cache_reload_mean_ms": round(r_secs * 1000 / r_count, 2) if r_count else None,
}
for name, secs in sorted(cpu.items()):
    report[f"cpu_s_{name}"] = round(secs, 2)
    report[f"cpu_us_{name}"] = round(secs * 1e6 / len(done), 1) if done else None
report["cpu_us_total"] = round(sum(cpu.values()) * 1e6 / len(done), 1) if done else None
if out:
    json.dump(report, open(out, "w"), indent=1)
print(f"jobs {report['jobs']} (granted {granted}, failed {report['failed']}, undecided {queued}), "
      f"non-2xx {report['non_2xx']}, socket errors {report['socket_errors']}")
print(f"accept {report['accept_per_s']}/s  decided {report['decided_per_s']}/s "
      f"(during the burst {report['decided_in_burst_per_s']}/s)  "
      f"time to outcome ms p50 {report['tto_p50_ms']} p99 {report['tto_p99_ms']} "
      f"p99.9 {report['tto_p999_ms']} max {report['tto_max_ms']}  relayed {report['relayed']}")
print("cpu us per decided job: " + "  ".join(f"{n} {report[f'cpu_us_{n}']}" for n in sorted(cpu))
      + f"  total {report['cpu_us_total']}")
print(f"server RSS {report['rss_idle_mb']} MB idle, {report['rss_after_mb']} MB after")
print(f"worker: {report['worker_batches']} hold batches, {report['worker_batch_mean_jobs']} jobs "
      f"and {report['worker_batch_mean_ms']} ms each on average")
print(f"api cache: {report['cache_reloads']} reloads on stock events, "
      f"{report['cache_reload_mean_ms']} ms each on average")
sys.exit(1 if queued or report["relayed"] else 0)
PY
