#!/usr/bin/env bash
# Holds on 16 products at once (one loadgen per product, every hold
# granted, so every request goes through a worker), for comparing
# throughput with one worker and with two. Needs a running api and the
# workers under test; see docs/BENCHMARKS.md.
#
#   ADMIN_TOKEN=... scripts/scale-workers.sh [PRODUCTS] [REQUESTS_EACH] [CLIENTS_EACH]
set -euo pipefail
products=${1:-16}
requests=${2:-4000}
clients=${3:-16}
loadgen=${LOADGEN:-./target/release/loadgen}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for i in $(seq 1 "$products"); do
    "$loadgen" --mode pipeline --flow holds --clients "$clients" --requests "$requests" \
        --stock "$requests" --quiet --json >"$out/$i.json" 2>"$out/$i.err" &
done
wait
python3 - "$out" "$products" <<'PY'
import json, pathlib, sys
runs = []
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    runs.extend(json.loads(path.read_text())["runs"])
if len(runs) != int(sys.argv[2]):
    sys.exit(f"only {len(runs)} of {sys.argv[2]} loadgens reported; see their stderr")
decided = sum(r["granted"] + r["rejected"] for r in runs)
elapsed = max(r["end_to_end_elapsed_s"] for r in runs)
ok = all((r.get("stock_check") or {}).get("pass") for r in runs)
errors = sum(sum(r["errors"].values()) for r in runs)
print(f"{len(runs)} products, {decided} holds decided in {elapsed:.2f} s: "
      f"{decided / elapsed:.0f} decided/s; errors {errors}; stock checks {'PASS' if ok else 'FAIL'}")
PY
