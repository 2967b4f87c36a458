// The event log on JetStream, what only that backend has: fencing by
// Nats-Expected-Last-Sequence, events deleted or forged on the broker, its
// options.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include "event_log_backends.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

class EventLogJetStreamTest : public test::EventLogBackendTest {
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
