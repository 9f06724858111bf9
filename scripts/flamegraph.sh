#!/usr/bin/env bash
# A flame graph of a running flash-sale process while a load runs, as in
# docs/BENCHMARKS.md ("Profiles"). Needs perf (Debian: linux-perf),
# inferno (`cargo install inferno`) and python3.
#
#   scripts/flamegraph.sh OUT.svg [SECONDS] [PROCESS_NAME]
#
# Start the load (loadgen) right after this, or before: perf samples the
# process for SECONDS (default 12) at 99 Hz with DWARF call graphs.
set -euo pipefail
out=${1:?usage: scripts/flamegraph.sh OUT.svg [SECONDS] [PROCESS_NAME]}
seconds=${2:-12}
name=${3:-flash-sale}
pid=$(pgrep -x "$name" | head -1) || { echo "no $name process" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
perf record -F 99 --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep "$seconds" >/dev/null 2>&1
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf >"$work/folded"
# Rust frames carry generic parameters and hashes that make the SVG large
# and unreadable; keep the paths and collapse repeated async wrappers.
python3 - "$work/folded" >"$work/short" <<'PY'
import re, sys
def shorten(frame):
    out, depth = [], 0
    for ch in frame:
        if ch == '<':
            depth += 1
        if depth == 0:
            out.append(ch)
        if ch == '>' and depth > 0:
            depth -= 1
    short = re.sub(r'::h[0-9a-f]{16}$', '', ''.join(out)).replace('{{closure}}', '{closure}')
    return (short if short.strip() else frame)[:90]
for line in open(sys.argv[1]):
    stack, count = line.rsplit(' ', 1)
    frames = []
    for frame in map(shorten, stack.split(';')):
        if not frames or frames[-1] != frame:
            frames.append(frame)
    print(';'.join(frames), count.strip())
PY
inferno-flamegraph --minwidth 1.5 --title "$name, ${seconds} s under load" "$work/short" >"$out"
echo "wrote $out"
