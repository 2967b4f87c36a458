#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode (broker and controller in
# one JVM) on loopback ports, for tests. The jars come from
# scripts/kafka-fetch.sh; Java 17 or later runs them.
#
#   broker.sh run DIR PORT CONTROLLER_PORT
#       writes DIR/server.properties, lays out a formatted log dir in
#       DIR/data and becomes the broker (exec): tests/support/kafka_broker.hpp
#       forks this with PR_SET_PDEATHSIG, so the broker dies with the test.
#   broker.sh resume DIR PORT CONTROLLER_PORT
#       the same as run, but keeps DIR/data when it is there: a restart of
#       the same broker with its topics, messages and committed offsets
#       (KafkaBroker::restart(), for broker-restart tests).
#   broker.sh start DIR
#       for a ctest fixture: picks free ports, starts `run` in the
#       background, waits until it accepts connections and writes
#       "127.0.0.1:PORT" to DIR/bootstrap. A watchdog stops the broker when
#       the process that called `start` (ctest) goes away.
#   broker.sh stop DIR
#       stops what `start` started and removes DIR.
#
# Formatting the storage (kafka-storage format) costs a JVM start of its
# own, so it is done once per Kafka version into a template beside the
# jars, and each broker starts from a copy of it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
home="$("$here/../kafka-fetch.sh")"
libs="$home/libs"
java="${JAVA:-java}"
# Small heap, one GC thread, C1 only: the broker serves a few test clients
# and most of its cost is starting.
jvm_opts=(-Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m
  -Djava.awt.headless=true)

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

write_config() {  # dir port controller_port
  cat >"$1/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$3
listeners=PLAINTEXT://127.0.0.1:$2,CONTROLLER://127.0.0.1:$3
advertised.listeners=PLAINTEXT://127.0.0.1:$2
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$1/data
# Four partitions per auto-created topic, so that a queue group (a consumer
# group) has something to split; topics are created on first use.
num.partitions=4
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# A group's first member gets its partitions at once, not after 3 s.
group.initial.rebalance.delay.ms=0
group.consumer.min.session.timeout.ms=1000
group.min.session.timeout.ms=1000
log.flush.interval.messages=1000000
num.network.threads=2
num.io.threads=2
background.threads=2
PROPS
}

# A formatted log dir for this Kafka version, made once (under a lock: two
# build trees may test at once).
template() {
  local t="$home/kraft-template"
  if [[ -f "$t/.complete" ]]; then echo "$t"; return; fi
  exec 9>"$home/.template.lock"
  flock 9
  if [[ ! -f "$t/.complete" ]]; then
    rm -rf "$t" && mkdir -p "$t"
    write_config "$t" 9 10
    sed -i "s:^log.dirs=.*:log.dirs=$t/data:" "$t/server.properties"
    local id
    id="$("$java" -cp "$libs/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)"
    "$java" -cp "$libs/*" kafka.tools.StorageTool format -t "$id" -c "$t/server.properties" \
      >"$t/format.log" 2>&1 || { cat "$t/format.log" >&2; exit 1; }
    touch "$t/.complete"
  fi
  flock -u 9
  echo "$t"
}

cmd="${1:?usage: broker.sh run|start|stop DIR ...}"
dir="${2:?usage: broker.sh $cmd DIR ...}"
case "$cmd" in
  run | resume)
    port="${3:?port}" cport="${4:?controller port}"
    mkdir -p "$dir"
    if [[ "$cmd" == run || ! -d "$dir/data" ]]; then
      t="$(template)"
      rm -rf "$dir/data"
      cp -r "$t/data" "$dir/data"
    fi
    write_config "$dir" "$port" "$cport"
    cd "$dir"
    exec "$java" "${jvm_opts[@]}" -Dkafka.logs.dir="$dir" -cp "$libs/*" kafka.Kafka server.properties
    ;;
  start)
    mkdir -p "$dir"
    port="$(free_port)" cport="$(free_port)"
    parent="$PPID"
    setsid "$0" run "$dir" "$port" "$cport" >"$dir/broker.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    # Stops the broker when ctest is gone (killed, or ended without cleanup).
    (
      while kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 2; done
      kill "$pid" 2>/dev/null || true
    ) >/dev/null 2>&1 </dev/null &
    disown -a
    for _ in $(seq 1 600); do
      if (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port" >"$dir/bootstrap"
        echo "kafka broker on 127.0.0.1:$port (pid $pid, log $dir/broker.log)"
        exit 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "the kafka broker exited at start; its log:" >&2
        tail -30 "$dir/broker.log" >&2
        exit 1
      fi
      sleep 0.1
    done
    echo "the kafka broker did not listen on $port within 60 s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
    ;;
  stop)
    if [[ -f "$dir/pid" ]]; then
      # kill -9: its data is thrown away, so a clean shutdown (several
      # seconds) buys nothing.
      pid="$(cat "$dir/pid")"
      kill -9 "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: broker.sh run|resume|start|stop DIR ..." >&2
    exit 2
    ;;
esac
