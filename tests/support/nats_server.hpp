// A real nats-server for tests: started on a free loopback port, stopped
// (and restartable on the same port, for fault tests) by the test itself.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace switchboard::test {

inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

class NatsServer {
 public:
  // NatsServer(NatsServer::jetstream): with JetStream (-js), storing in a
  // directory of its own that lives as long as this object (so a restart
  // keeps the streams) and is removed with it.
  struct JetStream {};
  static constexpr JetStream jetstream{};

  explicit NatsServer(std::vector<std::string> extra_args = {})
      : port_(free_loopback_port()), extra_(std::move(extra_args)) {
    start();
  }
  explicit NatsServer(JetStream, std::vector<std::string> extra_args = {})
      : port_(free_loopback_port()), extra_(std::move(extra_args)) {
    char dir[] = "/tmp/switchboard-nats-js-XXXXXX";
    if (!::mkdtemp(dir)) throw std::runtime_error("cannot create a JetStream store directory");
    store_dir_ = dir;
    extra_.insert(extra_.end(), {"-js", "-sd", store_dir_});
    start();
  }
  ~NatsServer() {
    stop();
    if (!store_dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(store_dir_, ignored);
    }
  }
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  // The JetStream store directory; empty without JetStream.
  const std::string& store_dir() const { return store_dir_; }

  void start() {
    if (pid_ > 0) return;
    std::vector<std::string> args = {"nats-server", "-a", "127.0.0.1", "-p", std::to_string(port_)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = ::fork();
    if (pid_ == 0) {
      // Dies with the test, even when the test is killed with -9.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      // The server's log would drown the test's own output.
      int devnull = ::open("/dev/null", O_WRONLY);
      ::dup2(devnull, STDOUT_FILENO);
      ::dup2(devnull, STDERR_FILENO);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("nats-server", argv.data());
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!port_open(port_)) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("nats-server exited at start (is it installed? make deps)");
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("nats-server did not listen on port " + std::to_string(port_));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // kill -9: the server vanishes without a goodbye, as in a crash.
  void kill() { stop(SIGKILL); }

  void stop(int signo = SIGTERM) {
    if (pid_ <= 0) return;
    ::kill(pid_, signo);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  int port_;
  std::vector<std::string> extra_;
  std::string store_dir_;
  pid_t pid_ = -1;
};

}  // namespace switchboard::test
