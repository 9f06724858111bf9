#!/usr/bin/env bash
# postman.sh: runs docs/flash-sale.postman_collection.json with newman against
# a running stack (e.g. `cargo run --release --bin flash-sale`). Exit 0 only
# when every assertion passes.
#
#   scripts/postman.sh                                  # http://127.0.0.1:8080
#   BASE_URL=http://127.0.0.1:18282 scripts/postman.sh  # another stack
#   scripts/postman.sh --reporters cli,junit            # extra newman options
#
# Knobs (environment): BASE_URL, ADMIN_TOKEN, WEBHOOK_SECRET, BUYER_JWT_SECRET
# (defaults: the quick start's dev values), NEWMAN (newman command; default
# runs newman 6 through npx, which needs node >= 16 and the npm registry the
# first time).
#
# The values are passed with --env-var: environment variables take precedence
# over the collection's defaults, so the file itself never has to change
# (--global-var would NOT work: globals rank below collection variables).
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ -n "${NEWMAN:-}" ]]; then
    read -r -a newman <<<"$NEWMAN"
else
    newman=(npx --yes newman@6)
fi

exec "${newman[@]}" run docs/flash-sale.postman_collection.json \
    --env-var "baseUrl=${BASE_URL:-http://127.0.0.1:8080}" \
    --env-var "adminToken=${ADMIN_TOKEN:-dev-admin-token}" \
    --env-var "webhookSecret=${WEBHOOK_SECRET:-dev-webhook-secret}" \
    --env-var "buyerJwtSecret=${BUYER_JWT_SECRET:-dev-buyer-jwt-secret}" \
    "$@"
