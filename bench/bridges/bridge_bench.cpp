// Bridge benchmark (scripts/bench.sh bridges; docs/benchmarks.md, "Bridges"):
// NATS -> Kafka through `switchboard run` against a raw librdkafka producer,
// and NATS -> RabbitMQ (publisher confirms) against a raw rabbitmq-c
// publisher with confirms; same message sizes, same brokers, same run.
//
//   switchboard_bridge_bench --switchboard=PATH [--sizes=256,4096
//       --messages=50000 --window=5000 --repeats=3 --rate=1000 --seconds=2]
//
// It starts its own nats-server, Kafka broker (KRaft) and rabbitmq-server on
// free loopback ports (tests/support), and one bridge process for the run.
//
// Throughput: `messages` of `size` bytes, written as fast as the side
// allows with at most `window` messages not yet read at the destination
// (both sides paced the same way: by an independent reader of the
// destination, because a core NATS source cannot be slowed by the bridge;
// the bridge's own max_in_flight is four windows so that it never drops);
// messages/s from the first write to the last read. Over the same window,
// the whole machine's CPU per message (/proc/stat) and the bridge process's
// share of it, to tell how much a cheaper bridge could give.
// Latency: `rate` messages a second for `seconds`, each carrying its send
// time; the reader takes its latency: p50 and p99 of raw and of bridged,
// and what the bridge adds at p99.
// Sides take turns within each repeat; the table shows medians.
#include <nats/nats.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "amqp_client.hpp"
#include "bench_support.hpp"
#include "bridge_process.hpp"
#include "kafka_client.hpp"
#include "machine_cpu.hpp"
#include "support/kafka_broker.hpp"
#include "support/nats_server.hpp"
#include "support/rabbitmq_server.hpp"

namespace bridge_bench {
namespace {

struct Options {
  std::string switchboard;
  std::vector<std::size_t> sizes{256, 4096};
  std::uint64_t messages = 50000;
  std::uint64_t window = 5000;
  int repeats = 3;
  int rate = 1000;
  int seconds = 2;
  std::string only;  // "kafka" or "rabbitmq": measure one destination
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value = [&](const char* name) -> std::optional<std::string> {
      std::string prefix = std::string("--") + name + "=";
      if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
      return std::nullopt;
    };
    if (auto v = value("switchboard")) {
      o.switchboard = *v;
    } else if (auto v = value("sizes")) {
      o.sizes.clear();
      std::stringstream in(*v);
      for (std::string s; std::getline(in, s, ',');) o.sizes.push_back(std::stoul(s));
    } else if (auto v = value("messages")) {
      o.messages = std::stoull(*v);
    } else if (auto v = value("window")) {
      o.window = std::stoull(*v);
    } else if (auto v = value("repeats")) {
      o.repeats = std::stoi(*v);
    } else if (auto v = value("rate")) {
      o.rate = std::stoi(*v);
    } else if (auto v = value("only")) {
      o.only = *v;
    } else if (auto v = value("seconds")) {
      o.seconds = std::stoi(*v);
    } else {
      throw std::runtime_error("unknown argument " + arg);
    }
  }
  if (o.switchboard.empty()) throw std::runtime_error("--switchboard=PATH is required");
  return o;
}

class NatsPublisher {
 public:
  explicit NatsPublisher(const std::string& url) {
    if (natsConnection_ConnectTo(&nc_, url.c_str()) != NATS_OK) {
      throw std::runtime_error("cannot connect to " + url);
    }
  }
  ~NatsPublisher() { natsConnection_Destroy(nc_); }
  void publish(const std::string& subject, const std::string& payload) {
    if (natsConnection_Publish(nc_, subject.c_str(), payload.data(),
                               static_cast<int>(payload.size())) != NATS_OK) {
      throw std::runtime_error("nats publish failed");
    }
  }
  void flush() { natsConnection_Flush(nc_); }

 private:
  natsConnection* nc_ = nullptr;
};

// Writes `count` messages through `write`; before each, waits while
// `window` of them are still unread. Returns when `tally` has all or
// after 120 s (then throws, naming what was missing).
// Writes one message and waits until it is read: the reader is assigned and
// fetching, the writer knows the topic's leader, the bridge has relayed to
// this destination; none of that belongs in a measurement.
void prime(Tally& tally, const std::function<void(const std::string&)>& write,
           const std::function<void()>& idle, const std::string& what) {
  std::string payload;
  stamp(payload, 64);
  write(payload);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (tally.count() == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(what + ": the priming message did not arrive in 60 s");
    }
    idle();
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  tally.clear_latencies();
}

// Writes `count` messages through `write` after priming; before each, waits
// while `window` of them are still unread. Returns the start time once
// `tally` has all, or after 120 s throws, naming what was missing.
// `machine`: the whole machine's CPU over the same window as the rate (after
// the priming message, until the last message is read).
std::int64_t paced_run(std::uint64_t count, std::uint64_t window, std::size_t size, Tally& tally,
                       const std::function<void(const std::string&)>& write,
                       const std::function<void()>& idle, const std::string& what,
                       MachineCpu::Usage& machine) {
  prime(tally, write, idle, what);
  const std::uint64_t base = tally.count();
  count += base;
  std::string payload;
  const MachineCpu cpu;
  const std::int64_t start = now_ns();
  for (std::uint64_t i = base; i < count; ++i) {
    while (i - std::min(i, tally.count()) >= window) {
      idle();
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    stamp(payload, size);
    write(payload);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (tally.count() < count) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(what + ": " + std::to_string(tally.count()) + " of " +
                               std::to_string(count) + " messages arrived in 120 s");
    }
    idle();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  machine = cpu.since_start();
  return start;
}

// `rate` a second for `seconds`, at fixed times.
void timed_run(int rate, int seconds, Tally& tally,
               const std::function<void(const std::string&)>& write,
               const std::function<void()>& idle, const std::string& what) {
  prime(tally, write, idle, what);
  auto interval = std::chrono::nanoseconds(1'000'000'000LL / rate);
  auto start = std::chrono::steady_clock::now();
  std::uint64_t count = static_cast<std::uint64_t>(rate) * static_cast<std::uint64_t>(seconds);
  std::string payload;
  for (std::uint64_t i = 0; i < count; ++i) {
    auto at = start + interval * static_cast<long>(i);
    while (std::chrono::steady_clock::now() < at) {
      idle();
      std::this_thread::sleep_until(
          std::min(at, std::chrono::steady_clock::now() + std::chrono::microseconds(200)));
    }
    stamp(payload, 256);
    write(payload);
    idle();
  }
  count += 1;  // the priming message
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (tally.count() < count) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error(what + ": " + std::to_string(tally.count()) + " of " +
                               std::to_string(count) + " messages arrived in 60 s");
    }
    idle();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

double per_second(std::uint64_t count, std::int64_t start_ns, const Tally& tally) {
  return static_cast<double>(count) * 1e9 / static_cast<double>(tally.last_ns() - start_ns);
}

// Waits until the bridge relays to both destinations (it subscribes and
// connects at its own pace after start).
void warm_up(NatsPublisher& nats, const std::string& bootstrap, const std::string& amqp_host,
             int amqp_port, BridgeProcess& bridge) {
  create_kafka_topic(bootstrap, "warm-kafka");
  Tally kafka_tally, amqp_tally;
  KafkaReader kafka(bootstrap, "warm-kafka", kafka_tally);
  AmqpReader amqp(amqp_host, amqp_port, "warm-rabbit", amqp_tally);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(90);
  std::string payload;
  while (kafka_tally.count() == 0 || amqp_tally.count() == 0) {
    if (!bridge.running() || std::chrono::steady_clock::now() > deadline) {
      std::ifstream log(bridge.log_path());
      std::cerr << log.rdbuf();
      throw std::runtime_error("the bridge did not relay within 90 s (its log is above)");
    }
    stamp(payload, 64);
    nats.publish("tokafka.warm-kafka", payload);
    nats.publish("torabbit.warm-rabbit", payload);
    nats.flush();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

struct Row {
  std::vector<double> raw_rate, bridge_rate;
  std::vector<double> bridge_cpu_us;  // the bridge process's CPU per message
  // The whole machine's CPU per message, and how full it was, per side.
  std::vector<double> raw_machine_us, raw_busy, bridge_machine_us, bridge_busy;

  static void add(std::vector<double>& us, std::vector<double>& busy, const MachineCpu::Usage& u,
                  std::uint64_t messages, const char* side) {
    us.push_back(u.busy_seconds * 1e6 / static_cast<double>(messages));
    busy.push_back(u.busy_fraction);
    // Per process, to the log: which process "the rest" is.
    std::fprintf(stderr, "bridge bench: %s side, CPU µs/msg by process:", side);
    for (const auto& [name, seconds] : u.by_process) {
      const double per_message = seconds * 1e6 / static_cast<double>(messages);
      if (per_message >= 0.05) std::fprintf(stderr, " %s %.2f", name.c_str(), per_message);
    }
    std::fputc('\n', stderr);
  }
};

// Each run's figures on stderr (the log), so that the spread behind the
// medians can be seen.
void report_run(const char* dest, std::size_t size, const Row& row) {
  if (row.raw_rate.empty() || row.bridge_rate.empty()) return;
  std::fprintf(stderr,
               "bridge bench: %s %zu B: raw %.0f msg/s, bridge %.0f msg/s (%.2fx), bridge CPU "
               "%.1f µs/msg\n",
               dest, size, row.raw_rate.back(), row.bridge_rate.back(),
               row.bridge_rate.back() / row.raw_rate.back(), row.bridge_cpu_us.back());
}

// The two ways the Kafka side is measured: the bridge's subjects for each
// (bridge_process.cpp) and the raw producer's matching setting.
struct KafkaMode {
  const char* destination;  // the tables' first column
  const char* nats_prefix;
  const char* topic_tag;
  bool idempotence;
};
constexpr KafkaMode kKafkaModes[] = {
    {"kafka", "tokafka.", "", true},
    {"kafka (idempotence off)", "tokafkaplain.", "plain-", false},
};

struct Latency {
  std::vector<double> raw_p50, raw_p99, bridge_p50, bridge_p99;
};

int run(const Options& o) {
  std::cerr << "bridge bench: starting nats-server, Kafka and rabbitmq-server\n";
  switchboard::test::NatsServer nats_server;
  switchboard::test::KafkaBroker kafka_broker;
  switchboard::test::RabbitMqServer rabbit;
  const std::string bootstrap = kafka_broker.bootstrap();
  const std::string amqp_host = "127.0.0.1";
  const int amqp_port = rabbit.port();

  BridgeProcess bridge(o.switchboard, {nats_server.url(), kafka_broker.url(), rabbit.url()},
                       4 * o.window);
  NatsPublisher nats(nats_server.url());
  warm_up(nats, bootstrap, amqp_host, amqp_port, bridge);
  std::cerr << "bridge bench: the bridge relays; measuring\n";

  std::map<std::string, Row> rows;  // "kafka 256"
  Latency kafka_latency, amqp_latency;
  auto nats_idle = [] {};
  int run_id = 0;
  for (int rep = 0; rep < o.repeats; ++rep) {
    for (std::size_t size : o.sizes) {
      std::string tag = std::to_string(size) + "-" + std::to_string(++run_id);
      const bool kafka = o.only.empty() || o.only == "kafka";
      const bool rabbitmq = o.only.empty() || o.only == "rabbitmq";
      // Kafka, raw producer, then through the bridge: with the kafka
      // transport's default settings, and again with idempotence off on
      // both sides (librdkafka's idempotent producer busy-polls: kafka.md).
      for (const KafkaMode& mode : kKafkaModes) {
        if (!kafka) break;
        const std::string key = std::string(mode.destination) + " " + std::to_string(size);
        {
          std::string topic = std::string("raw-") + mode.topic_tag + tag;
          create_kafka_topic(bootstrap, topic);
          Tally tally;
          KafkaReader reader(bootstrap, topic, tally);
          KafkaProducer producer(bootstrap, mode.idempotence);
          MachineCpu::Usage machine;
          auto start = paced_run(
              o.messages, o.window, size, tally,
              [&](const std::string& p) {
                producer.produce(topic, p);
                producer.poll();
              },
              [&] { producer.poll(); }, "raw kafka", machine);
          producer.flush();
          Row& row = rows[key];
          row.raw_rate.push_back(per_second(o.messages, start, tally));
          Row::add(row.raw_machine_us, row.raw_busy, machine, o.messages, "raw");
        }
        {
          std::string topic = std::string("bridged-") + mode.topic_tag + tag;
          create_kafka_topic(bootstrap, topic);
          Tally tally;
          KafkaReader reader(bootstrap, topic, tally);
          double cpu = bridge.cpu_seconds();
          MachineCpu::Usage machine;
          const std::string subject = std::string(mode.nats_prefix) + topic;
          auto start = paced_run(
              o.messages, o.window, size, tally,
              [&](const std::string& p) { nats.publish(subject, p); }, nats_idle,
              "NATS -> Kafka bridge", machine);
          Row& row = rows[key];
          row.bridge_rate.push_back(per_second(o.messages, start, tally));
          Row::add(row.bridge_machine_us, row.bridge_busy, machine, o.messages, "bridge");
          row.bridge_cpu_us.push_back((bridge.cpu_seconds() - cpu) * 1e6 /
                                      static_cast<double>(o.messages));
          report_run(mode.destination, size, row);
        }
      }
      // RabbitMQ, raw publisher with confirms.
      if (rabbitmq) {
        std::string key = "raw-" + tag;
        Tally tally;
        AmqpReader reader(amqp_host, amqp_port, key, tally);
        AmqpConfirmPublisher publisher(amqp_host, amqp_port);
        MachineCpu::Usage machine;
        auto start = paced_run(
            o.messages, o.window, size, tally,
            [&](const std::string& p) {
              publisher.publish(key, p);
              // Reading confirms costs a poll(2) when none is buffered: a
              // careful publisher looks every 256 messages, not after each.
              if (publisher.published() % 256 == 0) publisher.poll();
            },
            [&] { publisher.poll(); }, "raw rabbitmq", machine);
        publisher.wait_all_confirmed();
        Row& row = rows["rabbitmq " + std::to_string(size)];
        row.raw_rate.push_back(per_second(o.messages, start, tally));
        Row::add(row.raw_machine_us, row.raw_busy, machine, o.messages, "raw");
      }
      // RabbitMQ, through the bridge.
      if (rabbitmq) {
        std::string key = "bridged-" + tag;
        Tally tally;
        AmqpReader reader(amqp_host, amqp_port, key, tally);
        double cpu = bridge.cpu_seconds();
        MachineCpu::Usage machine;
        auto start = paced_run(
            o.messages, o.window, size, tally,
            [&](const std::string& p) { nats.publish("torabbit." + key, p); }, nats_idle,
            "NATS -> RabbitMQ bridge", machine);
        Row& row = rows["rabbitmq " + std::to_string(size)];
        row.bridge_rate.push_back(per_second(o.messages, start, tally));
        Row::add(row.bridge_machine_us, row.bridge_busy, machine, o.messages, "bridge");
        row.bridge_cpu_us.push_back((bridge.cpu_seconds() - cpu) * 1e6 /
                                    static_cast<double>(o.messages));
        report_run("rabbitmq", size, row);
      }
    }
    // Latency at a steady rate, 256-byte messages.
    std::string tag = "lat-" + std::to_string(++run_id);
    auto latency = [&](Latency& into, bool bridged, auto&& make_reader, auto&& write, auto&& idle,
                       const std::string& what) {
      Tally tally;
      auto reader = make_reader(tally);
      timed_run(o.rate, o.seconds, tally, write, idle, what);
      (bridged ? into.bridge_p50 : into.raw_p50).push_back(tally.latency_us(0.5));
      (bridged ? into.bridge_p99 : into.raw_p99).push_back(tally.latency_us(0.99));
    };
    if (o.only.empty() || o.only == "kafka") {
      std::string raw_topic = "raw-" + tag, bridged_topic = "bridged-" + tag;
      create_kafka_topic(bootstrap, raw_topic);
      create_kafka_topic(bootstrap, bridged_topic);
      KafkaProducer producer(bootstrap);
      latency(
          kafka_latency, false,
          [&](Tally& t) { return std::make_unique<KafkaReader>(bootstrap, raw_topic, t); },
          [&](const std::string& p) { producer.produce(raw_topic, p); }, [&] { producer.poll(); },
          "raw kafka latency");
      latency(
          kafka_latency, true,
          [&](Tally& t) { return std::make_unique<KafkaReader>(bootstrap, bridged_topic, t); },
          [&](const std::string& p) {
            nats.publish("tokafka." + bridged_topic, p);
            nats.flush();
          },
          nats_idle, "NATS -> Kafka latency");
    }
    if (o.only.empty() || o.only == "rabbitmq") {
      std::string raw_key = "raw-" + tag, bridged_key = "bridged-" + tag;
      AmqpConfirmPublisher publisher(amqp_host, amqp_port);
      latency(
          amqp_latency, false,
          [&](Tally& t) { return std::make_unique<AmqpReader>(amqp_host, amqp_port, raw_key, t); },
          [&](const std::string& p) { publisher.publish(raw_key, p); }, [&] { publisher.poll(); },
          "raw rabbitmq latency");
      publisher.wait_all_confirmed();
      latency(
          amqp_latency, true,
          [&](Tally& t) {
            return std::make_unique<AmqpReader>(amqp_host, amqp_port, bridged_key, t);
          },
          [&](const std::string& p) {
            nats.publish("torabbit." + bridged_key, p);
            nats.flush();
          },
          nats_idle, "NATS -> RabbitMQ latency");
    }
    std::cerr << "bridge bench: repeat " << rep + 1 << " of " << o.repeats << " done\n";
  }

  std::printf(
      "\nThroughput (messages/s, median of %d; %llu messages per run, at most %llu "
      "unread)\n\n",
      o.repeats, static_cast<unsigned long long>(o.messages),
      static_cast<unsigned long long>(o.window));
  std::printf(
      "| destination | size (B) | raw msg/s | bridge msg/s | bridge / raw | goal >= 0.8x | bridge "
      "CPU µs/msg |\n");
  std::printf("|---|---:|---:|---:|---:|---|---:|\n");
  // The rows measured on both sides, destination by destination.
  auto each_row = [&](auto&& print) {
    for (const char* dest : {kKafkaModes[0].destination, kKafkaModes[1].destination, "rabbitmq"}) {
      for (std::size_t size : o.sizes) {
        Row& r = rows[std::string(dest) + " " + std::to_string(size)];
        if (!r.raw_rate.empty() && !r.bridge_rate.empty()) print(dest, size, r);
      }
    }
  };
  each_row([](const char* dest, std::size_t size, const Row& r) {
    double raw = median(r.raw_rate), bridged = median(r.bridge_rate);
    std::printf("| %s | %zu | %.0f | %.0f | %.2fx | %s | %.1f |\n", dest, size, raw, bridged,
                bridged / raw, bridged >= 0.8 * raw ? "met" : "NOT met", median(r.bridge_cpu_us));
  });
  // A full machine caps a side at (its CPUs) / (CPU per message): then the
  // bridge side's rate is set by everything its messages cost, the bridge
  // being only part of it. "Free bridge" is the ratio the bridge side would
  // reach if the bridge process cost nothing and the rest cost what it did
  // (raw rate / what the rest allows on a full machine): about what making
  // the bridge cheaper can give on this machine (an estimate: the rest's
  // cost per message falls somewhat as the rate rises).
  std::printf(
      "\nThe whole machine's CPU per message (µs, all processes; median of %d) and how busy it "
      "was\n\n",
      o.repeats);
  std::printf(
      "| destination | size (B) | raw side | raw busy | bridge side | bridge busy | of which "
      "the bridge | the rest | bridge / raw with a free bridge |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  each_row([](const char* dest, std::size_t size, const Row& r) {
    const double raw_us = median(r.raw_machine_us), raw_busy = median(r.raw_busy);
    const double side_us = median(r.bridge_machine_us), bridge_us = median(r.bridge_cpu_us);
    const double rest_us = side_us - bridge_us;
    std::printf("| %s | %zu | %.1f | %.0f%% | %.1f | %.0f%% | %.1f | %.1f | %.2fx |\n", dest, size,
                raw_us, 100 * raw_busy, side_us, 100 * median(r.bridge_busy), bridge_us, rest_us,
                rest_us > 0 ? raw_us / (raw_busy * rest_us) : 0.0);
  });
  std::printf("\nLatency (µs, 256 B at %d messages/s for %d s, median of %d)\n\n", o.rate,
              o.seconds, o.repeats);
  std::printf("| destination | raw p50 | raw p99 | bridge p50 | bridge p99 | added p99 |\n");
  std::printf("|---|---:|---:|---:|---:|---:|\n");
  for (auto& [dest, l] : std::vector<std::pair<const char*, Latency*>>{
           {"kafka", &kafka_latency}, {"rabbitmq", &amqp_latency}}) {
    if (l->raw_p99.empty()) continue;
    double raw99 = median(l->raw_p99), br99 = median(l->bridge_p99);
    std::printf("| %s | %.0f | %.0f | %.0f | %.0f | %.0f |\n", dest, median(l->raw_p50), raw99,
                median(l->bridge_p50), br99, br99 - raw99);
  }
  return 0;
}

}  // namespace
}  // namespace bridge_bench

int main(int argc, char** argv) {
  try {
    return bridge_bench::run(bridge_bench::parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "bridge bench: " << e.what() << "\n";
    return 1;
  }
}
