// The whole machine's CPU time, from /proc/stat: what a benchmark window cost
// every process together (brokers, nats-server, the bridge, the benchmark's
// own writer and reader), to tell a side that is slow from a machine that
// is full.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace bridge_bench {

class MachineCpu {
 public:
  // Starts counting now.
  MachineCpu() : start_(read()) {}

  struct Usage {
    double busy_seconds = 0;   // CPU time spent, all CPUs together
    double busy_fraction = 0;  // of all the CPUs' time over the window (1 = full)
  };
  Usage since_start() const {
    Ticks now = read();
    const auto ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));  // /proc/stat's unit
    const auto busy = static_cast<double>(now.busy - start_.busy);
    const auto total = static_cast<double>(now.total - start_.total);
    return {busy / ticks_per_second, total > 0 ? busy / total : 0};
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

  Ticks start_;
};

}  // namespace bridge_bench
