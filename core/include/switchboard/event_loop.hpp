// Running the io_context a runtime lives on, with a choice of what to do
// when it runs out of ready work.
//
// io_context::run() blocks in the kernel (epoll_wait) as soon as no handler
// is ready. Waking up again costs tens of microseconds on a virtual machine
// whose idle vCPU halts, and the caches come back cold: at one request in
// flight that is a good part of a round trip. An idle spin trades CPU for
// that latency, as Aeron's idle strategies and the LMAX Disruptor's yielding
// wait strategy do: after the last handler ran, keep polling for ready work
// for a while, yielding the CPU to any other runnable thread between polls,
// and only then block.
#pragma once

#include <chrono>
#include <cstddef>

#include "switchboard/prelude.hpp"

namespace switchboard {

// Like io.run(): runs handlers until io is stopped or has no work left, and
// returns how many ran. With idle_spin > 0, when no handler is ready it polls
// again (sched_yield between polls) until idle_spin has passed since the last
// handler ran, and only then blocks. The thread then stays on a CPU for
// idle_spin after every burst of work: with a spin longer than the gaps
// between messages it never sleeps, and uses a whole core, except for what
// other runnable threads take when it yields.
std::size_t run_event_loop(asio::io_context& io, std::chrono::microseconds idle_spin);

}  // namespace switchboard
