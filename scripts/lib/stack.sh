# stack.sh: a throwaway flash-sale stack for the checks that need a real one
# (scripts/openapi-check.sh, scripts/dashboard-check.sh). Sourced, not run:
# the caller has `set -euo pipefail` and is in the repository's root.
#
#   source scripts/lib/stack.sh
#   stack_init openapi-check fs_openapi  # names, scratch dir, cleanup on exit
#   stack_start "$TARGET/debug/flash-sale" [VAR=value ...]
#   curl "$base/healthz"; stack_track_pid "$other_pid"
#
# stack_init sets `tag`, `db_name` (<prefix>_<tag>), `vhost` (the same with
# dashes) and `work` (a scratch directory). On exit, whatever the cause,
# every tracked process is stopped (last tracked first), the database
# dropped, the vhost deleted and `work` removed; the exit status is kept.
# stack_start makes the vhost, picks a free port, random ADMIN_TOKEN and
# WEBHOOK_SECRET (exported), runs the binary (the all-in-one flash-sale) on
# that port with 4 partitions and waits for /readyz; it sets `port` and
# `base`. Its log is $work/stack.log, shown when it does not get ready.
# Knobs: TEST_MYSQL_SERVER, TEST_AMQP_SERVER (as for the tests), RUST_LOG.

MYSQL_SERVER=${TEST_MYSQL_SERVER:-mysql://root@127.0.0.1:3306}
AMQP_SERVER=${TEST_AMQP_SERVER:-amqp://guest:guest@127.0.0.1:5672}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
random_hex() { python3 -c "import secrets; print(secrets.token_hex(${1:-24}))"; }

stack_init() { # name db_prefix
    stack_name=$1
    tag=$(random_hex 6)
    db_name="$2_$tag"
    vhost="${db_name//_/-}"
    work=$(mktemp -d)
    stack_pids=()
    vhost_made=0
    trap stack_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# The database server of MYSQL_SERVER, through the first client found.
mysql_exec() {
    local client hostport user
    client=$(command -v mariadb || command -v mysql || true)
    if [[ -z "$client" ]]; then
        echo "$stack_name: no mariadb/mysql client to run: $1" >&2
        return 1
    fi
    hostport=${MYSQL_SERVER#mysql://}
    user=${hostport%%@*}
    hostport=${hostport#*@}
    "$client" --protocol=TCP -h "${hostport%%:*}" -P "${hostport##*:}" -u "$user" -e "$1"
}

stack_track_pid() { stack_pids+=("$1"); }

# TERM, ten seconds to finish, then KILL.
stop_pid() {
    local pid=$1
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

stack_cleanup() {
    local status=$? i
    trap - EXIT INT TERM
    # Last started first: what watches the stack goes before the stack.
    for ((i = ${#stack_pids[@]} - 1; i >= 0; i--)); do stop_pid "${stack_pids[i]}"; done
    mysql_exec "DROP DATABASE IF EXISTS \`$db_name\`" >/dev/null 2>&1 ||
        echo "$stack_name: could not drop database $db_name" >&2
    if [[ "$vhost_made" == 1 ]]; then
        rabbitmqctl -q delete_vhost "$vhost" >/dev/null 2>&1 ||
            echo "$stack_name: could not delete vhost $vhost" >&2
    fi
    rm -rf "$work"
    exit "$status"
}

# Polls URL every half second until it answers 2xx; exits 1 with the tail
# of LOG when PID dies first or TRIES polls pass.
wait_ready() { # url pid log what tries
    local url=$1 pid=$2 log=$3 what=$4 tries=$5
    for _ in $(seq 1 "$tries"); do
        curl -fsS "$url" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    echo "$stack_name: $what did not become ready; its log:" >&2
    tail -n 40 "$log" >&2
    exit 1
}

stack_start() { # binary [VAR=value ...]
    local binary=$1 pid
    shift
    rabbitmqctl -q add_vhost "$vhost" >/dev/null
    vhost_made=1
    rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
    port=$(free_port)
    base="http://127.0.0.1:$port"
    ADMIN_TOKEN=$(random_hex)
    WEBHOOK_SECRET=$(random_hex)
    export ADMIN_TOKEN WEBHOOK_SECRET
    env DATABASE_URL="$MYSQL_SERVER/$db_name" \
        AMQP_URL="$AMQP_SERVER/$vhost" \
        API_ADDR="127.0.0.1:$port" \
        PARTITIONS=4 \
        RUST_LOG="${RUST_LOG:-warn}" \
        "$@" "$binary" >"$work/stack.log" 2>&1 &
    pid=$!
    stack_track_pid "$pid"
    wait_ready "$base/readyz" "$pid" "$work/stack.log" "the stack" 120
}
