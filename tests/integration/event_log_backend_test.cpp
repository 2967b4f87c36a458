// The event log's behaviour suite, on every backend of the build (SQLite,
// JetStream, Kafka; event_log_backends.hpp): schema errors, emit and read,
// live handlers, streams from beginning / a sequence / now, type filters,
// named consumers resuming after a reopen, durable cursors, reopen
// continuing the chain, group commit from two threads, emit after close, a
// restart of the broker (kill -9 for Kafka) keeping events, types and cursors
// and nothing of a batch written while it was down.
// What only one backend has is in event_log_{jetstream,kafka}_test.cpp and,
// for SQLite, tests/unit/event_log_test.cpp.
#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>

#include "event_log_backends.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

using test::EventLogBackendTest;
using test::kOrderSchema;
using test::opts;
using test::run_until;

INSTANTIATE_TEST_SUITE_P(Backends, EventLogBackendTest,
                         ::testing::ValuesIn(test::event_log_backends()),
                         [](const auto& info) { return info.param; });

TEST_P(EventLogBackendTest, DeclareRefusesABadSchema) {
  auto log = open();
  try {
    log->declare("order.created", {{"amount", {{"type", "money"}}}});
    FAIL() << "declare accepted an unknown type";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), errc::invalid_argument);
    EXPECT_NE(e.message().find("amount"), std::string::npos) << e.message();
  }
  EXPECT_THROW(log->declare("", Json::object()), Error);
  EXPECT_THROW(log->declare("t", Json::array()), Error);
}

TEST_P(EventLogBackendTest, EmitThatDoesNotFitTheSchemaFailsNamingTheField) {
  auto log = open();
  log->declare("order.created", kOrderSchema);

  auto wrong = emit(*log, "order.created", {{"amount", "ten"}});
  EXPECT_EQ(wrong.ec, errc::payload_validation);
  ASSERT_TRUE(wrong.r.error);
  EXPECT_EQ(wrong.r.error->name(), "PayloadValidationError");
  EXPECT_NE(wrong.r.error->message().find("amount: expected"), std::string::npos)
      << wrong.r.error->message();

  auto missing = emit(*log, "order.created", {{"sku", "a"}});
  EXPECT_EQ(missing.ec, errc::payload_validation);
  EXPECT_NE(missing.r.error->message().find("amount: is required"), std::string::npos);

  auto short_sku = emit(*log, "order.created", {{"amount", 1}, {"sku", ""}});
  EXPECT_EQ(short_sku.ec, errc::payload_validation);
  EXPECT_NE(short_sku.r.error->message().find("sku"), std::string::npos);

  auto undeclared = emit(*log, "order.deleted", {{"id", 1}});
  EXPECT_EQ(undeclared.ec, errc::invalid_argument);
  EXPECT_NE(undeclared.r.error->message().find("not declared"), std::string::npos);

  auto not_object = emit(*log, "order.created", 5);
  EXPECT_EQ(not_object.ec, errc::invalid_argument);

  EXPECT_EQ(log->last_sequence(), 0u);  // nothing was stored
}

TEST_P(EventLogBackendTest, EmitCompletesWithSequenceAndIdOnceStored) {
  auto log = open();
  log->declare("order.created", kOrderSchema);
  std::set<std::string> ids;
  for (int i = 1; i <= 3; ++i) {
    auto e = emit(*log, "order.created", {{"amount", i * 10}, {"sku", "s" + std::to_string(i)}});
    ASSERT_FALSE(e.ec) << e.ec.message();
    EXPECT_EQ(e.r.sequence, static_cast<std::uint64_t>(i));
    EXPECT_EQ(e.r.id.size(), 32u);
    ids.insert(e.r.id);
  }
  EXPECT_EQ(ids.size(), 3u);
  EXPECT_EQ(log->last_sequence(), 3u);

  std::vector<Event> read;
  std::error_code ec;
  EXPECT_EQ(log->read(
                1, 100, [&](const Event& e) { read.push_back(e); }, ec),
            3u);
  ASSERT_FALSE(ec);
  ASSERT_EQ(read.size(), 3u);
  EventHash prev{};
  for (std::size_t i = 0; i < read.size(); ++i) {
    const Event& e = read[i];
    EXPECT_EQ(e.sequence, i + 1);
    EXPECT_EQ(e.type, "order.created");
    EXPECT_EQ(e.origin, log->origin());
    EXPECT_EQ(e.origin_sequence, i + 1);
    EXPECT_GT(e.timestamp_us, 1600000000000000);
    EXPECT_EQ(e.payload()["amount"], static_cast<int>((i + 1) * 10));
    EXPECT_EQ(e.prev_hash, prev);
    EXPECT_TRUE(ids.count(e.id));
    prev = e.hash;
  }
  auto v = log->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 3u);
  EXPECT_EQ(v.head, read.back().hash);
}

TEST_P(EventLogBackendTest, OnDeliversNewEventsOfItsTypeUntilOff) {
  auto log = open();
  log->declare("a", Json::object());
  log->declare("b", Json::object());
  std::vector<std::uint64_t> as, all;
  auto id = log->on("a", [&](const Event& e) { as.push_back(e.sequence); });
  log->on("*", [&](const Event& e) { all.push_back(e.sequence); });
  emit(*log, "a", {{"n", 1}});
  emit(*log, "b", {{"n", 2}});
  ASSERT_TRUE(run_until(io_, [&] { return all.size() == 2; }));
  EXPECT_EQ(as, std::vector<std::uint64_t>{1});
  EXPECT_TRUE(log->off(id));
  EXPECT_FALSE(log->off(id));
  emit(*log, "a", {{"n", 3}});
  ASSERT_TRUE(run_until(io_, [&] { return all.size() == 3; }));
  settle();
  EXPECT_EQ(as, std::vector<std::uint64_t>{1});
}

TEST_P(EventLogBackendTest, StreamsFromBeginningFromASequenceAndFromNow) {
  auto log = open();
  log->declare("t", Json::object());
  for (int i = 1; i <= 5; ++i) emit(*log, "t", {{"n", i}});

  std::vector<std::uint64_t> from_start, from_3, from_now;
  auto s1 = log->stream(opts(StreamFrom::beginning()),
                        [&](const Event& e) { from_start.push_back(e.sequence); });
  auto s2 =
      log->stream(opts(StreamFrom::at(3)), [&](const Event& e) { from_3.push_back(e.sequence); });
  auto s3 =
      log->stream(opts(StreamFrom::now()), [&](const Event& e) { from_now.push_back(e.sequence); });
  ASSERT_TRUE(run_until(io_, [&] { return from_start.size() == 5 && from_3.size() == 3; }));
  emit(*log, "t", {{"n", 6}});
  ASSERT_TRUE(run_until(io_, [&] { return from_now.size() == 1 && from_start.size() == 6; }));
  settle();
  EXPECT_EQ(from_start, (std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(from_3, (std::vector<std::uint64_t>{3, 4, 5, 6}));
  EXPECT_EQ(from_now, (std::vector<std::uint64_t>{6}));

  s1->close();
  emit(*log, "t", {{"n", 7}});
  ASSERT_TRUE(run_until(io_, [&] { return from_now.size() == 2; }));
  settle();
  EXPECT_EQ(from_start.size(), 6u);
  EXPECT_EQ(s2->position(), 7u);
}

TEST_P(EventLogBackendTest, StreamFiltersByTypeAndCatchesUpWhileEmitsContinue) {
  auto log = open();
  log->declare("a", Json::object());
  log->declare("b", Json::object());
  emit_many(*log, 1, 3000, [](int i) {
    return std::pair{std::string(i % 2 ? "a" : "b"), Json{{"n", i}}};
  });
  std::vector<std::uint64_t> seen;
  auto s = log->stream(opts(StreamFrom::beginning(), "a"),
                       [&](const Event& e) { seen.push_back(e.sequence); });
  // Emits racing the replay: every event exactly once, in order.
  int done = 0;
  for (int i = 3001; i <= 3200; ++i) {
    log->emit(i % 2 ? "a" : "b", {{"n", i}}, [&](std::error_code, EmitResult) { ++done; });
  }
  ASSERT_TRUE(run_until(io_, [&] { return done == 200 && s->position() == 3200; }));
  ASSERT_EQ(seen.size(), 1600u);
  for (std::size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 2 * i + 1);
}

TEST_P(EventLogBackendTest, NamedConsumerResumesAfterReopen) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 5; ++i) emit(*log, "t", {{"n", i}});
    std::vector<std::uint64_t> seen;
    auto o = opts(StreamFrom::beginning(), "", "projector");
    auto s = log->stream(o, [&](const Event& e) { seen.push_back(e.sequence); });
    ASSERT_TRUE(run_until(io_, [&] { return seen.size() == 5; }));
    settle();
    log->close();  // the queued cursor is written before the writer stops
  }
  {
    auto log = open();
    EXPECT_EQ(log->consumer_position("projector"), 5u);
    EXPECT_EQ(log->schema("t"), Json::object());  // declarations are stored too
    for (int i = 6; i <= 8; ++i) emit(*log, "t", {{"n", i}});
    std::vector<std::uint64_t> seen;
    auto o = opts(StreamFrom::beginning(), "", "projector");  // the stored cursor wins
    auto s = log->stream(o, [&](const Event& e) { seen.push_back(e.sequence); });
    ASSERT_TRUE(run_until(io_, [&] { return seen.size() == 3; }));
    settle();
    EXPECT_EQ(seen, (std::vector<std::uint64_t>{6, 7, 8}));
    EXPECT_FALSE(log->consumer_position("nobody"));
  }
}

TEST_P(EventLogBackendTest, SaveConsumerIsDurable) {
  auto log = open();
  std::error_code result = make_error_code(errc::timeout);
  bool done = false;
  log->save_consumer("export", 42, [&](std::error_code ec) {
    result = ec;
    done = true;
  });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_FALSE(result);
  EXPECT_EQ(log->consumer_position("export"), 42u);
}

TEST_P(EventLogBackendTest, ReopenContinuesTheChain) {
  std::string origin;
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 3; ++i) emit(*log, "t", {{"n", i}});
    origin = log->origin();
  }
  auto log = open();
  EXPECT_EQ(log->origin(), origin);
  auto e = emit(*log, "t", {{"n", 4}});
  EXPECT_EQ(e.r.sequence, 4u);
  auto v = log->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 4u);
}

TEST_P(EventLogBackendTest, ConcurrentEmitsAreGroupCommitted) {
  auto log = open();
  log->declare("t", {{"n", {{"type", "integer"}}}});
  constexpr int kEmits = 2000;
  std::set<std::uint64_t> sequences;
  int errors = 0;
  // From two threads at once, all in flight together.
  std::vector<std::thread> threads;
  std::mutex m;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEmits / 2; ++i) {
        log->emit("t", {{"n", t * kEmits + i}}, [&](std::error_code ec, EmitResult r) {
          std::lock_guard lock(m);
          if (ec) ++errors;
          sequences.insert(r.sequence);
        });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(run_until(io_, [&] {
    std::lock_guard lock(m);
    return sequences.size() + errors == static_cast<std::size_t>(kEmits);
  }));
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(*sequences.begin(), 1u);
  EXPECT_EQ(*sequences.rbegin(), static_cast<std::uint64_t>(kEmits));
  auto stats = log->stats();
  EXPECT_EQ(stats.events, static_cast<std::uint64_t>(kEmits));
  EXPECT_LT(stats.batches, static_cast<std::uint64_t>(kEmits) / 4) << "batches: " << stats.batches;
  EXPECT_GT(stats.largest_batch, 1u);
  EXPECT_TRUE(log->verify().ok);
}

TEST_P(EventLogBackendTest, EmitAfterCloseFails) {
  auto log = open();
  log->declare("t", Json::object());
  log->close();
  auto e = emit(*log, "t", {{"n", 1}});
  EXPECT_EQ(e.ec, errc::closed);
}

TEST_P(EventLogBackendTest, ARestartOfTheBrokerKeepsEventsTypesAndCursors) {
  use_own_broker();
  {
    auto log = open();
    log->declare("t", {{"n", {{"type", "integer"}}}});
    for (int i = 1; i <= 3; ++i) emit(*log, "t", {{"n", i}});
    bool saved = false;
    log->save_consumer("projector", 2, [&](std::error_code ec) { saved = !ec; });
    ASSERT_TRUE(run_until(io_, [&] { return saved; }));
  }
  if (has_broker()) {
    // A batch written while the broker is down fails, and none of it is
    // there after the restart.
    EventLogOptions quick;
    quick.backend_options = {{"timeout_ms", 1500}};
    auto log = open(quick);
    stop_broker();
    std::vector<std::error_code> failed;
    for (int i = 90; i <= 92; ++i) {
      log->emit("t", {{"n", i}}, [&](std::error_code ec, EmitResult) { failed.push_back(ec); });
    }
    ASSERT_TRUE(run_until(
        io_, [&] { return failed.size() == 3; }, std::chrono::seconds(30)));
    for (auto ec : failed) EXPECT_EQ(ec, errc::transport_error);
    log.reset();
    start_broker();
  }
  auto log = open();
  EXPECT_EQ(log->last_sequence(), 3u);
  EXPECT_EQ(log->consumer_position("projector"), 2u);
  ASSERT_TRUE(log->schema("t"));
  EXPECT_EQ(emit(*log, "t", {{"n", "x"}}).ec, errc::payload_validation);
  EXPECT_EQ(emit(*log, "t", {{"n", 4}}).r.sequence, 4u);
  std::vector<int> ns;
  std::error_code ec;
  log->read(
      1, 10, [&](const Event& e) { ns.push_back(e.payload()["n"].get<int>()); }, ec);
  EXPECT_EQ(ns, (std::vector<int>{1, 2, 3, 4}));
  auto v = log->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 4u);
}

}  // namespace
}  // namespace switchboard
