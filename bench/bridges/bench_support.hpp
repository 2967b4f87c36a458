// What every side of the bridge benchmark shares: the clock, the payload
// (its send time in front, so that a reader measures the latency of every
// message), and the reader's view that a publisher paces itself by.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace bridge_bench {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `size` bytes: the send time as 20 decimal digits, then 'x'. Printable, so
// that no side can take it for something else (JSON, a header).
inline void stamp(std::string& payload, std::size_t size) {
  payload.assign(std::max<std::size_t>(size, 20), 'x');
  char digits[21];
  std::snprintf(digits, sizeof digits, "%020lld", static_cast<long long>(now_ns()));
  payload.replace(0, 20, digits, 20);
}

inline std::int64_t sent_at(std::string_view payload) {
  if (payload.size() < 20) return 0;
  return std::strtoll(std::string(payload.substr(0, 20)).c_str(), nullptr, 10);
}

// A reader's tally: how many arrived, when the last did, and every latency.
// The reader thread writes, the publisher polls `count`.
class Tally {
 public:
  void record(std::string_view payload) {
    std::int64_t now = now_ns();
    std::int64_t sent = sent_at(payload);
    {
      std::lock_guard lock(mutex_);
      if (sent > 0) latencies_ns_.push_back(now - sent);
    }
    last_ns_.store(now, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_release);
  }
  // Forgets the latencies so far (a priming message's), keeps the count.
  void clear_latencies() {
    std::lock_guard lock(mutex_);
    latencies_ns_.clear();
  }
  std::uint64_t count() const { return count_.load(std::memory_order_acquire); }
  std::int64_t last_ns() const { return last_ns_.load(std::memory_order_relaxed); }
  // The q-quantile (0..1) of the latencies in microseconds.
  double latency_us(double q) {
    std::lock_guard lock(mutex_);
    if (latencies_ns_.empty()) return 0;
    auto k = static_cast<std::size_t>(q * static_cast<double>(latencies_ns_.size() - 1));
    std::nth_element(latencies_ns_.begin(), latencies_ns_.begin() + static_cast<long>(k),
                     latencies_ns_.end());
    return static_cast<double>(latencies_ns_[k]) / 1000.0;
  }

 private:
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::int64_t> last_ns_{0};
  std::mutex mutex_;
  std::vector<std::int64_t> latencies_ns_;
};

inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace bridge_bench
