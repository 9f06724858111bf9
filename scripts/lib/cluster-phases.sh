# cluster-phases.sh: the phases of scripts/cluster-check.sh, sourced by it
# (its variables and helpers: sql, check, info, is, log, now_ms, product,
# token, hold_status, settle, start_worker, WORKER_PID, WORKER_START_MS).

# The node a command can ask: the first one listening.
live_node() {
    local n
    for n in 1 2 3; do
        (exec 3<>"/dev/tcp/127.0.0.1/$((5700 + n))") 2>/dev/null && { echo "flash-$n@localhost"; return; }
    done
}
queue_column() { # column: "name value" of every partition queue
    rabbitmqctl -n "$(live_node)" -q list_queues -p "$VHOST" --no-table-headers name "$1" 2>/dev/null |
        awk '$1 ~ /^flash\.commands\.[0-9]+$/'
}
gauge() { # worker n: its flash_worker_partitions, or ? when it does not answer
    curl -s -m 2 "http://127.0.0.1:$((18310 + $1))/metrics" 2>/dev/null |
        awk '$1 == "flash_worker_partitions" { v = $2 } END { print (v == "" ? "?" : v + 0) }'
}
shares_are() { # "n=k ...": true when each worker n's gauge is k
    local pair
    for pair in $1; do [ "$(gauge "${pair%%=*}")" = "${pair#*=}" ] || return 1; done
}
wait_shares() { # "n=k ..." seconds -> ms waited, or "never"
    local t0 deadline
    t0=$(now_ms)
    deadline=$((t0 + $2 * 1000))
    until shares_are "$1"; do
        [ "$(now_ms)" -ge "$deadline" ] && { echo never; return 1; }
        sleep 0.05
    done
    echo $(($(now_ms) - t0))
}
consuming_ms() { # worker n: "epoch_ms count" per `consuming` log line
    jq -r 'select(.message == "consuming") | [.timestamp, (.partitions | split(",") | length)] | @tsv' \
        "$TMP/worker$1.log" 2>/dev/null |
        python3 -c '
import sys, datetime
for line in sys.stdin:
    ts, n = line.split()
    t = datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    print(int(t.timestamp() * 1000), n)'
}
storm() { # name product: loadgen through the balancer, in the background
    "$BIN/loadgen" --url "http://$LB" --product "$2" --mode pipeline --flow holds \
        --clients "$CLIENTS" --requests "$REQUESTS" --json --quiet >"$TMP/$1.json" 2>"$TMP/$1.err" &
    STORM_PID=$!
}
storm_checks() { # name product
    local r=$TMP/$1.json granted unfinished accepted errors holds jobs
    if ! jq -e '.runs[0]' "$r" >/dev/null 2>&1; then
        check "$1: loadgen report" "none: $(tail -n 1 "$TMP/$1.err")" 0
        return
    fi
    read -r granted unfinished accepted errors <<<"$(jq -r '.runs[0] as $r | [$r.granted, $r.unfinished_jobs,
        (($r.answered_202_or_409 // 0) - ($r.rejected_at_once // 0)),
        ($r.errors | to_entries | map("\(.key)=\(.value)") | join(",") | if . == "" then "none" else . end)]
        | map(tostring) | join(" ")' "$r")"
    holds=$(sql "SELECT COUNT(*) FROM holds WHERE product_id = $2")
    jobs=$(sql "SELECT COUNT(*) FROM jobs WHERE kind = 'hold' AND JSON_VALUE(command, '\$.product_id') = $2")
    info "$1: loadgen errors (not accepted)" "$errors"
    check "$1: loadgen jobs left unfinished" "$unfinished" "$(is "$unfinished" 0)"
    check "$1: granted = holds in the database" "$granted = $holds" "$(is "$granted" "$holds")"
    check "$1: 202s = hold jobs recorded" "$accepted = $jobs" "$(is "$accepted" "$jobs")"
}

replica_checks() {
    log "replicas: a sold-out product, and one buyer's limit across both"
    local sold lim i a b t0 waited statuses tok held
    sold=$(product '{"name":"sells out","price":100,"stock":5}')
    sleep 1.2 # both replicas have the product (events, at most 1 s)
    for i in 1 2 3 4 5; do
        [ "$(hold_status "http://$LB" "$sold" -H 'prefer: wait=10')" = 201 ] || check "sold-out product: grant $i" "not 201" 0
    done
    t0=$(now_ms)
    waited=never
    while [ $(($(now_ms) - t0)) -lt 3000 ]; do
        a=$(hold_status "http://127.0.0.1:${API_PORTS[0]}" "$sold")
        b=$(hold_status "http://127.0.0.1:${API_PORTS[1]}" "$sold")
        if [ "$a" = 409 ] && [ "$b" = 409 ]; then waited=$(($(now_ms) - t0)); break; fi
        sleep 0.05
    done
    check "sold out: both replicas refuse at once (409), ms after the 5th grant" "$waited" \
        "$([ "$waited" != never ] && echo 1 || echo 0)"
    info "sold out: jobs recorded for it (5 granted + any sent before a replica knew)" \
        "$(sql "SELECT COUNT(*) FROM jobs WHERE JSON_VALUE(command, '\$.product_id') = $sold")"

    lim=$(product '{"name":"two each","price":100,"stock":1000,"max_per_customer":2}')
    sleep 1.2
    tok=$(token cross-replica-buyer)
    local volley=()
    for i in $(seq 0 19); do
        { hold_status "http://127.0.0.1:${API_PORTS[$((i % 2))]}" "$lim" -H "authorization: Bearer $tok"; echo; } \
            >"$TMP/limit.$i" &
        volley+=("$!")
    done
    wait "${volley[@]}"
    statuses=$(cat "$TMP"/limit.* | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')
    settle 60
    held=$(sql "SELECT COALESCE(SUM(qty), 0) FROM holds WHERE product_id = $lim AND customer_id = 'cross-replica-buyer'")
    check "limit 2, 20 requests split over 2 replicas: units held ($statuses)" "$held" "$(is "$held" 2)"
}

scale_checks() {
    log "worker scale: 1 -> 3 -> 1 under a storm"
    local p waited joined last move stopped
    p=$(product '{"name":"scale storm","price":100,"stock":1000000}')
    sleep 1.2
    storm scale "$p"
    sleep 3
    start_worker 2
    start_worker 3
    waited=$(wait_shares "1=6 2=5 3=5" 30 || wait_shares "1=5 2=6 3=5" 1 || wait_shares "1=5 2=5 3=6" 1)
    # In the logs: from the last new worker's first `consuming` to the last
    # change of share it caused anywhere.
    joined=$( (consuming_ms 2 | head -n 1; consuming_ms 3 | head -n 1) | sort -n | tail -n 1 | cut -d' ' -f1)
    last=$(for n in 1 2 3; do consuming_ms "$n"; done | awk '{print $1}' | sort -n | tail -n 1)
    move=$((${last:-0} - ${joined:-0}))
    check "1 -> 3 workers: gauges 16 = 6+5+5, ms after the start of worker 3" "$waited" \
        "$([ "$waited" != never ] && echo 1 || echo 0)"
    check "1 -> 3 workers: last share change, ms after worker 3 consumed (logs)" "$move" \
        "$([ -n "$joined" ] && [ "$move" -le 1000 ] && echo 1 || echo 0)"
    sleep 3
    kill -TERM "${WORKER_PID[2]}" "${WORKER_PID[3]}"
    stopped=$(wait_shares "1=16" 30)
    check "3 -> 1 worker (SIGTERM two): worker 1 holds all 16, ms after" "$stopped" \
        "$([ "$stopped" != never ] && echo 1 || echo 0)"
    wait "$STORM_PID"
    settle 120
    storm_checks scale "$p"
}

leader_kill_checks() {
    log "leader kill: the node leading the hot partition, under a storm"
    local p probe queue leader n kill_ms revive_ms first last before after count window
    p=$(product '{"name":"leader kill storm","price":100,"stock":1000000}')
    probe=$(product '{"name":"probe","price":100,"stock":1000000}')
    sleep 1.2
    queue=flash.commands.$((p % 16))
    leader=$(queue_column leader | awk -v q="$queue" '$1 == q { print $2 }')
    n=${leader#flash-}
    n=${n%@*}
    [ -n "$n" ] || { check "leader of $queue" "unknown" 0; return; }
    info "hot partition" "$queue, leader $leader"
    rm -f "$TMP/probe.stop"
    (while [ ! -f "$TMP/probe.stop" ]; do
        echo "$(now_ms) $(hold_status "http://$LB" "$probe" -m 3)"
        sleep 0.1
    done) >"$TMP/probe.txt" &
    local probe_pid=$!
    storm leader "$p"
    sleep 3
    kill_ms=$(now_ms)
    scripts/rabbit-cluster.sh kill "$n" 2>>"$TMP/rabbit-cluster.log"
    sleep 15
    revive_ms=$(now_ms)
    scripts/rabbit-cluster.sh revive "$n" 2>>"$TMP/rabbit-cluster.log"
    wait "$STORM_PID"
    sleep 2
    touch "$TMP/probe.stop"
    wait "$probe_pid"
    settle 180
    info "killed $leader, revived after (ms)" "$((revive_ms - kill_ms)); new leader $(queue_column leader | awk -v q="$queue" '$1 == q { print $2 }')"
    count=$(awk '$2 == 503' "$TMP/probe.txt" | wc -l)
    before=$(awk -v k="$kill_ms" '$2 == 503 && $1 < k' "$TMP/probe.txt" | wc -l)
    first=$(awk '$2 == 503 { print $1; exit }' "$TMP/probe.txt")
    last=$(awk '$2 == 503 { t = $1 } END { print t }' "$TMP/probe.txt")
    if [ "$count" -gt 0 ]; then
        window="$((first - kill_ms)) to $((last - kill_ms)) ms after the kill"
    else
        window="none"
    fi
    after=$(awk -v k="$revive_ms" '$2 == 503 && $1 > k + 30000' "$TMP/probe.txt" | wc -l)
    info "probe (a hold every 100 ms through the balancer): answers" \
        "$(awk '{print $2}' "$TMP/probe.txt" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
    check "probe 503s before the kill" "$before" "$(is "$before" 0)"
    check "probe 503s later than 30 s after the revival" "$after" "$(is "$after" 0)"
    info "failover window (probe 503s)" "$count: $window"
    storm_checks leader "$p"
}

book_checks() {
    local left double holds ledger g1 g2 messages dead
    left=$(sql "SELECT COUNT(*) FROM job_queue")
    check "jobs left undecided" "$left" "$(is "$left" 0)"
    double=$(sql "SELECT COUNT(*) FROM (SELECT ref_id FROM stock_ledger WHERE reason = 'hold' GROUP BY ref_id HAVING COUNT(*) > 1) t")
    check "holds applied twice" "$double" "$(is "$double" 0)"
    holds=$(sql "SELECT COUNT(*) FROM holds")
    ledger=$(sql "SELECT COUNT(*) FROM stock_ledger WHERE reason = 'hold'")
    check "hold ledger rows = holds" "$ledger = $holds" "$(is "$ledger" "$holds")"
    g2=$(sql "SELECT COUNT(*) FROM products p LEFT JOIN (SELECT product_id, SUM(delta) AS s FROM stock_ledger GROUP BY product_id) l ON l.product_id = p.id WHERE p.stock <> COALESCE(l.s, 0)")
    check "products whose stock <> the ledger's sum" "$g2" "$(is "$g2" 0)"
    g1=$(sql "SELECT COUNT(*) FROM products p
        LEFT JOIN (SELECT product_id, SUM(CASE WHEN reason IN ('initial', 'restock') THEN delta ELSE 0 END) AS stocked FROM stock_ledger GROUP BY product_id) l ON l.product_id = p.id
        LEFT JOIN (SELECT product_id, SUM(qty) AS held FROM holds WHERE status = 'active' GROUP BY product_id) h ON h.product_id = p.id
        LEFT JOIN (SELECT product_id, SUM(qty) AS ordered FROM orders WHERE status IN ('pending', 'paid') GROUP BY product_id) o ON o.product_id = p.id
        WHERE p.stock < 0 OR p.stock + COALESCE(h.held, 0) + COALESCE(o.ordered, 0) <> COALESCE(l.stocked, 0)")
    check "products where stock + held + ordered <> stocked" "$g1" "$(is "$g1" 0)"
    messages=$(queue_column messages | awk '{ s += $2 } END { print s + 0 }')
    check "messages left in the partition queues" "$messages" "$(is "$messages" 0)"
    dead=$(rabbitmqctl -n "$(live_node)" -q list_queues -p "$VHOST" --no-table-headers name messages 2>/dev/null |
        awk '$1 == "flash.dead-letters" { print $2 }')
    check "dead letters" "${dead:-?}" "$(is "${dead:-?}" 0)"
}
