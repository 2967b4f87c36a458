// A real Apache Kafka broker for tests: single-node KRaft (broker and
// controller in one JVM) on free loopback ports with a log dir of its own,
// started by scripts/kafka/broker.sh (which fetches Kafka from Maven Central
// once, scripts/kafka-fetch.sh) and killed with the test (PR_SET_PDEATHSIG).
//
// Starting a broker costs several seconds, so ctest starts one per run
// (fixture kafka_broker, tests/integration/CMakeLists.txt), which writes its
// address to the file SWITCHBOARD_KAFKA_BOOTSTRAP_FILE names (compiled in,
// or from the environment); KafkaBroker::shared_bootstrap() uses it, or
// starts one broker per test process when the binary is run by hand.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "support/nats_server.hpp"  // free_loopback_port, port_open

#ifndef SWITCHBOARD_KAFKA_BROKER_SCRIPT
#error "SWITCHBOARD_KAFKA_BROKER_SCRIPT must name scripts/kafka/broker.sh"
#endif

namespace switchboard::test {

class KafkaBroker {
 public:
  KafkaBroker() : port_(free_loopback_port()), controller_port_(free_loopback_port()) {
    char dir[] = "/tmp/switchboard-kafka-XXXXXX";
    if (!::mkdtemp(dir)) throw std::runtime_error("cannot create a Kafka log directory");
    dir_ = dir;
    start();
  }
  ~KafkaBroker() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  KafkaBroker(const KafkaBroker&) = delete;
  KafkaBroker& operator=(const KafkaBroker&) = delete;

  std::string bootstrap() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "kafka://" + bootstrap(); }

  // Starts the broker (fetching Kafka first if needed) and waits until it
  // accepts connections.
  void start() { start_mode("run"); }

  // kill -9, then the same broker again on the same ports and log dir: its
  // topics, messages and committed offsets are still there.
  void restart() {
    kill();
    start_mode("resume");
  }

  // After kill(): the same broker again on its ports and log dir (restart()
  // in two steps, for tests that act while it is down).
  void resume() { start_mode("resume"); }

  // kill -9: gone without a goodbye. Quicker than a clean shutdown, and the
  // tests never need one.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // The broker of the ctest run (fixture kafka_broker), or one of this
  // process's own, started on first use and kept until exit.
  static std::string shared_bootstrap() {
    static std::unique_ptr<KafkaBroker> own;
    static std::string address;
    if (!address.empty()) return address;
    const char* file = std::getenv("SWITCHBOARD_KAFKA_BOOTSTRAP_FILE");
#ifdef SWITCHBOARD_KAFKA_BOOTSTRAP_FILE
    if (!file) file = SWITCHBOARD_KAFKA_BOOTSTRAP_FILE;
#endif
    if (file) {
      std::ifstream in(file);
      if (in >> address && !address.empty()) return address;
      address.clear();
    }
    own = std::make_unique<KafkaBroker>();
    address = own->bootstrap();
    return address;
  }

 private:
  // `mode`: broker.sh run (a fresh log dir) or resume (keep it).
  void start_mode(const char* mode) {
    if (pid_ > 0) return;
    std::string script = SWITCHBOARD_KAFKA_BROKER_SCRIPT;
    std::string log = dir_ + "/broker.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      // Dies with the test, even when the test is killed with -9 (the
      // script execs java, which keeps this setting).
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      std::string port = std::to_string(port_), cport = std::to_string(controller_port_);
      ::execl("/bin/bash", "bash", script.c_str(), mode, dir_.c_str(), port.c_str(), cport.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // The first start of a machine fetches Kafka (about 15 s).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!port_open(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("the Kafka broker exited at start; see " + log +
                                 " (needs java 17 and mvn: scripts/install-deps.sh)");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        throw std::runtime_error("the Kafka broker did not listen on port " +
                                 std::to_string(port_) + "; see " + log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  int port_;
  int controller_port_;
  std::string dir_;
  pid_t pid_ = -1;
};

}  // namespace switchboard::test
