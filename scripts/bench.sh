#!/usr/bin/env bash
# `make bench`: the side-by-side benchmarks of docs/benchmarks.md. Never a
# timed test: it prints numbers and fails only when a benchmark is wrong
# (the two sides answer differently), not when it is slow.
#
#   scripts/bench.sh [router|nats|mesh|codec|events|bridges [--only=kafka|rabbitmq]] (no argument: all, one after the other)
#
# Router: builds bench/router_bench.cpp in Release, writes the pattern sets
# and lookups, replays them through Switchboard's PatternRouter (Google
# Benchmark) and through bloomrun 4.1 (node), BENCH_REPEATS times taking
# turns, and prints one table of medians.
#
# NATS: starts one nats-server on a free loopback port and, BENCH_REPEATS
# times taking turns, runs each side's service and client as two processes
# over it: Switchboard (bench/nats/switchboard_nats_bench.cpp, App over the
# nats transport plugin; once as it comes, once with runtime.idle_spin_us),
# nats-hemera 7.0.2 (bench/hemera/, node) and raw cnats request/reply
# (bench/nats/raw_cnats_bench.cpp); and, to tell the
# transport's share from the runtime's, the raw side's requests through the
# nats transport plugin alone. Each client measures one request in flight
# (latency) and 256 in flight (requests per second); one table of medians.
#
# Environment: BENCH_REPEATS (3 for router, 5 for nats), BENCH_BUILD_DIR
# (./build-release), BENCH_JOBS (2), BENCH_MIN_SECONDS (1, CPU seconds per
# set and side), BENCH_NATS_SECONDS (2, wall seconds per measured window),
# BENCH_IDLE_SPIN_US (500, the NATS bench's Switchboard side with idle spin).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${BENCH_BUILD_DIR:-$root/build-release}
repeats=${BENCH_REPEATS:-3}
jobs=${BENCH_JOBS:-2}
min_seconds=${BENCH_MIN_SECONDS:-1}
which_bench=${1:-all}
# What follows the benchmark's name goes to its binary where it takes
# options (bridges: --only=kafka|rabbitmq).
bench_args=("${@:2}")

log() { echo "bench: $*" >&2; }
die() {
  echo "bench: $*" >&2
  exit 1
}

for tool in cmake node npm python3; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh installs it)"
done

# build_target TARGET...: the `release` preset (./build-release) unless
# BENCH_BUILD_DIR says otherwise; then plain cmake, Release.
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
  log "building $*"
  cmake --build "$build" --target "$@" -j "$jobs" >"$build/bench-build.log" 2>&1 || {
    tail -50 "$build/bench-build.log" >&2
    die "build of $* failed (log: $build/bench-build.log)"
  }
}

# npm_deps DIR PACKAGE: installs bench/DIR's locked packages unless PACKAGE is there.
npm_deps() {
  local dir=$root/bench/$1
  if [[ ! -f $dir/node_modules/$2/package.json ]]; then
    log "installing bench/$1's npm packages"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
  fi
}

bench_router() {
  npm_deps bloomrun bloomrun
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

# ---- NATS act ------------------------------------------------------------------

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for_line FILE TEXT SECONDS PID: until FILE has a line TEXT, or PID exits.
wait_for_line() {
  local deadline=$((SECONDS + $3))
  until grep -qx "$2" "$1" 2>/dev/null; do
    kill -0 "$4" 2>/dev/null || return 1
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

stop_pid() {
  kill "$1" 2>/dev/null || return 0
  local i
  for ((i = 0; i < 100; i++)); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.05
  done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

nats_server_pid=""
nats_service_pid=""
nats_cleanup() {
  [[ -z $nats_service_pid ]] || stop_pid "$nats_service_pid"
  [[ -z $nats_server_pid ]] || stop_pid "$nats_server_pid"
}

bench_nats() {
  command -v nats-server >/dev/null || die "nats-server not found (scripts/install-deps.sh installs it)"
  npm_deps hemera nats-hemera
  build_target switchboard_nats_bench raw_cnats_bench
  local bin=$build/bin
  local data=$build/bench-data/nats
  local nats_repeats=${BENCH_REPEATS:-5}
  local seconds=${BENCH_NATS_SECONDS:-2}
  rm -rf "$data"
  mkdir -p "$data"

  trap nats_cleanup EXIT
  local port url
  port=$(free_port)
  url=nats://127.0.0.1:$port
  nats-server -a 127.0.0.1 -p "$port" >"$data/nats-server.log" 2>&1 &
  nats_server_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    grep -q "Server is ready" "$data/nats-server.log" && break
    kill -0 "$nats_server_pid" 2>/dev/null || break
    sleep 0.05
  done
  grep -q "Server is ready" "$data/nats-server.log" || {
    cat "$data/nats-server.log" >&2
    die "nats-server did not start on port $port"
  }
  log "nats-server $(nats-server --version | awk '{print $2}') on $url"

  # spin: Switchboard again with runtime.idle_spin_us (docs/runtime.md,
  # "Idle spin"), the setting for latency at the cost of CPU.
  local sides=(switchboard spin hemera raw transport) r k side
  local spin_us=${BENCH_IDLE_SPIN_US:-500}
  local client_args=(--url="$url" --seconds="$seconds" --warmup=0.5 --inflight=256)
  for ((r = 1; r <= nats_repeats; r++)); do
    # Taking turns, and a different side first each time.
    for ((k = 0; k < ${#sides[@]}; k++)); do
      side=${sides[$(((k + r - 1) % ${#sides[@]}))]}
      log "nats run $r/$nats_repeats: $side"
      local out=$data/${side}_run$r
      case $side in
        switchboard) "$bin/switchboard_nats_bench" service --url="$url" >"$out.service.log" 2>&1 & ;;
        spin) "$bin/switchboard_nats_bench" service --url="$url" --idle-spin-us="$spin_us" >"$out.service.log" 2>&1 & ;;
        raw) "$bin/raw_cnats_bench" responder --url="$url" >"$out.service.log" 2>&1 & ;;
        transport) "$bin/switchboard_nats_bench" transport-service --url="$url" >"$out.service.log" 2>&1 & ;;
        hemera) (cd "$root/bench/hemera" && exec node service.js --url="$url") >"$out.service.log" 2>&1 & ;;
      esac
      nats_service_pid=$!
      wait_for_line "$out.service.log" ready 15 "$nats_service_pid" || {
        cat "$out.service.log" >&2
        die "the $side service did not start"
      }
      local pids=service:$nats_service_pid,server:$nats_server_pid
      case $side in
        switchboard) "$bin/switchboard_nats_bench" client "${client_args[@]}" --pids="$pids" ;;
        spin) "$bin/switchboard_nats_bench" client "${client_args[@]}" --pids="$pids" --idle-spin-us="$spin_us" ;;
        raw) "$bin/raw_cnats_bench" client "${client_args[@]}" --pids="$pids" ;;
        transport) "$bin/switchboard_nats_bench" transport-client "${client_args[@]}" --pids="$pids" ;;
        hemera) (cd "$root/bench/hemera" && node client.js "${client_args[@]}" --pids="$pids") ;;
      esac >"$out.json" 2>"$out.client.log" || {
        cat "$out.client.log" >&2
        die "the $side client failed"
      }
      stop_pid "$nats_service_pid"
      nats_service_pid=""
    done
  done
  stop_pid "$nats_server_pid"
  nats_server_pid=""

  python3 - "$data" "$nats_repeats" "$seconds" "$spin_us" <<'PY'
import json, statistics, sys
from pathlib import Path

data, repeats, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
spin_us = int(sys.argv[4])
sides = ["switchboard", "spin", "hemera", "raw", "transport"]
runs = {s: [json.loads((data / f"{s}_run{r}.json").read_text()) for r in range(1, repeats + 1)]
        for s in sides}
med = statistics.median

def cpu_us(run):  # CPU time of client + service + server per request, µs
    m = run["many"]
    return sum(m["cpu_seconds"].values()) / m["count"] * 1e6 if m["count"] else float("nan")

metrics = {
    "p50": lambda run: run["one"]["p50_us"],
    "p99": lambda run: run["one"]["p99_us"],
    "rps": lambda run: run["many"]["rps"],
    "cpu": cpu_us,
}
m = {s: {k: med([f(run) for run in runs[s]]) for k, f in metrics.items()} for s in sides}
spread = {s: {k: (min(f(run) for run in runs[s]), max(f(run) for run in runs[s]))
              for k, f in metrics.items()} for s in sides}

problems = []
for s in sides:
    for r, run in enumerate(runs[s], 1):
        if run["mismatches"] or run["errors"]:
            problems.append(f"{s} run {r}: {run['mismatches']} wrong answers, {run['errors']} errors"
                            f" (first: {run['first_problem']})")

names = {"switchboard": "switchboard", "spin": f"switchboard, idle spin {spin_us} µs",
         "hemera": "hemera", "raw": "raw cnats", "transport": "nats plugin alone"}
print()
print(f"NATS act round trip, {{topic:'math', cmd:'add', a, b}} -> a + b, median of {repeats} runs "
      f"(wall time, {seconds:g} s windows; one nats-server on loopback)")
print()
print(f"(sb: switchboard; spin: switchboard with runtime.idle_spin_us = {spin_us})")
print()
print("|                               | sb      | spin    | hemera  | raw cnats | sb / hemera "
      "| spin / hemera | sb / raw | spin / raw | nats plugin alone |")
print("| :---------------------------- | ------: | ------: | ------: | --------: | ----------: "
      "| ------------: | -------: | ---------: | ----------------: |")
def row(label, key, fmt):
    v = {s: m[s][key] for s in sides}
    print(f"| {label:<29} | {fmt(v['switchboard']):>7} | {fmt(v['spin']):>7} | {fmt(v['hemera']):>7} | "
          f"{fmt(v['raw']):>9} | {v['switchboard'] / v['hemera']:>10.2f}x | "
          f"{v['spin'] / v['hemera']:>12.2f}x | {v['switchboard'] / v['raw']:>7.2f}x | "
          f"{v['spin'] / v['raw']:>9.2f}x | {fmt(v['transport']):>17} |")
row("1 in flight: p50 (µs)", "p50", lambda x: f"{x:,.0f}")
row("1 in flight: p99 (µs)", "p99", lambda x: f"{x:,.0f}")
row("256 in flight: requests/s", "rps", lambda x: f"{x:,.0f}")
row("256 in flight: CPU µs/request", "cpu", lambda x: f"{x:,.1f}")
print()
for s in sides:
    sp = spread[s]
    print(f"  {names[s]}: {runs[s][0]['details']}")
    print(f"    over the runs: p50 {sp['p50'][0]:,.0f}..{sp['p50'][1]:,.0f} µs, "
          f"p99 {sp['p99'][0]:,.0f}..{sp['p99'][1]:,.0f} µs, "
          f"{sp['rps'][0]:,.0f}..{sp['rps'][1]:,.0f} requests/s")
print("  CPU µs/request: CPU time of client, service and nats-server over the 256-in-flight "
      "window, divided by the replies in it.")
checked = sum(run["checked"] for s in sides for run in runs[s])
wrong = sum(run["mismatches"] for s in sides for run in runs[s])
errors = sum(run["errors"] for s in sides for run in runs[s])
print(f"  answers: {checked:,} replies checked against a + b: {wrong} wrong, {errors} errors")
print()
ok = lambda good: "met" if good else "NOT met"
for s in ["switchboard", "spin"]:
    p50_he = m[s]["p50"] / m["hemera"]["p50"]
    p50_raw = m[s]["p50"] / m["raw"]["p50"]
    rps_he = m[s]["rps"] / m["hemera"]["rps"]
    print(f"{names[s]}:")
    print(f"  goal 1-in-flight p50 at most 0.5x hemera's: {ok(p50_he <= 0.5)} ({p50_he:.2f}x)")
    print(f"  goal 1-in-flight p50 at most 1.1x raw cnats': {ok(p50_raw <= 1.1)} ({p50_raw:.2f}x)")
    print(f"  goal 256-in-flight throughput at least 5x hemera's: {ok(rps_he >= 5)} ({rps_he:.2f}x)")
for p in problems:
    print(f"WRONG: {p}")
sys.exit(1 if problems else 0)
PY
}

# Codec: envelope encode + decode per message through the json and msgpack
# plugins (bench/codec_bench.cpp), BENCH_REPEATS runs, medians.
bench_codec() {
  build_target switchboard_codec_bench
  local bin=$build/bin/switchboard_codec_bench
  local data=$build/bench-data/codec
  rm -rf "$data"
  mkdir -p "$data"
  local r
  for ((r = 1; r <= repeats; r++)); do
    log "codec run $r/$repeats"
    "$bin" --benchmark_min_time="$min_seconds" --benchmark_out="$data/run$r.json" \
      --benchmark_out_format=json >"$data/run$r.log" 2>&1 || {
      cat "$data/run$r.log" >&2
      die "switchboard_codec_bench failed"
    }
  done
  python3 - "$data" "$repeats" <<'PY'
import json, statistics, sys
from pathlib import Path

data, repeats = Path(sys.argv[1]), int(sys.argv[2])
ns, size = {}, {}
for r in range(1, repeats + 1):
    for b in json.loads((data / f"run{r}.json").read_text())["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"bench: {b['name']}: {b.get('error_message')}")
        _, codec, message = b["name"].split("/")
        ns.setdefault((codec, message), []).append(b["cpu_time"])
        size[(codec, message)] = int(b["bytes"])
messages = sorted({m for _, m in ns}, key=lambda m: ["small_request", "small_reply", "large_request"].index(m))
med = lambda xs: statistics.median(xs)
print()
print(f"Envelope encode + decode per message, CPU time, median of {repeats} runs")
print()
print("| message | json ns | msgpack ns | json / msgpack | json bytes | msgpack bytes |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for m in messages:
    j, p = med(ns[("json", m)]), med(ns[("msgpack", m)])
    print(f"| {m} | {j:,.0f} | {p:,.0f} | {j / p:.2f}x | {size[('json', m)]:,} | {size[('msgpack', m)]:,} |")
PY
}

# Events: the event log (bench/events/event_log_bench.cpp): durable appends/s
# with group commit, replay events/s, and the write+fdatasync floor measured
# in the same run; BENCH_REPEATS runs, medians. The store lives under the
# build directory (BENCH_EVENTS_DIR to put it on another disk).
# The peer: JetStream file-store publishing (bench/events/jetstream_publish_bench.cpp)
# on a nats-server -js of its own, its store beside the event log's.
events_jetstream_run() {
  local data=$1 out=$2
  local port js_dir=$data/jetstream
  port=$(free_port)
  rm -rf "$js_dir"
  mkdir -p "$js_dir"
  nats-server -a 127.0.0.1 -p "$port" -js -sd "$js_dir" >"$data/nats-server.log" 2>&1 &
  nats_server_pid=$!
  local i
  for ((i = 0; i < 100; i++)); do
    (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  "$build/bin/jetstream_publish_bench" --url="nats://127.0.0.1:$port" \
    --seconds="${BENCH_EVENTS_SECONDS:-3}" >"$out" 2>>"$data/jetstream.log" || {
    cat "$data/jetstream.log" >&2
    nats_cleanup
    die "jetstream_publish_bench failed"
  }
  nats_cleanup
  nats_server_pid=""
}

bench_events() {
  command -v nats-server >/dev/null || die "nats-server not found (scripts/install-deps.sh installs it)"
  build_target switchboard_events_bench jetstream_publish_bench
  local bin=$build/bin/switchboard_events_bench
  local data=$build/bench-data/events
  local store=${BENCH_EVENTS_DIR:-$data/store}
  rm -rf "$data"
  mkdir -p "$data" "$store"
  trap nats_cleanup EXIT
  local r
  for ((r = 1; r <= repeats; r++)); do
    log "events run $r/$repeats"
    "$bin" --dir="$store" --seconds="${BENCH_EVENTS_SECONDS:-3}" >"$data/run$r.json" \
      2>"$data/run$r.log" || {
      cat "$data/run$r.log" >&2
      die "switchboard_events_bench failed"
    }
    events_jetstream_run "$data" "$data/jetstream$r.json"
  done
  python3 - "$data" "$repeats" <<'PY'
import json, statistics, sys
from pathlib import Path

data, repeats = Path(sys.argv[1]), int(sys.argv[2])
runs = [json.loads((data / f"run{r}.json").read_text()) for r in range(1, repeats + 1)]
for r, run in enumerate(runs, 1):
    run["jetstream"] = json.loads((data / f"jetstream{r}.json").read_text())
med = lambda f: statistics.median(f(x) for x in runs)
span = lambda f: f"{min(f(x) for x in runs):,.0f}..{max(f(x) for x in runs):,.0f}"
rows = [
    ("write + fdatasync floor (one record per sync)", lambda x: x["fdatasync_per_s"]),
    ("durable appends/s, group commit", lambda x: x["append"]["per_s"]),
    ("JetStream file-store publishes/s (PubAck, async)", lambda x: x["jetstream"]["per_s"]),
    ("replay events/s, read() (payload as text)", lambda x: x["replay"]["read_per_s"]),
    ("replay events/s, stream() via the strand", lambda x: x["replay"]["stream_per_s"]),
    ("replay events/s, with payload JSON parse", lambda x: x["replay"]["parsed_per_s"]),
]
a = runs[0]["append"]
print()
print(f"Event log, median of {repeats} runs ({a['inflight']:,} emits in flight from "
      f"{a['threads']} threads; record ~{runs[0]['record_bytes']} bytes; "
      f"{runs[0]['replay']['events']:,} events replayed)")
print()
print("| measure | median | over the runs |")
print("| --- | ---: | ---: |")
for name, f in rows:
    print(f"| {name} | {med(f):,.0f} | {span(f)} |")
print()
print(f"  group commit: {med(lambda x: x['append']['batches_per_s']):,.0f} commits/s, "
      f"mean batch {med(lambda x: x['append']['mean_batch']):,.0f} events, "
      f"largest {max(x['append']['largest_batch'] for x in runs):,}")
print(f"  CPU (all the process's threads) per appended event: "
      f"{med(lambda x: x['append'].get('cpu_us_per_event', 0)):.2f} us")
appends, floor = med(rows[1][1]), med(rows[0][1])
jetstream = med(rows[2][1])
replay = med(rows[3][1])
ok = lambda good: "met" if good else "NOT met"
print(f"  group commit / floor: {appends / floor:,.0f}x; event log / JetStream: {appends / jetstream:.2f}x")
print("  (nats-server 2.9 acks a file-store publish before it is fsynced: it syncs every 2 min;"
      " the event log acks after fdatasync)")
print()
print(f"goal >= 200,000 durable appends/s: {ok(appends >= 200000)} ({appends:,.0f})")
print(f"goal replay >= 1,000,000 events/s: {ok(replay >= 1000000)} ({replay:,.0f})")
PY
}

# ---- Mesh act: tcp_peer and websocket against raw TCP --------------------------
#
# The brokerless act round trip: bench/nats/switchboard_nats_bench's service
# and client (an App each, as over NATS) on a tcp:// URL (the service
# listens, the client joins it) and on a ws:// URL (the service is the hub,
# the client connects), against bench/mesh/raw_tcp_bench: a raw loopback
# ping-pong with the act's message sizes. Same phases and report as NATS.
mesh_service_pid=""
mesh_cleanup() {
  [[ -z $mesh_service_pid ]] || stop_pid "$mesh_service_pid"
}

bench_mesh() {
  local targets=(switchboard_nats_bench raw_tcp_bench switchboard_plugin_tcp_peer)
  local sides=(raw tcp_peer)
  if [[ -d $root/transports/websocket ]]; then
    targets+=(switchboard_plugin_websocket)
    sides+=(websocket)
  fi
  build_target "${targets[@]}"
  local bin=$build/bin
  local data=$build/bench-data/mesh
  local mesh_repeats=${BENCH_REPEATS:-5}
  local seconds=${BENCH_NATS_SECONDS:-2}
  rm -rf "$data"
  mkdir -p "$data"
  trap mesh_cleanup EXIT

  local r k side port url
  for ((r = 1; r <= mesh_repeats; r++)); do
    for ((k = 0; k < ${#sides[@]}; k++)); do
      side=${sides[$(((k + r - 1) % ${#sides[@]}))]}
      log "mesh run $r/$mesh_repeats: $side"
      local out=$data/${side}_run$r
      port=$(free_port)
      case $side in
        raw)
          url=tcp://127.0.0.1:$port
          "$bin/raw_tcp_bench" service --port="$port" --reply-size=290 >"$out.service.log" 2>&1 &
          ;;
        tcp_peer)
          url=tcp://127.0.0.1:$port
          "$bin/switchboard_nats_bench" service --url="$url" >"$out.service.log" 2>&1 &
          ;;
        websocket)
          url=ws://127.0.0.1:$port
          "$bin/switchboard_nats_bench" service --url="$url" >"$out.service.log" 2>&1 &
          ;;
      esac
      mesh_service_pid=$!
      wait_for_line "$out.service.log" ready 15 "$mesh_service_pid" || {
        cat "$out.service.log" >&2
        die "the $side service did not start"
      }
      local args=(--url="$url" --seconds="$seconds" --warmup=0.5 --inflight=256
        --pids=service:$mesh_service_pid)
      case $side in
        raw) "$bin/raw_tcp_bench" client "${args[@]}" --size=330 --reply-size=290 ;;
        *) "$bin/switchboard_nats_bench" client "${args[@]}" ;;
      esac >"$out.json" 2>"$out.client.log" || {
        cat "$out.client.log" >&2
        die "the $side client failed"
      }
      stop_pid "$mesh_service_pid"
      mesh_service_pid=""
    done
  done

  python3 - "$data" "$mesh_repeats" "${sides[@]}" <<'PY'
import json, statistics, sys
from pathlib import Path

data, repeats, sides = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
runs = {s: [json.loads((data / f"{s}_run{r}.json").read_text()) for r in range(1, repeats + 1)]
        for s in sides}
med = lambda s, f: statistics.median(f(x) for x in runs[s])
p50 = {s: med(s, lambda x: x["one"]["p50_us"]) for s in sides}
p99 = {s: med(s, lambda x: x["one"]["p99_us"]) for s in sides}
rps = {s: med(s, lambda x: x["many"]["rps"]) for s in sides}
problems = [f"{s} run: {x['first_problem']}" for s in sides for x in runs[s]
            if x["errors"] or x["mismatches"]]
print()
print(f"Brokerless act round trip, median of {repeats} runs (wall time; one client, one service)")
print()
print("| side | p50 us | p99 us | 256 in flight, req/s | p50 / raw tcp |")
print("| --- | ---: | ---: | ---: | ---: |")
for s in sides:
    print(f"| {s} | {p50[s]:,.1f} | {p99[s]:,.1f} | {rps[s]:,.0f} | {p50[s] / p50['raw']:.2f}x |")
print()
ok = lambda good: "met" if good else "NOT met"
r = p50["tcp_peer"] / p50["raw"]
print(f"goal tcp_peer p50 at most 2x raw tcp: {ok(r <= 2)} ({r:.2f}x)")
if "websocket" in p50:
    w = p50["websocket"] / p50["tcp_peer"]
    print(f"goal websocket p50 at most 1.5x tcp_peer: {ok(w <= 1.5)} ({w:.2f}x)")
for p in problems:
    print(f"WRONG: {p}")
sys.exit(1 if problems else 0)
PY
}

# ---- Bridges: NATS -> Kafka and NATS -> RabbitMQ ---------------------------------
#
# bench/bridges/bridge_bench.cpp starts its own nats-server, Kafka broker
# and rabbitmq-server, runs `switchboard run` with three bridges (to Kafka
# with the transport's defaults and with idempotence off, to RabbitMQ), and
# measures them against a raw librdkafka producer with the same settings and
# a raw rabbitmq-c publisher with confirms, taking turns, BENCH_REPEATS
# times; it prints the tables itself.
bench_bridges() {
  build_target switchboard_bridge_bench
  local data=$build/bench-data/bridges
  mkdir -p "$data"
  "$root/scripts/kafka-fetch.sh" >&2
  "$build/bin/switchboard_bridge_bench" --switchboard="$build/bin/switchboard" \
    --repeats="$repeats" --messages="${BENCH_BRIDGE_MESSAGES:-50000}" \
    --window="${BENCH_BRIDGE_WINDOW:-5000}" "${bench_args[@]}" 2>"$data/run.log" || {
    tail -30 "$data/run.log" >&2
    die "switchboard_bridge_bench failed (log: $data/run.log)"
  }
}

case $which_bench in
  router) bench_router ;;
  nats) bench_nats ;;
  codec) bench_codec ;;
  events) bench_events ;;
  mesh) bench_mesh ;;
  bridges) bench_bridges ;;
  all)
    # Each in its own process, so that one failing still lets the other run.
    status=0
    "$root/scripts/bench.sh" router || status=1
    "$root/scripts/bench.sh" nats || status=1
    "$root/scripts/bench.sh" mesh || status=1
    "$root/scripts/bench.sh" codec || status=1
    "$root/scripts/bench.sh" events || status=1
    "$root/scripts/bench.sh" bridges || status=1
    exit $status
    ;;
  *) die "unknown benchmark '$which_bench' (known: router, nats, mesh, codec, events, bridges)" ;;
esac
