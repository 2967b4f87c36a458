#!/usr/bin/env bash
# Fetches Apache Kafka (org.apache.kafka:kafka_2.13 and its runtime
# dependencies) from Maven Central once, into a cache the Kafka tests read:
#   ${SWITCHBOARD_KAFKA_HOME:-~/.cache/switchboard/kafka-<version>}/libs/*.jar
# A no-op when the cache is complete. Prints the cache directory.
# Needs mvn and a Java 17+ runtime (scripts/install-deps.sh installs both).
#   scripts/kafka-fetch.sh [--print-dir]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
home="${SWITCHBOARD_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/switchboard/kafka-$version}"

if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$home"
  exit 0
fi

# The marker is written last: a fetch cut short is done again.
if [[ -f "$home/libs/.complete" ]]; then
  echo "$home"
  exit 0
fi

for tool in mvn java; do
  if ! command -v "$tool" >/dev/null; then
    echo "kafka-fetch: '$tool' not found (run scripts/install-deps.sh)" >&2
    exit 1
  fi
done

mkdir -p "$home"
# Two build trees may fetch at once: one does, the other waits for it.
exec 9>"$home/.fetch.lock"
flock 9
if [[ -f "$home/libs/.complete" ]]; then
  echo "$home"
  exit 0
fi
tmp="$(mktemp -d "$home/.fetch-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "kafka-fetch: resolving org.apache.kafka:kafka_2.13:$version from Maven Central" >&2
mvn -q -B -f "$pom" dependency:copy-dependencies \
  -DincludeScope=runtime -DoutputDirectory="$tmp/libs" >&2
if ! ls "$tmp/libs"/kafka_2.13-"$version".jar >/dev/null 2>&1; then
  echo "kafka-fetch: kafka_2.13-$version.jar missing after the fetch" >&2
  exit 1
fi
rm -rf "$home/libs"
mv "$tmp/libs" "$home/libs"
touch "$home/libs/.complete"
echo "kafka-fetch: $(ls "$home/libs" | wc -l) jars in $home/libs" >&2
echo "$home"
