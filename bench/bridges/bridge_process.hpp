// The bridge under test, as a user runs it: `switchboard run bridge.yaml`
// in a process of its own, relaying NATS subjects `tokafka.<x>` to the Kafka
// topic `<x>` and `torabbit.<x>` to the routing key `<x>` on RabbitMQ.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

namespace bridge_bench {

struct BridgeUrls {
  std::string nats, kafka, amqp;
};

class BridgeProcess {
 public:
  // `window`: the bridges' max_in_flight.
  BridgeProcess(const std::string& switchboard, const BridgeUrls& urls, std::size_t window);
  ~BridgeProcess();  // SIGTERM, then waits
  BridgeProcess(const BridgeProcess&) = delete;
  BridgeProcess& operator=(const BridgeProcess&) = delete;
  const std::string& log_path() const { return log_; }
  bool running();
  // User + system CPU the bridge process has used so far.
  double cpu_seconds() const;

 private:
  std::string dir_, log_;
  pid_t pid_ = -1;
};

}  // namespace bridge_bench
