// The raw librdkafka side of the bridge benchmark: a producer with the
// settings the kafka transport uses by default (idempotence, acks=all,
// linger.ms=5), a reader that tallies one topic from its beginning, and topic
// creation, so that neither side's first message waits for auto-creation.
#pragma once

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "bench_support.hpp"

namespace bridge_bench {

void create_kafka_topic(const std::string& bootstrap, const std::string& topic);

// The kafka transport's default producer settings (idempotence, acks=all,
// linger.ms=5, Nagle off), or the same without idempotence.
class KafkaProducer {
 public:
  explicit KafkaProducer(const std::string& bootstrap, bool idempotence = true);
  ~KafkaProducer();
  KafkaProducer(const KafkaProducer&) = delete;
  KafkaProducer& operator=(const KafkaProducer&) = delete;

  void produce(const std::string& topic, const std::string& payload);
  void poll() { rd_kafka_poll(rk_, 0); }
  void flush();  // every delivery report in, or throws
  std::uint64_t delivered() const { return delivered_.load(); }

 private:
  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque);
  rd_kafka_t* rk_ = nullptr;
  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> failed_{0};
};

// Reads partition 0 of `topic` from the beginning on a thread of its own.
class KafkaReader {
 public:
  KafkaReader(const std::string& bootstrap, const std::string& topic, Tally& tally);
  ~KafkaReader();
  KafkaReader(const KafkaReader&) = delete;
  KafkaReader& operator=(const KafkaReader&) = delete;

 private:
  rd_kafka_t* rk_ = nullptr;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace bridge_bench
