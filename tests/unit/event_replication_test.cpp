// Event-log replication without sockets: EventLog::ingest (duplicates,
// per-origin order, gaps, malformed events, schemas, the hash chain), the
// protocol's messages, and EventReplicator over the in-process transport
// (live events both ways, a late joiner, a gap answered by a fetch, a
// duplicate message).
#include "switchboard/event_replication.hpp"

#include <gtest/gtest.h>

#include "events/event_hash.hpp"
#include "events/replication_protocol.hpp"
#include "support/replication_nodes.hpp"

namespace switchboard {
namespace {

namespace rp = events::replication;
using test::run_until;

// An event of `origin` as another log would have made it.
Event foreign(const std::string& origin, std::uint64_t n, std::string type = "note",
              std::string payload = "") {
  Event e;
  e.origin = origin;
  e.origin_sequence = n;
  e.id = events::event_id(origin, n);
  e.type = std::move(type);
  e.timestamp_us = 1'000'000 + static_cast<std::int64_t>(n);
  e.payload_json = payload.empty() ? "{\"n\":" + std::to_string(n) + "}" : payload;
  return e;
}

class EventIngest : public ::testing::Test {
 protected:
  std::unique_ptr<EventLog> open(const std::string& origin = "local") {
    EventLogOptions o;
    o.path = dir_.file("events.db");
    o.origin = origin;
    return std::make_unique<EventLog>(io_.get_executor(), o);
  }
  IngestResult ingest(EventLog& log, std::vector<Event> events) {
    bool done = false;
    IngestResult out;
    log.ingest(std::move(events), [&](std::error_code ec, IngestResult r) {
      EXPECT_FALSE(ec) << ec.message();
      out = r;
      done = true;
    });
    EXPECT_TRUE(run_until(io_, [&] { return done; }));
    return out;
  }
  asio::io_context io_;
  test::TempDir dir_{"ingest"};
};

TEST_F(EventIngest, DuplicatesDroppedGapsSkippedOrderPerOrigin) {
  auto log = open();
  auto r = ingest(*log, {foreign("a", 1), foreign("a", 2), foreign("b", 1)});
  EXPECT_EQ(r.stored, 3u);
  r = ingest(*log, {foreign("a", 2), foreign("b", 1)});  // here already
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.duplicates, 2u);
  r = ingest(*log, {foreign("a", 4), foreign("a", 5)});  // a:3 is missing
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.gaps, 2u);
  r = ingest(*log, {foreign("a", 3), foreign("a", 4), foreign("a", 3)});
  EXPECT_EQ(r.stored, 2u);
  EXPECT_EQ(r.duplicates, 1u);
  EXPECT_EQ(log->origin_heads(), (std::map<std::string, std::uint64_t>{{"a", 4}, {"b", 1}}));
  EXPECT_EQ(log->stats().foreign_events, 5u);
  auto orders = test::origin_orders(*log);
  EXPECT_EQ(orders["a"], (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(orders["b"], (std::vector<std::uint64_t>{1}));
}

TEST_F(EventIngest, ForeignEventsKeepTheirFieldsAndJoinTheLocalChain) {
  auto log = open();
  log->declare("note", {{"n", {{"type", "integer"}}}});
  std::vector<std::string> seen;
  log->on("*", [&](const Event& e) { seen.push_back(e.origin); });
  bool emitted = false;
  log->emit("note", {{"n", 0}}, [&](std::error_code ec, EmitResult) { emitted = !ec; });
  ASSERT_TRUE(run_until(io_, [&] { return emitted; }));
  ingest(*log, {foreign("a", 1), foreign("a", 2, "unknown.type", R"({"free":[1,2]})")});
  ASSERT_TRUE(run_until(io_, [&] { return seen.size() == 3; }));
  EXPECT_EQ(seen, (std::vector<std::string>{"local", "a", "a"}));

  std::vector<Event> stored;
  std::error_code ec;
  log->read(
      1, 10, [&](const Event& e) { stored.push_back(e); }, ec);
  ASSERT_EQ(stored.size(), 3u);
  Event want = foreign("a", 2, "unknown.type", R"({"free":[1,2]})");
  const Event& got = stored[2];
  EXPECT_EQ(got.sequence, 3u);
  EXPECT_EQ(got.id, want.id);
  EXPECT_EQ(got.type, want.type);  // a type not declared here is stored as it is
  EXPECT_EQ(got.origin, "a");
  EXPECT_EQ(got.origin_sequence, 2u);
  EXPECT_EQ(got.timestamp_us, want.timestamp_us);  // the origin's clock, not ours
  EXPECT_EQ(got.payload_json, want.payload_json);
  EXPECT_EQ(got.prev_hash, stored[1].hash);
  auto v = log->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 3u);

  // Heads and the own origin_sequence survive a restart.
  log.reset();
  log = open();
  EXPECT_EQ(log->origin_head("a"), 2u);
  EXPECT_EQ(log->origin_head("local"), 1u);
  emitted = false;
  EmitResult second;
  log->emit("note", {{"n", 1}}, [&](std::error_code e, EmitResult r) {
    emitted = !e;
    second = r;
  });
  ASSERT_TRUE(run_until(io_, [&] { return emitted; }));
  EXPECT_EQ(second.id, events::event_id("local", 2));
  EXPECT_TRUE(log->verify().ok);
}

TEST_F(EventIngest, MalformedRejectedSchemaMismatchStoredAndCounted) {
  auto log = open();
  log->declare("note", {{"n", {{"type", "integer"}, {"required", true}}}});
  Event bad_id = foreign("a", 1);
  bad_id.id = events::event_id("a", 99);
  Event not_object = foreign("b", 1, "note", "[1]");
  Event no_origin = foreign("", 1);
  auto r = ingest(*log, {bad_id, not_object, no_origin});
  EXPECT_EQ(r.rejected, 3u);
  EXPECT_EQ(r.stored, 0u);
  r = ingest(*log, {foreign("c", 1, "note", R"({"n":"text"})")});
  EXPECT_EQ(r.schema_mismatches, 1u);
  EXPECT_EQ(r.stored, 1u);
}

TEST_F(EventIngest, ReadOriginAndOwnOriginRestoredFromPeers) {
  auto log = open("me");
  // Our own events coming back (a store lost and restored from peers):
  // taken in order, and emit continues after them.
  auto r = ingest(*log, {foreign("me", 1), foreign("me", 2), foreign("x", 1)});
  EXPECT_EQ(r.stored, 3u);
  log->declare("note", Json::object());
  EmitResult er;
  bool done = false;
  log->emit("note", Json::object(), [&](std::error_code, EmitResult x) {
    er = x;
    done = true;
  });
  ASSERT_TRUE(run_until(io_, [&] { return done; }));
  EXPECT_EQ(er.id, events::event_id("me", 3));
  std::vector<std::uint64_t> got;
  std::error_code ec;
  log->read_origin(
      "me", 2, 10, [&](const Event& e) { got.push_back(e.origin_sequence); }, ec);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{2, 3}));
}

// ---- protocol ----

TEST(ReplicationProtocol, MessagesRoundTripAndBadOnesAreNamed) {
  Event e = foreign("a", 7, "t", R"({"k":"v \"quoted\""})");
  std::string bytes = rp::encode_events("n1", {rp::encode_event(e)}, "a");
  std::string error;
  auto m = rp::decode(bytes, error);
  ASSERT_TRUE(m) << error;
  auto& ev = std::get<rp::EventsMessage>(*m);
  EXPECT_EQ(ev.node, "n1");
  EXPECT_EQ(ev.answers, "a");
  ASSERT_EQ(ev.events.size(), 1u);
  EXPECT_EQ(ev.events[0].payload_json, e.payload_json);
  EXPECT_EQ(ev.events[0].id, e.id);
  EXPECT_EQ(ev.events[0].timestamp_us, e.timestamp_us);

  auto st = rp::decode(rp::encode(rp::StateMessage{"n2", {{"a", 3}, {"b", 9}}}), error);
  ASSERT_TRUE(st) << error;
  EXPECT_EQ(std::get<rp::StateMessage>(*st).heads.at("b"), 9u);
  auto f = rp::decode(rp::encode(rp::FetchMessage{"n3", "a", 4, 100}), error);
  ASSERT_TRUE(f) << error;
  EXPECT_EQ(std::get<rp::FetchMessage>(*f).from, 4u);

  EXPECT_FALSE(rp::decode("nope", error));
  EXPECT_EQ(error, "not a JSON object");
  EXPECT_FALSE(rp::decode(R"({"v":2,"kind":"state","node":"x","heads":{}})", error));
  EXPECT_NE(error.find("v: version 2"), std::string::npos) << error;
  EXPECT_FALSE(rp::decode(
      R"({"v":1,"kind":"events","node":"x","events":[{"id":"i","type":"t","origin":"o","origin_sequence":-1,"timestamp_us":1,"payload_json":"{}"}]})",
      error));
  EXPECT_EQ(error, "events[0].origin_sequence: expected an unsigned integer");
  EXPECT_FALSE(rp::decode(R"({"v":1,"kind":"state","node":"a.b","heads":{}})", error));
  EXPECT_NE(error.find("node"), std::string::npos) << error;
}

// ---- EventReplicator over inproc ----

class InprocReplication : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level("warn"); }
  TransportConfig bus(const std::string& name) {
    return test::transport_config(name, "inproc", url_);
  }
  std::unique_ptr<test::ReplNode> node(const std::string& name,
                                       EventReplicatorOptions options = {}) {
    return std::make_unique<test::ReplNode>(io_, host_, dir_.file(name + ".db"), name, bus(name),
                                            options);
  }
  asio::io_context io_;
  PluginHost host_{{test::plugin_dir()}};
  test::TempDir dir_{"inproc"};
  std::string url_ = test::unique_url();
};

TEST_F(InprocReplication, LiveEventsReachPeersBothWaysAndChainsVerify) {
  auto a = node("a");
  auto b = node("b");
  auto acked = std::make_shared<int>(0);
  a->emit(0, 50, acked);
  b->emit(100, 30, acked);
  ASSERT_TRUE(run_until(io_, [&] { return *acked == 80; }));
  ASSERT_TRUE(test::converge(io_, {a.get(), b.get()}, 80));
  for (auto* n : {a.get(), b.get()}) {
    auto v = n->log->verify();
    EXPECT_TRUE(v.ok) << v.reason;
    auto orders = test::origin_orders(*n->log);
    for (auto& [origin, seqs] : orders) {
      EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end())) << origin;
    }
  }
  // Counted when the ingest completes, just after the commit converge saw.
  EXPECT_TRUE(run_until(io_, [&] { return b->replicator->stats().stored == 50; }));
  EXPECT_TRUE(run_until(io_, [&] { return a->replicator->stats().stored == 30; }));
  EXPECT_EQ(a->replicator->stats().published, 50u);
}

TEST_F(InprocReplication, LateJoinerCatchesUpInBatches) {
  EventReplicatorOptions small;
  small.batch_events = 16;
  auto a = node("a", small);
  auto acked = std::make_shared<int>(0);
  a->emit(0, 200, acked);
  ASSERT_TRUE(run_until(io_, [&] { return *acked == 200; }));
  // Published live while nobody listened: b can only fetch them.
  ASSERT_TRUE(run_until(io_, [&] { return a->replicator->stats().published == 200; }));
  auto b = node("b", small);
  ASSERT_TRUE(test::converge(io_, {a.get(), b.get()}, 200));
  EXPECT_GE(b->replicator->stats().fetches_sent, 200u / 16);
  EXPECT_GE(a->replicator->stats().fetches_answered, 200u / 16);
  EXPECT_TRUE(b->log->verify().ok);
}

// a's events reach c, which joins after a has gone, through b.
TEST_F(InprocReplication, EventsOfAnOriginThatIsGoneSpreadFromOthers) {
  auto a = node("a");
  auto b = node("b");
  auto acked = std::make_shared<int>(0);
  a->emit(0, 40, acked);
  ASSERT_TRUE(run_until(io_, [&] { return *acked == 40; }));
  ASSERT_TRUE(test::converge(io_, {a.get(), b.get()}, 40));
  a->disconnect(io_);
  auto c = node("c");
  ASSERT_TRUE(test::converge(io_, {b.get(), c.get()}, 40));
  EXPECT_EQ(test::event_set(*c->log), test::event_set(*a->log));
  EXPECT_GT(b->replicator->stats().fetches_answered, 0u);
}

// A hand-driven node "x" on the bus: it sends b events 3 and 4 of its own
// (1 and 2 never sent), must then be asked for them from 1, answers, and b
// stores 1..4 in order. Announcements are an hour apart, so only the gap
// can have caused the fetch. Then the same message again: duplicates.
TEST_F(InprocReplication, GapTriggersFetchAndDuplicatesAreDropped) {
  EventReplicatorOptions slow;
  slow.announce_interval = std::chrono::hours(1);
  auto b = node("b", slow);
  auto strand = asio::make_strand(io_);
  auto x = host_.create_transport(bus("x"), TransportContext{strand});
  ASSERT_FALSE(x->connect());
  std::vector<rp::FetchMessage> fetches;
  std::unique_ptr<Subscription> sub;
  ASSERT_FALSE(x->subscribe(
      "switchboard.events.fetch.x", "",
      [&](Message m) {
        std::string error;
        auto f = rp::decode(m.data.view(), error);
        ASSERT_TRUE(f) << error;
        auto& fm = std::get<rp::FetchMessage>(*f);
        fetches.push_back(fm);
        std::vector<std::string> enc;
        for (std::uint64_t n = fm.from; n <= 4 && enc.size() < fm.max; ++n) {
          enc.push_back(rp::encode_event(foreign("x", n)));
        }
        Message reply;
        reply.subject = m.reply_to;
        reply.data = Payload(rp::encode_events("x", enc, fm.origin));
        EXPECT_FALSE(x->publish(std::move(reply)));
      },
      sub));
  Message live;
  live.subject = "switchboard.events.live";
  live.data = Payload(rp::encode_events(
      "x", {rp::encode_event(foreign("x", 3)), rp::encode_event(foreign("x", 4))}));
  ASSERT_FALSE(x->publish(live));
  ASSERT_TRUE(run_until(io_, [&] { return b->log->origin_head("x") == 4; }));
  ASSERT_EQ(fetches.size(), 1u);
  EXPECT_EQ(fetches[0].origin, "x");
  EXPECT_EQ(fetches[0].from, 1u);
  EXPECT_EQ(fetches[0].node, "b");
  EXPECT_EQ(test::origin_orders(*b->log)["x"], (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(b->replicator->stats().gaps, 2u);

  ASSERT_FALSE(x->publish(live));  // the same events again
  ASSERT_TRUE(run_until(io_, [&] { return b->replicator->stats().duplicates >= 2; }));
  EXPECT_EQ(b->log->last_sequence(), 4u);
  // A message that is not one is counted and skipped.
  Message junk;
  junk.subject = "switchboard.events.state";
  junk.data = Payload(std::string("{\"v\":1}"));
  ASSERT_FALSE(x->publish(junk));
  ASSERT_TRUE(run_until(io_, [&] { return b->replicator->stats().bad_messages == 1; }));
  sub->unsubscribe();
  bool closed = false;
  x->close([&] { closed = true; });
  run_until(io_, [&] { return closed; });
}

TEST_F(InprocReplication, OriginThatCannotBeASubjectTokenIsRefused) {
  EventLogOptions lo;
  lo.path = dir_.file("dotted.db");
  lo.origin = "node.one";
  EventLog log(io_.get_executor(), lo);
  auto strand = asio::make_strand(io_);
  auto t = host_.create_transport(bus("d"), TransportContext{strand});
  try {
    EventReplicator r(log, t, strand);
    FAIL() << "accepted origin 'node.one'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'node.one' cannot be a subject token"), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace switchboard
