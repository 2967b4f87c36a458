// The bridge under test, as a user runs it: `switchboard run bridge.yaml`
// in a process of its own, relaying NATS subjects `tokafka.<x>` to the Kafka
// topic `<x>`, `tokafkaplain.<x>` to the same through a Kafka transport
// with `idempotence: false`, and `torabbit.<x>` to the routing key `<x>` on
// RabbitMQ.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "support/child_process.hpp"

namespace bridge_bench {

struct BridgeUrls {
  std::string nats, kafka, amqp;
};

class BridgeProcess {
 public:
  // `window`: the bridges' max_in_flight.
  BridgeProcess(const std::string& switchboard, const BridgeUrls& urls, std::size_t window);
  ~BridgeProcess();  // SIGTERM, then waits; removes the config and log
  BridgeProcess(const BridgeProcess&) = delete;
  BridgeProcess& operator=(const BridgeProcess&) = delete;
  const std::string& log_path() const { return log_; }
  bool running() { return process_->running(); }
  // User + system CPU the bridge process has used so far.
  double cpu_seconds() const;

 private:
  std::string dir_, log_;
  std::unique_ptr<switchboard::test::ChildProcess> process_;
};

}  // namespace bridge_bench
