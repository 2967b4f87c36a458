// The conformance suite every transport must pass, run once per transport
// URL (SWITCHBOARD_CONFORMANCE_URL, default inproc://conformance). Each test
// opens its own connections, as separate processes would, and uses subjects
// of its own so that tests never see each other's traffic.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "support/nats_server.hpp"
#include "support/rabbitmq_server.hpp"
#ifdef SWITCHBOARD_KAFKA_BROKER_SCRIPT
#include "support/kafka_broker.hpp"
#endif
#include "support/test_support.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"
#include "switchboard/subject.hpp"

namespace switchboard {
namespace {

// "nats://auto" starts a nats-server of the suite's own for the run;
// "tcp://auto" picks a free port (see transport_url()).
std::unique_ptr<test::NatsServer> g_nats;

std::string transport_url() {
  const char* env = std::getenv("SWITCHBOARD_CONFORMANCE_URL");
  std::string url = env && *env ? env : "inproc://conformance";
  if (url == "nats://auto") {
    if (!g_nats) g_nats = std::make_unique<test::NatsServer>();
    return g_nats->url();
  }
  // "tcp://auto": a free loopback port for the run. The first transport a
  // test opens listens there; the others find it taken and join it.
  if (url == "tcp://auto") {
    static const std::string picked =
        "tcp://127.0.0.1:" + std::to_string(test::free_loopback_port());
    return picked;
  }
#ifdef SWITCHBOARD_KAFKA_BROKER_SCRIPT
  // "kafka://auto": the Kafka broker of the ctest run, or one of our own.
  if (url == "kafka://auto") return "kafka://" + test::KafkaBroker::shared_bootstrap();
#endif
  // "amqp://auto": a rabbitmq-server of the suite's own, one for the whole
  // run (ctest runs this suite as one process for amqp: a node takes ~5 s).
  if (url == "amqp://auto") {
    static std::unique_ptr<test::RabbitMqServer> rabbit;
    if (!rabbit) rabbit = std::make_unique<test::RabbitMqServer>();
    return rabbit->url();
  }
  return url;
}

// What Kafka cannot promise, said once (docs/kafka.md). Capabilities has no
// flag for either, so these go by scheme.
const char* kafka_differs(const std::string& url, const char* what) {
  return url.rfind("kafka://", 0) == 0 ? what : nullptr;
}

class Conformance : public ::testing::Test {
 protected:
  void SetUp() override {
    url = transport_url();
    prefix = "conf." + random_id();
  }

  // A new, connected transport: one connection, as one process would have.
  std::shared_ptr<Transport> open(std::size_t max_payload = 1024 * 1024) {
    TransportConfig config;
    config.instance = "conformance";
    config.type = transport_type_for_url(url);
    config.url = url;
    config.max_payload = max_payload;
    auto t = host.create_transport(config, TransportContext{io.get_executor()});
    auto ec = t->connect();
    EXPECT_FALSE(ec) << "connect " << url << ": " << ec.message();
    opened.push_back(t);
    return t;
  }

  std::unique_ptr<Subscription> subscribe(Transport& t, const std::string& subject,
                                          const std::string& queue,
                                          std::function<void(Message)> handler) {
    std::unique_ptr<Subscription> sub;
    auto ec = t.subscribe(subject, queue, std::move(handler), sub);
    EXPECT_FALSE(ec) << "subscribe " << subject << ": " << ec.message();
    // Let the subscription reach the broker before anyone publishes.
    test::settle(io, std::chrono::milliseconds(settle_ms()));
    return sub;
  }

  static Message message(std::string subject, std::string data, std::string reply_to = "") {
    Message m;
    m.subject = std::move(subject);
    m.data = Payload(std::move(data));
    m.reply_to = std::move(reply_to);
    return m;
  }

  int settle_ms() const { return url.rfind("inproc://", 0) == 0 ? 5 : 100; }

  void TearDown() override {
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, std::chrono::seconds(5));
    }
  }

  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  std::string url, prefix;
  std::vector<std::shared_ptr<Transport>> opened;
};

TEST_F(Conformance, PublishReachesEverySubscriberWithBytesIntact) {
  auto pub = open();
  auto a = open();
  auto b = open();
  std::vector<Message> got_a, got_b;
  auto sa = subscribe(*a, prefix + ".x", "", [&](Message m) { got_a.push_back(m); });
  auto sb = subscribe(*b, prefix + ".x", "", [&](Message m) { got_b.push_back(m); });
  std::string bytes("bin\0ary\xff", 8);
  auto m = message(prefix + ".x", bytes);
  if (pub->capabilities().headers) m.headers["x-test"] = "1";
  ASSERT_FALSE(pub->publish(m));
  ASSERT_TRUE(test::run_until(io, [&] { return got_a.size() == 1 && got_b.size() == 1; }));
  EXPECT_EQ(got_a[0].data.view(), bytes);
  EXPECT_EQ(got_a[0].subject, prefix + ".x");
  if (pub->capabilities().headers) {
    EXPECT_EQ(got_b[0].headers["x-test"], "1");
  }
}

TEST_F(Conformance, StarMatchesExactlyOneToken) {
  auto t = open();
  std::vector<std::string> got;
  auto s = subscribe(*t, prefix + ".*.x", "", [&](Message m) { got.push_back(m.subject); });
  for (auto subject : {".a.x", ".a.b.x", ".a.y", ".b.x"}) {
    ASSERT_FALSE(t->publish(message(prefix + subject, "m")));
  }
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 2; }));
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  // Which subjects matched, not in what order: Kafka orders per topic only.
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{prefix + ".a.x", prefix + ".b.x"}));
}

TEST_F(Conformance, GreaterMatchesOneOrMoreTrailingTokens) {
  auto t = open();
  std::vector<std::string> got;
  auto s = subscribe(*t, prefix + ".>", "", [&](Message m) { got.push_back(m.subject); });
  ASSERT_FALSE(t->publish(message(prefix, "not matched: no token after the prefix")));
  ASSERT_FALSE(t->publish(message(prefix + ".a", "m")));
  ASSERT_FALSE(t->publish(message(prefix + ".a.b.c", "m")));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 2; }));
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  std::sort(got.begin(), got.end());  // matching, not order (see above)
  EXPECT_EQ(got, (std::vector<std::string>{prefix + ".a", prefix + ".a.b.c"}));
}

TEST_F(Conformance, QueueGroupDeliversEachMessageToExactlyOneMember) {
  auto pub = open();
  constexpr int kMembers = 3, kMessages = 300;
  std::vector<std::shared_ptr<Transport>> members;
  std::vector<std::unique_ptr<Subscription>> subs;
  std::map<std::string, int> deliveries;  // message -> times delivered in the group
  std::vector<int> per_member(kMembers, 0);
  int plain = 0;
  for (int i = 0; i < kMembers; ++i) {
    members.push_back(open());
    subs.push_back(subscribe(*members.back(), prefix + ".work", "workers", [&, i](Message m) {
      ++deliveries[std::string(m.data.view())];
      ++per_member[i];
    }));
  }
  auto watcher = open();
  auto ws = subscribe(*watcher, prefix + ".work", "", [&](Message) { ++plain; });
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_FALSE(pub->publish(message(prefix + ".work", std::to_string(i))));
  }
  ASSERT_TRUE(
      test::run_until(io, [&] { return plain == kMessages && deliveries.size() == kMessages; }));
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  for (const auto& [msg, times] : deliveries) EXPECT_EQ(times, 1) << "message " << msg;
  for (int i = 0; i < kMembers; ++i) EXPECT_GT(per_member[i], 0) << "member " << i << " got none";
}

TEST_F(Conformance, RequestReplyThroughAReplySubject) {
  auto responder = open();
  auto requester = open();
  auto rs = subscribe(*responder, prefix + ".echo", "", [&](Message m) {
    responder->publish(message(m.reply_to, "re:" + std::string(m.data.view())));
  });
  std::string reply;
  auto inbox = prefix + ".inbox.1";
  auto is = subscribe(*requester, inbox, "", [&](Message m) { reply = m.data.view(); });
  ASSERT_FALSE(requester->publish(message(prefix + ".echo", "ping", inbox)));
  ASSERT_TRUE(test::run_until(io, [&] { return !reply.empty(); }));
  EXPECT_EQ(reply, "re:ping");
}

TEST_F(Conformance, ActRoundTripAndTimeoutThroughTheRuntime) {
  auto service = test::start_app(io, url, {"math"});
  auto client = test::start_app(io, url);
  service->runtime().add({{"topic", prefix + "-silent"}}, [](Call&, Reply) {});
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  // A generous timeout: this checks the round trip, not its speed, and the
  // first act over Kafka waits for consumer groups to form (about 1 s, more
  // on a loaded machine).
  auto r = test::act(io, client->runtime(),
                     {{"topic", "math"}, {"cmd", "add"}, {"a", 2}, {"b", 3}, {"timeout$", 10000}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 5);
  auto t = test::act(io, client->runtime(), {{"topic", prefix + "-silent"}, {"timeout$", 200}});
  EXPECT_EQ(t.ec, errc::timeout);
  EXPECT_EQ(client->runtime().pending_requests(), 0u);
}

TEST_F(Conformance, PayloadUpToTheMaximumPassesAndAboveFailsClearly) {
  constexpr std::size_t kMax = 64 * 1024;
  auto pub = open(kMax);
  auto sub = open(kMax);
  std::string got;
  auto s = subscribe(*sub, prefix + ".big", "", [&](Message m) { got = m.data.view(); });
  std::string exact(kMax, 'x');
  exact[kMax - 1] = 'y';
  ASSERT_FALSE(pub->publish(message(prefix + ".big", exact)));
  ASSERT_TRUE(test::run_until(io, [&] { return !got.empty(); }));
  EXPECT_EQ(got, exact);
  auto ec = pub->publish(message(prefix + ".big", std::string(kMax + 1, 'x')));
  EXPECT_EQ(ec, errc::payload_too_large);
  EXPECT_NE(ec.message().find("maximum"), std::string::npos);
}

TEST_F(Conformance, MessagesFromOnePublisherArriveInOrder) {
  if (auto why = kafka_differs(url,
                               "Kafka keeps order per partition only, and messages without a key "
                               "spread over the partitions (set `key` for order per key)")) {
    GTEST_SKIP() << why;
  }
  auto pub = open();
  auto sub = open();
  std::vector<int> got;
  auto s = subscribe(*sub, prefix + ".seq", "",
                     [&](Message m) { got.push_back(std::stoi(std::string(m.data.view()))); });
  constexpr int kCount = 2000;
  for (int i = 0; i < kCount; ++i)
    ASSERT_FALSE(pub->publish(message(prefix + ".seq", std::to_string(i))));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == kCount; }));
  for (int i = 0; i < kCount; ++i) ASSERT_EQ(got[i], i);
}

TEST_F(Conformance, UnsubscribeStopsDelivery) {
  auto pub = open();
  auto sub = open();
  int gone = 0, kept = 0;
  auto s1 = subscribe(*sub, prefix + ".u", "", [&](Message) { ++gone; });
  auto s2 = subscribe(*sub, prefix + ".u", "", [&](Message) { ++kept; });
  ASSERT_FALSE(pub->publish(message(prefix + ".u", "1")));
  ASSERT_TRUE(test::run_until(io, [&] { return gone == 1 && kept == 1; }));
  s1->unsubscribe();
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  ASSERT_FALSE(pub->publish(message(prefix + ".u", "2")));
  ASSERT_TRUE(test::run_until(io, [&] { return kept == 2; }));
  test::settle(io, std::chrono::milliseconds(settle_ms()));
  EXPECT_EQ(gone, 1);
}

TEST_F(Conformance, CloseDrainsWhatWasPublished) {
  auto pub = open();
  auto sub = open();
  int got = 0;
  auto s = subscribe(*sub, prefix + ".drain", "", [&](Message) { ++got; });
  constexpr int kCount = 500;
  for (int i = 0; i < kCount; ++i) ASSERT_FALSE(pub->publish(message(prefix + ".drain", "m")));
  bool closed = false;
  pub->close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return closed && got == kCount; }));
  EXPECT_EQ(pub->publish(message(prefix + ".drain", "late")), errc::closed);
}

TEST_F(Conformance, BadSubjectsAreRefused) {
  auto t = open();
  std::unique_ptr<Subscription> sub;
  EXPECT_EQ(t->subscribe(
                "", "", [](Message) {}, sub),
            errc::invalid_argument);
  EXPECT_EQ(t->subscribe(
                "a.>.b", "", [](Message) {}, sub),
            errc::invalid_argument);
  EXPECT_EQ(t->publish(message("a.*", "m")), errc::invalid_argument);
  EXPECT_EQ(t->publish(message("a b", "m")), errc::invalid_argument);
}

TEST_F(Conformance, ActWithNobodyListeningFailsFastWithNoResponders) {
  if (auto why = kafka_differs(url,
                               "a Kafka topic does not tell whether anyone reads it: an act "
                               "nobody serves ends in its timeout")) {
    GTEST_SKIP() << why;
  }
  auto client = test::start_app(io, url);
  auto start = std::chrono::steady_clock::now();
  auto r = test::act(io, client->runtime(), {{"topic", prefix + "-nobody"}, {"timeout$", 5000}});
  EXPECT_EQ(r.ec, errc::no_responders);
  EXPECT_EQ(r.response.error->name(), "TransportError");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_EQ(client->runtime().pending_requests(), 0u);
}

TEST_F(Conformance, NoRespondersIsReportedWhereSupported) {
  auto t = open();
  if (!t->capabilities().no_responders) GTEST_SKIP() << "transport cannot tell";
  EXPECT_EQ(t->publish(message(prefix + ".nobody", "m", prefix + ".inbox")), errc::no_responders);
}

}  // namespace
}  // namespace switchboard
