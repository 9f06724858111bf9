#!/usr/bin/env bash
# rabbit-cluster.sh: a 3-node RabbitMQ cluster on this machine, beside its
# own RabbitMQ, for the failover check (scripts/cluster-check.sh) and for
# trying the service against a cluster by hand.
#
#   scripts/rabbit-cluster.sh start        # start and join the three nodes
#   scripts/rabbit-cluster.sh stop         # stop them, remove their data
#   scripts/rabbit-cluster.sh env          # AMQP_URL listing every node
#   scripts/rabbit-cluster.sh kill N       # kill -9 node N (1..3)
#   scripts/rabbit-cluster.sh revive N     # start node N again (it rejoins)
#   scripts/rabbit-cluster.sh node-of PORT # the node name listening on PORT
#
# Nodes flash-1@localhost .. flash-3@localhost, AMQP on 127.0.0.1:5701..5703
# (knob CLUSTER_AMQP_BASE, default 5700), Erlang distribution on 25701..25703
# (CLUSTER_DIST_BASE), data and logs under CLUSTER_DIR (default
# /tmp/flash-sale-rabbit-cluster). Uses Debian's rabbitmq-server as it is
# installed; needs root (Debian's wrappers run the nodes and rabbitmqctl as
# the rabbitmq user, so they share its Erlang cookie). User guest/guest,
# over loopback only.
set -euo pipefail

DIR=${CLUSTER_DIR:-/tmp/flash-sale-rabbit-cluster}
AMQP_BASE=${CLUSTER_AMQP_BASE:-5700}
DIST_BASE=${CLUSTER_DIST_BASE:-25700}
NODES=(1 2 3)

log() { printf '[rabbit-cluster] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
node_name() { echo "flash-$1@localhost"; }

node_env() { # n: the variables rabbitmq-server and rabbitmqctl read
    local n=$1 base=$DIR/node-$1
    export RABBITMQ_NODENAME
    RABBITMQ_NODENAME=$(node_name "$n")
    export RABBITMQ_NODE_PORT=$((AMQP_BASE + n))
    export RABBITMQ_DIST_PORT=$((DIST_BASE + n))
    export RABBITMQ_CONFIG_FILE=$base/rabbitmq
    export RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
    export RABBITMQ_MNESIA_BASE=$base/mnesia
    export RABBITMQ_LOG_BASE=$base/log
    export RABBITMQ_PID_FILE=$base/pid
}

start_node() { # n
    local n=$1 base=$DIR/node-$1
    mkdir -p "$base/mnesia" "$base/log"
    printf '[].\n' >"$base/enabled_plugins"
    cat >"$base/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$((AMQP_BASE + n))
# A node that lost its peers keeps serving what has a majority (quorum
# queues decide that themselves); pause_minority would stop the survivors
# of a 1-of-3 loss for nothing.
cluster_partition_handling = ignore
# Quick detection of a killed peer (default 60 s).
net_ticktime = 10
CONF
    # Debian's wrapper runs the node as the rabbitmq user.
    chown -R rabbitmq:rabbitmq "$DIR"
    node_env "$n"
    rabbitmq-server -detached >"$base/start.log" 2>&1 || true
    for _ in $(seq 1 120); do
        port_open "$((AMQP_BASE + n))" && break
        sleep 0.5
    done
    port_open "$((AMQP_BASE + n))" || {
        tail -n 20 "$base/start.log" "$base"/log/*.log >&2
        return 1
    }
    rabbitmqctl -n "$(node_name "$n")" -q await_startup --timeout 60 >/dev/null
}

cluster_size() { # as node n sees it: running members
    rabbitmqctl -n "$(node_name "$1")" -q cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' 2>/dev/null || echo 0
}

start() {
    [ -d "$DIR" ] && stop
    mkdir -p "$DIR"
    for n in "${NODES[@]}"; do
        start_node "$n"
        if [ "$n" != 1 ]; then
            local node
            node=$(node_name "$n")
            rabbitmqctl -n "$node" -q stop_app
            rabbitmqctl -n "$node" -q join_cluster "$(node_name 1)"
            rabbitmqctl -n "$node" -q start_app
        fi
        log "node $(node_name "$n") on 127.0.0.1:$((AMQP_BASE + n))"
    done
    [ "$(cluster_size 1)" = 3 ] || { log "the cluster did not form"; return 1; }
    log "cluster of 3 running; $(env_line)"
}

stop() {
    for n in "${NODES[@]}"; do
        if [ -d "$DIR/node-$n" ]; then
            node_env "$n"
            rabbitmqctl -n "$(node_name "$n")" -q stop >/dev/null 2>&1 || kill_node "$n"
        fi
    done
    rm -rf "$DIR"
}

kill_node() { # n: SIGKILL, as a crash would
    local pid
    pid=$(cat "$DIR/node-$1/pid" 2>/dev/null) || return 0
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
}

env_line() {
    local urls=() n
    for n in "${NODES[@]}"; do
        urls+=("amqp://guest:guest@127.0.0.1:$((AMQP_BASE + n))/%2f")
    done
    (
        IFS=,
        echo "AMQP_URL=${urls[*]}"
    )
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) env_line ;;
    kill) kill_node "${2:?node 1..3}"; log "killed $(node_name "$2")" ;;
    revive)
        start_node "${2:?node 1..3}"
        log "$(node_name "$2") back; $(cluster_size 1) of 3 running"
        ;;
    node-of) # PORT -> node name
        for n in "${NODES[@]}"; do
            [ "$((AMQP_BASE + n))" = "${2:?port}" ] && node_name "$n"
        done
        ;;
    *)
        sed -n '2,17p' "$0" >&2
        exit 2
        ;;
esac
