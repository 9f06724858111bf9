#!/usr/bin/env bash
# chaos.sh: a chaos run of the real binaries (the guarantees of docs/API.md
# under faults). Builds target/release/{api,worker,scheduler,loadgen}, starts 1 api,
# 2 workers and 1 scheduler on a fresh database and a fresh RabbitMQ vhost,
# plants poison messages, drives `loadgen --mode pipeline --flow holds` and meanwhile
# SIGKILLs workers, restarts RabbitMQ and restarts MariaDB. Then it waits for
# the stack to settle and checks the books from the rows themselves.
#
#   scripts/chaos.sh               # exit 0 only when every check passes
#   scripts/chaos.sh --no-ci-wait  # do not wait for a CI check (CI itself)
#
# Needs: local MariaDB (root, empty password, 127.0.0.1:3306, mariadb-admin
# over the socket), local RabbitMQ with rabbitmqctl, root (to restart them),
# curl, jq, python3 (a venv with `pika` is made to plant poison messages; if
# pip cannot install it, planting is skipped and 0 dead letters are expected).
#
# WARNING: this restarts the machine's MariaDB and RabbitMQ, which disrupts
# anything else using them. Unless given --no-ci-wait, it waits until
# /tmp/ci-check.log has a line starting with `exit=` (a CI check in
# progress), and it holds /tmp/chaos.lock while it runs.
#
# Once the stack settles it checks what is true of the partitions now: each
# partition queue has exactly one consumer, and every live worker (no more
# of them than PARTITIONS) holds a share, read from its own
# flash_worker_partitions gauge.
#
# Knobs (environment): CHAOS_PORT (first port tried, 18181), CHAOS_CLIENTS
# (128), CHAOS_REQUESTS (30000), CHAOS_MAX_RUNS (10 loadgen runs at most),
# CHAOS_SKIP_BUILD=1, CHAOS_CI_WAIT_SECS (3600), CHAOS_KEEP_DB=1 (keep the
# database and vhost for inspection).
set -uo pipefail

CI_WAIT=1
for arg in "$@"; do
    case "$arg" in
    --no-ci-wait) CI_WAIT=0 ;;
    *) echo "usage: $0 [--no-ci-wait]" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=$ROOT/target/release
LOCK=/tmp/chaos.lock
CI_LOG=/tmp/ci-check.log
CLIENTS=${CHAOS_CLIENTS:-128}
REQUESTS=${CHAOS_REQUESTS:-30000}
MAX_RUNS=${CHAOS_MAX_RUNS:-10}
START_EPOCH=$(date +%s)

TMP=$(mktemp -d /tmp/chaos.XXXXXX)
STAMP=$(date +%Y%m%d_%H%M%S)_$$
DB=chaos_$STAMP
VHOST=chaos_$STAMP
MYSQL=(mariadb -h127.0.0.1 -P3306 -uroot --batch --skip-column-names)

log() {
    local line
    line=$(printf '[chaos +%3ss] %s' "$(($(date +%s) - START_EPOCH))" "$*")
    printf '%s\n' "$line" >&2
    printf '%s\n' "$line" >>"$TMP/chaos.log"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_mariadb() {
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
    for _ in $(seq 1 120); do
        mariadb-admin ping >/dev/null 2>&1 && port_open 3306 && return 0
        sleep 0.5
    done
    return 1
}

# ------------------------------------------------------------------ cleanup

LOCK_OURS=0
DB_MADE=0
VHOST_MADE=0
PIDS=()   # every stack process we started (killed ones included; harmless)
LOAD_PID=

ensure_services() {
    if ! mariadb-admin ping >/dev/null 2>&1; then
        log "cleanup: MariaDB is down, starting it"
        start_mariadb || log "cleanup: MariaDB did not come back"
    fi
    if ! rabbitmqctl -q await_startup --timeout 5 >/dev/null 2>&1; then
        log "cleanup: RabbitMQ app is down, starting it"
        rabbitmqctl -q start_app >/dev/null 2>&1
        rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 || log "cleanup: RabbitMQ did not come back"
    fi
}

stop_pid() { # pid...: TERM, then KILL after 10 s
    local pid alive
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null; done
    for _ in $(seq 1 100); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null; done
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if [ -n "$LOAD_PID" ]; then
        [ -s "$TMP/loadgen.pid" ] && kill -TERM "$(cat "$TMP/loadgen.pid")" 2>/dev/null
        kill -TERM "$LOAD_PID" 2>/dev/null
    fi
    if [ "${#PIDS[@]}" -gt 0 ]; then stop_pid "${PIDS[@]}"; fi
    wait 2>/dev/null
    if [ "$LOCK_OURS" = 1 ]; then
        ensure_services
        if [ "${CHAOS_KEEP_DB:-0}" = 1 ]; then
            log "kept database $DB and vhost $VHOST (CHAOS_KEEP_DB=1)"
        else
            [ "$DB_MADE" = 1 ] && "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS \`$DB\`" \
                && log "dropped database $DB"
            [ "$VHOST_MADE" = 1 ] && rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 \
                && log "deleted vhost $VHOST"
        fi
        rm -f "$LOCK"
    fi
    rm -rf "$TMP/venv"
    log "logs kept in $TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ lock, CI

if [ -e "$LOCK" ] && kill -0 "$(cat "$LOCK" 2>/dev/null || echo 0)" 2>/dev/null; then
    log "another chaos run holds $LOCK (pid $(cat "$LOCK")); refusing"
    exit 3
fi
echo $$ >"$LOCK"
LOCK_OURS=1
log "holding $LOCK; temp dir $TMP"

ci_wait=${CHAOS_CI_WAIT_SECS:-3600}
waited=0
while [ "$CI_WAIT" = 1 ] && [ -e "$CI_LOG" ] && ! grep -q '^exit=' "$CI_LOG"; do
    if [ "$waited" -ge "$ci_wait" ]; then
        log "a CI check is still running after ${ci_wait}s ($CI_LOG has no exit= line); giving up"
        exit 3
    fi
    [ $((waited % 60)) = 0 ] && log "waiting for the CI check to finish ($CI_LOG has no exit= line yet)"
    sleep 5
    waited=$((waited + 5))
done

# ------------------------------------------------------------------ build

if [ "${CHAOS_SKIP_BUILD:-0}" != 1 ]; then
    log "cargo build --release --bins"
    if ! cargo build --release --bins >"$TMP/build.log" 2>&1; then
        tail -40 "$TMP/build.log" >&2
        log "build failed (see $TMP/build.log)"
        exit 4
    fi
fi
for b in api worker scheduler loadgen; do
    [ -x "$BIN/$b" ] || { log "missing $BIN/$b"; exit 4; }
done

# ------------------------------------------------------------------ services

mariadb-admin ping >/dev/null 2>&1 || { log "MariaDB is not up"; exit 5; }
rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1 || { log "RabbitMQ is not up"; exit 5; }

"${MYSQL[@]}" -e "CREATE DATABASE \`$DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin" || exit 5
DB_MADE=1
rabbitmqctl -q add_vhost "$VHOST" >/dev/null || exit 5
VHOST_MADE=1
rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null || exit 5
log "database $DB and vhost $VHOST created"

PORT=${CHAOS_PORT:-18181}
while port_open "$PORT"; do PORT=$((PORT + 1)); done
URL=http://127.0.0.1:$PORT

export DATABASE_URL="mysql://root@127.0.0.1:3306/$DB"
export AMQP_URL="amqp://guest:guest@127.0.0.1:5672/$VHOST"
export ADMIN_TOKEN="chaos-admin-$STAMP-$RANDOM$RANDOM"
export WEBHOOK_SECRET="chaos-webhook-$STAMP-$RANDOM$RANDOM"
export API_ADDR="127.0.0.1:$PORT"
export HOLD_TTL_SECS=300 RUST_LOG=warn PARTITIONS=16 RELAY_AFTER_SECS=5
export NO_COLOR=1 # plain text logs
unset LOG_FORMAT ENABLE_BASELINE

sql() { "${MYSQL[@]}" "$DB" -e "$1"; }

# ------------------------------------------------------------------ stack

STARTED_PID=
start_role() { # name binary: starts it in the background, sets STARTED_PID
    printf '\n===== %s started at %s =====\n' "$1" "$(date -u +%FT%T.%3NZ)" >>"$TMP/$1.log"
    "$BIN/$2" >>"$TMP/$1.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}

ready() { [ "$(curl -s -o /dev/null -m 3 -w '%{http_code}' "$URL/readyz")" = 200 ]; }

wait_ready() { # seconds
    local deadline=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        ready && return 0
        sleep 0.2
    done
    return 1
}

start_role api api
API_PID=$STARTED_PID
wait_ready 60 || { log "api never became ready (see $TMP/api.log)"; tail -20 "$TMP/api.log" >&2; exit 6; }
WORKER_PIDS=()
WORKER_METRICS=()
WORKER_SEQ=0
METRICS_PORT=$((PORT + 1))
start_worker() { # slot: each worker serves its own /metrics (its share)
    WORKER_SEQ=$((WORKER_SEQ + 1))
    while port_open "$METRICS_PORT"; do METRICS_PORT=$((METRICS_PORT + 1)); done
    METRICS_ADDR=127.0.0.1:$METRICS_PORT start_role "worker$WORKER_SEQ" worker
    WORKER_PIDS[$1]=$STARTED_PID
    WORKER_METRICS[$1]=$METRICS_PORT
    METRICS_PORT=$((METRICS_PORT + 1))
}
start_worker 0
start_worker 1
start_role scheduler scheduler
SCHED_PID=$STARTED_PID
# Workers share the partitions: each queue has one consumer, and every live
# worker holds a share (its flash_worker_partitions gauge). SHARES is set to
# "pid:partitions ..." and ONE_CONSUMER to the queues with exactly one.
share_of() { # metrics port: the worker's gauge, or "?" if it does not answer
    curl -s -m 2 "http://127.0.0.1:$1/metrics" 2>/dev/null \
        | awk '$1 == "flash_worker_partitions" { v = $2 } END { print (v == "" ? "?" : v + 0) }'
}
shares_ok() {
    local slot pid share ok=1
    ONE_CONSUMER=$(rabbitmqctl -q list_queues -p "$VHOST" --no-table-headers name consumers 2>/dev/null \
        | awk '$1 ~ /^flash\.commands\.[0-9]+$/ && $2 == 1 { c++ } END { print c + 0 }')
    [ "$ONE_CONSUMER" = 16 ] || ok=0
    SHARES=
    for slot in "${!WORKER_PIDS[@]}"; do
        pid=${WORKER_PIDS[$slot]}
        kill -0 "$pid" 2>/dev/null || continue
        share=$(share_of "${WORKER_METRICS[$slot]}")
        SHARES="$SHARES $pid:$share"
        case "$share" in '?' | 0) ok=0 ;; esac
    done
    SHARES=${SHARES# }
    [ "$ok" = 1 ]
}
for _ in $(seq 1 120); do shares_ok && break; sleep 0.5; done
shares_ok || log "warning: partitions not shared out yet: $ONE_CONSUMER/16 queues with one consumer, shares $SHARES"
log "stack up: api $API_PID, workers ${WORKER_PIDS[*]}, scheduler $SCHED_PID, $URL"

# ------------------------------------------------------------------ poison

PLANTED=0
PLANT_NOTE=
plant_poison() {
    if command -v rabbitmqadmin >/dev/null 2>&1 \
        && curl -s -o /dev/null -m 3 -u guest:guest http://127.0.0.1:15672/api/overview; then
        local rk
        for rk in 0 1 2; do
            rabbitmqadmin -V "$VHOST" publish exchange=flash.commands routing_key="$rk" \
                payload="poison-$rk: not a command {" >/dev/null 2>&1 && PLANTED=$((PLANTED + 1))
        done
        PLANT_NOTE="rabbitmqadmin"
        return
    fi
    # rabbitmqadmin needs the management plugin, which we do not enable on a
    # shared broker: publish with pika from a throwaway venv instead.
    if ! { python3 -m venv "$TMP/venv" >"$TMP/venv.log" 2>&1 \
        && "$TMP/venv/bin/pip" install -q --disable-pip-version-check pika >>"$TMP/venv.log" 2>&1; }; then
        PLANT_NOTE="skipped: could not pip install pika (see $TMP/venv.log)"
        return
    fi
    PLANTED=$("$TMP/venv/bin/python" - "$AMQP_URL" <<'PY'
import sys
import pika

conn = pika.BlockingConnection(pika.URLParameters(sys.argv[1]))
ch = conn.channel()
ch.confirm_delivery()
bodies = {
    "0": b"\xff\xfe poison: not even UTF-8",
    "1": b'{"type": "hold", "job_id": "not-a-uuid"',
    "2": b'{"type": "explode", "product_id": 1}',
}
n = 0
for rk, body in bodies.items():
    ch.basic_publish(
        "flash.commands", rk, body,
        pika.BasicProperties(delivery_mode=2, content_type="application/json"),
        mandatory=True,
    )
    n += 1
conn.close()
print(n)
PY
    ) || { PLANTED=0; PLANT_NOTE="skipped: the pika publisher failed"; return; }
    PLANT_NOTE="pika"
}
plant_poison
log "planted $PLANTED poison messages ($PLANT_NOTE)"

# ------------------------------------------------------------------ load

load_loop() {
    local i=0 rc
    while :; do
        i=$((i + 1))
        wait_ready 120 || echo "run $i: api not ready after 120 s, starting anyway" >>"$TMP/load.notes"
        echo "$i" >"$TMP/load.current"
        "$BIN/loadgen" --url "$URL" --mode pipeline --flow holds --clients "$CLIENTS" --requests "$REQUESTS" \
            --admin-token "$ADMIN_TOKEN" --json >"$TMP/loadgen.$i.json" 2>"$TMP/loadgen.$i.err" &
        echo $! >"$TMP/loadgen.pid"
        wait $!
        rc=$?
        echo "$rc" >"$TMP/loadgen.$i.rc"
        echo "run $i ended rc=$rc at +$(($(date +%s) - START_EPOCH))s" >>"$TMP/load.notes"
        [ -e "$TMP/faults.done" ] && break
        [ "$i" -ge "$MAX_RUNS" ] && break
    done
}

# Waits until a loadgen run newer than $LAST_FAULT_RUN is in its burst (its
# product made, its POSTs under way, not yet polling), so that every fault
# lands in a different run while requests are arriving. A burst of 30000
# requests lasts only a few seconds, hence the polling at 50 ms.
LAST_FAULT_RUN=0
wait_burst() {
    local i err
    for _ in $(seq 1 1200); do
        i=$(cat "$TMP/load.current" 2>/dev/null || echo 0)
        err=$TMP/loadgen.$i.err
        if [ "$i" -gt "$LAST_FAULT_RUN" ] && [ ! -e "$TMP/loadgen.$i.rc" ] \
            && grep -q '^pipeline: [0-9]* requests' "$err" 2>/dev/null \
            && ! grep -q '^pipeline: polling' "$err" 2>/dev/null; then
            LAST_FAULT_RUN=$i
            return 0
        fi
        kill -0 "$LOAD_PID" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

KILLS=0
RABBIT_RESTARTS=0
MARIADB_RESTARTS=0
FAULT_LOG=()
fault() { FAULT_LOG+=("+$(($(date +%s) - START_EPOCH))s $*"); log "FAULT: $*"; }

kill_worker() { # slot delay
    local old=${WORKER_PIDS[$1]}
    local run
    run=$(cat "$TMP/load.current")
    kill -KILL "$old" || log "worker $old was already gone before its kill"
    wait "$old" 2>/dev/null
    KILLS=$((KILLS + 1))
    [ "$2" != 0 ] && sleep "$2"
    start_worker "$1"
    fault "kill -9 worker pid $old (slot $1, loadgen run $run), replacement pid ${WORKER_PIDS[$1]} after ${2}s"
}

restart_rabbitmq() {
    local t0 run
    run=$(cat "$TMP/load.current")
    t0=$(date +%s%N)
    rabbitmqctl -q stop_app >"$TMP/rabbit-restart.log" 2>&1
    sleep 5
    rabbitmqctl -q start_app >>"$TMP/rabbit-restart.log" 2>&1
    rabbitmqctl -q await_startup --timeout 120 >>"$TMP/rabbit-restart.log" 2>&1
    RABBIT_RESTARTS=$((RABBIT_RESTARTS + 1))
    fault "RabbitMQ stop_app/start_app (loadgen run $run), down $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

restart_mariadb() {
    local t0 run
    run=$(cat "$TMP/load.current")
    t0=$(date +%s%N)
    mariadb-admin shutdown >"$TMP/mariadb-restart.log" 2>&1
    for _ in $(seq 1 120); do pgrep -x mariadbd >/dev/null || break; sleep 0.5; done
    if ! start_mariadb >>"$TMP/mariadb-restart.log" 2>&1; then
        log "MariaDB did not come back after the restart"
        exit 7
    fi
    MARIADB_RESTARTS=$((MARIADB_RESTARTS + 1))
    fault "MariaDB shutdown/start (loadgen run $run), down $(( ($(date +%s%N) - t0) / 1000000 )) ms"
}

LOAD_START=$(date +%s)
load_loop &
LOAD_PID=$!
log "load loop started (pid $LOAD_PID): loadgen --mode pipeline --clients $CLIENTS --requests $REQUESTS, back to back until the faults are done"

step() { # seconds-into-the-burst action...: one fault per loadgen run
    if ! wait_burst; then
        log "no loadgen burst under way (the load loop ended?); fault anyway"
    fi
    sleep "$1"
    shift
    "$@"
}
step 1.0 kill_worker 0 1
step 0.3 restart_rabbitmq
step 1.0 kill_worker 1 0
step 0.5 restart_mariadb
step 1.5 kill_worker 0 1
touch "$TMP/faults.done"
log "faults done: $KILLS worker kills, $RABBIT_RESTARTS RabbitMQ restarts, $MARIADB_RESTARTS MariaDB restarts; waiting for the load to end"
wait "$LOAD_PID"
LOAD_PID=
LOAD_SECS=$(($(date +%s) - LOAD_START))
log "load ended after ${LOAD_SECS}s"

# ------------------------------------------------------------------ settle

# A smoke hold after the chaos: the whole path (api publish, worker, events)
# must work again without restarting anything.
SMOKE_STATUS=none
smoke() {
    local product pid
    product=$(curl -s -m 10 -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
        -d '{"name":"chaos smoke","price":100,"stock":5}' "$URL/api/v1/admin/products")
    pid=$(jq -r '.id // empty' <<<"$product" 2>/dev/null)
    if [ -z "$pid" ]; then
        SMOKE_STATUS="create product failed: $product"
        return
    fi
    SMOKE_STATUS=$(curl -s -o "$TMP/smoke.json" -m 15 -w '%{http_code}' -H 'content-type: application/json' \
        -H 'prefer: wait=10' -d "{\"product_id\":$pid,\"qty\":1}" "$URL/api/v1/holds")
}
wait_ready 60 || log "api not ready 60 s after the load"
smoke
log "smoke hold after the chaos: HTTP $SMOKE_STATUS"

queued() { sql "SELECT COUNT(*) FROM job_states WHERE status = 'queued'" 2>/dev/null || echo "?"; }
SETTLE_START=$(date +%s)
QUEUED_LEFT=$(queued)
while [ "$QUEUED_LEFT" != 0 ] && [ $(($(date +%s) - SETTLE_START)) -lt 120 ]; do
    sleep 1
    QUEUED_LEFT=$(queued)
done
log "jobs queued: $QUEUED_LEFT after $(($(date +%s) - SETTLE_START))s"

queue_counts() {
    rabbitmqctl -q list_queues -p "$VHOST" --no-table-headers name messages consumers >"$TMP/queues.txt" 2>&1
    PARTITION_MSGS=$(awk '$1 ~ /^flash\.commands\.[0-9]+$/ { s += $2 } END { print s + 0 }' "$TMP/queues.txt")
    DEAD_LETTERS=$(awk '$1 == "flash.dead-letters" { print $2 }' "$TMP/queues.txt")
    DEAD_LETTERS=${DEAD_LETTERS:-?}
}
Q_START=$(date +%s)
queue_counts
while { [ "$PARTITION_MSGS" != 0 ] || [ "$DEAD_LETTERS" != "$PLANTED" ]; } \
    && [ $(($(date +%s) - Q_START)) -lt 60 ]; do
    sleep 1
    queue_counts
done
log "partition messages $PARTITION_MSGS, dead letters $DEAD_LETTERS"

# ------------------------------------------------------------------ checks

FAILS=0
REPORT=()
check() { # name value pass(0|1) [detail] [detail shown only on FAIL]
    local verdict=PASS detail=${4:-}
    [ "$3" = 1 ] || { verdict=FAIL; FAILS=$((FAILS + 1)); detail=${5:-$detail}; }
    REPORT+=("$(printf '%-4s  %-58s %s%s' "$verdict" "$1" "$2" "${detail:+  ($detail)}")")
}
info() { REPORT+=("$(printf 'INFO  %-58s %s' "$1" "$2")"); }
is() { [ "$1" = "$2" ] && echo 1 || echo 0; }

ACCEPTED=$(sql "SELECT COUNT(*) FROM jobs")
FINISHED=$(sql "SELECT COUNT(*) FROM job_states WHERE status <> 'queued'")
QUEUED_LEFT=$(queued)
check "accepted jobs (rows in jobs)" "$ACCEPTED" "$([ "${ACCEPTED:-0}" -gt 0 ] && echo 1 || echo 0)"
check "finished jobs (status <> queued)" "$FINISHED" "$(is "$FINISHED" "$ACCEPTED")" "of $ACCEPTED"
check "jobs left queued" "$QUEUED_LEFT" "$(is "$QUEUED_LEFT" 0)"
info "jobs by kind/status" "$(sql "SELECT CONCAT(kind, ':', status, '=', COUNT(*)) FROM job_states GROUP BY kind, status" | paste -sd' ')"
info "failed jobs by error code" "$(sql "SELECT CONCAT(c, '=', n) FROM (SELECT COALESCE(JSON_VALUE(error, '\$.code'), 'none') AS c, COUNT(*) AS n FROM job_states WHERE status = 'failed' GROUP BY c) t" | paste -sd' ')"

DOUBLE=$(sql "SELECT COUNT(*) FROM (SELECT ref_id FROM stock_ledger WHERE reason = 'hold' GROUP BY ref_id HAVING COUNT(*) > 1) t")
check "holds applied twice (ledger ref_id with >1 hold row)" "$DOUBLE" "$(is "$DOUBLE" 0)"
HOLDS=$(sql "SELECT COUNT(*) FROM holds")
HOLD_JOBS_OK=$(sql "SELECT COUNT(*) FROM job_states WHERE kind = 'hold' AND status = 'succeeded'")
check "holds = succeeded hold jobs" "$HOLDS = $HOLD_JOBS_OK" "$(is "$HOLDS" "$HOLD_JOBS_OK")"
HOLD_LEDGER=$(sql "SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold'")
check "hold ledger rows = holds" "$HOLD_LEDGER = $HOLDS" "$(is "$HOLD_LEDGER" "$HOLDS")"
ORPHAN=$(sql "SELECT COUNT(*) FROM holds h LEFT JOIN job_states j ON j.id = h.id WHERE j.id IS NULL OR j.status <> 'succeeded'")
check "holds without a succeeded job of the same id" "$ORPHAN" "$(is "$ORPHAN" 0)"

PRODUCTS=$(sql "SELECT COUNT(*) FROM products")
G2=$(sql "SELECT COUNT(*) FROM products p LEFT JOIN (SELECT product_id, SUM(delta) AS s FROM stock_ledger GROUP BY product_id) l ON l.product_id = p.id WHERE p.stock <> COALESCE(l.s, 0)")
check "guarantee 2: products with stock <> SUM(ledger)" "$G2" "$(is "$G2" 0)" "$PRODUCTS products"
BOOKS="SELECT p.id, p.stock, COALESCE(l.stocked, 0) AS stocked, COALESCE(h.held, 0) AS held, COALESCE(o.ordered, 0) AS ordered
  FROM products p
  LEFT JOIN (SELECT product_id, SUM(CASE WHEN reason IN ('initial', 'restock') THEN delta ELSE 0 END) AS stocked FROM stock_ledger GROUP BY product_id) l ON l.product_id = p.id
  LEFT JOIN (SELECT product_id, SUM(qty) AS held FROM holds WHERE status = 'active' GROUP BY product_id) h ON h.product_id = p.id
  LEFT JOIN (SELECT product_id, SUM(qty) AS ordered FROM orders WHERE status IN ('pending', 'paid') GROUP BY product_id) o ON o.product_id = p.id"
G1=$(sql "SELECT COUNT(*) FROM ($BOOKS) b WHERE b.stock < 0 OR b.stock + b.held + b.ordered <> b.stocked")
check "guarantee 1: products oversold / books unbalanced" "$G1" "$(is "$G1" 0)" "$PRODUCTS products"
sql "$BOOKS ORDER BY p.id" >"$TMP/books.tsv"
AUDIT=$(cat "$TMP"/scheduler.log | grep -c 'STOCK AUDIT MISMATCH')
check "scheduler 'STOCK AUDIT MISMATCH' log lines" "$AUDIT" "$(is "$AUDIT" 0)"

check "messages left in partition queues" "$PARTITION_MSGS" "$(is "$PARTITION_MSGS" 0)"
check "dead letters = planted poison ($PLANT_NOTE)" "$DEAD_LETTERS" "$(is "$DEAD_LETTERS" "$PLANTED")" "planted $PLANTED"

# Per loadgen run: granted vs holds in the DB, 202s vs job rows.
RUNS=$(cat "$TMP/load.current" 2>/dev/null || echo 0)
TOTAL_GRANTED=0
for i in $(seq 1 "$RUNS"); do
    j=$TMP/loadgen.$i.json
    rc=$(cat "$TMP/loadgen.$i.rc" 2>/dev/null || echo "?")
    if ! jq -e '.runs[0]' "$j" >/dev/null 2>&1; then
        if grep -q '^pipeline:' "$TMP/loadgen.$i.err" 2>/dev/null; then
            check "loadgen run $i report" "none" 0 "rc=$rc: $(grep -v '^pipeline' "$TMP/loadgen.$i.err" | tail -1)"
        else
            info "loadgen run $i" "aborted before its burst, rc=$rc: $(tail -1 "$TMP/loadgen.$i.err")"
        fi
        continue
    fi
    read -r prod granted rejected at_once answered unfinished accept_s e2e_s lg_pass errors <<<"$(jq -r '.runs[0] as $r
        | [$r.product_id, $r.granted, $r.rejected, $r.rejected_at_once, ($r.answered_202_or_409 // 0),
           $r.unfinished_jobs, $r.accept_elapsed_s, $r.end_to_end_elapsed_s, .pass,
           ($r.errors | to_entries | map("\(.key)=\(.value)") | join(",") | if . == "" then "none" else . end)]
        | map(tostring) | join(" ")' "$j")"
    TOTAL_GRANTED=$((TOTAL_GRANTED + granted))
    db_holds=$(sql "SELECT COUNT(*) FROM holds WHERE product_id = $prod")
    db_jobs=$(sql "SELECT COUNT(*) FROM jobs WHERE kind = 'hold' AND JSON_VALUE(command, '\$.product_id') = $prod")
    seen_202=$((answered - at_once))
    info "loadgen run $i (product $prod, rc=$rc, loadgen pass=$lg_pass)" "granted $granted, rejected $rejected ($at_once at once), accept ${accept_s}s, end-to-end ${e2e_s}s"
    info "loadgen run $i errors" "$(tr ',' ' ' <<<"$errors")"
    check "loadgen run $i unfinished jobs" "$unfinished" "$(is "$unfinished" 0)"
    check "loadgen run $i granted = holds in DB for product $prod" "$granted = $db_holds" "$(is "$granted" "$db_holds")"
    check "loadgen run $i 202s = hold jobs in DB for product $prod" "$seen_202 = $db_jobs" "$(is "$seen_202" "$db_jobs")" "" \
        "jobs recorded without a 202 to the client: accepted behind a 503/transport error?"
done
[ "$RUNS" -gt 0 ] || check "loadgen runs" 0 0

# Recovery: every process still up, the stack answering, workers consuming.
alive() { kill -0 "$1" 2>/dev/null && echo 1 || echo 0; }
check "api process alive (pid $API_PID)" "$(alive "$API_PID")" "$(alive "$API_PID")"
check "scheduler process alive (pid $SCHED_PID)" "$(alive "$SCHED_PID")" "$(alive "$SCHED_PID")"
for s in 0 1; do
    p=${WORKER_PIDS[$s]}
    check "worker slot $s alive (pid $p)" "$(alive "$p")" "$(alive "$p")"
done
R=$(curl -s -o /dev/null -m 5 -w '%{http_code}' "$URL/readyz")
check "api /readyz after the chaos" "$R" "$(is "$R" 200)"
check "smoke hold (Prefer: wait=10) after the chaos" "$SMOKE_STATUS" "$(is "$SMOKE_STATUS" 201)"
S_START=$(date +%s)
until shares_ok || [ $(($(date +%s) - S_START)) -ge 60 ]; do sleep 0.5; done
check "partition queues with exactly one consumer (settled in $(($(date +%s) - S_START))s)" "$ONE_CONSUMER/16" "$(is "$ONE_CONSUMER" 16)"
live_with_share=$(tr ' ' '\n' <<<"$SHARES" | awk -F: '$2 != "?" && $2 > 0 { c++ } END { print c + 0 }')
live=$(tr ' ' '\n' <<<"$SHARES" | grep -c .)
check "live workers holding a share (pid:partitions)" "$live_with_share/$live ($SHARES)" "$([ "$live" -gt 0 ] && is "$live_with_share" "$live" || echo 0)"
LEADER=$("${MYSQL[@]}" -e "SELECT IS_USED_LOCK('flash-sale.scheduler.$DB') IS NOT NULL")
check "scheduler leader lock held" "$LEADER" "$(is "$LEADER" 1)"

# Log lines worth a look.
for f in "$TMP"/api.log "$TMP"/worker*.log "$TMP"/scheduler.log; do
    n_err=$(grep -cE 'ERROR|panicked' "$f")
    n_warn=$(grep -c 'WARN' "$f")
    info "log $(basename "$f")" "ERROR/panic lines $n_err, WARN lines $n_warn"
done

END_EPOCH=$(date +%s)
{
    echo
    echo "==================== chaos report ===================="
    echo "machine     $(uname -srm), $(nproc) cpus, $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM"
    echo "services    MariaDB $("${MYSQL[@]}" -e 'SELECT VERSION()'), RabbitMQ $(rabbitmqctl -q version 2>/dev/null)"
    echo "stack       1 api, 2 workers, 1 scheduler; PARTITIONS=16 HOLD_TTL_SECS=300 RELAY_AFTER_SECS=5"
    echo "database    $DB, vhost $VHOST, api $URL"
    echo "load        $RUNS loadgen run(s) x (--clients $CLIENTS --requests $REQUESTS), ${LOAD_SECS}s of load; total granted $TOTAL_GRANTED"
    echo "faults      $KILLS worker kill -9, $RABBIT_RESTARTS RabbitMQ restart(s), $MARIADB_RESTARTS MariaDB restart(s); poison planted $PLANTED ($PLANT_NOTE)"
    for f in "${FAULT_LOG[@]}"; do echo "            $f"; done
    echo "duration    $((END_EPOCH - START_EPOCH))s total (settle: jobs $((Q_START - SETTLE_START))s)"
    echo "logs        $TMP"
    echo "------------------------------------------------------"
    printf '%s\n' "${REPORT[@]}"
    echo "------------------------------------------------------"
    if [ "$FAILS" = 0 ]; then echo "RESULT      PASS"; else echo "RESULT      FAIL ($FAILS failed checks)"; fi
    echo "======================================================"
} | tee "$TMP/report.txt"

[ "$FAILS" = 0 ]
