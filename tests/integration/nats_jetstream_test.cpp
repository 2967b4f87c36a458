// JetStream through the nats transport, on a real nats-server started with
// -js: publish with PubAck and de-duplication, durable consumers with ack,
// nak and redelivery, restarts and start policies, and the errors when
// something is missing. One server serves the whole file; every test uses
// streams, subjects and durables of its own, and short ack waits, so that
// the file runs in a few seconds.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <sstream>
#include <thread>

#include "support/nats_server.hpp"
#include "support/test_support.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Delivery = std::shared_ptr<DurableDelivery>;

// What the transport logs while it lives: the errors' explanations.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    spdlog::default_logger()->sinks().push_back(sink_);
  }
  ~LogCapture() {
    auto& sinks = spdlog::default_logger()->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
  }
  std::string text() {
    sink_->flush();
    return out_.str();
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
};

struct Published {
  bool done = false;
  std::error_code ec;
  DurableReceipt receipt;
};

class NatsJetStream : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new test::NatsServer(test::NatsServer::jetstream); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    // Test names are valid stream names; subjects are the same, lower-cased.
    name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    prefix = "js." + lower;
  }

  void TearDown() override {
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, 5s);
    }
  }

  // The `jetstream` option declaring this test's stream on "<prefix>.>".
  Json jetstream(Json stream_extra = Json::object(), Json js_extra = Json::object()) {
    Json stream = {{"name", name}, {"subjects", {prefix + ".>"}}, {"storage", "memory"}};
    if (!stream_extra.is_null()) stream.update(stream_extra);  // {} is null
    Json js = {{"streams", {stream}}};
    if (!js_extra.is_null()) js.update(js_extra);
    return js;
  }

  std::shared_ptr<Transport> create(Json options, const std::string& url = "") {
    TransportConfig config;
    config.instance = "js-test";
    config.type = "nats";
    config.url = url.empty() ? server_->url() : url;
    config.options = std::move(options);
    auto t = host.create_transport(config, TransportContext{io.get_executor()});
    opened.push_back(t);
    return t;
  }

  // Connected, with this test's stream declared (or the options given).
  std::shared_ptr<Transport> open(Json options = nullptr) {
    auto t = create(options.is_null() ? Json{{"jetstream", jetstream()}} : std::move(options));
    auto ec = t->connect();
    EXPECT_FALSE(ec) << "connect: " << ec.message();
    return t;
  }

  static Message message(std::string subject, std::string data) {
    Message m;
    m.subject = std::move(subject);
    m.data = Payload(std::move(data));
    return m;
  }

  Published publish(Transport& t, const std::string& subject, const std::string& data,
                    DurablePublish options = {}) {
    auto result = std::make_shared<Published>();
    t.publish_durable(message(subject, data), options,
                      [result](std::error_code ec, const DurableReceipt& r) {
                        result->ec = ec;
                        result->receipt = r;
                        result->done = true;
                      });
    EXPECT_TRUE(test::run_until(io, [&] { return result->done; })) << "no PubAck";
    return *result;
  }

  void publish_ok(Transport& t, int count, const std::string& subject = "") {
    for (int i = 0; i < count; ++i) {
      auto r = publish(t, subject.empty() ? prefix + ".m" : subject, "m" + std::to_string(i));
      ASSERT_FALSE(r.ec) << r.ec.message();
    }
  }

  DurableSubscribe durable(const std::string& durable_name) {
    DurableSubscribe d;
    d.subject = prefix + ".>";
    d.durable = durable_name;
    d.ack_wait = 300ms;
    return d;
  }

  std::unique_ptr<Subscription> subscribe(Transport& t, const DurableSubscribe& options,
                                          std::vector<Delivery>& got, bool ack = false) {
    std::unique_ptr<Subscription> sub;
    auto ec = t.subscribe_durable(
        options,
        [&got, ack](Delivery d) {
          if (ack) d->ack();
          got.push_back(std::move(d));
        },
        sub);
    EXPECT_FALSE(ec) << "subscribe_durable: " << ec.message();
    return sub;
  }

  static std::vector<std::uint64_t> sequences(const std::vector<Delivery>& got) {
    std::vector<std::uint64_t> out;
    for (const auto& d : got) out.push_back(d->sequence());
    return out;
  }

  static test::NatsServer* server_;
  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  std::string name, prefix;
  std::vector<std::shared_ptr<Transport>> opened;
};

test::NatsServer* NatsJetStream::server_ = nullptr;

// ---- publish ------------------------------------------------------------------

TEST_F(NatsJetStream, PublishWithAckReturnsTheStreamAndSequence) {
  auto t = open(Json{{"jetstream", jetstream({{"storage", "file"}})}});
  EXPECT_TRUE(t->capabilities().durable_acks);
  for (std::uint64_t i = 1; i <= 3; ++i) {
    auto r = publish(*t, prefix + ".orders", "order " + std::to_string(i));
    ASSERT_FALSE(r.ec) << r.ec.message();
    EXPECT_EQ(r.receipt.target, name);
    EXPECT_EQ(r.receipt.sequence, i);
    EXPECT_FALSE(r.receipt.duplicate);
  }
}

TEST_F(NatsJetStream, DuplicateMessageIdIsReportedAndStoredOnce) {
  auto t = open();
  auto first = publish(*t, prefix + ".x", "one", {"order-1", ""});
  auto again = publish(*t, prefix + ".x", "one", {"order-1", ""});
  auto other = publish(*t, prefix + ".x", "two", {"order-2", ""});
  ASSERT_FALSE(first.ec);
  ASSERT_FALSE(again.ec);
  ASSERT_FALSE(other.ec);
  EXPECT_FALSE(first.receipt.duplicate);
  EXPECT_TRUE(again.receipt.duplicate);
  EXPECT_EQ(again.receipt.sequence, first.receipt.sequence);
  EXPECT_EQ(other.receipt.sequence, first.receipt.sequence + 1);

  std::vector<Delivery> got;
  auto sub = subscribe(*t, durable("reader"), got, true);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 2; }));
  test::settle(io, 200ms);
  ASSERT_EQ(got.size(), 2u) << "the duplicate was stored";
  EXPECT_EQ(got[0]->message().data.view(), "one");
  EXPECT_EQ(got[0]->message().headers.at("Nats-Msg-Id"), "order-1");
  EXPECT_EQ(got[1]->message().data.view(), "two");
}

TEST_F(NatsJetStream, ExpectedStreamIsChecked) {
  LogCapture log;
  auto t = open();
  auto right = publish(*t, prefix + ".x", "m", {"", name});
  EXPECT_FALSE(right.ec) << right.ec.message();
  EXPECT_EQ(right.receipt.target, name);
  auto wrong = publish(*t, prefix + ".x", "m", {"", "ELSEWHERE"});
  EXPECT_EQ(wrong.ec, make_error_code(errc::invalid_argument));
  EXPECT_NE(log.text().find("expected stream 'ELSEWHERE'"), std::string::npos) << log.text();
}

TEST_F(NatsJetStream, PublishToASubjectNoStreamStoresFails) {
  LogCapture log;
  auto t = open();
  auto r = publish(*t, "nowhere." + prefix, "m");
  EXPECT_EQ(r.ec, make_error_code(errc::no_responders));
  EXPECT_NE(log.text().find("no JetStream stream stores this subject"), std::string::npos)
      << log.text();
}

TEST_F(NatsJetStream, PublishWithoutPubAckTimesOut) {
  LogCapture log;
  // A core subscriber that never answers: no "no responders", no PubAck.
  auto t = open(Json{{"jetstream", jetstream({}, {{"publish_timeout_ms", 200}})}});
  std::unique_ptr<Subscription> sink;
  ASSERT_FALSE(t->subscribe(
      "sink." + prefix, "", [](Message) {}, sink));
  auto start = Clock::now();
  auto r = publish(*t, "sink." + prefix, "m", {"id-1", ""});
  EXPECT_EQ(r.ec, make_error_code(errc::timeout));
  EXPECT_GE(Clock::now() - start, 190ms);
  EXPECT_NE(log.text().find("got no PubAck"), std::string::npos) << log.text();
}

TEST_F(NatsJetStream, CloseWaitsForPubAcks) {
  auto t = open();
  int ok = 0;
  for (int i = 0; i < 20; ++i) {
    t->publish_durable(message(prefix + ".x", "m"), {},
                       [&](std::error_code ec, const DurableReceipt&) { ok += !ec; });
  }
  bool closed = false;
  int ok_at_close = -1;
  t->close([&] {
    closed = true;
    ok_at_close = ok;
  });
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
  EXPECT_EQ(ok_at_close, 20);
}

// ---- durable consumers ------------------------------------------------------------

TEST_F(NatsJetStream, DurableConsumerReceivesAndAckedMessagesStayAcked) {
  auto t = open();
  auto m = message(prefix + ".a", "first");
  m.headers["x-trace"] = "42";
  bool stored = false;
  t->publish_durable(m, {}, [&](std::error_code ec, const DurableReceipt&) {
    EXPECT_FALSE(ec);
    stored = true;
  });
  ASSERT_TRUE(test::run_until(io, [&] { return stored; }));
  publish_ok(*t, 2, prefix + ".b");

  std::vector<Delivery> got;
  auto sub = subscribe(*t, durable("worker"), got);
  EXPECT_EQ(sub->subject(), prefix + ".>");
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 3; }));
  EXPECT_EQ(sequences(got), (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(got[0]->message().subject, prefix + ".a");
  EXPECT_EQ(got[0]->message().data.view(), "first");
  EXPECT_EQ(got[0]->message().headers.at("x-trace"), "42");
  EXPECT_TRUE(got[0]->message().reply_to.empty());
  for (const auto& d : got) EXPECT_EQ(d->delivery_count(), 1u);
  // Acks from the executor and from another thread alike.
  got[0]->ack();
  got[1]->ack();
  std::thread([d = got[2]] { d->ack(); }).join();
  test::settle(io, 700ms);  // more than ack_wait
  EXPECT_EQ(got.size(), 3u) << "an acked message was redelivered";
}

TEST_F(NatsJetStream, UnackedMessageIsRedeliveredAfterAckWait) {
  auto t = open();
  publish_ok(*t, 1);
  std::vector<Delivery> got;
  std::vector<Clock::time_point> at;
  std::unique_ptr<Subscription> sub;
  ASSERT_FALSE(t->subscribe_durable(
      durable("slow"),
      [&](Delivery d) {
        got.push_back(std::move(d));
        at.push_back(Clock::now());
      },
      sub));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 2; }, 3s));
  EXPECT_EQ(got[0]->delivery_count(), 1u);
  EXPECT_EQ(got[1]->delivery_count(), 2u);
  EXPECT_EQ(got[1]->sequence(), got[0]->sequence());
  // The stream sequence in decimal, the same on the redelivery.
  EXPECT_EQ(got[0]->source_id(), std::to_string(got[0]->sequence()));
  EXPECT_EQ(got[1]->source_id(), got[0]->source_id());
  EXPECT_GE(at[1] - at[0], 250ms) << "redelivered before ack_wait";
  got[1]->ack();
  test::settle(io, 600ms);
  EXPECT_EQ(got.size(), 2u);
}

TEST_F(NatsJetStream, NakRedeliversAndOnlyTheFirstSettlementCounts) {
  auto t = open();
  publish_ok(*t, 1);
  auto options = durable("picky");
  options.ack_wait = 5s;  // redeliveries here come from naks only
  std::vector<Delivery> got;
  std::vector<Clock::time_point> at;
  std::unique_ptr<Subscription> sub;
  ASSERT_FALSE(t->subscribe_durable(
      options,
      [&](Delivery d) {
        got.push_back(std::move(d));
        at.push_back(Clock::now());
      },
      sub));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 1; }));
  got[0]->nak();
  got[0]->ack();  // no effect: already settled
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 2; }, 2s))
      << "nak did not redeliver";
  EXPECT_EQ(got[1]->delivery_count(), 2u);
  got[1]->nak(400ms);
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 3; }, 3s));
  EXPECT_EQ(got[2]->delivery_count(), 3u);
  EXPECT_GE(at[2] - at[1], 350ms) << "nak(delay) redelivered too early";
  got[2]->ack();
  got[2]->nak();  // no effect: already acked
  test::settle(io, 500ms);
  EXPECT_EQ(got.size(), 3u);
}

TEST_F(NatsJetStream, MaxInFlightBoundsUnackedDeliveries) {
  auto t = open();
  publish_ok(*t, 5);
  auto options = durable("bounded");
  options.max_in_flight = 2;
  options.ack_wait = 5s;
  std::vector<Delivery> got;
  auto sub = subscribe(*t, options, got);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 2; }));
  test::settle(io, 200ms);
  EXPECT_EQ(got.size(), 2u);
  got[0]->ack();
  got[1]->ack();
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 4; }));
  test::settle(io, 200ms);
  EXPECT_EQ(got.size(), 4u);
}

// The lag counts what the stream holds and the consumer has not handed out,
// also while no delivery states it (the consumer is at max_in_flight).
TEST_F(NatsJetStream, LagCountsUndeliveredMessagesAlsoWhenDeliveriesStop) {
  auto t = open();
  auto options = durable("lagging");
  options.max_in_flight = 1;
  options.ack_wait = 30s;
  std::vector<Delivery> got;
  auto sub = subscribe(*t, options, got);
  publish_ok(*t, 1);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 1; }));
  publish_ok(*t, 3);  // held back: one unacknowledged delivery is the limit
  std::uint64_t lag = 0;
  auto lag_is = [&](std::uint64_t want) {
    return test::run_until(
        io,
        [&] {
          std::uint64_t now = 0;
          if (!t->durable_lag(*sub, now)) lag = now;
          return lag == want;
        },
        5s);
  };
  EXPECT_TRUE(lag_is(3)) << "lag " << lag;
  EXPECT_EQ(got.size(), 1u);
  got[0]->ack();
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 2; }));
  got[1]->ack();
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 3; }));
  got[2]->ack();
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 4; }));
  EXPECT_TRUE(lag_is(0)) << "lag " << lag;
}

TEST_F(NatsJetStream, RestartResumesAfterTheLastAck) {
  auto t = open();
  publish_ok(*t, 5);
  std::vector<Delivery> got;
  auto sub = subscribe(*t, durable("resumer"), got);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 5; }));
  for (int i = 0; i < 3; ++i) got[i]->ack();  // 4 and 5 stay unacked
  test::settle(io, 50ms);
  sub->unsubscribe();
  publish_ok(*t, 2);  // 6 and 7 while nobody reads

  // Another connection, as a restarted process would have.
  auto t2 = open();
  std::vector<Delivery> again;
  auto sub2 = subscribe(*t2, durable("resumer"), again, true);
  ASSERT_TRUE(test::run_until(
      io, [&] { return again.size() >= 4; }, 3s))
      << again.size();
  test::settle(io, 400ms);
  std::set<std::uint64_t> seen;
  for (const auto& d : again) seen.insert(d->sequence());
  EXPECT_EQ(seen, (std::set<std::uint64_t>{4, 5, 6, 7}));
  for (const auto& d : again) {
    EXPECT_EQ(d->delivery_count(), d->sequence() <= 5 ? 2u : 1u) << "sequence " << d->sequence();
  }
}

TEST_F(NatsJetStream, StartPolicies) {
  auto t = open();
  publish_ok(*t, 3);
  std::this_thread::sleep_for(50ms);
  auto middle = std::chrono::system_clock::now();
  std::this_thread::sleep_for(50ms);
  publish_ok(*t, 2);  // sequences 4 and 5

  auto read = [&](DurableSubscribe options, std::size_t expect) {
    std::vector<Delivery> got;
    auto sub = subscribe(*t, options, got, true);
    if (expect > 0) {
      EXPECT_TRUE(test::run_until(
          io, [&] { return got.size() >= expect; }, 3s))
          << options.durable;
    }
    test::settle(io, 150ms);
    sub->unsubscribe();
    return sequences(got);
  };

  EXPECT_EQ(read(durable("from-start"), 5), (std::vector<std::uint64_t>{1, 2, 3, 4, 5}));

  auto from_seq = durable("from-seq");
  from_seq.start = DurableStart::sequence;
  from_seq.start_sequence = 2;
  EXPECT_EQ(read(from_seq, 4), (std::vector<std::uint64_t>{2, 3, 4, 5}));

  auto from_time = durable("from-time");
  from_time.start = DurableStart::time;
  from_time.start_time = middle;
  EXPECT_EQ(read(from_time, 2), (std::vector<std::uint64_t>{4, 5}));

  auto only_new = durable("only-new");
  only_new.start = DurableStart::latest;
  std::vector<Delivery> got;
  auto sub = subscribe(*t, only_new, got, true);
  test::settle(io, 150ms);
  EXPECT_TRUE(got.empty());
  publish_ok(*t, 1);
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() >= 1; }));
  EXPECT_EQ(got[0]->sequence(), 6u);
}

// ---- errors ---------------------------------------------------------------------

TEST_F(NatsJetStream, ServerWithoutJetStreamGivesAClearError) {
  LogCapture log;
  test::NatsServer plain;
  auto t = create(Json{{"jetstream", true}}, plain.url());
  EXPECT_EQ(t->connect(), make_error_code(errc::not_supported));
  EXPECT_FALSE(t->capabilities().durable_acks);
  auto text = log.text();
  EXPECT_NE(text.find("has no JetStream"), std::string::npos) << text;
  EXPECT_NE(text.find("-js"), std::string::npos) << text;
  EXPECT_NE(text.find(std::to_string(plain.port())), std::string::npos) << text;
}

TEST_F(NatsJetStream, TransportWithoutJetStreamConfiguredRefusesDurableCalls) {
  LogCapture log;
  auto t = open(Json::object());
  EXPECT_FALSE(t->capabilities().durable_acks);
  bool done = false;
  std::error_code ec;
  t->publish_durable(message(prefix + ".x", "m"), {},
                     [&](std::error_code e, const DurableReceipt&) {
                       ec = e;
                       done = true;
                     });
  EXPECT_FALSE(done) << "the completion must run on the executor, not inside the call";
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  EXPECT_EQ(ec, make_error_code(errc::not_supported));
  std::unique_ptr<Subscription> sub;
  EXPECT_EQ(t->subscribe_durable(
                durable("d"), [](Delivery) {}, sub),
            make_error_code(errc::not_supported));
  EXPECT_NE(log.text().find("`jetstream` option"), std::string::npos) << log.text();
}

TEST_F(NatsJetStream, SubscribingToAMissingStreamFails) {
  LogCapture log;
  auto t = open();
  std::unique_ptr<Subscription> sub;
  auto named = durable("d");
  named.target = "NOPE";
  EXPECT_EQ(t->subscribe_durable(
                named, [](Delivery) {}, sub),
            make_error_code(errc::invalid_argument));
  EXPECT_NE(log.text().find("stream 'NOPE' not found"), std::string::npos) << log.text();

  auto unstored = durable("d");
  unstored.subject = "nowhere." + prefix;
  EXPECT_EQ(t->subscribe_durable(
                unstored, [](Delivery) {}, sub),
            make_error_code(errc::invalid_argument));
  EXPECT_NE(log.text().find("no JetStream stream stores this subject"), std::string::npos)
      << log.text();
}

TEST_F(NatsJetStream, ExistingDurableWithAnotherFilterIsRefused) {
  LogCapture log;
  auto t = open();
  std::vector<Delivery> got;
  auto sub = subscribe(*t, durable("filtered"), got);
  sub->unsubscribe();
  auto other = durable("filtered");
  other.subject = prefix + ".only";
  EXPECT_EQ(t->subscribe_durable(
                other, [](Delivery) {}, sub),
            make_error_code(errc::invalid_argument));
  EXPECT_NE(log.text().find("filters '" + prefix + ".>'"), std::string::npos) << log.text();
}

// ---- stream declarations -------------------------------------------------------------

TEST_F(NatsJetStream, DeclaredStreamIsUpdatedAtConnect) {
  LogCapture log;
  open();
  // The same stream, declared with one more subject: updated.
  auto wider = jetstream({{"subjects", {prefix + ".>", "more." + prefix}},
                          {"duplicate_window_ms", 1000},
                          {"max_age_ms", 60000}});
  auto t = open(Json{{"jetstream", wider}});
  auto r = publish(*t, "more." + prefix, "m");
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.receipt.target, name);
  // Storage cannot change: connect fails and says why.
  auto moved = create(Json{{"jetstream", jetstream({{"storage", "file"}})}});
  EXPECT_EQ(moved->connect(), make_error_code(errc::invalid_argument));
  EXPECT_FALSE(moved->capabilities().durable_acks);
  EXPECT_NE(log.text().find("cannot update JetStream stream '" + name + "'"), std::string::npos)
      << log.text();
}

TEST_F(NatsJetStream, BadJetStreamOptionsNameTheKey) {
  auto key_of = [&](Json options) -> std::string {
    try {
      create(std::move(options));
    } catch (const OptionError& e) {
      return e.key;
    }
    return "(accepted)";
  };
  EXPECT_EQ(key_of(Json{{"jetstream", "yes"}}), "jetstream");
  EXPECT_EQ(key_of(Json{{"jetstream", jetstream({{"storage", "disk"}})}}),
            "jetstream.streams[0].storage");
  EXPECT_EQ(key_of(Json{{"jetstream", jetstream({{"subjects", Json::array()}})}}),
            "jetstream.streams[0].subjects");
  EXPECT_EQ(key_of(Json{{"jetstream", jetstream({{"name", "a.b"}})}}), "jetstream.streams[0].name");
  EXPECT_EQ(
      key_of(Json{{"jetstream", jetstream({{"max_age_ms", 1000}, {"duplicate_window_ms", 5000}})}}),
      "jetstream.streams[0].duplicate_window_ms");
  EXPECT_EQ(key_of(Json{{"jetstream", jetstream({}, {{"publish_timeout", 5}})}}),
            "jetstream.publish_timeout");
  EXPECT_EQ(key_of(Json{{"jetstream", jetstream({{"sealed", true}})}}),
            "jetstream.streams[0].sealed");
}

}  // namespace
}  // namespace switchboard
