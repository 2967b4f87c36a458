// The SQLite event log's write pipeline: the writer commits the next batch
// while the syncer fsyncs the previous one, and a batch nobody listened to
// when it was written is read back from the store for a listener that
// arrived before its dispatch. What these tests hold: listeners added while
// emits run miss nothing after their start, and a writing log hands out
// only durable events (never past last_sequence()).
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "support/test_support.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;
using test::run_until;

class EventLogPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sb-pipeline-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    EventLogOptions o;
    o.path = (dir_ / "events.db").string();
    o.max_batch = 256;  // many batches, so that listeners arrive between them
    log_ = std::make_unique<EventLog>(io_.get_executor(), o);
    log_->declare("t", {{"n", {{"type", "integer"}, {"required", true}}}});
  }
  void TearDown() override {
    if (emitter_.joinable()) emitter_.join();
    log_.reset();
    fs::remove_all(dir_);
  }

  // Emits `count` events from another thread, all in flight at once; their
  // completions wait for the test thread to run io_.
  void emit_in_background(int count) {
    emitter_ = std::thread([this, count] {
      for (int i = 1; i <= count; ++i) {
        log_->emit("t", {{"n", i}}, [this](std::error_code ec, EmitResult) {
          if (ec) ++failed_;
          ++done_;
        });
      }
    });
  }

  // Checks that `seen` is first, first + 1, ..., last.
  static void expect_contiguous(const std::vector<std::uint64_t>& seen, std::uint64_t first,
                                std::uint64_t last) {
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.front(), first);
    EXPECT_EQ(seen.back(), last);
    for (std::size_t i = 1; i < seen.size(); ++i) {
      if (seen[i] != seen[i - 1] + 1) {
        ADD_FAILURE() << "after " << seen[i - 1] << " came " << seen[i];
        return;
      }
    }
  }

  fs::path dir_;
  asio::io_context io_;
  std::unique_ptr<EventLog> log_;
  std::thread emitter_;
  std::atomic<int> done_{0}, failed_{0};
};

TEST_F(EventLogPipelineTest, ListenersAddedWhileEmitsRunMissNothingAfterTheirStart) {
  constexpr int kEmits = 20000;
  emit_in_background(kEmits);
  // Batches are committed and published with nobody listening (nothing is
  // dispatched while io_ does not run); then a handler and a stream arrive
  // while more batches are on their way.
  while (log_->last_sequence() < 1000) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::vector<std::uint64_t> handled, streamed;
  log_->on("t", [&](const Event& e) { handled.push_back(e.sequence); });
  StreamOptions so;
  so.from = StreamFrom::now();
  auto stream = log_->stream(so, [&](const Event& e) { streamed.push_back(e.sequence); });
  const std::uint64_t durable_at_start = log_->last_sequence();
  ASSERT_LT(durable_at_start, static_cast<std::uint64_t>(kEmits)) << "the emits ended too soon";

  ASSERT_TRUE(run_until(
      io_,
      [&] {
        return done_ == kEmits && !handled.empty() && handled.back() == kEmits &&
               !streamed.empty() && streamed.back() == kEmits;
      },
      std::chrono::seconds(60)));
  EXPECT_EQ(failed_, 0);
  // The handler may also get events committed just before it was added; it
  // gets every one after, once, in order.
  ASSERT_FALSE(handled.empty());
  ASSERT_LE(handled.front(), durable_at_start + 1);
  expect_contiguous(handled, handled.front(), kEmits);
  ASSERT_FALSE(streamed.empty());
  ASSERT_LE(streamed.front(), durable_at_start + 1);
  expect_contiguous(streamed, streamed.front(), kEmits);
  EXPECT_TRUE(log_->verify().ok);
}

TEST_F(EventLogPipelineTest, AWritingLogReadsOnlyDurableEvents) {
  constexpr int kEmits = 20000;
  emit_in_background(kEmits);
  // Completions are run meanwhile on another thread, as an application would.
  std::atomic<bool> stop{false};
  std::thread runner([&] {
    while (!stop) {
      io_.restart();
      io_.run_for(std::chrono::milliseconds(5));
    }
  });
  int reads = 0;
  while (done_ < kEmits && failed_ == 0) {
    std::vector<std::uint64_t> seen;
    std::error_code ec;
    log_->read(
        1, SIZE_MAX, [&](const Event& e) { seen.push_back(e.sequence); }, ec);
    ASSERT_FALSE(ec);
    std::vector<std::uint64_t> own;
    log_->read_origin(
        log_->origin(), 1, SIZE_MAX, [&](const Event& e) { own.push_back(e.sequence); }, ec);
    ASSERT_FALSE(ec);
    // Read after the events: the durable head can only have grown since.
    const std::uint64_t durable = log_->last_sequence();
    if (!seen.empty()) {
      ASSERT_LE(seen.back(), durable) << "a read handed out an event not yet durable";
      expect_contiguous(seen, 1, seen.back());
    }
    if (!own.empty()) {
      ASSERT_LE(own.back(), durable) << "read_origin handed out an event not yet durable";
    }
    ++reads;
  }
  stop = true;
  runner.join();
  EXPECT_EQ(failed_, 0);
  EXPECT_GT(reads, 0);
  std::size_t total = 0;
  std::error_code ec;
  log_->read(
      1, SIZE_MAX, [&](const Event&) { ++total; }, ec);
  EXPECT_EQ(total, static_cast<std::size_t>(kEmits));
  EXPECT_EQ(log_->last_sequence(), static_cast<std::uint64_t>(kEmits));
}

}  // namespace
}  // namespace switchboard
