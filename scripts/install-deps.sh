#!/usr/bin/env bash
# Installs the Debian packages Switchboard needs to build and test, only the
# ones missing, through sudo when not root. Safe to run again.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config clang-format
  libboost-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libnats-dev nats-server
  librdkafka-dev kcat maven openjdk-17-jre-headless
  librabbitmq-dev rabbitmq-server amqp-tools python3-pika
  libmsgpack-dev libsimdjson-dev
  libssl-dev openssl
  libsqlite3-dev
  clang libclang-rt-14-dev
)
# Node (benchmark and interop harness only) may come from outside Debian
# with its own npm; Debian's npm would conflict with it, so ask for the
# packages only when the commands are missing.
if ! command -v node >/dev/null; then packages+=(nodejs); fi
if ! command -v npm >/dev/null; then packages+=(npm); fi

# Chromium runs the browser test (tests/browser). Best effort: that test
# skips itself when no Chromium could be installed.
if ! command -v chromium >/dev/null; then
  sudo_c=""
  if [[ $(id -u) -ne 0 ]]; then sudo_c="sudo"; fi
  echo "install-deps: installing chromium (browser test)"
  { $sudo_c apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive $sudo_c apt-get install -y -qq --no-install-recommends chromium; } ||
    echo "install-deps: chromium could not be installed; the browser test will be skipped"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
