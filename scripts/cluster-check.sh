#!/usr/bin/env bash
# cluster-check.sh: the service spread over processes and a RabbitMQ cluster
# on this machine, checked the way an operator would see it fail:
#   - a 3-node RabbitMQ cluster (scripts/rabbit-cluster.sh), AMQP_URL listing
#     every node; 2 api replicas behind HAProxy (deploy/haproxy/haproxy.cfg,
#     TRUSTED_PROXIES set to it), 1..3 workers, 2 schedulers, one database;
#   - replicas: a sold-out product is refused at once by both replicas, and a
#     buyer's per-customer limit holds with its requests split between them;
#   - worker scale: 1 -> 3 workers under a loadgen storm, then back to 1; the
#     partitions move (log lines `consuming`, gauge flash_worker_partitions);
#   - leader kill: under a storm, kill -9 the node leading the hot product's
#     partition queue, bring it back; a probe measures the 503 window;
#   - then: every 202'd job decided, nothing applied twice, the books balance.
#
#   scripts/cluster-check.sh     # exit 0 when every check passes, 77 = skipped
#
# Needs root, Debian's rabbitmq-server and haproxy (installed with apt when
# missing), local MariaDB (root, empty password), python3, jq, curl.
# Knobs: CLUSTER_SKIP_BUILD=1, CLUSTER_REQUESTS (150000), CLUSTER_CLIENTS (128).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
START=$(date +%s)
TMP=$(mktemp -d /tmp/cluster-check.XXXXXX)
chmod 755 "$TMP" # the RabbitMQ nodes (user rabbitmq) keep their data in it
STAMP=$(date +%Y%m%d_%H%M%S)_$$
DB=cluster_$STAMP
VHOST=cluster-$STAMP
REQUESTS=${CLUSTER_REQUESTS:-150000}
CLIENTS=${CLUSTER_CLIENTS:-128}
LB=127.0.0.1:18300
API_PORTS=(18301 18302)
export CLUSTER_DIR=$TMP/rabbit
MYSQL=(mariadb -h127.0.0.1 -P3306 -uroot --batch --skip-column-names)
NODE1=flash-1@localhost

log() { printf '[cluster +%3ss] %s\n' "$(($(date +%s) - START))" "$*" >&2; }
sql() { "${MYSQL[@]}" "$DB" -e "$1"; }
now_ms() { date +%s%3N; }
FAILS=0
REPORT=()
check() { # name value pass(0|1)
    local verdict=PASS
    [ "$3" = 1 ] || { verdict=FAIL; FAILS=$((FAILS + 1)); }
    REPORT+=("$(printf '%-5s %-62s %s' "$verdict" "$1" "$2")")
}
info() { REPORT+=("$(printf 'INFO  %-62s %s' "$1" "$2")"); }
is() { [ "$1" = "$2" ] && echo 1 || echo 0; }

# ------------------------------------------------------------ prerequisites
if ! command -v haproxy >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null 2>&1 ||
        { echo "SKIP: haproxy is not installed and apt could not install it" >&2; exit 77; }
fi
command -v rabbitmq-server >/dev/null 2>&1 || { echo "SKIP: no rabbitmq-server" >&2; exit 77; }
if [ "${CLUSTER_SKIP_BUILD:-0}" != 1 ]; then
    log "building release binaries"
    cargo build --release --quiet --bin api --bin worker --bin scheduler --bin loadgen || exit 1
fi

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
    done
    scripts/rabbit-cluster.sh stop >/dev/null 2>&1
    "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null
    log "logs kept in $TMP"
}
trap cleanup EXIT
trap 'exit 143' TERM INT

log "starting a 3-node RabbitMQ cluster"
scripts/rabbit-cluster.sh start 2>"$TMP/rabbit-cluster.log" || { tail -n 20 "$TMP/rabbit-cluster.log" >&2; exit 1; }
rabbitmqctl -n "$NODE1" -q add_vhost "$VHOST" >/dev/null
rabbitmqctl -n "$NODE1" -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
nodes=()
for port in 5701 5702 5703; do nodes+=("amqp://guest:guest@127.0.0.1:$port/$VHOST"); done
AMQP_URL=$(IFS=,; echo "${nodes[*]}")
export AMQP_URL DATABASE_URL="mysql://root@127.0.0.1:3306/$DB"
export ADMIN_TOKEN=cluster-admin-token WEBHOOK_SECRET=cluster-webhook-secret
export BUYER_JWT_SECRET=cluster-buyer-secret-0123456789 PARTITIONS=16 HOLD_TTL_SECS=600
export RELAY_AFTER_SECS=5 LOG_FORMAT=json RUST_LOG=${CLUSTER_RUST_LOG:-info}

start_role() { # log-name binary [VAR=value ...]; sets STARTED_PID
    local name=$1 binary=$2
    shift 2
    env "$@" "$BIN/$binary" >>"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
}
wait_http() { # url seconds
    local deadline=$(($(date +%s) + $2))
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1")" = 200 ]; do
        [ "$(date +%s)" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

# The first api applies the migrations before the others start.
for i in 0 1; do
    start_role "api$((i + 1))" api "API_ADDR=127.0.0.1:${API_PORTS[$i]}" TRUSTED_PROXIES=127.0.0.1
    wait_http "http://127.0.0.1:${API_PORTS[$i]}/readyz" 60 || { log "api$((i + 1)) not ready"; exit 1; }
done
declare -A WORKER_PID WORKER_START_MS
start_worker() { # n
    WORKER_START_MS[$1]=$(now_ms)
    start_role "worker$1" worker "METRICS_ADDR=127.0.0.1:$((18310 + $1))" "WORKER_NAME=worker$1"
    WORKER_PID[$1]=$STARTED_PID
}
start_worker 1
for i in 1 2; do
    start_role "scheduler$i" scheduler "METRICS_ADDR=127.0.0.1:$((18320 + i))"
done
FLASH_LB_BIND=$LB FLASH_API_1=127.0.0.1:${API_PORTS[0]} FLASH_API_2=127.0.0.1:${API_PORTS[1]} \
    haproxy -f deploy/haproxy/haproxy.cfg >"$TMP/haproxy.log" 2>&1 &
PIDS+=("$!")
wait_http "http://$LB/readyz" 30 || { log "the balancer does not answer"; exit 1; }
log "stack up: 2 api replicas behind $LB, 1 worker, 2 schedulers, 3 RabbitMQ nodes"

admin() { # method path [json]
    curl -s -X "$1" -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
        ${3:+-d "$3"} "http://$LB$2"
}
product() { # json -> id
    admin POST /api/v1/admin/products "$1" | jq -r .id
}
token() { # customer -> an HS256 buyer token
    python3 - "$BUYER_JWT_SECRET" "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
head = b(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b(json.dumps({"sub": sys.argv[2], "exp": int(time.time()) + 3600}).encode())
sig = b(hmac.new(sys.argv[1].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
print(f"{head}.{body}.{sig}")
PY
}
hold_status() { # base product [curl args...] -> HTTP status
    local base=$1 id=$2
    shift 2
    curl -s -o /dev/null -m 10 -w '%{http_code}' -H 'content-type: application/json' "$@" \
        -d "{\"product_id\":$id,\"qty\":1}" "$base/api/v1/holds"
}
settle() { # seconds: until no job is left undecided
    local deadline=$(($(date +%s) + $1)) left
    while :; do
        left=$(sql "SELECT COUNT(*) FROM job_queue")
        [ "$left" = 0 ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && { log "$left jobs still undecided"; return 1; }
        sleep 0.5
    done
}

source scripts/lib/cluster-phases.sh
replica_checks
scale_checks
leader_kill_checks
book_checks

{
    echo
    echo "================ cluster check ================"
    echo "stack     2 api (HAProxy $LB), 1-3 workers, 2 schedulers; RabbitMQ 3 nodes; PARTITIONS=16"
    echo "load      loadgen --clients $CLIENTS --requests $REQUESTS per storm, through the balancer"
    echo "duration  $(($(date +%s) - START)) s; logs $TMP"
    printf '%s\n' "${REPORT[@]}"
    if [ "$FAILS" = 0 ]; then echo "RESULT    PASS"; else echo "RESULT    FAIL ($FAILS failed)"; fi
} | tee "$TMP/report.txt"
[ "$FAILS" = 0 ]
