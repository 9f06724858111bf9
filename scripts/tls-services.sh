#!/usr/bin/env bash
# tls-services.sh: a MariaDB and a RabbitMQ node of their own, TLS only, with
# a CA generated on the spot, for checking that the service connects over
# TLS with a password user (scripts/tls-check.sh uses them).
#
#   scripts/tls-services.sh start   # generate certs, start both, create users
#   scripts/tls-services.sh stop    # stop both, remove the directory
#   scripts/tls-services.sh env     # print the variables the check uses
#
# They run beside the machine's own MariaDB and RabbitMQ, on ports, data
# directories, a socket and a node name of their own (knobs: TLS_DIR,
# TLS_MYSQL_PORT, TLS_AMQPS_PORT, TLS_DIST_PORT). Needs root, openssl,
# mariadbd + mariadb-install-db, and Debian's rabbitmq-server.
set -euo pipefail

DIR=${TLS_DIR:-/tmp/flash-sale-tls}
MYSQL_PORT=${TLS_MYSQL_PORT:-3310}
AMQPS_PORT=${TLS_AMQPS_PORT:-5681}
DIST_PORT=${TLS_DIST_PORT:-25681}
NODE=flash-tls@localhost
DB=flash_tls
# Throwaway credentials for throwaway servers.
APP_USER=flash_app APP_PASSWORD=app-pw-TLS-1
MIGRATE_USER=flash_migrate MIGRATE_PASSWORD=migrate-pw-TLS-1
MQ_USER=flash_mq MQ_PASSWORD=mq-pw-TLS-1

log() { printf '[tls-services] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

rabbit_env() {
    export RABBITMQ_NODENAME=$NODE
    export RABBITMQ_DIST_PORT=$DIST_PORT
    export RABBITMQ_CONFIG_FILE=$DIR/rabbit/rabbitmq
    export RABBITMQ_ENABLED_PLUGINS_FILE=$DIR/rabbit/enabled_plugins
    export RABBITMQ_MNESIA_BASE=$DIR/rabbit/mnesia
    export RABBITMQ_LOG_BASE=$DIR/rabbit/log
    export RABBITMQ_PID_FILE=$DIR/rabbit/pid
}

certs() {
    mkdir -p "$DIR/certs"
    cd "$DIR/certs"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=flash-sale test CA" \
        -keyout ca.key -out ca.pem 2>/dev/null
    # A second CA that signed nothing here: trusting it must fail.
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=flash-sale wrong CA" \
        -keyout wrong-ca.key -out wrong-ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem 2>/dev/null
    chmod 644 ./*.pem ./*.key
    cd - >/dev/null
}

start_mariadb() {
    local data=$DIR/mysql run=$DIR/mysql-run
    # mariadbd runs as mysql: its data, socket, pid and log live in its own dirs.
    mkdir -p "$data" "$run"
    chown -R mysql:mysql "$data" "$run"
    mariadb-install-db --no-defaults --user=mysql --datadir="$data" \
        --auth-root-authentication-method=socket >"$DIR/mysql-install.log" 2>&1
    # require_secure_transport: a plaintext client is refused by the server.
    start-stop-daemon --start --background --make-pidfile --pidfile "$DIR/mysql.pid" \
        --exec /usr/sbin/mariadbd -- --no-defaults --user=mysql --datadir="$data" \
        --port="$MYSQL_PORT" --bind-address=127.0.0.1 --socket="$run/mysql.sock" \
        --pid-file="$run/mysqld.pid" --log-error="$run/mysql.err" \
        --ssl-ca="$DIR/certs/ca.pem" --ssl-cert="$DIR/certs/server.pem" \
        --ssl-key="$DIR/certs/server.key" --require-secure-transport=ON \
        --skip-name-resolve --innodb-buffer-pool-size=64M
    for _ in $(seq 1 120); do
        port_open "$MYSQL_PORT" && mariadb --socket="$run/mysql.sock" -e 'SELECT 1' >/dev/null 2>&1 && break
        kill -0 "$(cat "$DIR/mysql.pid")" 2>/dev/null || { tail -5 "$run/mysql.err" >&2; return 1; }
        sleep 0.5
    done
    mariadb --socket="$run/mysql.sock" <<SQL
CREATE DATABASE $DB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
-- Run-time user: data rights only, TLS required (the README's GRANT).
CREATE USER '$APP_USER'@'%' IDENTIFIED BY '$APP_PASSWORD' REQUIRE SSL;
GRANT SELECT, INSERT, UPDATE, DELETE ON $DB.* TO '$APP_USER'@'%';
-- Migration user: what \`admin migrate\` needs.
CREATE USER '$MIGRATE_USER'@'%' IDENTIFIED BY '$MIGRATE_PASSWORD' REQUIRE SSL;
GRANT ALL PRIVILEGES ON $DB.* TO '$MIGRATE_USER'@'%';
SQL
    log "MariaDB with TLS only on 127.0.0.1:$MYSQL_PORT (datadir $data)"
}

start_rabbitmq() {
    mkdir -p "$DIR/rabbit/mnesia" "$DIR/rabbit/log"
    : >"$DIR/rabbit/enabled_plugins"
    printf '[].\n' >"$DIR/rabbit/enabled_plugins"
    cat >"$DIR/rabbit/rabbitmq.conf" <<CONF
listeners.tcp = none
listeners.ssl.default = 127.0.0.1:$AMQPS_PORT
ssl_options.cacertfile = $DIR/certs/ca.pem
ssl_options.certfile = $DIR/certs/server.pem
ssl_options.keyfile = $DIR/certs/server.key
ssl_options.verify = verify_none
ssl_options.fail_if_no_peer_cert = false
default_user = $MQ_USER
default_pass = $MQ_PASSWORD
loopback_users = none
CONF
    chown -R rabbitmq:rabbitmq "$DIR/rabbit"
    rabbit_env
    rabbitmq-server -detached >"$DIR/rabbit-start.log" 2>&1 || true
    for _ in $(seq 1 120); do
        port_open "$AMQPS_PORT" && break
        sleep 0.5
    done
    port_open "$AMQPS_PORT" || { tail -20 "$DIR/rabbit-start.log" "$DIR"/rabbit/log/*.log >&2; return 1; }
    rabbitmqctl -n "$NODE" -q await_startup --timeout 60 >/dev/null
    log "RabbitMQ node $NODE with TLS only on 127.0.0.1:$AMQPS_PORT"
}

stop_all() {
    if [ -d "$DIR/rabbit" ]; then
        rabbit_env
        rabbitmqctl -n "$NODE" -q stop >/dev/null 2>&1 || true
    fi
    if [ -S "$DIR/mysql-run/mysql.sock" ]; then
        mariadb-admin --socket="$DIR/mysql-run/mysql.sock" shutdown >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 60); do
        port_open "$MYSQL_PORT" || port_open "$AMQPS_PORT" || break
        sleep 0.5
    done
    rm -rf "$DIR"
}

print_env() {
    local q="ssl-mode=VERIFY_IDENTITY&ssl-ca=$DIR/certs/ca.pem"
    # Single-quoted: the URLs hold & and ?.
    sed "s/^\([A-Z_]*\)=\(.*\)$/\1='\2'/" <<ENV
TLS_DIR=$DIR
TLS_CA=$DIR/certs/ca.pem
TLS_WRONG_CA=$DIR/certs/wrong-ca.pem
TLS_APP_DATABASE_URL=mysql://$APP_USER:$APP_PASSWORD@localhost:$MYSQL_PORT/$DB?$q
TLS_MIGRATE_DATABASE_URL=mysql://$MIGRATE_USER:$MIGRATE_PASSWORD@localhost:$MYSQL_PORT/$DB?$q
TLS_WRONG_CA_DATABASE_URL=mysql://$APP_USER:$APP_PASSWORD@localhost:$MYSQL_PORT/$DB?ssl-mode=VERIFY_IDENTITY&ssl-ca=$DIR/certs/wrong-ca.pem
TLS_PLAIN_DATABASE_URL=mysql://$APP_USER:$APP_PASSWORD@localhost:$MYSQL_PORT/$DB?ssl-mode=DISABLED
TLS_BAD_PASSWORD_DATABASE_URL=mysql://$APP_USER:wrong-password@localhost:$MYSQL_PORT/$DB?$q
TLS_AMQP_URL=amqps://$MQ_USER:$MQ_PASSWORD@localhost:$AMQPS_PORT/%2f
TLS_PLAIN_AMQP_URL=amqp://$MQ_USER:$MQ_PASSWORD@localhost:$AMQPS_PORT/%2f
TLS_BAD_PASSWORD_AMQP_URL=amqps://$MQ_USER:wrong-password@localhost:$AMQPS_PORT/%2f
ENV
}

case "${1:-}" in
start)
    if port_open "$MYSQL_PORT" || port_open "$AMQPS_PORT"; then
        log "port $MYSQL_PORT or $AMQPS_PORT is taken: stop the previous run first ($0 stop)"
        exit 1
    fi
    rm -rf "$DIR"
    mkdir -p "$DIR"
    certs
    start_mariadb
    start_rabbitmq
    ;;
stop) stop_all ;;
env) print_env ;;
*)
    echo "usage: $0 start|stop|env" >&2
    exit 2
    ;;
esac
