// The event log's behaviour suite runs once per backend (the test
// parameter): "sqlite" in a fresh temp directory, "jetstream" on a
// nats-server of the test process's own, "kafka" on the ctest run's broker
// (fixture kafka_broker, or one of the process's own when run by hand).
// Each test gets a log of its own (a new stream or topic name).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "support/event_log_fixture.hpp"
#ifdef SWITCHBOARD_TEST_JETSTREAM
#include "support/nats_server.hpp"
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
#include "support/kafka_broker.hpp"
#endif

namespace switchboard::test {

// The backends this build has.
inline std::vector<std::string> event_log_backends() {
  std::vector<std::string> out{"sqlite"};
#ifdef SWITCHBOARD_TEST_JETSTREAM
  out.emplace_back("jetstream");
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
  out.emplace_back("kafka");
#endif
  return out;
}

class EventLogBackendTest : public EventLogTest, public ::testing::WithParamInterface<std::string> {
 protected:
#ifdef SWITCHBOARD_TEST_JETSTREAM
  static void TearDownTestSuite() {
    nats_.reset();
  }
#endif
  void SetUp() override {
    EventLogTest::SetUp();
    static int counter = 0;
    name_ = "log" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
#ifdef SWITCHBOARD_TEST_JETSTREAM
    if (GetParam() == "jetstream" && !nats_) {
      nats_ = std::make_unique<NatsServer>(NatsServer::jetstream);
    }
#endif
  }
  // The broker's url for this test's backend.
  virtual std::string broker_url() {
#ifdef SWITCHBOARD_TEST_JETSTREAM
    if (GetParam() == "jetstream") return nats_->url();
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
    if (GetParam() == "kafka") {
      return own_kafka_ ? own_kafka_->url() : "kafka://" + KafkaBroker::shared_bootstrap();
    }
#endif
    return {};
  }
  // For a test that restarts the broker: Kafka gets a broker of the test's
  // own, since the run's shared one serves other tests meanwhile (the
  // JetStream server is the test process's own already).
  void use_own_broker() {
#ifdef SWITCHBOARD_TEST_KAFKA
    if (GetParam() == "kafka") own_kafka_ = std::make_unique<KafkaBroker>();
#endif
  }
  // Whether this backend has a broker to stop (SQLite has none).
  bool has_broker() const {
    return GetParam() != "sqlite";
  }
  // Stops the broker (Kafka: kill -9; JetStream: a clean stop) and starts
  // it again on the same storage.
  void stop_broker() {
#ifdef SWITCHBOARD_TEST_JETSTREAM
    if (GetParam() == "jetstream") nats_->stop();
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
    if (GetParam() == "kafka") own_kafka_->kill();
#endif
  }
  void start_broker() {
#ifdef SWITCHBOARD_TEST_JETSTREAM
    if (GetParam() == "jetstream") nats_->start();
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
    if (GetParam() == "kafka") own_kafka_->resume();
#endif
  }
  std::unique_ptr<EventLog> open(EventLogOptions o = {}) override {
    if (GetParam() == "sqlite") return EventLogTest::open(o);
    o.backend = GetParam();
    o.path = name_;
    o.url = broker_url();
    o.plugin_path = {plugin_dir()};
    return std::make_unique<EventLog>(io_.get_executor(), o);
  }
#ifdef SWITCHBOARD_TEST_JETSTREAM
  static inline std::unique_ptr<NatsServer> nats_;
#endif
#ifdef SWITCHBOARD_TEST_KAFKA
  std::unique_ptr<KafkaBroker> own_kafka_;
#endif
  std::string name_;
};

}  // namespace switchboard::test
