#!/usr/bin/env bash
# Fails when modules import each other in a cycle, in the library or in a
# binary made of modules (loadgen). The graph is cargo-modules' (0.27; its
# "uses" edges between modules, rust-analyzer's name resolution); the cycle
# search is the strongly connected components of that graph.
#
# cargo-modules' own `--acyclic` works on items, not modules: a method that
# names its own type already counts as a cycle there, so it fails on any
# crate. Install: cargo install cargo-modules --version 0.27.0 --locked
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-modules >/dev/null 2>&1; then
    echo "module-cycles: cargo-modules is not installed (cargo install cargo-modules --version 0.27.0 --locked)" >&2
    exit 2
fi

status=0
for target in --lib "--bin loadgen"; do
    # shellcheck disable=SC2086 # two words on purpose
    cargo modules dependencies $target --no-externs --no-sysroot \
        --no-fns --no-traits --no-types --no-owns 2>/dev/null |
        python3 -c '
import re, sys
name = sys.argv[1]
edges = {}
for line in sys.stdin:
    m = re.match(r"\s*\"([^\"]+)\" -> \"([^\"]+)\" \[label=\"uses\"", line)
    if m and m.group(1) != m.group(2):
        edges.setdefault(m.group(1), set()).add(m.group(2))
        edges.setdefault(m.group(2), set())
# Tarjan, iteratively: strongly connected components of more than one module.
index, low, stack, on, cycles, n = {}, {}, [], set(), [], 0
for root in edges:
    if root in index:
        continue
    work = [(root, iter(sorted(edges[root])))]
    index[root] = low[root] = n; n += 1; stack.append(root); on.add(root)
    while work:
        v, children = work[-1]
        for w in children:
            if w not in index:
                index[w] = low[w] = n; n += 1; stack.append(w); on.add(w)
                work.append((w, iter(sorted(edges[w]))))
                break
            if w in on:
                low[v] = min(low[v], index[w])
        else:
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
for comp in cycles:
    print(f"{name}: modules in a cycle:")
    for a in comp:
        print("   ", a, "->", ", ".join(sorted(b for b in edges[a] if b in comp)))
print(f"{name}: {len(edges)} modules, {sum(map(len, edges.values()))} uses edges, {len(cycles)} cycles")
sys.exit(1 if cycles or not edges else 0)
' "${target#--}" || status=1
done
exit "$status"
