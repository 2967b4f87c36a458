#!/usr/bin/env bash
# `make demo`: the main job on the embedded default (no broker): first in one
# process, then the same math service and caller as two processes over the
# brokerless tcp_peer mesh; then, when a nats-server is at hand, over NATS.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./build/bin

"$BIN/example_demo"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo "$1"
}
tmp=$(mktemp -d)
cleanup() {
  [[ -n ${service:-} ]] && kill "$service" 2>/dev/null || true
  [[ -n ${server:-} ]] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# two_processes URL: `switchboard run` serves math there, `switchboard act`
# calls it from another process.
two_processes() {
  local url=$1
  "$BIN/switchboard" run --url "$url" --plugin math >"$tmp/service.out" 2>"$tmp/service.err" &
  service=$!
  for _ in $(seq 200); do grep -q '^ready' "$tmp/service.out" && break; sleep 0.05; done
  grep -q '^ready' "$tmp/service.out" || {
    cat "$tmp/service.err" >&2
    echo "demo: the service on $url did not start" >&2
    exit 1
  }
  for pattern in '{"topic":"math","cmd":"add","a":1,"b":2}' '{"topic":"math","cmd":"mul","a":6,"b":7}'; do
    printf '  switchboard act %s -> ' "$pattern"
    "$BIN/switchboard" act --url "$url" "$pattern"
  done
  printf '  switchboard act {"topic":"math","cmd":"div","a":1,"b":0} -> '
  "$BIN/switchboard" act --url "$url" '{"topic":"math","cmd":"div","a":1,"b":0}' 2>&1 || true
  kill "$service" 2>/dev/null || true
  wait "$service" 2>/dev/null || true
  service=""
}

url="tcp://127.0.0.1:$(free_port 17400)"
echo
echo "over the tcp_peer mesh ($url, no broker): a math service and a caller in two processes"
two_processes "$url"

if ! command -v nats-server >/dev/null; then
  echo
  echo "(nats-server not found: skipping the NATS part; 'make deps' installs it)"
  exit 0
fi

port=$(free_port 14222)
url="nats://127.0.0.1:$port"
echo
echo "over NATS ($url): a math service and a caller in two processes"
nats-server -a 127.0.0.1 -p "$port" >"$tmp/nats.log" 2>&1 &
server=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null && break; sleep 0.05; done
two_processes "$url"
