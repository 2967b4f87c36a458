#!/usr/bin/env bash
# Browser test: headless Chromium opens tests/browser/index.html, which uses
# the browser's own WebSocket API to act {topic:"math",cmd:"add",a:1,b:2}
# against `switchboard run --url ws://127.0.0.1:PORT --plugin math`, and
# writes the result into the page; the DOM Chromium dumps must say 3.
#
#   browser_test.sh SWITCHBOARD_BINARY PAGE
#
# Exit 77 (ctest: skipped) only when no Chromium is installed.
set -uo pipefail
SB="$1"
PAGE="$2"

browser=""
for candidate in chromium chromium-browser google-chrome; do
  if command -v "$candidate" >/dev/null; then
    browser=$(command -v "$candidate")
    break
  fi
done
if [[ -z $browser ]]; then
  echo "SKIPPED: no Chromium found (Debian package 'chromium'; scripts/install-deps.sh installs it)"
  exit 77
fi

tmp=$(mktemp -d)
sb_pid=""
cleanup() {
  if [[ -n $sb_pid ]]; then
    kill "$sb_pid" 2>/dev/null
    wait "$sb_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# GET /health on the port; prints the status code.
health() {
  local code
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
  read -r _ code _ <&3
  exec 3>&-
  echo "$code"
}

# A free port: the node would join (not listen) on a taken one.
port=""
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 30000))
  if ! port_in_use "$candidate"; then
    port=$candidate
    break
  fi
done
[[ -n $port ]] || { echo "FAIL: no free port found"; exit 1; }

"$SB" run --url "ws://127.0.0.1:$port" --plugin math >"$tmp/service.out" 2>"$tmp/service.err" &
sb_pid=$!
for _ in $(seq 1 100); do
  grep -q '^ready' "$tmp/service.out" 2>/dev/null && break
  kill -0 "$sb_pid" 2>/dev/null || break
  sleep 0.1
done
if [[ $(health "$port") != 200 ]]; then
  echo "FAIL: the service on ws://127.0.0.1:$port is not healthy"
  cat "$tmp/service.err"
  exit 1
fi

# The page publishes what it shows on a subject of its own (?report=);
# `switchboard sub` on the same port reads it. (Chromium's --dump-dom does
# not wait for WebSocket traffic: virtual time runs ahead of it.)
report="browser.report.$RANDOM$RANDOM"
# 60 s: the page reports within a second or two, but a headless Chromium
# starting on a 2-core machine busy with other tests once took over 30 s to
# load it (CI, session 6).
timeout 60 "$SB" sub --url "ws://127.0.0.1:$port" -n 1 "$report" >"$tmp/report.out" 2>"$tmp/report.err" &
sub_pid=$!
for _ in $(seq 1 50); do
  grep -q '^listening' "$tmp/report.err" 2>/dev/null && break
  sleep 0.1
done

"$browser" --headless --no-sandbox --disable-gpu --no-first-run --no-default-browser-check \
  --user-data-dir="$tmp/profile" --remote-debugging-port=0 \
  "file://$PAGE?port=$port&report=$report" >"$tmp/browser.out" 2>"$tmp/browser.err" &
browser_pid=$!
wait "$sub_pid"
kill "$browser_pid" 2>/dev/null
wait "$browser_pid" 2>/dev/null

# One line: {"subject":"browser.report...","data":{"status":"ok","result":"3","log":""}}
if grep -q '"result":"3"' "$tmp/report.out" && grep -q '"status":"ok"' "$tmp/report.out"; then
  echo "PASS: the page in $(basename "$browser") showed 1 + 2 = 3 over ws://127.0.0.1:$port"
  exit 0
fi
echo "FAIL: the page did not show the result"
echo "--- page report"
cat "$tmp/report.out" "$tmp/report.err"
echo "--- service log"
cat "$tmp/service.err"
echo "--- browser log (tail)"
tail -n 20 "$tmp/browser.err"
exit 1
