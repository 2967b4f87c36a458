// What the C++ sides of the NATS act benchmark share (bench/nats/): the
// command line, the operands of each request, latency percentiles, CPU time
// of the processes taking part, and the report line scripts/bench.sh reads.
// The Node side (bench/hemera/client.js) does the same in JavaScript; both
// must stay in step (same operands, same phases, same report keys).
//
// A client runs two phases against one service, each a warm-up and then a
// measured window of wall time:
//   one:  one request in flight; every round trip's latency is recorded;
//   many: `inflight` requests in flight (each reply sends the next one); the
//         replies completed in the window give requests per second, and the
//         CPU time of the processes named by --pids over the window gives
//         CPU time per request.
// Every reply is checked against a + b.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nats_bench {

struct Options {
  std::string role;
  std::string url = "nats://127.0.0.1:4222";
  double seconds = 2;   // measured window per phase (wall time)
  double warmup = 0.5;  // before each window
  int inflight = 256;   // requests in flight in the `many` phase
  std::string pids;     // name:pid,... whose CPU time is counted (besides this process)
  std::map<std::string, std::string> extra;  // other --key=value flags
};

inline Options parse_options(int argc, char** argv) {
  Options o;
  if (argc < 2) throw std::invalid_argument("usage: <role> [--url=...] [--seconds=S] ...");
  o.role = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    auto eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) {
      throw std::invalid_argument("expected --key=value, got " + arg);
    }
    std::string key = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    if (key == "url") {
      o.url = value;
    } else if (key == "seconds") {
      o.seconds = std::stod(value);
    } else if (key == "warmup") {
      o.warmup = std::stod(value);
    } else if (key == "inflight") {
      o.inflight = std::stoi(value);
    } else if (key == "pids") {
      o.pids = value;
    } else {
      o.extra[key] = value;
    }
  }
  return o;
}

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The operands of request i: the same sequence on every side (splitmix64,
// as bench/hemera/client.js), small enough to be exact in a double.
struct Operands {
  std::int64_t a, b;
};
inline Operands operands(std::uint64_t i) {
  auto mix = [](std::uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  return {static_cast<std::int64_t>(mix(2 * i) % 1000000),
          static_cast<std::int64_t>(mix(2 * i + 1) % 1000000)};
}

// CPU seconds (user + system) of a process, from /proc/<pid>/stat.
inline double cpu_seconds(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  double ticks = 0;
  // After the name: state(3) ... utime(14) stime(15), counting from 1.
  for (int n = 3; n <= 15 && fields >> field; ++n) {
    if (n == 14 || n == 15) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// CPU seconds of this process and of each --pids entry.
inline std::map<std::string, double> sample_cpu(const std::string& pids) {
  std::map<std::string, double> out;
  out["client"] = cpu_seconds(std::to_string(getpid()));
  std::stringstream list(pids);
  std::string item;
  while (std::getline(list, item, ',')) {
    auto colon = item.find(':');
    if (colon == std::string::npos) continue;
    out[item.substr(0, colon)] = cpu_seconds(item.substr(colon + 1));
  }
  return out;
}

inline double percentile_us(std::vector<std::int64_t> ns, double p) {
  if (ns.empty()) return 0;
  std::sort(ns.begin(), ns.end());
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(ns.size() - 1) + 0.5);
  return static_cast<double>(ns[std::min(rank, ns.size() - 1)]) / 1000.0;
}

// What a client measured; one JSON line on stdout.
struct Report {
  std::string impl;
  std::string details;  // what this side does, for the table's notes
  std::vector<std::int64_t> one_latencies_ns;
  std::int64_t many_count = 0;
  double many_seconds = 0;
  std::map<std::string, double> many_cpu;  // CPU seconds per process over the window
  std::int64_t checked = 0;
  std::int64_t mismatches = 0;
  std::int64_t errors = 0;
  std::string first_problem;

  void check(bool ok_reply, bool right_answer, const std::string& what) {
    ++checked;
    if (!ok_reply) {
      ++errors;
    } else if (!right_answer) {
      ++mismatches;
    } else {
      return;
    }
    if (first_problem.empty()) first_problem = what;
  }

  std::string json() const {
    auto quote = [](const std::string& s) {
      std::string out = "\"";
      for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c == '\n' ? ' ' : c);
      }
      return out + "\"";
    };
    std::ostringstream o;
    o.precision(10);
    double mean = 0;
    for (auto v : one_latencies_ns) mean += static_cast<double>(v);
    if (!one_latencies_ns.empty()) mean /= static_cast<double>(one_latencies_ns.size()) * 1000.0;
    o << "{\"impl\":" << quote(impl) << ",\"details\":" << quote(details)
      << ",\"one\":{\"count\":" << one_latencies_ns.size()
      << ",\"p50_us\":" << percentile_us(one_latencies_ns, 50)
      << ",\"p99_us\":" << percentile_us(one_latencies_ns, 99) << ",\"mean_us\":" << mean
      << "},\"many\":{\"count\":" << many_count << ",\"seconds\":" << many_seconds
      << ",\"rps\":" << (many_seconds > 0 ? static_cast<double>(many_count) / many_seconds : 0)
      << ",\"cpu_seconds\":{";
    bool first = true;
    for (const auto& [name, s] : many_cpu) {
      o << (first ? "" : ",") << quote(name) << ":" << s;
      first = false;
    }
    o << "}},\"checked\":" << checked << ",\"mismatches\":" << mismatches
      << ",\"errors\":" << errors << ",\"first_problem\":" << quote(first_problem) << "}";
    return o.str();
  }
};

inline std::map<std::string, double> cpu_delta(const std::map<std::string, double>& before,
                                               const std::map<std::string, double>& after) {
  std::map<std::string, double> out;
  for (const auto& [name, s] : after) {
    auto it = before.find(name);
    out[name] = s - (it == before.end() ? 0 : it->second);
  }
  return out;
}

}  // namespace nats_bench
