// The event log: schemas, emit, live handlers, streams, named consumers,
// tamper detection and group commit. The behaviour suite (EventLogBackendTest)
// runs on every backend: SQLite in a fresh temp directory, and a JetStream
// stream on a nats-server of its own (one per suite, a fresh stream per
// test). SQLite-only tests (the file, the flock) are EventLogTest; the
// JetStream-only ones (fencing, tampering on the broker) EventLogJetStreamTest.
#include "switchboard/event_log.hpp"

#include <gtest/gtest.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "support/nats_server.hpp"
#include "support/test_support.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;
using test::run_until;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("sb-events-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "events.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  virtual std::unique_ptr<EventLog> open(EventLogOptions o = {}) {
    o.path = path_;
    return std::make_unique<EventLog>(io_.get_executor(), o);
  }

  struct Emitted {
    bool done = false;
    std::error_code ec;
    EmitResult r;
  };
  Emitted emit(EventLog& log, const std::string& type, Json payload) {
    auto out = std::make_shared<Emitted>();
    log.emit(type, std::move(payload), [out](std::error_code ec, EmitResult r) {
      out->done = true;
      out->ec = ec;
      out->r = std::move(r);
    });
    EXPECT_TRUE(run_until(io_, [&] { return out->done; }));
    return *out;
  }
  // Emits n events at once (one group commit or a few) and waits for all.
  void emit_many(EventLog& log, int first, int last,
                 const std::function<std::pair<std::string, Json>(int)>& make) {
    int done = 0, failed = 0;
    for (int i = first; i <= last; ++i) {
      auto [type, payload] = make(i);
      log.emit(type, payload, [&](std::error_code ec, EmitResult) {
        ++done;
        if (ec) ++failed;
      });
    }
    ASSERT_TRUE(run_until(io_, [&] { return done == last - first + 1; }));
    EXPECT_EQ(failed, 0);
  }
  // Runs the io_context a little, for deliveries that should (not) happen.
  void settle() {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(50));
  }

  asio::io_context io_;
  fs::path dir_;
  std::string path_;
};

StreamOptions opts(StreamFrom from, std::string type = {}, std::string consumer = {}) {
  StreamOptions o;
  o.from = from;
  o.type = std::move(type);
  o.consumer = std::move(consumer);
  return o;
}

const Json kOrderSchema = {{"amount", {{"type", "number"}, {"required", true}}},
                           {"sku", {{"type", "string"}, {"minLength", 1}}}};

// The behaviour suite, once per backend (the parameter).
class EventLogBackendTest : public EventLogTest, public ::testing::WithParamInterface<std::string> {
 protected:
  static void TearDownTestSuite() { nats_.reset(); }
  void SetUp() override {
    EventLogTest::SetUp();
    if (GetParam() == "jetstream") {
      if (!nats_) nats_ = std::make_unique<test::NatsServer>(test::NatsServer::jetstream);
      static int counter = 0;
      name_ = "log" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    }
  }
  std::unique_ptr<EventLog> open(EventLogOptions o = {}) override {
    if (GetParam() == "sqlite") return EventLogTest::open(o);
    o.backend = GetParam();
    o.path = name_;
    o.url = nats_->url();
    o.plugin_path = {test::plugin_dir()};
    return std::make_unique<EventLog>(io_.get_executor(), o);
  }
  static inline std::unique_ptr<test::NatsServer> nats_;
  std::string name_;
};

INSTANTIATE_TEST_SUITE_P(Backends, EventLogBackendTest, ::testing::Values("sqlite", "jetstream"),
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

TEST_F(EventLogTest, TamperingWithTheFileIsFoundAtItsSequence) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 10; ++i) emit(*log, "t", {{"marker", "value-" + std::to_string(i) + "!"}});
    ASSERT_TRUE(log->verify().ok);
  }
  // The last connection closed: SQLite checkpointed the WAL into the file.
  // Change one byte of event 7's payload in the raw file.
  std::string bytes;
  {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  auto at = bytes.find("value-7!");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 6] = '8';
  {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto log = open();
  auto v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 7u);
  EXPECT_EQ(v.events, 6u);
  EXPECT_NE(v.reason.find("hash does not match"), std::string::npos) << v.reason;
}

TEST_F(EventLogTest, EditsThroughSqliteAreFound) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 10; ++i) emit(*log, "t", {{"n", i}});
  }
  auto sql = [&](const char* statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, statement, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  // A removed event: a gap.
  sql("DELETE FROM events WHERE seq = 9");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.first_bad, 9u);
    EXPECT_NE(v.reason.find("missing"), std::string::npos) << v.reason;
  }
  // A payload rewritten with its hash recomputed by the forger would still
  // break the next event's link; a plain rewrite breaks its own hash.
  sql("UPDATE events SET payload = '{\"n\":300}' WHERE seq = 3");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_EQ(v.first_bad, 3u);
  }
  sql("UPDATE events SET hash = prev_hash WHERE seq = 2");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_EQ(v.first_bad, 2u);
  }
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

TEST_F(EventLogTest, OneWriterPerStoreAndReadersBeside) {
  auto log = open();
  log->declare("t", Json::object());
  emit(*log, "t", {{"n", 1}});
  EXPECT_THROW(open(), Error);

  EventLogOptions ro;
  ro.read_only = true;
  auto reader = open(ro);
  EXPECT_EQ(reader->last_sequence(), 1u);
  EXPECT_EQ(reader->origin(), log->origin());
  auto e = emit(*reader, "t", {{"n", 2}});
  EXPECT_EQ(e.ec, errc::not_supported);
  EXPECT_TRUE(reader->verify().ok);
}

TEST_P(EventLogBackendTest, EmitAfterCloseFails) {
  auto log = open();
  log->declare("t", Json::object());
  log->close();
  auto e = emit(*log, "t", {{"n", 1}});
  EXPECT_EQ(e.ec, errc::closed);
}

TEST_F(EventLogTest, NotAnEventStoreIsRefused) {
  {
    std::ofstream out(path_);
    out << "this is not a database, just some text that is long enough to look like a header";
  }
  EXPECT_THROW(open(), Error);
}

// ---- JetStream only: fencing, the broker's own tampering, restarts ----

class EventLogJetStreamTest : public EventLogBackendTest {
 protected:
  // A raw cnats connection, for what a user of the broker could do behind
  // the log's back.
  struct Raw {
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    explicit Raw(const std::string& url) {
      EXPECT_EQ(natsConnection_ConnectTo(&nc, url.c_str()), NATS_OK);
      EXPECT_EQ(natsConnection_JetStream(&js, nc, nullptr), NATS_OK);
    }
    ~Raw() {
      jsCtx_Destroy(js);
      natsConnection_Destroy(nc);
    }
  };
};

INSTANTIATE_TEST_SUITE_P(Backends, EventLogJetStreamTest, ::testing::Values("jetstream"),
                         [](const auto& info) { return info.param; });

TEST_P(EventLogJetStreamTest, ASecondWriterIsFencedAndTheChainStaysWhole) {
  auto a = open();
  a->declare("t", Json::object());
  emit(*a, "t", {{"n", 1}});
  emit(*a, "t", {{"n", 2}});
  auto b = open();  // reads head 2
  EXPECT_EQ(b->last_sequence(), 2u);
  EXPECT_EQ(emit(*a, "t", {{"n", 3}}).r.sequence, 3u);

  auto lost = emit(*b, "t", {{"n", 99}});  // would be 3 as well
  EXPECT_EQ(lost.ec, errc::transport_error);
  ASSERT_TRUE(lost.r.error);
  EXPECT_NE(lost.r.error->message().find("another writer"), std::string::npos)
      << lost.r.error->message();
  // Fenced for good: no later emit of b lands either.
  auto again = emit(*b, "t", {{"n", 100}});
  EXPECT_EQ(again.ec, errc::transport_error);
  EXPECT_NE(again.r.error->message().find("reopen"), std::string::npos) << again.r.error->message();

  EXPECT_EQ(emit(*a, "t", {{"n", 4}}).r.sequence, 4u);
  auto v = a->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 4u);
  std::vector<int> ns;
  std::error_code ec;
  a->read(
      1, 10, [&](const Event& e) { ns.push_back(e.payload()["n"].get<int>()); }, ec);
  EXPECT_EQ(ns, (std::vector<int>{1, 2, 3, 4}));

  // Another origin is refused by Nats-Expected-Last-Sequence (its ids differ).
  EventLogOptions other;
  other.origin = "other";
  auto c = open(other);
  emit(*a, "t", {{"n", 5}});
  auto refused = emit(*c, "t", {{"n", 98}});
  EXPECT_EQ(refused.ec, errc::transport_error);
  EXPECT_NE(refused.r.error->message().find("wrong last sequence"), std::string::npos)
      << refused.r.error->message();
  EXPECT_TRUE(a->verify().ok);

  b.reset();  // reopened, b writes after a's events
  auto b2 = open();
  EXPECT_EQ(emit(*b2, "t", {{"n", 6}}).r.sequence, 6u);
  EXPECT_TRUE(b2->verify().ok);
}

TEST_P(EventLogJetStreamTest, EventsDeletedOrForgedOnTheBrokerAreFound) {
  std::string origin;
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 5; ++i) emit(*log, "t", {{"n", i}});
    origin = log->origin();
    ASSERT_TRUE(log->verify().ok);
  }
  Raw raw(nats_->url());
  // A forged sixth event: right place, plausible headers, a made-up hash.
  natsMsg* m = nullptr;
  std::string subject = "sbevents." + name_ + ".e." + origin;
  ASSERT_EQ(natsMsg_Create(&m, subject.c_str(), nullptr, "{\"n\":6}", 7), NATS_OK);
  natsMsgHeader_Set(m, "Sb-Type", "t");
  natsMsgHeader_Set(m, "Sb-Origin-Sequence", "6");
  natsMsgHeader_Set(m, "Sb-Timestamp-Us", "1700000000000000");
  natsMsgHeader_Set(m, "Sb-Prev-Hash", std::string(64, '0').c_str());
  natsMsgHeader_Set(m, "Sb-Hash", std::string(64, 'a').c_str());
  jsPubAck* pa = nullptr;
  ASSERT_EQ(js_PublishMsg(&pa, raw.js, m, nullptr, nullptr), NATS_OK);
  jsPubAck_Destroy(pa);
  natsMsg_Destroy(m);
  {
    EventLogOptions ro;
    ro.read_only = true;
    auto log = open(ro);
    auto v = log->verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.first_bad, 6u);
    EXPECT_EQ(v.events, 5u);
  }
  // A deleted event: a gap at its sequence.
  ASSERT_EQ(js_DeleteMsg(raw.js, name_.c_str(), 3, nullptr, nullptr), NATS_OK);
  EventLogOptions ro;
  ro.read_only = true;
  auto log = open(ro);
  auto v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 3u);
  EXPECT_NE(v.reason.find("missing"), std::string::npos) << v.reason;
}

TEST_P(EventLogJetStreamTest, ARestartOfTheServerKeepsEventsTypesAndCursors) {
  {
    auto log = open();
    log->declare("t", {{"n", {{"type", "integer"}}}});
    for (int i = 1; i <= 3; ++i) emit(*log, "t", {{"n", i}});
    bool saved = false;
    log->save_consumer("projector", 2, [&](std::error_code ec) { saved = !ec; });
    ASSERT_TRUE(run_until(io_, [&] { return saved; }));
  }
  nats_->stop();
  nats_->start();
  auto log = open();
  EXPECT_EQ(log->last_sequence(), 3u);
  EXPECT_EQ(log->consumer_position("projector"), 2u);
  ASSERT_TRUE(log->schema("t"));
  EXPECT_EQ(emit(*log, "t", {{"n", "x"}}).ec, errc::payload_validation);
  EXPECT_EQ(emit(*log, "t", {{"n", 4}}).r.sequence, 4u);
  EXPECT_TRUE(log->verify().ok);
}

TEST_P(EventLogJetStreamTest, BadOptionsAndBackendsAreNamed) {
  EventLogOptions o;
  o.backend_options = {{"replicas", "three"}};
  try {
    open(o);
    FAIL() << "a bad option was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("replicas"), std::string::npos) << e.what();
  }
  EventLogOptions bad_name;
  try {
    name_ = "has.a.dot";
    open(bad_name);
    FAIL() << "a bad stream name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has.a.dot"), std::string::npos) << e.what();
  }
  EventLogOptions no_such;
  no_such.backend = "nosuch";
  no_such.path = "x";
  no_such.url = "nosuch://";
  no_such.plugin_path = {test::plugin_dir()};
  try {
    EventLog log(io_.get_executor(), no_such);
    FAIL() << "an unknown backend was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("nosuch-events"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace switchboard
