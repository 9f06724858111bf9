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
# It runs twice: the statements of a build before migration 0019 against
# the schema up to 0018 (the job row updated at every decision, its status
# in the jobs_queue index), then today's statements against today's schema
# (a queue row inserted with the job and deleted at the decision; a grant
# leaves the job row alone). Needs the mysql client, python3 and MariaDB on
# 127.0.0.1:3306 (root, no password). Run it on a quiet machine: it
# measures CPU, and shares it with nothing.
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
# (the api's batches), then per 1,000 jobs (a worker batch) the job locks,
# the hold and ledger inserts and the decision. Files sort in the order
# they run; "before" and "now" are the two sets.
python3 - "$work" "$rows" <<'PY'
import os, sys, time
work, n = sys.argv[1], int(sys.argv[2])
base = int(time.time() * 1000)
uid = lambda i: "%012x7%03x8%015x" % (base + i // 20, i % 4096, i)  # time-ordered, like UUIDv7
at, expires = "'2026-12-07 21:00:00.000'", "'2026-12-07 22:00:00.000'"
def write(name, size, statement):
    for kind in ("before", "now"):
        os.makedirs(f"{work}/{kind}", exist_ok=True)
        text = statement(kind)
        if text is None:
            continue
        with open(f"{work}/{kind}/{name}.sql", "w") as f:
            for start in range(0, n, size):
                f.write(text(range(start, min(n, start + size))) + ";\n")
ids = lambda r: ",".join("0x" + uid(i) for i in r)
job_rows = lambda r: "INSERT INTO jobs (id, kind, status, command, created_at, lane) VALUES " + ",".join(
    f"(0x{uid(i)}, 'hold', 'queued', '{{\"type\":\"hold\",\"job_id\":\"{uid(i)}\",\"product_id\":1,\"qty\":1}}', {at}, 1)" for i in r)
queue_rows = lambda r: "INSERT INTO job_queue (kind, lane, id) VALUES " + ",".join(f"('hold', 1, 0x{uid(i)})" for i in r)
in_queue = "FROM jobs j FORCE INDEX (PRIMARY) JOIN job_queue q ON q.kind = j.kind AND q.lane = COALESCE(j.lane, 0) AND q.id = j.id WHERE j.id IN "
write("1_job_insert", 500, lambda k: job_rows if k == "before" else
    (lambda r: f"BEGIN; {job_rows(r)}; {queue_rows(r)}; COMMIT"))
write("2_job_lock", 1000, lambda k: lambda r: "BEGIN; SELECT id, created_at FROM jobs FORCE INDEX (PRIMARY) WHERE status = 'queued' "
    f"AND id IN ({ids(r)}) FOR UPDATE" + ("" if k == "before" else f"; SELECT j.id {in_queue}({ids(r)})") + "; COMMIT")
write("3_hold_insert", 1000, lambda k: lambda r: "INSERT INTO holds (id, product_id, qty, unit_price, amount, status, customer_id, "
    "expires_at, created_at, updated_at) VALUES " + ",".join(f"(0x{uid(i)}, 1, 1, 100, 100, 'active', NULL, {expires}, {at}, {at})" for i in r))
write("4_ledger_insert", 1000, lambda k: lambda r: "INSERT INTO stock_ledger (product_id, delta, reason, ref_id, created_at) VALUES "
    + ",".join(f"(1, -1, 'hold', 0x{uid(i)}, {at})" for i in r))
write("5_decision", 1000, lambda k: (lambda r: "UPDATE jobs FORCE INDEX (PRIMARY) SET status = 'succeeded', result = NULL, "
    f"error = NULL, completed_at = {at} WHERE id IN ({ids(r)})") if k == "before" else
    (lambda r: f"DELETE q {in_queue}({ids(r)})"))
PY

idle() { # until mariadbd uses under 5 % of a core over a second (60 s at most)
    for _ in $(seq 1 60); do
        local t0; t0=$(ticks); sleep 1
        [ $(($(ticks) - t0)) -lt $((hz / 20)) ] && return 0
    done
}

run() { # label, statement set (before|now), migrations up to this prefix
    mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $db; CREATE DATABASE $db"
    for m in migrations/*.sql; do
        [[ "$(basename "$m")" > "$3" ]] && break
        mysql -h127.0.0.1 -uroot "$db" <"$m"
    done
    mysql -h127.0.0.1 -uroot "$db" -e "INSERT INTO products (id, name, price, stock) VALUES (1, 'p', 100, 100000000)"
    local line="$1" total=0
    for f in "$work/$2"/*.sql; do
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
    "hold insert" "ledger insert" "decision" "total"
run "before 0019          " before 0018_zzz
run "now                  " now 9999
