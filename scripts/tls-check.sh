#!/usr/bin/env bash
# tls-check.sh: the real binaries against a MariaDB and a RabbitMQ node that
# speak TLS only (scripts/tls-services.sh, with a CA made on the spot).
#
# 1. `admin migrate` as a migration user creates the schema.
# 2. api + worker + scheduler run as a user with data rights only
#    (MIGRATE=off), over ssl-mode=VERIFY_IDENTITY and amqps://, with their
#    secrets read from files (*_FILE), and AMQP_URL listing a dead node
#    first: hold -> order -> signed payment, each checked.
# 3. Refused starts: wrong CA, plaintext to a TLS-only listener, wrong
#    password, each for MySQL and RabbitMQ, and DDL with the data-only
#    user. Each must stop within 15 s with exit status 1 and one line that
#    names the connection and the reason.
#
#   scripts/tls-check.sh          # exit 0 only when every check passes
#
# Needs root, openssl, curl, jq, mariadbd, rabbitmq-server; builds the
# debug binaries if they are missing (TLS_CHECK_BIN overrides the dir).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${TLS_CHECK_BIN:-target/debug}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=${TLS_CHECK_PORT:-18471}
while port_open "$PORT"; do PORT=$((PORT + 1)); done
URL=http://127.0.0.1:$PORT
TMP=$(mktemp -d /tmp/tls-check.XXXXXX)
PIDS=()
FAILS=0

log() { printf '[tls-check] %s\n' "$*" >&2; }
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILS=$((FAILS + 1)); }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait 2>/dev/null
    scripts/tls-services.sh stop
    rm -rf "$TMP"
}
trap cleanup EXIT

for b in api worker scheduler admin; do
    if [ ! -x "$BIN/$b" ]; then
        log "building the binaries"
        cargo build --bins >"$TMP/build.log" 2>&1 || { tail -20 "$TMP/build.log"; exit 4; }
        break
    fi
done

scripts/tls-services.sh stop
scripts/tls-services.sh start || exit 5
eval "$(scripts/tls-services.sh env)"

# Secrets from files, as an orchestrator mounts them.
secret_file() { printf '%s\n' "$2" >"$TMP/$1"; chmod 600 "$TMP/$1"; echo "$TMP/$1"; }
ADMIN_TOKEN_VALUE=tls-admin-$RANDOM$RANDOM
WEBHOOK_SECRET_VALUE=tls-webhook-$RANDOM$RANDOM
# A node that is not there comes first: the roles must move on to the next.
DEAD_NODE="amqps://flash_mq:unused@localhost:1/%2f"
common_env() {
    # exec: run in the background, $! is then the binary itself, which the
    # cleanup can stop.
    exec env -i PATH="$PATH" RUST_LOG=warn NO_COLOR=1 PARTITIONS=4 \
        API_ADDR=127.0.0.1:$PORT "$@"
}
stack_env=(
    MIGRATE=off
    DATABASE_URL_FILE="$(secret_file db-url "$TLS_APP_DATABASE_URL")"
    AMQP_URL_FILE="$(secret_file amqp-url "$DEAD_NODE,$TLS_AMQP_URL")"
    AMQP_CA_FILE="$TLS_CA"
    ADMIN_TOKEN_FILE="$(secret_file admin-token "$ADMIN_TOKEN_VALUE")"
    WEBHOOK_SECRET_FILE="$(secret_file webhook-secret "$WEBHOOK_SECRET_VALUE")"
)

# ---------------------------------------------------------------- 1. schema
if (common_env DATABASE_URL="$TLS_MIGRATE_DATABASE_URL" "$BIN/admin" migrate) >"$TMP/migrate.out" 2>&1; then
    pass "admin migrate as the migration user over VERIFY_IDENTITY"
else
    fail "admin migrate: $(tail -1 "$TMP/migrate.out")"
fi

# ---------------------------------------------------------------- 2. a stack
for role in api worker scheduler; do
    common_env "${stack_env[@]}" "$BIN/$role" >"$TMP/$role.log" 2>&1 &
    PIDS+=($!)
done
ready=0
for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/readyz")" = 200 ] && { ready=1; break; }
    sleep 0.2
done
if [ "$ready" = 1 ]; then
    pass "api ready with a data-only user, MIGRATE=off, TLS to both, secrets from files, a dead first node"
else
    fail "api never became ready: $(tail -2 "$TMP/api.log")"
fi

api() { # method path [body] [extra curl args...]: prints "status body"
    local method=$1 path=$2 body=${3:-}
    shift 3 2>/dev/null || shift $#
    curl -s -m 15 -o "$TMP/body" -w '%{http_code}' -X "$method" \
        -H 'content-type: application/json' "$@" ${body:+-d "$body"} "$URL$path"
    printf ' %s' "$(cat "$TMP/body")"
}
expect() { # name want got
    if [ "${3%% *}" = "$2" ]; then pass "$1 ($2)"; else fail "$1: want $2, got ${3:0:300}"; fi
}

out=$(api POST /api/v1/admin/products '{"name":"TLS sneaker","price":5000,"stock":3}' \
    -H "authorization: Bearer $ADMIN_TOKEN_VALUE")
expect "create a product" 201 "$out"
product=$(jq -r '.id' <<<"${out#* }" 2>/dev/null)

out=$(api POST /api/v1/holds "{\"product_id\":$product,\"qty\":2}" -H 'prefer: wait=10')
expect "hold granted" 201 "$out"
hold=$(jq -r '.id' <<<"${out#* }" 2>/dev/null)

out=$(api POST /api/v1/orders "{\"hold_id\":\"$hold\"}" -H 'prefer: wait=10')
expect "order made from the hold" 201 "$out"
order=$(jq -r '.id' <<<"${out#* }" 2>/dev/null)

body="{\"idempotency_key\":\"tls-pay-$order\",\"order_id\":\"$order\",\"status\":\"success\"}"
t=$(date +%s)
sig=$(printf '%s.%s' "$t" "$body" | openssl dgst -sha256 -hmac "$WEBHOOK_SECRET_VALUE" -hex | sed 's/^.* //')
out=$(api POST /api/v1/payments/webhook "$body" -H "x-signature: t=$t,v1=$sig")
expect "signed payment accepted" 202 "$out"

status=
for _ in $(seq 1 50); do
    status=$(curl -s -m 5 "$URL/api/v1/orders/$order" | jq -r '.status' 2>/dev/null)
    [ "$status" = paid ] && break
    sleep 0.2
done
if [ "$status" = paid ]; then pass "order paid"; else fail "order status $status, want paid"; fi
stock=$(curl -s "$URL/api/v1/products/$product" | jq -r '.stock')
if [ "$stock" = 1 ]; then pass "stock 3 - 2 = 1"; else fail "stock $stock, want 1"; fi

for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
wait 2>/dev/null
PIDS=()

# ---------------------------------------------------------------- 3. refusals
refused() { # name pattern env...: the api must stop fast with one matching line
    local name=$1 pattern=$2 started rc secs line
    shift 2
    started=$(date +%s)
    timeout 60 env -i PATH="$PATH" RUST_LOG=off NO_COLOR=1 API_ADDR=127.0.0.1:$PORT \
        ADMIN_TOKEN=x WEBHOOK_SECRET=y "$@" "$BIN/api" >"$TMP/refused.out" 2>"$TMP/refused.err"
    rc=$?
    secs=$(($(date +%s) - started))
    line=$(cat "$TMP/refused.err")
    if [ "$rc" = 1 ] && [ "$secs" -le 15 ] && [ "$(wc -l <"$TMP/refused.err")" = 1 ] \
        && grep -Eq "$pattern" "$TMP/refused.err"; then
        pass "$name: exit 1 after ${secs}s: $line"
    else
        fail "$name: rc=$rc after ${secs}s, stderr: $line"
    fi
}
ok_db=(MIGRATE=off DATABASE_URL="$TLS_APP_DATABASE_URL")
ok_mq=(AMQP_URL="$TLS_AMQP_URL" AMQP_CA_FILE="$TLS_CA")
refused "MySQL, wrong CA" '^api: .*database mysql://flash_app@localhost:3310/.*TLS handshake failed: invalid peer certificate' \
    MIGRATE=off DATABASE_URL="$TLS_WRONG_CA_DATABASE_URL" "${ok_mq[@]}"
refused "MySQL, plaintext to a TLS-only server" '^api: .*database mysql://flash_app@.*ssl-mode=DISABLED: access denied .*TLS' \
    MIGRATE=off DATABASE_URL="$TLS_PLAIN_DATABASE_URL" "${ok_mq[@]}"
refused "MySQL, wrong password" '^api: .*database mysql://flash_app@.*access denied: wrong user or password' \
    MIGRATE=off DATABASE_URL="$TLS_BAD_PASSWORD_DATABASE_URL" "${ok_mq[@]}"
refused "MySQL, data-only user asked to migrate" '^api: .*CREATE command denied.*MIGRATE=off' \
    DATABASE_URL="$TLS_APP_DATABASE_URL" "${ok_mq[@]}"
refused "RabbitMQ, wrong CA" '^api: .*RabbitMQ amqps://flash_mq@localhost:5681/%2f: TLS handshake failed: invalid peer certificate' \
    "${ok_db[@]}" AMQP_URL="$TLS_AMQP_URL" AMQP_CA_FILE="$TLS_WRONG_CA"
refused "RabbitMQ, plaintext to a TLS-only listener" '^api: .*RabbitMQ amqp://flash_mq@localhost:5681/%2f: .*use amqps://' \
    "${ok_db[@]}" AMQP_URL="$TLS_PLAIN_AMQP_URL"
refused "RabbitMQ, wrong password" '^api: .*RabbitMQ amqps://flash_mq@localhost:5681/%2f: access refused' \
    "${ok_db[@]}" AMQP_URL="$TLS_BAD_PASSWORD_AMQP_URL" AMQP_CA_FILE="$TLS_CA"
if grep -rq -e 'app-pw-TLS-1' -e 'mq-pw-TLS-1' "$TMP"/*.log "$TMP"/refused.*; then
    fail "a password appeared in a log or message"
else
    pass "no password in any log or message"
fi

if [ "$FAILS" = 0 ]; then echo "RESULT      PASS"; else echo "RESULT      FAIL ($FAILS failed checks)"; fi
[ "$FAILS" = 0 ]
