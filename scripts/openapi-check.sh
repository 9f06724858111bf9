#!/usr/bin/env bash
# openapi-check.sh: holds the served OpenAPI document to its word. Starts a
# throwaway stack (target/debug/flash-sale on a free port, its own database
# and RabbitMQ vhost, random secrets), then
#   1. validates GET /api/v1/openapi.json with openapi-spec-validator, and
#   2. fuzzes the running stack from that document with Schemathesis, every
#      default check on (config and hooks: scripts/schemathesis/).
# Exit 0 only when the validator reports no error and Schemathesis no
# failure. Everything it made is removed on exit, whatever happens.
#
#   scripts/openapi-check.sh
#
# The stack is scripts/lib/stack.sh's. Needs: MariaDB/MySQL on
# 127.0.0.1:3306 (root, no password), RabbitMQ on 127.0.0.1:5672 (guest)
# with `rabbitmqctl`, python3 with venv, and PyPI the
# first time (the venv in target/openapi-venv is reused while its pins hold).
# The binary and the venv live under CARGO_TARGET_DIR when it is set.
# Knobs (environment): OPENAPI_CHECK_EXAMPLES (Schemathesis examples per
# operation, default 300), OPENAPI_CHECK_FUZZ_SECS (hard cap on the
# Schemathesis run, default 240), TEST_MYSQL_SERVER, TEST_AMQP_SERVER (as
# for the tests).
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
log() { printf '\n== openapi-check: %s\n' "$*"; }

# Pinned so a new release cannot fail (or pass) CI on its own.
PINS=(openapi-spec-validator==0.9.0 schemathesis==4.32.5)
TARGET=$(realpath -m "${CARGO_TARGET_DIR:-target}")
VENV=$TARGET/openapi-venv
EXAMPLES=${OPENAPI_CHECK_EXAMPLES:-300}
FUZZ_SECS=${OPENAPI_CHECK_FUZZ_SECS:-240}

source scripts/lib/stack.sh
stack_init openapi-check fs_openapi

log "python venv ($VENV)"
if [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$VENV/pins" 2>/dev/null)" != "${PINS[*]}" ]]; then
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PINS[@]}"
    echo "${PINS[*]}" >"$VENV/pins"
fi

if [[ ! -x "$TARGET/debug/flash-sale" ]]; then
    log "cargo build --bin flash-sale"
    cargo build --bin flash-sale
fi

log "stack: database $db_name, vhost $vhost"
stack_start "$TARGET/debug/flash-sale"

# Real data for the stateful phase: the quick start seeded product 1 (100
# units); enough stock that holds are granted all run long, and one granted
# hold turned into an order.
curl -fsS -X POST "$base/api/v1/admin/products/1/restock" \
    -H "authorization: Bearer $ADMIN_TOKEN" -H 'content-type: application/json' \
    -d '{"qty": 1000000000}' >/dev/null
hold=$(curl -fsS -X POST "$base/api/v1/holds" -H 'content-type: application/json' \
    -H 'prefer: wait=10' -d '{"product_id": 1, "qty": 1}')
hold_id=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$hold")
curl -fsS -X POST "$base/api/v1/orders" -H 'content-type: application/json' \
    -H 'prefer: wait=10' -d "{\"hold_id\": \"$hold_id\"}" >/dev/null

log "openapi-spec-validator"
curl -fsS "$base/api/v1/openapi.json" -o "$work/openapi.json"
validator_status=0
"$VENV/bin/openapi-spec-validator" --validation-errors all "$work/openapi.json" || validator_status=$?
validator=$([[ "$validator_status" == 0 ]] && echo "0 errors" || echo "FAILED")

log "schemathesis ($EXAMPLES examples per operation, at most ${FUZZ_SECS}s)"
# The hooks sign webhook calls over the bytes they send (see hooks.py).
WEBHOOK_SIGNATURE_PLACEHOLDER="sign-$tag"
export WEBHOOK_SIGNATURE_PLACEHOLDER
# Run from the scratch directory: Schemathesis keeps a cache in ./.schemathesis.
repo=$PWD
set +e
(cd "$work" && PYTHONPATH="$repo/scripts/schemathesis" SCHEMATHESIS_HOOKS=hooks \
    timeout --kill-after=10 "$FUZZ_SECS" \
    "$VENV/bin/schemathesis" --config-file "$repo/scripts/schemathesis/schemathesis.toml" \
    run "$base/api/v1/openapi.json" \
    --max-examples "$EXAMPLES" \
    --generation-database none \
    --report ndjson --report-ndjson-path "$work/events.ndjson" \
    --no-color 2>&1) | tee "$work/schemathesis.log"
fuzz_status=${PIPESTATUS[0]}
set -e

# One line for CI: the numbers of the run (checks counted from its event
# log), or why there are none.
summary=$(python3 - "$work/schemathesis.log" "$work/events.ndjson" "$fuzz_status" <<'EOF'
import json, re, sys
text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
status = int(sys.argv[3])
checks = failed = 0
names = set()
try:
    with open(sys.argv[2], encoding="utf-8") as events:
        for line in events:
            finished = json.loads(line).get("ScenarioFinished")
            if not finished:
                continue
            for results in finished["recorder"].get("checks", {}).values():
                for check in results:
                    checks += 1
                    names.add(check["name"])
                    failed += check["status"] == "failure"
except (OSError, ValueError, KeyError):
    checks = None
ops = re.search(r"Tested: (\d+)", text)
cases = re.search(r"Test cases:\s*\n\s*(\d+) generated(.*)", text)
if status in (124, 137):
    print("timed out")
elif ops and cases:
    found = re.search(r"found (\d+) unique failures?", cases.group(2))
    line = f"{ops.group(1)} operations, {cases.group(1)} test cases"
    if checks is not None:
        line += f", {checks} checks ({len(names)} kinds, {failed} failed)"
    line += f", {int(found.group(1)) if found else 0} failures"
    print(line)
else:
    print(f"no summary (exit {status})")
EOF
)
elapsed=$((SECONDS - started))
if [[ "$validator_status" == 0 && "$fuzz_status" == 0 ]]; then
    verdict=passed
else
    verdict=FAILED
fi
echo
echo "openapi-check: $verdict: validator $validator; schemathesis $summary (exit $fuzz_status); ${elapsed}s"
[[ "$verdict" == passed ]]
