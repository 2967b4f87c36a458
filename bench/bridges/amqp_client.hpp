// The raw rabbitmq-c side of the bridge benchmark: a publisher with
// confirms (persistent messages on the topic exchange the amqp transport
// declares, as its publish_durable sends them), and a reader of one routing
// key through an exclusive queue, on a thread of its own.
#pragma once

#include <amqp.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>

#include "bench_support.hpp"

namespace bridge_bench {

inline constexpr const char* kExchange = "switchboard";  // the amqp transport's default

class AmqpConnection {
 public:
  AmqpConnection(const std::string& host, int port);
  ~AmqpConnection();
  AmqpConnection(const AmqpConnection&) = delete;
  AmqpConnection& operator=(const AmqpConnection&) = delete;
  amqp_connection_state_t get() const { return conn_; }
  // Throws with `what` when the last RPC did not answer normally.
  void check(const char* what) const;

 private:
  amqp_connection_state_t conn_ = nullptr;
};

class AmqpConfirmPublisher {
 public:
  AmqpConfirmPublisher(const std::string& host, int port);
  void publish(const std::string& routing_key, const std::string& payload);
  // Reads the confirms that have arrived, without waiting.
  void poll() { read_confirms(false); }
  void wait_all_confirmed();
  std::uint64_t published() const { return published_; }

 private:
  void read_confirms(bool wait);
  AmqpConnection conn_;
  std::uint64_t published_ = 0;
  std::uint64_t confirmed_ = 0;  // highest delivery tag acked (RabbitMQ acks in order)
};

class AmqpReader {
 public:
  AmqpReader(const std::string& host, int port, const std::string& routing_key, Tally& tally);
  ~AmqpReader();
  AmqpReader(const AmqpReader&) = delete;
  AmqpReader& operator=(const AmqpReader&) = delete;

 private:
  AmqpConnection conn_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace bridge_bench
