#!/usr/bin/env bash
# Instructions and L1 data misses per PatternRouter::lookup, counted by
# callgrind on the router benchmark's data (docs/benchmarks.md, "Router",
# "Where the time goes"). Unlike lookups/s, these counts do not depend on
# what else the machine is doing, so two versions of the router can be
# compared one after the other; they do not say how fast a lookup is (see
# the docs for what they miss).
#
#   scripts/router_instructions.sh [PATTERNS...]   (default: 1000)
#
# Uses the benchmark binary of BENCH_BUILD_DIR (./build-release), built by
# `scripts/bench.sh router`; writes its data to BUILD/bench-data/router-callgrind.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-release}
bin=$build/bin/switchboard_router_bench
data=$build/bench-data/router-callgrind
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000)

command -v valgrind >/dev/null || {
  echo "router_instructions: valgrind not found" >&2
  exit 1
}
[[ -x $bin ]] || {
  echo "router_instructions: $bin not found (scripts/bench.sh router builds it)" >&2
  exit 1
}
mkdir -p "$data"
"$bin" --generate="$data"

for n in "${sizes[@]}"; do
  out=$data/callgrind_$n.out
  # Everything bm_lookup does is collected, so that the calls to lookup are
  # counted where they are made; only lookup's inclusive cost is reported.
  valgrind --tool=callgrind --cache-sim=yes --collect-atstart=no \
    --toggle-collect='*bm_lookup*' --callgrind-out-file="$out" \
    "$bin" --data="$data" --benchmark_filter="router_lookup/$n\$" --benchmark_min_time=0.05 \
    >/dev/null 2>&1
  python3 - "$out" "$n" <<'PY'
import re, sys

path, n = sys.argv[1], sys.argv[2]
events, names, calls, cost = None, {}, 0, None
pending = False  # the last calls= line was a call to lookup; its cost line follows
cfn_is_lookup = False
for line in open(path):
    line = line.rstrip("\n")
    if line.startswith("events:"):
        events = line.split()[1:]
        cost = [0] * len(events)
    elif line.startswith("cfn="):
        m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
        if m.group(2):
            names[m.group(1)] = m.group(2)
        cfn_is_lookup = names.get(m.group(1), "").startswith(
            "switchboard::PatternRouter::lookup(")
    elif line.startswith("calls="):
        pending = cfn_is_lookup
        if pending:
            calls += int(line.split("=")[1].split()[0])
    elif pending:
        # A cost line: the position (one field: no --dump-instr), then the
        # events in order, trailing zeros left out.
        values = [int(x) for x in line.split()[1:]]
        cost = [a + b for a, b in zip(cost, values + [0] * (len(events) - len(values)))]
        pending = False
if calls == 0:
    sys.exit(f"router_instructions: no calls to PatternRouter::lookup in {path}")
per = dict(zip(events, (c / calls for c in cost)))
print(f"{n} patterns: {calls:,} lookups; per lookup {per['Ir']:.0f} instructions, "
      f"{per['D1mr'] + per.get('D1mw', 0):.1f} L1 data misses")
PY
done
