#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/) with clang and runs each one.
#   scripts/fuzz.sh [SECONDS]   each target for SECONDS (default 300: `make fuzz`);
#                               `make test` runs it for a few seconds per target
# Findings (crash-*, leak-*, timeout-*) are written to build-fuzz/findings/
# and the script fails naming them. The seed corpus is fuzz/corpus/<target>;
# what a run discovers goes to build-fuzz/corpus/<target>, not into git.
set -euo pipefail
seconds=${1:-300}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ not found (scripts/install-deps.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
cmake -S "$root/fuzz" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "${FUZZ_JOBS:-2}"

mkdir -p "$build/findings"
status=0
for target in "$build"/fuzz_*; do
  name=$(basename "$target")
  name=${name#fuzz_}
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  seeds=()
  if [[ -d "$root/fuzz/corpus/$name" ]]; then seeds=("$root/fuzz/corpus/$name"); fi
  echo "fuzz: $name for ${seconds}s"
  if ! "$target" "$corpus" "${seeds[@]}" -max_total_time="$seconds" -max_len=65536 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$build/findings/$name-" >"$build/$name.log" 2>&1; then
    echo "fuzz: $name FAILED; see $build/$name.log and $build/findings/" >&2
    tail -30 "$build/$name.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^stat::new_units_added" "$build/$name.log" |
      sed "s/^/fuzz: $name /"
  fi
done
exit $status
