// The whole machine's CPU time, from /proc/stat: what a benchmark window cost
// every process together (brokers, nats-server, the bridge, the benchmark's
// own writer and reader), to tell a side that is slow from a machine that
// is full.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>

namespace bridge_bench {

struct ProcessCpu {
  std::string name;
  std::uint64_t ticks = 0;  // utime + stime, all threads, in clock ticks
};

// /proc/PID/stat: "pid (comm) state ppid ...", utime and stime being
// fields 14 and 15; comm may hold spaces, so it ends at the last ')'.
// Nothing when the process is gone.
inline std::optional<ProcessCpu> read_process_cpu(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto open = line.find('('), close = line.rfind(')');
  if (open == std::string::npos || close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  std::uint64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return ProcessCpu{line.substr(open + 1, close - open - 1), utime + stime};
}

class MachineCpu {
 public:
  // Starts counting now.
  MachineCpu() : start_processes_(read_processes()), start_(read()) {}

  struct Usage {
    double busy_seconds = 0;   // CPU time spent, all CPUs together
    double busy_fraction = 0;  // of all the CPUs' time over the window (1 = full)
    // CPU seconds by process name (beam.smp, java, nats-server, ...): which
    // process "the rest" is. A process that started in the window counts
    // whole.
    std::map<std::string, double> by_process;
  };
  Usage since_start() const {
    Ticks now = read();
    const auto ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));  // /proc/stat's unit
    const auto busy = static_cast<double>(now.busy - start_.busy);
    const auto total = static_cast<double>(now.total - start_.total);
    Usage u{busy / ticks_per_second, total > 0 ? busy / total : 0, {}};
    for (const auto& [pid, p] : read_processes()) {
      auto before = start_processes_.find(pid);
      std::uint64_t ticks = p.ticks;
      // Matched by pid alone: a kernel worker's name changes with its work.
      if (before != start_processes_.end()) {
        ticks -= std::min(ticks, before->second.ticks);
      }
      if (ticks > 0) u.by_process[p.name] += static_cast<double>(ticks) / ticks_per_second;
    }
    return u;
  }

 private:
  struct Ticks {
    std::uint64_t busy = 0, total = 0;
  };
  // The "cpu" line: user nice system idle iowait irq softirq steal ...;
  // idle and iowait are the time no process ran. Steal (the hypervisor
  // running someone else) is neither ours nor idle, so it is left out.
  static Ticks read() {
    std::ifstream in("/proc/stat");
    std::string line, label;
    std::getline(in, line);
    std::istringstream fields(line);
    fields >> label;
    std::uint64_t v[8] = {};
    for (auto& x : v) fields >> x;
    const std::uint64_t idle = v[3] + v[4];
    const std::uint64_t busy = v[0] + v[1] + v[2] + v[5] + v[6];
    return {busy, busy + idle};
  }

  static std::map<int, ProcessCpu> read_processes() {
    std::map<int, ProcessCpu> out;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
      const std::string pid = entry.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (auto p = read_process_cpu(std::stoi(pid))) out[std::stoi(pid)] = *p;
    }
    return out;
  }

  std::map<int, ProcessCpu> start_processes_;
  Ticks start_;
};

}  // namespace bridge_bench
