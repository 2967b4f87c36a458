#include "switchboard/event_loop.hpp"

#include <sched.h>

namespace switchboard {

std::size_t run_event_loop(asio::io_context& io, std::chrono::microseconds idle_spin) {
  if (idle_spin.count() <= 0) return io.run();
  using Clock = std::chrono::steady_clock;
  std::size_t handlers = 0;
  auto last_work = Clock::now();
  while (!io.stopped()) {
    // poll() runs what is ready, including the reactor with a zero timeout,
    // so sockets that became readable are seen without blocking. It also
    // stops io, as run() does, once there is no work left at all.
    if (std::size_t n = io.poll(); n > 0) {
      handlers += n;
      last_work = Clock::now();
      continue;
    }
    if (io.stopped()) break;
    if (Clock::now() - last_work < idle_spin) {
      // Yield rather than burn: on a shared machine the thread this process
      // is waiting for (a broker, the peer) may need this CPU to answer.
      sched_yield();
      continue;
    }
    handlers += io.run_one();
    last_work = Clock::now();
  }
  return handlers;
}

}  // namespace switchboard
