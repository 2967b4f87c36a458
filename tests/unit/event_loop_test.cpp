// run_event_loop: io_context::run() with an idle spin before blocking.
#include "switchboard/event_loop.hpp"

#include <gtest/gtest.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace switchboard {
namespace {

using namespace std::chrono_literals;

std::chrono::nanoseconds thread_cpu_time() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

// Three handlers, the first of which posts two more.
std::size_t run_chain(std::chrono::microseconds spin, int& ran) {
  asio::io_context io;
  asio::post(io, [&] {
    ++ran;
    asio::post(io, [&] { ++ran; });
    asio::post(io, [&] { ++ran; });
  });
  return run_event_loop(io, spin);
}

TEST(EventLoop, WithoutSpinItIsRun) {
  int ran = 0;
  EXPECT_EQ(run_chain(0us, ran), 3u);
  EXPECT_EQ(ran, 3);
}

TEST(EventLoop, ReturnsWhenTheWorkIsDoneAndCountsHandlers) {
  int ran = 0;
  EXPECT_EQ(run_chain(100'000us, ran), 3u);
  EXPECT_EQ(ran, 3);
}

TEST(EventLoop, RunsWorkPostedFromAnotherThreadWhileSpinning) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  std::atomic<bool> ran{false};
  std::thread poster([&] {
    std::this_thread::sleep_for(5ms);
    asio::post(io, [&] {
      ran = true;
      guard.reset();
    });
  });
  EXPECT_EQ(run_event_loop(io, 1'000'000us), 1u);
  poster.join();
  EXPECT_TRUE(ran);
}

TEST(EventLoop, BlocksOnceTheSpinIsOverAndStillRunsLaterWork) {
  asio::io_context io;
  asio::steady_timer timer(io, 300ms);
  bool fired = false;
  timer.async_wait([&](std::error_code ec) { fired = !ec; });
  const auto cpu_before = thread_cpu_time();
  EXPECT_EQ(run_event_loop(io, 1'000us), 1u);
  const auto cpu = thread_cpu_time() - cpu_before;
  EXPECT_TRUE(fired);
  // Spinning through the 300 ms would have used about that much CPU; after
  // the 1 ms spin the thread sleeps in the kernel until the timer.
  EXPECT_LT(cpu, 100ms) << "the loop kept spinning instead of blocking";
}

TEST(EventLoop, StopEndsItWithWorkOutstanding) {
  asio::io_context io;
  auto guard = asio::make_work_guard(io);
  asio::post(io, [&] { io.stop(); });
  EXPECT_EQ(run_event_loop(io, 1'000'000us), 1u);
  EXPECT_TRUE(io.stopped());
}

}  // namespace
}  // namespace switchboard
