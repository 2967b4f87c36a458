// A real rabbitmq-server for tests: a private node on free loopback ports
// (AMQP, Erlang distribution and an epmd of its own, so that parallel test
// binaries never meet), with its database, logs and config in a temporary
// directory, no plugins, and the system service (if the package started
// one) never touched. Starting a node costs about 5 s on the project's
// machines, so a test binary starts one (a gtest Environment) and shares it.
//
// Processes: epmd is our direct child (PR_SET_PDEATHSIG=SIGKILL). The
// server runs from the package's own start script in a process group of its
// own, with PR_SET_PDEATHSIG=SIGTERM on that script: if the test dies (even
// by kill -9), the script's TERM trap stops the Erlang VM. stop() kills the
// whole group; the VM's helpers (erl_child_setup, inet_gethost) exit with
// it, and epmd is killed last, so nothing lingers.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/nats_server.hpp"  // free_loopback_port(), port_open()

namespace switchboard::test {

class RabbitMqServer {
 public:
  // The directory of the package's scripts (run as the current user; the
  // /usr/sbin wrappers switch to the rabbitmq user and its cookie).
  static constexpr const char* kScripts = "/usr/lib/rabbitmq/bin";

  struct Options {
    // Extra lines for rabbitmq.conf (new-style config), e.g. TLS listeners.
    std::vector<std::string> config_lines;
    std::chrono::seconds start_timeout{60};
  };

  RabbitMqServer() : RabbitMqServer(Options{}) {}
  explicit RabbitMqServer(Options options) : options_(std::move(options)) {
    static std::atomic<int> counter{0};
    std::set<int> taken;
    auto pick = [&] {
      int p = 0;
      do p = free_loopback_port();
      while (!taken.insert(p).second);
      return p;
    };
    port_ = pick();
    dist_port_ = pick();
    epmd_port_ = pick();
    node_ = "sbtest" + std::to_string(::getpid()) + "x" + std::to_string(counter++) + "@localhost";
    char dir[] = "/tmp/switchboard-rabbitmq-XXXXXX";
    if (!::mkdtemp(dir)) throw std::runtime_error("cannot create a rabbitmq-server directory");
    dir_ = dir;
    write_files();
    start();
  }
  ~RabbitMqServer() {
    stop();
    stop_epmd();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  RabbitMqServer(const RabbitMqServer&) = delete;
  RabbitMqServer& operator=(const RabbitMqServer&) = delete;

  std::string url() const { return "amqp://guest:guest@127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  const std::string& node() const { return node_; }
  const std::string& dir() const { return dir_; }
  // How long the last start() took until the node accepted AMQP.
  std::chrono::milliseconds last_start_time() const { return last_start_; }

  // Starts the node (again, on the same ports and database: a restart keeps
  // durable exchanges, queues and persistent messages).
  void start() {
    if (pid_ > 0) return;
    start_epmd();
    auto began = std::chrono::steady_clock::now();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      // The start script traps TERM and stops the VM: so the VM goes too
      // when the test dies.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      int out = ::open((dir_ + "/server.out").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      int in = ::open("/dev/null", O_RDONLY);
      ::dup2(in, STDIN_FILENO);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      for (const auto& [k, v] : environment()) ::setenv(k.c_str(), v.c_str(), 1);
      std::string script = std::string(kScripts) + "/rabbitmq-server";
      ::execl(script.c_str(), script.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::setpgid(pid_, pid_);  // also here: no race with a kill right after fork
    auto deadline = began + options_.start_timeout;
    while (!amqp_ready()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error(
            "rabbitmq-server exited at start (is it installed? make deps); its output:\n" +
            tail(dir_ + "/server.out"));
      }
      if (std::chrono::steady_clock::now() > deadline) {
        stop();
        throw std::runtime_error("rabbitmq-server did not accept AMQP on port " +
                                 std::to_string(port_) + "; its output:\n" +
                                 tail(dir_ + "/server.out"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    last_start_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - began);
  }

  // Stops the node: SIGTERM (a clean shutdown) then, after `grace`, SIGKILL
  // of the whole process group. kill() is the crash: SIGKILL at once.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(10)) {
    if (pid_ <= 0) return;
    if (grace.count() > 0) {
      ::kill(pid_, SIGTERM);
      auto deadline = std::chrono::steady_clock::now() + grace;
      while (std::chrono::steady_clock::now() < deadline) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
          ::kill(-pid_, SIGKILL);  // anything of the group still there
          pid_ = -1;
          wait_port_closed();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    wait_port_closed();
  }
  void kill() { stop(std::chrono::milliseconds(0)); }

  // Runs one of the package's CLI tools (rabbitmqctl, rabbitmq-diagnostics)
  // against this node; returns its output, or throws when it fails.
  std::string ctl(const std::string& tool, const std::string& args) const {
    std::string cmd;
    for (const auto& [k, v] : environment()) cmd += k + "='" + v + "' ";
    cmd += std::string(kScripts) + "/" + tool + " -q -n " + node_ + " " + args + " 2>&1";
    std::string out;
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) throw std::runtime_error("cannot run " + tool);
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
    int rc = ::pclose(p);
    if (rc != 0) throw std::runtime_error(tool + " " + args + " failed: " + out);
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> environment() const {
    return {
        {"HOME", dir_},  // the Erlang cookie is created here
        {"RABBITMQ_NODENAME", node_},
        {"RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1"},
        {"RABBITMQ_NODE_PORT", std::to_string(port_)},
        {"RABBITMQ_DIST_PORT", std::to_string(dist_port_)},
        {"ERL_EPMD_PORT", std::to_string(epmd_port_)},
        {"ERL_EPMD_ADDRESS", "127.0.0.1"},
        {"RABBITMQ_MNESIA_BASE", dir_ + "/mnesia"},
        {"RABBITMQ_LOG_BASE", dir_ + "/log"},
        {"RABBITMQ_CONFIG_FILE", dir_ + "/rabbitmq"},
        {"RABBITMQ_ADVANCED_CONFIG_FILE", dir_ + "/advanced.config"},
        {"RABBITMQ_ENABLED_PLUGINS_FILE", dir_ + "/enabled_plugins"},
        {"RABBITMQ_CONF_ENV_FILE", dir_ + "/rabbitmq-env.conf"},  // not /etc's
        {"RABBITMQ_USE_LONGNAME", "false"},
        // Our epmd only: a VM that outlives it must not start a daemon one.
        {"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS", "-start_epmd false"},
    };
  }

  void write_files() {
    std::ofstream(dir_ + "/enabled_plugins") << "[].\n";  // no management plugin
    std::ofstream(dir_ + "/rabbitmq-env.conf") << "";
    std::ofstream(dir_ + "/advanced.config") << "[].\n";
    std::ofstream conf(dir_ + "/rabbitmq.conf");
    conf << "listeners.tcp.default = 127.0.0.1:" << port_ << "\n"
         << "loopback_users = none\n"
         << "log.console = false\n"
         << "log.file.level = info\n";
    for (const auto& line : options_.config_lines) conf << line << "\n";
  }

  void start_epmd() {
    if (epmd_pid_ > 0) return;
    epmd_pid_ = ::fork();
    if (epmd_pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, STDIN_FILENO);
      ::dup2(devnull, STDOUT_FILENO);
      ::dup2(devnull, STDERR_FILENO);
      std::string port = std::to_string(epmd_port_);
      ::execlp("epmd", "epmd", "-port", port.c_str(), "-address", "127.0.0.1",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!port_open(epmd_port_)) {
      if (::waitpid(epmd_pid_, nullptr, WNOHANG) == epmd_pid_ ||
          std::chrono::steady_clock::now() > deadline) {
        epmd_pid_ = -1;
        throw std::runtime_error("epmd did not start on port " + std::to_string(epmd_port_) +
                                 " (is erlang installed? make deps)");
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void stop_epmd() {
    if (epmd_pid_ <= 0) return;
    ::kill(epmd_pid_, SIGKILL);
    ::waitpid(epmd_pid_, nullptr, 0);
    epmd_pid_ = -1;
  }

  void wait_port_closed() {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (port_open(port_) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The AMQP listener answers the protocol header with connection.start (a
  // method frame, type 1): the node is up, not only its port.
  bool amqp_ready() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    bool ok = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      const char header[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
      if (::send(fd, header, sizeof header, MSG_NOSIGNAL) == sizeof header) {
        pollfd p{fd, POLLIN, 0};
        unsigned char first = 0;
        if (::poll(&p, 1, 2000) > 0 && ::recv(fd, &first, 1, 0) == 1) ok = first == 1;
      }
    }
    ::close(fd);
    return ok;
  }

  static std::string tail(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    auto text = ss.str();
    return text.size() > 4000 ? text.substr(text.size() - 4000) : text;
  }

  Options options_;
  int port_ = 0, dist_port_ = 0, epmd_port_ = 0;
  std::string node_, dir_;
  pid_t pid_ = -1, epmd_pid_ = -1;
  std::chrono::milliseconds last_start_{0};
};

}  // namespace switchboard::test
