#!/usr/bin/env bash
# `make bench`: the side-by-side benchmarks of docs/benchmarks.md. Never a
# timed test: it prints numbers and fails only when a benchmark is wrong
# (the two sides answer differently), not when it is slow.
#
#   scripts/bench.sh [router]
#
# Router: builds bench/router_bench.cpp in Release, writes the pattern sets
# and lookups, replays them through Switchboard's PatternRouter (Google
# Benchmark) and through bloomrun 4.1 (node), BENCH_REPEATS times taking
# turns, and prints one table of medians.
#
# Environment: BENCH_REPEATS (3), BENCH_BUILD_DIR (./build-release),
# BENCH_JOBS (2), BENCH_MIN_SECONDS (1, CPU seconds per set and side).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-release}
repeats=${BENCH_REPEATS:-3}
jobs=${BENCH_JOBS:-2}
min_seconds=${BENCH_MIN_SECONDS:-1}
which_bench=${1:-router}

log() { echo "bench: $*" >&2; }
die() {
  echo "bench: $*" >&2
  exit 1
}

for tool in cmake node npm python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done

# The `release` preset (./build-release) unless BENCH_BUILD_DIR says
# otherwise; then plain cmake, Release.
build_target() {
  local args
  if [[ -z ${BENCH_BUILD_DIR:-} ]] && grep -q '"name": "release"' "$root/CMakePresets.json" 2>/dev/null; then
    args=(--preset release -DSWITCHBOARD_BUILD_BENCH=ON)
  else
    args=(-S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSWITCHBOARD_BUILD_BENCH=ON)
    if [[ ! -f $build/CMakeCache.txt ]] && command -v ninja >/dev/null; then args+=(-G Ninja); fi
  fi
  mkdir -p "$build"
  log "configuring $build (Release)"
  (cd "$root" && cmake "${args[@]}") >"$build/bench-configure.log" 2>&1 || {
    cat "$build/bench-configure.log" >&2
    die "cmake configure failed"
  }
  log "building $1"
  cmake --build "$build" --target "$1" -j "$jobs" >"$build/bench-build.log" 2>&1 || {
    tail -50 "$build/bench-build.log" >&2
    die "build of $1 failed (log: $build/bench-build.log)"
  }
}

npm_deps() {
  local dir=$root/bench/bloomrun
  if [[ ! -f $dir/node_modules/bloomrun/package.json ]]; then
    log "installing bench/bloomrun's npm packages"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
}

bench_router() {
  npm_deps
  build_target switchboard_router_bench
  local bin=$build/bin/switchboard_router_bench
  local data=$build/bench-data/router
  rm -rf "$data"
  mkdir -p "$data"
  "$bin" --generate="$data"

  local r
  for ((r = 1; r <= repeats; r++)); do
    log "router run $r/$repeats: switchboard"
    "$bin" --data="$data" --benchmark_min_time="$min_seconds" \
      --benchmark_out="$data/switchboard_run$r.json" --benchmark_out_format=json \
      >"$data/switchboard_run$r.log" 2>&1 || {
      cat "$data/switchboard_run$r.log" >&2
      die "switchboard_router_bench failed"
    }
    log "router run $r/$repeats: bloomrun"
    BENCH_MIN_SECONDS=$min_seconds node "$root/bench/bloomrun/router_bench.js" "$data" \
      >"$data/bloomrun_run$r.jsonl"
  done

  python3 - "$data" "$repeats" <<'PY'
import json, statistics, sys
from pathlib import Path

data, repeats = Path(sys.argv[1]), int(sys.argv[2])
sizes = [10, 1000, 10000]
sb = {n: [] for n in sizes}
br = {n: [] for n in sizes}
for r in range(1, repeats + 1):
    for b in json.loads((data / f"switchboard_run{r}.json").read_text())["benchmarks"]:
        n = int(b["name"].split("/")[1])
        sb[n].append(b["items_per_second"])
    for line in (data / f"bloomrun_run{r}.jsonl").read_text().splitlines():
        b = json.loads(line)
        br[int(b["name"].split("/")[1])].append(b["lookups_per_second"])
        bloomrun_version, node_version = b["bloomrun"], b["node"]

med = lambda xs: statistics.median(xs)
fmt = lambda x: f"{x:,.0f}"

# Both sides must give the same answer for every lookup, and the brute-force
# reference's (written with the lookups).
lookups = misses = sb_vs_br = sb_vs_ref = br_vs_ref = 0
for n in sizes:
    ref = json.loads((data / f"router_{n}.json").read_text())
    expect = [l["expect"] for l in ref["lookups"]]
    a = json.loads((data / f"switchboard_answers_{n}.json").read_text())
    b = json.loads((data / f"bloomrun_answers_{n}.json").read_text())
    lookups += len(expect)
    misses += sum(e is None for e in expect)
    sb_vs_br += sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
    sb_vs_ref += sum(x != y for x, y in zip(a, expect)) + abs(len(a) - len(expect))
    br_vs_ref += sum(x != y for x, y in zip(b, expect)) + abs(len(b) - len(expect))

print()
print(f"Router lookups per second, median of {repeats} runs "
      f"(CPU time; bloomrun {bloomrun_version} on node {node_version}, indexing: 'depth')")
print()
print("| patterns | switchboard lookups/s | bloomrun lookups/s |  ratio |")
print("| -------: | --------------------: | -----------------: | -----: |")
for n in sizes:
    s, b = med(sb[n]), med(br[n])
    print(f"| {n:>8,} | {fmt(s):>21} | {fmt(b):>18} | {s / b:>5.1f}x |")
print()
for n in sizes:
    print(f"  spread over runs at {n:,}: switchboard {fmt(min(sb[n]))}..{fmt(max(sb[n]))}, "
          f"bloomrun {fmt(min(br[n]))}..{fmt(max(br[n]))}")
sb_growth = med(sb[10]) / med(sb[10000])
br_growth = med(br[10]) / med(br[10000])
ratio_1k = med(sb[1000]) / med(br[1000])
print(f"  lookup time at 10,000 patterns / at 10: switchboard {sb_growth:.2f}x, "
      f"bloomrun {br_growth:.1f}x")
print(f"  answers: {lookups:,} lookups ({misses:,} misses); mismatches switchboard vs bloomrun "
      f"{sb_vs_br}, vs reference: switchboard {sb_vs_ref}, bloomrun {br_vs_ref}")
print()
ok = lambda good: "met" if good else "NOT met"
print(f"goal >= 100x bloomrun at 1,000 patterns: {ok(ratio_1k >= 100)} ({ratio_1k:.0f}x)")
print(f"goal lookup time at 10,000 within 2x of 10: {ok(sb_growth <= 2)} ({sb_growth:.2f}x)")
sys.exit(1 if sb_vs_br or sb_vs_ref or br_vs_ref else 0)
PY
}

case $which_bench in
  router) bench_router ;;
  *) die "unknown benchmark '$which_bench' (known: router)" ;;
esac
