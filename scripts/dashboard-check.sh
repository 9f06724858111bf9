#!/usr/bin/env bash
# dashboard-check.sh: every query of the Grafana dashboard
# (deploy/grafana/dashboards/flash-sale.json) against what the code really
# exports. Starts a throwaway stack (the all-in-one flash-sale on a free
# port, its own database and RabbitMQ vhost; its api port serves /metrics
# for all three roles) and a throwaway Prometheus scraping it every second
# (its own config, data dir and free port), runs a short loadgen run, waits
# for a few scrapes, then evaluates each panel's `expr` through Prometheus's
# /api/v1/query with Grafana's variables substituted ($__rate_interval=1m,
# $__range=5m, $__interval=15s, template variables `.*`). Every query must
# parse and return at least one series (a 0 counts). Prints query -> series
# count; exits 1 listing the failures, 77 (SKIP) when no prometheus binary
# can be had. Everything it made is removed on exit, whatever happens.
#
#   scripts/dashboard-check.sh
#
# The stack is scripts/lib/stack.sh's. Needs: MariaDB/MySQL on
# 127.0.0.1:3306 (root, no password), RabbitMQ on 127.0.0.1:5672 (guest)
# with `rabbitmqctl`, curl, python3 (stdlib only),
# and `prometheus` on PATH or Debian's prometheus package downloadable with
# apt-get (its binary alone is extracted into target/tools, as scripts/dev
# does for promtool; nothing is installed or started as a service).
# Binaries: target/release/{flash-sale,loadgen} (under CARGO_TARGET_DIR when
# set), built (or found fresh) by cargo first. Knobs: DASHBOARD_CHECK_REQUESTS (loadgen
# requests, default 300), DASHBOARD_CHECK_FILE (the dashboard, default
# the one above), TEST_MYSQL_SERVER, TEST_AMQP_SERVER.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== dashboard-check: %s\n' "$*"; }

DASHBOARD=${DASHBOARD_CHECK_FILE:-deploy/grafana/dashboards/flash-sale.json}
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
TOOLS=$PWD/target/tools
REQUESTS=${DASHBOARD_CHECK_REQUESTS:-300}

# `prometheus` on PATH, or Debian's package's binary extracted into
# target/tools (the package is downloaded, not installed).
prometheus_tool() {
    export PATH="$TOOLS:$PATH"
    command -v prometheus >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || return 1
    local tmp
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        { [ "$(id -u)" = 0 ] && apt-get update -qq &&
            (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); } ||
            { rm -rf "$tmp"; return 1; }
    fi
    mkdir -p "$TOOLS"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x" &&
        cp "$tmp/x/usr/bin/prometheus" "$tmp/x/usr/bin/promtool" "$TOOLS/"
    rm -rf "$tmp"
    command -v prometheus >/dev/null 2>&1
}

if ! prometheus_tool; then
    echo "dashboard-check: SKIP: no prometheus binary (not on PATH, and Debian's prometheus package could not be downloaded)" >&2
    exit 77
fi

source scripts/lib/stack.sh
stack_init dashboard-check fs_dashboard

# Always through cargo (a no-op when fresh): a stale binary would check
# old code.
log "cargo build --release --bin flash-sale --bin loadgen"
if ! cargo build --release --bin flash-sale --bin loadgen >"$work/build.log" 2>&1; then
    tail -n 30 "$work/build.log" >&2
    exit 1
fi

log "stack: database $db_name, vhost $vhost"
# Audits every 2 s so the audit panels have their per-product series.
stack_start "$TARGET/release/flash-sale" AUDIT_INTERVAL_SECS=2

# One target for all three jobs' roles: the all-in-one serves them on one
# /metrics. Job name `flash-sale`; the dashboard's `up{job="scheduler"}`
# is only a fallback behind flash_scheduler_leader.
prom_port=$(free_port)
prom="http://127.0.0.1:$prom_port"
cat >"$work/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: flash-sale
    metrics_path: /metrics
    static_configs:
      - targets: ["127.0.0.1:$port"]
EOF
log "prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') on :$prom_port scraping :$port every 1 s"
prometheus --config.file="$work/prometheus.yml" \
    --storage.tsdb.path="$work/prometheus-data" \
    --web.listen-address="127.0.0.1:$prom_port" \
    --log.level=warn >"$work/prometheus.log" 2>&1 &
prom_pid=$!
stack_track_pid "$prom_pid"
wait_ready "$prom/-/ready" "$prom_pid" "$work/prometheus.log" prometheus 60

log "loadgen --mode pipeline --flow full --clients 32 --requests $REQUESTS"
"$TARGET/release/loadgen" --url "$base" --mode pipeline --flow full \
    --clients 32 --requests "$REQUESTS" >"$work/loadgen.out" 2>&1 || {
    echo "dashboard-check: loadgen failed; its output:" >&2
    tail -n 40 "$work/loadgen.out" >&2
    exit 1
}
tail -n 5 "$work/loadgen.out"

# A few scrapes after the run, every one of them up.
log "waiting for scrapes after the run"
python3 - "$prom" <<'EOF'
import json, sys, time, urllib.parse, urllib.request
prom = sys.argv[1]
def query(q):
    url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)["data"]["result"]
start = time.time()
first = None
while time.time() - start < 60:
    result = query('max(timestamp(up == 1))')
    if result:
        t = float(result[0]["value"][1])
        first = first or t
        if t - first >= 4:
            print(f"scraped up to {t - first:.0f} s after the run")
            sys.exit(0)
    time.sleep(1)
sys.exit("no scrapes after the run within 60 s")
EOF

log "evaluating every dashboard query"
python3 - "$prom" "$DASHBOARD" <<'EOF'
import json, re, sys, urllib.error, urllib.parse, urllib.request
prom, path = sys.argv[1], sys.argv[2]
dashboard = json.load(open(path))
GRAFANA = {
    "__rate_interval": "1m", "__range": "5m", "__interval": "15s",
    "__range_s": "300", "__interval_ms": "15000",
}
for var in (dashboard.get("templating") or {}).get("list", []):
    GRAFANA.setdefault(var["name"], ".*")

def substitute(expr):
    def one(m):
        name = m.group(1) or m.group(2)
        if name not in GRAFANA:
            raise KeyError(f"unknown variable ${name}")
        return GRAFANA[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)

queries = []
def walk(panels):
    for panel in panels:
        walk(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append((panel.get("title", "?"), target.get("legendFormat", ""), target["expr"]))
walk(dashboard.get("panels", []))

failures = []
width = max(len(e) for _, _, e in queries)
for title, legend, expr in queries:
    label = f"{title}" + (f" [{legend}]" if legend else "")
    try:
        q = substitute(expr)
        url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=15) as r:
                body = json.load(r)
        except urllib.error.HTTPError as e:
            body = json.load(e)
        if body.get("status") != "success":
            raise ValueError(f"{body.get('errorType')}: {body.get('error')}")
        result = body["data"]["result"]
        count = len(result) if isinstance(result, list) else 1
        verdict = "ok" if count else "NO SERIES"
    except Exception as e:  # noqa: BLE001 - reported per query
        count, verdict = 0, f"ERROR {e}"
    print(f"{count:4d}  {verdict:9.9s}  {label}\n            {expr}")
    if verdict != "ok":
        failures.append((label, expr, verdict))

print(f"\n{len(queries)} queries, {len(queries) - len(failures)} with series, {len(failures)} failing")
for label, expr, verdict in failures:
    print(f"FAIL  {label}: {verdict}\n      {expr}")
sys.exit(1 if failures else 0)
EOF
