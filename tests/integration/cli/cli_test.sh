#!/usr/bin/env bash
# The switchboard command as a user runs it: results on stdout with exit 0,
# errors as JSON on stderr with a non-zero exit, config errors with file and
# line, plugin listing.
set -uo pipefail
SB="$1"
FAILED=0
PASSED=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME EXPECTED_EXIT PATTERN_IN_STDOUT PATTERN_IN_STDERR -- ARGS...
  local name=$1 want_exit=$2 out_pat=$3 err_pat=$4
  shift 5
  "$SB" "$@" >"$tmp/out" 2>"$tmp/err"
  local code=$?
  local ok=1
  if [[ $want_exit == nonzero ]]; then
    [[ $code -ne 0 ]] || ok=0
  else
    [[ $code -eq $want_exit ]] || ok=0
  fi
  if [[ -n $out_pat ]] && ! grep -Eq -- "$out_pat" "$tmp/out"; then ok=0; fi
  if [[ -n $err_pat ]] && ! grep -Eq -- "$err_pat" "$tmp/err"; then ok=0; fi
  if ((ok)); then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1))
    echo "FAIL $name (exit $code)"
    echo "  stdout: $(head -c 400 "$tmp/out")"
    echo "  stderr: $(head -c 400 "$tmp/err")"
  fi
}

check act-result 0 '^3$' '' -- act --plugin math '{"topic":"math","cmd":"add","a":1,"b":2}'
check act-timeout-flag 0 '^0.5$' '' -- act --timeout 300 --plugin math '{"topic":"math","cmd":"div","a":1,"b":2}'
check act-handler-error nonzero '' '"name":"MathError".*"message":"division by zero"|"message":"division by zero".*"name":"MathError"' -- act --plugin math '{"topic":"math","cmd":"div","a":1,"b":0}'
check act-not-found nonzero '' 'PatternNotFound' -- act --plugin math '{"topic":"math","cmd":"pow"}'
check act-no-responders nonzero '' 'TransportError' -- act '{"topic":"nobody"}'
check act-bad-json 2 '' 'not a JSON object' -- act '{"topic":'
check act-unknown-plugin nonzero '' 'libswitchboard-nosuch' -- act --plugin nosuch '{"topic":"math"}'
check act-bad-scheme nonzero '' 'scheme' -- act --url 'bogus://x' '{"topic":"math"}'

cat >"$tmp/bad.yaml" <<'YAML'
transports:
  bus: { type: inproc, url: "inproc://x" }
runtime:
  transport: bus
  timeout_ms: "soon"
YAML
check config-error-names-file-line-key nonzero '' 'bad.yaml:5:[0-9]+: runtime.timeout_ms' -- act --config "$tmp/bad.yaml" '{"topic":"math"}'

cat >"$tmp/good.yaml" <<'YAML'
transports:
  bus: { type: inproc, url: "inproc://cli" }
runtime: { transport: bus, timeout_ms: 500 }
plugins:
  - math
YAML
check act-with-config 0 '^42$' '' -- act --config "$tmp/good.yaml" '{"topic":"math","cmd":"mul","a":6,"b":7}'
check plugins-list 0 'transport +inproc.*' '' -- plugins
check plugins-list-math 0 'plugin +math +1\.0\.0 +[0-9]+ ' '' -- plugins
check version 0 '^switchboard [0-9]+\.[0-9]+\.[0-9]+ \(plugin ABI [0-9]+' '' -- version
check pub-inproc 0 '' '' -- pub orders.new '{"id":1}'
check pub-wildcard-refused nonzero '' 'orders\.\*' -- pub 'orders.*' '{"id":1}'

check run-bad-config nonzero '' 'bad.yaml:5:[0-9]+: runtime.timeout_ms' -- run "$tmp/bad.yaml"

# run serves until SIGTERM, then closes gracefully and exits 0.
"$SB" run --config "$tmp/good.yaml" >"$tmp/run.out" 2>"$tmp/run.err" &
pid=$!
for _ in $(seq 100); do grep -q '^ready' "$tmp/run.out" && break; sleep 0.05; done
kill -TERM "$pid"
wait "$pid"
code=$?
if [[ $code -eq 0 ]] && grep -q '^ready' "$tmp/run.out" && grep -q 'closing' "$tmp/run.err"; then
  PASSED=$((PASSED + 1))
else
  FAILED=$((FAILED + 1))
  echo "FAIL run-sigterm (exit $code): $(cat "$tmp/run.out" "$tmp/run.err" | head -c 400)"
fi

# Across processes over a real nats-server: run + act, sub + pub.
if command -v nats-server >/dev/null; then
  port=$(( (RANDOM % 20000) + 30000 ))
  nats-server -a 127.0.0.1 -p "$port" >"$tmp/nats.log" 2>&1 &
  nats=$!
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
  url="nats://127.0.0.1:$port"
  "$SB" run --url "$url" --plugin math >"$tmp/svc.out" 2>"$tmp/svc.err" &
  svc=$!
  for _ in $(seq 100); do grep -q '^ready' "$tmp/svc.out" && break; sleep 0.05; done
  check nats-act 0 '^5$' '' -- act --url "$url" '{"topic":"math","cmd":"add","a":2,"b":3}'
  check nats-act-error nonzero '' 'MathError' -- act --url "$url" '{"topic":"math","cmd":"div","a":2,"b":0}'
  check nats-act-nobody nonzero '' 'no responders' -- act --url "$url" '{"topic":"nobody"}'
  "$SB" sub --url "$url" --count 2 'orders.>' >"$tmp/sub.out" 2>"$tmp/sub.err" &
  sub=$!
  for _ in $(seq 100); do grep -q 'listening' "$tmp/sub.err" && break; sleep 0.05; done
  check nats-pub-1 0 '' '' -- pub --url "$url" orders.new '{"id":1}'
  check nats-pub-2 0 '' '' -- pub --url "$url" orders.eu.new 'plain text'
  wait "$sub"
  if grep -q '"subject":"orders.new"' "$tmp/sub.out" && grep -q '"data":"plain text"' "$tmp/sub.out"; then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1))
    echo "FAIL nats-sub: $(cat "$tmp/sub.out" "$tmp/sub.err" | head -c 400)"
  fi
  kill "$svc" "$nats" 2>/dev/null
  wait "$svc" "$nats" 2>/dev/null
fi

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
