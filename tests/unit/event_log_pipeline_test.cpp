// The SQLite event log's write pipeline: the writer commits the next batch
// while the syncer fsyncs the previous one, and a batch nobody listened to
// when it was written is read back from the store for a listener that
// arrived before its dispatch. What these tests hold: listeners added while
// emits run miss nothing after their start, a writing log hands out only
// durable events (never past last_sequence()), the store's checkpointer
// copies the WAL into the database while the log is open, and the store's
// buffered multi-row inserts keep every field and still refuse a second
// event with the same (origin, origin_sequence), which replication relies on.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "events/sqlite_store.hpp"
#include "support/test_dir.hpp"
#include "support/test_support.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;
using test::run_until;

class EventLogPipelineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_test_dir("sb-pipeline");
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

TEST_F(EventLogPipelineTest, TheCheckpointerCopiesTheWalIntoTheDatabaseWhileTheLogIsOpen) {
  // The writer's connection never checkpoints (wal_autocheckpoint=0); the
  // store's checkpointer thread does, every 200 ms. Without it the
  // database file would stay as created until close().
  const fs::path db = dir_ / "events.db";
  const auto created = fs::file_size(db);
  constexpr int kEmits = 5000;
  emit_in_background(kEmits);
  ASSERT_TRUE(run_until(
      io_, [&] { return done_ == kEmits; }, std::chrono::seconds(60)));
  EXPECT_EQ(failed_, 0);
  // About 230 bytes an event: most of the events' pages reach the file.
  const std::uintmax_t expected = created + kEmits * 150u;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fs::file_size(db) < expected && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_GE(fs::file_size(db), expected) << "created at " << created << " bytes";
  EXPECT_TRUE(log_->verify().ok);
}

Event stored_event(std::uint64_t sequence, std::uint64_t origin_sequence) {
  Event e;
  e.sequence = sequence;
  e.id = "id-" + std::to_string(origin_sequence);
  e.type = sequence % 2 ? "odd" : "even";
  e.origin = "origin-a";
  e.origin_sequence = origin_sequence;
  e.timestamp_us = 1000 + static_cast<std::int64_t>(sequence);
  e.payload_json = R"({"n":)" + std::to_string(sequence) + "}";
  e.prev_hash.fill(static_cast<std::uint8_t>(sequence - 1));
  e.hash.fill(static_cast<std::uint8_t>(sequence));
  return e;
}

TEST_F(EventLogPipelineTest, BufferedInsertsKeepFieldsAndRefuseADuplicateOriginSequence) {
  log_.reset();  // the store alone, on a file of its own
  const std::string path = (dir_ / "store.db").string();
  events::SqliteStore store(path, events::SqliteStore::Mode::read_write,
                            events::SqliteStore::Sync::deferred);
  // 75 rows: two full multi-row statements and a tail of 11, one Event
  // reused for all of them as the log's writer does.
  store.begin();
  Event scratch;
  for (std::uint64_t n = 1; n <= 75; ++n) {
    scratch = stored_event(n, n);
    store.insert(scratch);
  }
  store.commit();
  store.sync();
  std::uint64_t expect = 1;
  Event read_into;
  store.read(
      1, UINT64_MAX, SIZE_MAX,
      [&](const Event& e) {
        Event want = stored_event(expect, expect);
        EXPECT_EQ(e.sequence, want.sequence);
        EXPECT_EQ(e.id, want.id);
        EXPECT_EQ(e.type, want.type);
        EXPECT_EQ(e.origin, want.origin);
        EXPECT_EQ(e.origin_sequence, want.origin_sequence);
        EXPECT_EQ(e.timestamp_us, want.timestamp_us);
        EXPECT_EQ(e.payload_json, want.payload_json);
        EXPECT_EQ(e.prev_hash, want.prev_hash);
        EXPECT_EQ(e.hash, want.hash);
        ++expect;
      },
      read_into);
  EXPECT_EQ(expect, 76u);

  // A duplicate (origin, origin_sequence) inside a full multi-row statement,
  // then inside the tail written at commit: the batch fails either way and
  // nothing of it stays.
  for (std::uint64_t rows : {40u, 5u}) {
    bool failed = false;
    store.begin();
    try {
      for (std::uint64_t i = 0; i < rows; ++i) {
        // The third row repeats origin_sequence 7 of the first batch.
        store.insert(stored_event(76 + i, i == 2 ? 7 : 76 + i));
      }
      store.commit();
    } catch (const EventStoreError&) {
      failed = true;
      store.rollback();
    }
    EXPECT_TRUE(failed) << rows << " rows with a duplicate were committed";
    EXPECT_EQ(store.head().sequence, 75u) << "after the batch of " << rows;
  }
  // And the store still takes the next batch.
  store.begin();
  for (std::uint64_t n = 76; n <= 80; ++n) store.insert(stored_event(n, n));
  store.commit();
  EXPECT_EQ(store.head().sequence, 80u);
}

}  // namespace
}  // namespace switchboard
