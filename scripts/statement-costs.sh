#!/usr/bin/env bash
# What each row a granted hold writes costs the database (docs/BENCHMARKS.md,
# "Where mariadbd's time goes"). The same statements the api and the worker
# send, in their batch sizes, one after another from the mysql client against
# a scratch database with our schema, 200,000 rows each; the figure is
# mariadbd's CPU (from /proc) per row, the background purge that follows
# included. mariadbd is stripped of its InnoDB symbols here, so `perf`
# cannot split its time by table; this can.
#
#   scripts/statement-costs.sh [--rows 200000]
#
# Each statement runs twice: with the schema as migrated, and with the
# `jobs_queue` index (status, kind, lane) dropped, which shows what keeping
# a job's status in an index costs when the worker decides it. Needs the
# mysql client, python3 and MariaDB on 127.0.0.1:3306 (root, no password).
# Run it on a quiet machine: it measures CPU, and shares it with nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=200000
while [ $# -gt 0 ]; do
    case "$1" in
        --rows) rows=$2; shift 2 ;;
        *) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
    esac
done
db=fs_statement_costs
work=$(mktemp -d /tmp/statement-costs.XXXXXX)
trap 'rm -rf "$work"; mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true' EXIT
mpid=$(pgrep -xo mariadbd) || { echo "no mariadbd running here" >&2; exit 2; }
ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$mpid/stat"; }
hz=$(getconf CLK_TCK)

# The statements, in the shapes src/db writes them: job inserts of 500 rows
# (the api's batches), then per 1,000 jobs (a worker batch) the locking
# read of the queued jobs, the hold and ledger inserts and the job update.
python3 - "$work" "$rows" <<'PY'
import sys, time
work, n = sys.argv[1], int(sys.argv[2])
base = int(time.time() * 1000)
uid = lambda i: "%012x7%03x8%015x" % (base + i // 20, i % 4096, i)  # time-ordered, like UUIDv7
at, expires = "'2026-12-07 21:00:00.000'", "'2026-12-07 22:00:00.000'"
def write(name, size, statement):
    with open(f"{work}/{name}.sql", "w") as f:
        for start in range(0, n, size):
            f.write(statement(range(start, min(n, start + size))) + ";\n")
ids = lambda r: ",".join("0x" + uid(i) for i in r)
write("1_job_insert", 500, lambda r: "INSERT INTO jobs (id, kind, status, command, created_at, lane) VALUES " + ",".join(
    f"(0x{uid(i)}, 'hold', 'queued', '{{\"type\":\"hold\",\"job_id\":\"{uid(i)}\",\"product_id\":1,\"qty\":1}}', {at}, 1)" for i in r))
write("2_job_lock", 1000, lambda r: "BEGIN; SELECT id, created_at FROM jobs FORCE INDEX (PRIMARY) WHERE status = 'queued' "
    f"AND id IN ({ids(r)}) FOR UPDATE; COMMIT")
write("3_hold_insert", 1000, lambda r: "INSERT INTO holds (id, product_id, qty, unit_price, amount, status, customer_id, "
    "expires_at, created_at, updated_at) VALUES " + ",".join(f"(0x{uid(i)}, 1, 1, 100, 100, 'active', NULL, {expires}, {at}, {at})" for i in r))
write("4_ledger_insert", 1000, lambda r: "INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES "
    + ",".join(f"(1, -1, 'hold', 0x{uid(i)}, {at})" for i in r))
write("5_job_update", 1000, lambda r: "UPDATE jobs FORCE INDEX (PRIMARY) SET status = 'succeeded', result = NULL, "
    f"error = NULL, completed_at = {at} WHERE id IN ({ids(r)})")
PY

idle() { # until mariadbd uses under 5 % of a core over a second (60 s at most)
    for _ in $(seq 1 60); do
        local t0; t0=$(ticks); sleep 1
        [ $(($(ticks) - t0)) -lt $((hz / 20)) ] && return 0
    done
}

run() { # label, DDL applied after the migrations
    mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
    cat migrations/*.sql | mysql -h127.0.0.1 -uroot "$db"
    [ -n "$2" ] && mysql -h127.0.0.1 -uroot "$db" -e "$2"
    mysql -h127.0.0.1 -uroot "$db" -e "INSERT INTO products (id, name, price, stock) VALUES (1, 'p', 100, 100000000)"
    local line="$1" total=0
    for f in "$work"/*.sql; do
        idle
        local t0; t0=$(ticks)
        mysql -h127.0.0.1 -uroot "$db" <"$f" >/dev/null
        idle # the purge of what the statement replaced counts too
        local us=$(( ($(ticks) - t0) * 1000000 / hz * 10 / rows ))
        total=$((total + us))
        line+=$(printf ' %14s' "$((us / 10)).$((us % 10))")
    done
    echo "$line $(printf '%10s' "$((total / 10)).$((total % 10))")"
}

printf '%-22s %14s %14s %14s %14s %14s %10s\n' "µs of mariadbd per row" "job insert" "job lock" \
    "hold insert" "ledger insert" "job update" "total"
run "schema as migrated   " ""
run "without jobs_queue   " "ALTER TABLE jobs DROP INDEX jobs_queue"
