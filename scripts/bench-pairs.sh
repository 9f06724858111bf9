#!/usr/bin/env bash
# Paired benchmark runs: two builds of `flash-sale` (say the commit before a
# change and after it), alternating, each run on a fresh database and vhost,
# the same `loadgen` command against each. Prints every run and the medians.
#
#   scripts/bench-pairs.sh --old OLD/flash-sale --new NEW/flash-sale [--pairs 3] \
#       [--loadgen target/release/loadgen] [--new-extra "ARGS"] -- --clients 256 --requests 40000
#
# --new-extra adds loadgen arguments to the new side only, so one binary can
# be paired against itself with a feature on (say buyer tokens and a limit).
#
# The order alternates (old first, then new first, ...) so a machine that
# speeds up or slows down during the sitting does not favour one side.
# Needs MariaDB and RabbitMQ on their default local ports, rabbitmqctl and
# mysql (as scripts/dev sets up) and python3. Reports go to $BENCH_OUT
# (default: a temporary directory), one JSON per run.
set -euo pipefail
cd "$(dirname "$0")/.."

old="" new="" pairs=3 loadgen=target/release/loadgen new_extra=""
while [ $# -gt 0 ]; do
    case "$1" in
        --old) old=$2; shift 2 ;;
        --new) new=$2; shift 2 ;;
        --pairs) pairs=$2; shift 2 ;;
        --loadgen) loadgen=$2; shift 2 ;;
        --new-extra) new_extra=$2; shift 2 ;;
        --) shift; break ;;
        *) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
[ -x "$old" ] && [ -x "$new" ] && [ -x "$loadgen" ] || {
    echo "need --old and --new flash-sale binaries and a built loadgen ($loadgen)" >&2
    exit 2
}

out=${BENCH_OUT:-$(mktemp -d /tmp/bench-pairs.XXXXXX)}
mkdir -p "$out"
port=18181
export ADMIN_TOKEN=bench-admin-token WEBHOOK_SECRET=bench-webhook-secret
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null; true; }
trap cleanup EXIT

run_one() { # side binary pair
    local side=$1 bin=$2 pair=$3 name="bench_pairs_${1}_$3"
    shift 3
    mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $name"
    rabbitmqctl -q delete_vhost "$name" >/dev/null 2>&1 || true
    rabbitmqctl -q add_vhost "$name" >/dev/null
    rabbitmqctl -q set_permissions -p "$name" guest '.*' '.*' '.*' >/dev/null
    DATABASE_URL="mysql://root@127.0.0.1:3306/$name" \
        AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$name" \
        API_ADDR="127.0.0.1:$port" ENABLE_BASELINE=true HOLD_TTL_SECS=3600 RUST_LOG=warn \
        "$bin" >"$out/$side-$pair.server.log" 2>&1 &
    server=$!
    for _ in $(seq 1 300); do
        curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
        sleep 0.1
    done
    # CPU of the server, the database and the broker over the pipeline's
    # hold run (loadgen reads /proc); a service not found is left out.
    local cpu=(--cpu-pid "flash-sale=$server") pid extra=()
    # Word splitting is the point: the extra arguments come as one string.
    # shellcheck disable=SC2206
    [ "$side" = new ] && extra=($new_extra)
    pid=$(pgrep -xo mariadbd) && cpu+=(--cpu-pid "mariadbd=$pid")
    pid=$(pgrep -o beam.smp) && cpu+=(--cpu-pid "rabbitmq=$pid")
    set +e
    "$loadgen" --url "http://127.0.0.1:$port" --json "${cpu[@]}" "$@" "${extra[@]}" \
        >"$out/$side-$pair.json" 2>"$out/$side-$pair.err"
    local rc=$?
    set -e
    cleanup
    server=""
    mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $name"
    rabbitmqctl -q delete_vhost "$name" >/dev/null 2>&1 || true
    echo "pair $pair $side: loadgen exit $rc ($out/$side-$pair.json)"
}

for pair in $(seq 1 "$pairs"); do
    if [ $((pair % 2)) = 1 ]; then
        run_one old "$old" "$pair" "$@"; run_one new "$new" "$pair" "$@"
    else
        run_one new "$new" "$pair" "$@"; run_one old "$old" "$pair" "$@"
    fi
done

python3 - "$out" "$pairs" <<'PY'
import json, statistics, sys
out, pairs = sys.argv[1], int(sys.argv[2])

def figures(path):
    try:
        report = json.load(open(path))
    except (OSError, ValueError):
        return None
    f = {"pass": report.get("pass")}
    if report.get("pipeline_to_baseline_ratio") is not None:
        f["ratio"] = report["pipeline_to_baseline_ratio"]
    for run in report.get("runs", []):
        f[run["mode"] + " decided/s"] = run["end_to_end_decided_per_s"]
        f[run["mode"] + " accept/s"] = run["accept_requests_per_s"]
        if run.get("sold_out"):
            f["sold-out req/s"] = run["sold_out"]["requests_per_s"]
        # Pipeline hold run only (see loadgen --cpu-pid, --metrics-url).
        cpu = run.get("cpu") or {}
        for p in cpu.get("processes", []):
            if p.get("cpu_us_per_decided") is not None:
                f["cpu us/decided " + p["name"]] = p["cpu_us_per_decided"]
        if cpu.get("total_cpu_us_per_decided") is not None:
            f["cpu us/decided total"] = cpu["total_cpu_us_per_decided"]
        if run.get("jobs_relayed") is not None:
            f["jobs relayed"] = run["jobs_relayed"]
    return f

runs = {side: [figures(f"{out}/{side}-{p}.json") for p in range(1, pairs + 1)] for side in ("old", "new")}
keys = sorted({k for side in runs.values() for f in side if f for k in f if k != "pass"})
print(f"\n{'figure':28} {'old runs':32} {'new runs':32} {'old med':>9} {'new med':>9} {'new/old':>8}")
for k in keys:
    vals = {s: [f[k] for f in runs[s] if f and k in f] for s in runs}
    if not vals["old"] or not vals["new"]:
        continue
    mo, mn = statistics.median(vals["old"]), statistics.median(vals["new"])
    fmt = lambda xs: ", ".join(f"{x:,.2f}" if x < 100 else f"{x:,.0f}" for x in xs)
    ratio = f"{mn / mo:8.3f}" if mo else f"{'-':>8}"  # jobs relayed is mostly 0
    print(f"{k:28} {fmt(vals['old']):32} {fmt(vals['new']):32} {mo:9,.2f} {mn:9,.2f} {ratio}")
print("pass:", {s: [f and f["pass"] for f in runs[s]] for s in runs})
PY
