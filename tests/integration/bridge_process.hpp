// `switchboard run --config FILE` as a child process, the way a user runs a
// bridge: started, killed with -9 in the middle of a stream, restarted, and
// stopped with SIGTERM. Its output goes to a log file next to the config,
// printed when a test fails.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#ifndef SWITCHBOARD_CLI
#error "SWITCHBOARD_CLI must name the switchboard binary"
#endif

namespace switchboard::test {

class BridgeProcess {
 public:
  // Writes `yaml` to a config file of its own; start() runs it.
  explicit BridgeProcess(const std::string& yaml) {
    char dir[] = "/tmp/switchboard-bridge-XXXXXX";
    if (!::mkdtemp(dir)) throw std::runtime_error("cannot create a bridge directory");
    dir_ = dir;
    std::ofstream(config_path()) << yaml;
  }
  ~BridgeProcess() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  BridgeProcess(const BridgeProcess&) = delete;
  BridgeProcess& operator=(const BridgeProcess&) = delete;

  std::string config_path() const { return dir_ + "/bridge.yaml"; }
  std::string log_path() const { return dir_ + "/bridge.log"; }

  // Starts `switchboard run --config FILE` and waits until it printed
  // "ready" (bridges subscribed). Throws with the log when it exits first.
  void start(std::chrono::seconds limit = std::chrono::seconds(60)) {
    if (pid_ > 0) return;
    ++starts_;
    std::ofstream(log_path(), std::ios::app) << "---- start " << starts_ << " ----\n";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the test
      int out = ::open(log_path().c_str(), O_WRONLY | O_APPEND);
      ::dup2(out, STDOUT_FILENO);
      ::dup2(out, STDERR_FILENO);
      std::string config = config_path();
      ::execl(SWITCHBOARD_CLI, SWITCHBOARD_CLI, "run", "--config", config.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + limit;
    std::size_t from = log().rfind("---- start ");
    while (log().find("ready\n", from) == std::string::npos) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("switchboard run exited at start; its log:\n" + log());
      }
      if (std::chrono::steady_clock::now() > deadline) {
        kill();
        throw std::runtime_error("switchboard run was not ready; its log:\n" + log());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // kill -9: no goodbye, nothing flushed, nothing acknowledged.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // SIGTERM, as a service manager stops it; returns the exit status (-1
  // when it had to be killed after `grace`).
  int terminate(std::chrono::seconds grace = std::chrono::seconds(20)) {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    auto deadline = std::chrono::steady_clock::now() + grace;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill();
    return -1;
  }

  bool running() const { return pid_ > 0; }

  std::string log() const {
    std::ifstream in(log_path());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string dir_;
  pid_t pid_ = -1;
  int starts_ = 0;
};

// Runs the switchboard binary with `args` (shell words) and returns what it
// printed (stdout and stderr); `status` gets its exit status.
inline std::string run_cli(const std::string& args, int* status = nullptr) {
  std::string cmd = std::string(SWITCHBOARD_CLI) + " " + args + " 2>&1";
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) throw std::runtime_error("cannot run " + cmd);
  char buf[4096];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int rc = ::pclose(p);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

}  // namespace switchboard::test
