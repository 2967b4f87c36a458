// The relay engine (bridges/): inproc to inproc with fake transports for
// failures and acknowledgements, then real servers (nats-server with
// JetStream, Apache Kafka, RabbitMQ), each started once per binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <set>
#include <sstream>

#include "support/test_support.hpp"
#include "switchboard/bridges/admin_server.hpp"
#include "switchboard/bridges/bridge.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"

#ifdef SWITCHBOARD_BRIDGE_TEST_SERVERS
#include "support/kafka_broker.hpp"
#include "support/nats_server.hpp"
#include "support/rabbitmq_server.hpp"
#endif

namespace switchboard {
namespace {

using namespace std::chrono_literals;
using bridges::BridgeHost;

// ---- fakes ------------------------------------------------------------------

struct NoSubscription : Subscription {
  std::string s;
  void unsubscribe() override {}
  const std::string& subject() const override { return s; }
};

// A destination whose first `failures` publishes fail (then all succeed);
// failures < 0: every publish fails. Durable when the option says so.
class FlakyTransport : public Transport {
 public:
  FlakyTransport(const TransportConfig& c, asio::any_io_executor ex)
      : ex_(std::move(ex)),
        failures_(c.options.value("failures", -1)),
        durable_(c.options.value("durable", false)) {
    last = this;
  }
  const std::string& type() const override {
    static const std::string t = "flaky";
    return t;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.durable_acks = durable_;
    return c;
  }
  std::size_t max_payload() const override { return 1 << 20; }
  std::error_code connect() override { return {}; }
  std::error_code publish(Message msg) override {
    ++attempts;
    if (failures_ < 0 || attempts <= failures_) return errc::disconnected;
    published.push_back(std::move(msg));
    return {};
  }
  void publish_durable(Message msg, const DurablePublish& options,
                       DurablePublishHandler done) override {
    message_ids.push_back(options.message_id);
    auto ec = publish(std::move(msg));
    // Confirmed later, as a broker would.
    asio::post(ex_, [done = std::move(done), ec] { done(ec, DurableReceipt{}); });
  }
  std::error_code subscribe(const std::string&, const std::string&, MessageHandler,
                            std::unique_ptr<Subscription>& out) override {
    out = std::make_unique<NoSubscription>();
    return {};
  }
  void on_status(StatusHandler) override {}
  void close(std::function<void()> done) override { asio::post(ex_, std::move(done)); }

  static inline FlakyTransport* last = nullptr;
  int attempts = 0;
  std::vector<Message> published;
  std::vector<std::string> message_ids;  // of each publish_durable

 private:
  asio::any_io_executor ex_;
  int failures_;
  bool durable_;
};

// A source that can acknowledge: the test pushes deliveries and sees how each
// was settled.
struct FakeDelivery : DurableDelivery {
  Message msg;
  std::uint64_t seq = 0;
  std::string id;  // source_id(); empty: the source has none
  int acks = 0, naks = 0;
  const Message& message() const override { return msg; }
  std::uint64_t sequence() const override { return seq; }
  std::uint32_t count = 1;
  std::uint32_t delivery_count() const override { return count; }
  std::string source_id() const override { return id; }
  void ack() override { ++acks; }
  void nak(std::chrono::milliseconds) override { ++naks; }
};

// Its type() is the option `as` (default durable_source), to stand in for a
// real source where the relay tells them apart.
class DurableSourceTransport : public Transport {
 public:
  DurableSourceTransport(const TransportConfig& c, asio::any_io_executor ex)
      : ex_(std::move(ex)), type_(c.options.value("as", std::string("durable_source"))) {
    last = this;
  }
  const std::string& type() const override { return type_; }
  Capabilities capabilities() const override {
    Capabilities c;
    c.durable_acks = true;
    return c;
  }
  std::size_t max_payload() const override { return 1 << 20; }
  std::error_code connect() override { return {}; }
  std::error_code publish(Message) override { return errc::not_supported; }
  std::error_code subscribe(const std::string&, const std::string&, MessageHandler,
                            std::unique_ptr<Subscription>&) override {
    return errc::not_supported;
  }
  std::error_code subscribe_durable(const DurableSubscribe& o, DurableHandler h,
                                    std::unique_ptr<Subscription>& out) override {
    options = o;
    handler = std::move(h);
    out = std::make_unique<NoSubscription>();
    return {};
  }
  void on_status(StatusHandler) override {}
  void close(std::function<void()> done) override { asio::post(ex_, std::move(done)); }

  std::shared_ptr<FakeDelivery> deliver(std::string subject, std::string data, std::uint64_t seq,
                                        std::string id = {}, std::uint32_t count = 1) {
    auto d = std::make_shared<FakeDelivery>();
    d->msg.subject = std::move(subject);
    d->msg.data = Payload(std::move(data));
    d->seq = seq;
    d->id = std::move(id);
    d->count = count;
    asio::post(ex_, [h = handler, d] { h(d); });
    return d;
  }

  static inline DurableSourceTransport* last = nullptr;
  DurableSubscribe options;
  DurableHandler handler;

 private:
  asio::any_io_executor ex_;
  std::string type_;
};

struct FlakyFactory : TransportFactory {
  std::unique_ptr<Transport> create(const TransportConfig& c,
                                    const TransportContext& ctx) const override {
    return std::make_unique<FlakyTransport>(c, ctx.executor);
  }
};
struct DurableSourceFactory : TransportFactory {
  std::unique_ptr<Transport> create(const TransportConfig& c,
                                    const TransportContext& ctx) const override {
    return std::make_unique<DurableSourceTransport>(c, ctx.executor);
  }
};
const FlakyFactory g_flaky;
const DurableSourceFactory g_durable_source;

// ---- fixture ------------------------------------------------------------------

class Bridge : public ::testing::Test {
 public:  // helpers below the fixture use its members
  Bridge() {
    host.register_builtin("flaky", "1.0.0", g_flaky);
    host.register_builtin("durable_source", "1.0.0", g_durable_source);
    bus = std::string("bt") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }
  ~Bridge() override {
    if (bridges) {
      bool closed = false;
      bridges->close([&] { closed = true; });
      EXPECT_TRUE(test::run_until(io, [&] { return closed; })) << "bridge close";
    }
  }

  void start(const std::string& yaml) {
    config = load_config_string(yaml, "bridge_test.yaml");
    config.plugin_path = {test::plugin_dir()};
    bridges = std::make_unique<BridgeHost>(strand, host, config);
    bridges->start();
  }

  // A config with transports a and b and one bridge, made of
  // `bridge_lines`, that start() must refuse naming `key` at `line`.
  void expect_refused(const std::string& bridge_lines, const std::string& key, int line,
                      const std::string& also_named = "") {
    try {
      start("transports:\n" + inproc("a") + inproc("b") + "runtime: {transport: a}\nbridges:\n" +
            bridge_lines);
      ADD_FAILURE() << "no error";
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.key(), key) << e.what();
      EXPECT_EQ(e.line(), line) << e.what();
      EXPECT_NE(std::string(e.what()).find(also_named), std::string::npos) << e.what();
    }
    bridges.reset();
  }

  std::shared_ptr<Transport> open(const std::string& url, Json options = Json::object()) {
    TransportConfig tc;
    tc.instance = "test";
    tc.url = url;
    tc.type = transport_type_for_url(url);
    tc.options = std::move(options);
    auto t = host.create_transport(tc, TransportContext{strand});
    EXPECT_FALSE(t->connect());
    opened.push_back(t);
    return t;
  }

  std::unique_ptr<Subscription> collect(Transport& t, const std::string& subject,
                                        std::vector<Message>& got) {
    std::unique_ptr<Subscription> sub;
    EXPECT_FALSE(t.subscribe(
        subject, "", [&got](Message m) { got.push_back(std::move(m)); }, sub));
    return sub;
  }

  bridges::BridgeCounters counters(std::size_t i = 0) { return bridges->status().at(i).counters; }

  asio::io_context io;
  asio::strand<asio::io_context::executor_type> strand = asio::make_strand(io);
  PluginHost host{{test::plugin_dir()}};
  // `  NAME: {url: 'inproc://<bus>-NAME'}`: an in-process instance of this test's own.
  std::string inproc(const std::string& name) const {
    return "  " + name + ": {url: 'inproc://" + bus + "-" + name + "'}\n";
  }
  std::string bus;
  Config config;
  std::vector<std::shared_ptr<Transport>> opened;
  std::unique_ptr<BridgeHost> bridges;
};

// ---- in-process ------------------------------------------------------------------

TEST(SubjectTemplate, TokensAndWholeSubject) {
  std::string out;
  EXPECT_FALSE(bridges::SubjectTemplate("shipped.{2}.{subject}").render("orders.eu.new", out));
  EXPECT_EQ(out, "shipped.eu.orders.eu.new");
  EXPECT_FALSE(bridges::SubjectTemplate("fixed").render("a.b", out));
  EXPECT_EQ(out, "fixed");
  EXPECT_EQ(bridges::SubjectTemplate("{3}").render("a.b", out), errc::invalid_argument);
  EXPECT_THROW(bridges::SubjectTemplate("{x}"), OptionError);
  EXPECT_THROW(bridges::SubjectTemplate("a.{1"), OptionError);
}

TEST_F(Bridge, RelaysWithTemplateHeadersAndKey) {
  start("transports:\n" + inproc("a") + inproc("b") +
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - name: orders\n"
        "    from: {transport: a, subject: 'orders.>'}\n"
        "    to: {transport: b, subject: 'shipped.{2}.{3}'}\n"
        "    key: '{2}'\n"
        "    headers: {set: {origin: a}, remove: [secret], rename: {trace: x-trace}}\n");
  auto a = open("inproc://" + bus + "-a");
  auto b = open("inproc://" + bus + "-b");
  std::vector<Message> got;
  auto sub = collect(*b, "shipped.>", got);
  for (int i = 0; i < 5; ++i) {
    Message m;
    m.subject = "orders.eu.n" + std::to_string(i);
    m.data = Payload("p" + std::to_string(i));
    m.headers = {{"trace", "t" + std::to_string(i)}, {"secret", "s"}, {"keep", "k"}};
    ASSERT_FALSE(a->publish(std::move(m)));
  }
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 5; })) << got.size();
  EXPECT_EQ(got[3].subject, "shipped.eu.n3");
  EXPECT_EQ(got[3].data.view(), "p3");
  EXPECT_EQ(got[3].headers.at("x-trace"), "t3");
  EXPECT_EQ(got[3].headers.at("keep"), "k");
  EXPECT_EQ(got[3].headers.at("origin"), "a");
  EXPECT_EQ(got[3].headers.at("switchboard-key"), "eu");
  EXPECT_FALSE(got[3].headers.contains("secret"));
  EXPECT_FALSE(got[3].headers.contains("trace"));
  test::settle(io);
  auto c = counters();
  EXPECT_EQ(c.relayed, 5u);
  EXPECT_EQ(c.in_flight, 0u);
  EXPECT_EQ(c.failed, 0u);
  auto status = bridges->status().at(0);
  EXPECT_FALSE(status.at_least_once);  // inproc cannot acknowledge
  std::string text = bridges->metrics_text();
  EXPECT_NE(text.find("switchboard_bridge_relayed_total{bridge=\"orders\"} 5"), std::string::npos)
      << text;
}

TEST_F(Bridge, RetriesThenDeadLetters) {
  start("transports:\n" + inproc("a") + "  bad: {type: flaky, failures: -1}\n" + inproc("dl") +
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - name: doomed\n"
        "    from: {transport: a, subject: 'in.>'}\n"
        "    to: {transport: bad, subject: 'out'}\n"
        "    retry: {max_retries: 2, backoff_ms: 1, max_backoff_ms: 4}\n"
        "    dead_letter: {transport: dl, subject: 'dead.{subject}'}\n");
  auto a = open("inproc://" + bus + "-a");
  auto dl = open("inproc://" + bus + "-dl");
  std::vector<Message> dead;
  auto sub = collect(*dl, "dead.>", dead);
  for (int i = 0; i < 3; ++i) {
    ASSERT_FALSE(a->publish(Message{"in.x" + std::to_string(i), Payload("d"), {}, ""}));
  }
  ASSERT_TRUE(test::run_until(io, [&] { return dead.size() == 3; })) << dead.size();
  EXPECT_EQ(dead[0].subject, "dead.in.x0");
  EXPECT_EQ(dead[0].headers.at("switchboard-bridge"), "doomed");
  EXPECT_EQ(dead[0].headers.at("switchboard-original-subject"), "in.x0");
  EXPECT_EQ(dead[0].headers.at("switchboard-attempts"), "3");
  EXPECT_FALSE(dead[0].headers.at("switchboard-error").empty());
  test::settle(io);
  auto c = counters();
  EXPECT_EQ(FlakyTransport::last->attempts, 9);  // 3 messages x (1 + 2 retries)
  EXPECT_EQ(c.relayed, 0u);
  EXPECT_EQ(c.retried, 6u);
  EXPECT_EQ(c.failed, 3u);
  EXPECT_EQ(c.dead_lettered, 3u);
  EXPECT_EQ(c.in_flight, 0u);
}

TEST_F(Bridge, RetrySucceedsAfterTransientFailures) {
  start("transports:\n" + inproc("a") +
        "  flaky: {type: flaky, failures: 2}\n"
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - {name: flaky, from: {transport: a, subject: 'in'}, to: {transport: flaky},\n"
        "     retry: {max_retries: 5, backoff_ms: 1}}\n");
  auto a = open("inproc://" + bus + "-a");
  ASSERT_FALSE(a->publish(Message{"in", Payload("x"), {}, ""}));
  ASSERT_TRUE(test::run_until(io, [&] { return counters().relayed == 1; }));
  EXPECT_EQ(counters().retried, 2u);
  EXPECT_EQ(counters().failed, 0u);
  ASSERT_EQ(FlakyTransport::last->published.size(), 1u);
  EXPECT_EQ(FlakyTransport::last->published[0].subject, "in");  // no template: same subject
}

// At-least-once: the source is acked only once the destination confirmed;
// a failed message without a dead letter goes back to the source (nak).
TEST_F(Bridge, DurableSourceIsAckedOnlyAfterTheDestinationConfirmed) {
  start(
      "transports:\n"
      "  src: {type: durable_source}\n"
      "  dst: {type: flaky, failures: 1, durable: true}\n"
      "runtime: {transport: src}\n"
      "bridges:\n"
      "  - {name: durable, from: {transport: src, subject: 'in.>', durable: grp},\n"
      "     to: {transport: dst, subject: 'out.{2}'}, max_in_flight: 7,\n"
      "     retry: {max_retries: 0, backoff_ms: 1}}\n");
  auto* src = DurableSourceTransport::last;
  ASSERT_NE(src, nullptr);
  EXPECT_TRUE(bridges->status().at(0).at_least_once);
  EXPECT_EQ(src->options.durable, "grp");
  EXPECT_EQ(src->options.max_in_flight, 7u);  // the broker bounds the window
  auto first = src->deliver("in.a", "1", 1);  // the destination fails it once
  auto second = src->deliver("in.b", "2", 2);
  ASSERT_TRUE(test::run_until(io, [&] { return counters().in_flight == 0 && first->naks == 1; }));
  EXPECT_EQ(first->acks, 0);
  EXPECT_EQ(second->acks, 1);
  EXPECT_EQ(second->naks, 0);
  EXPECT_EQ(counters().relayed, 1u);
  EXPECT_EQ(counters().failed, 1u);
  EXPECT_EQ(counters().dropped, 0u);  // never dropped: the source has it again
  ASSERT_EQ(FlakyTransport::last->published.size(), 1u);
  EXPECT_EQ(FlakyTransport::last->published[0].subject, "out.b");
}

// The destination's message id is "<bridge>:<source_id>" whatever the
// source transport; none when the delivery has no source id.
TEST_F(Bridge, MessageIdComesFromTheSourceId) {
  start(
      "transports:\n"
      "  src: {type: durable_source}\n"
      "  dst: {type: flaky, failures: 0, durable: true}\n"
      "runtime: {transport: src}\n"
      "bridges:\n"
      "  - {name: ids, from: {transport: src, subject: 'in.>', durable: grp},\n"
      "     to: {transport: dst}}\n");
  auto* src = DurableSourceTransport::last;
  ASSERT_NE(src, nullptr);
  auto with = src->deliver("in.a", "1", 7, "orders:2:7");
  ASSERT_TRUE(test::run_until(io, [&] { return with->acks == 1; }));
  auto without = src->deliver("in.b", "2", 7);
  ASSERT_TRUE(test::run_until(io, [&] { return without->acks == 1; }));
  ASSERT_EQ(FlakyTransport::last->message_ids.size(), 2u);
  EXPECT_EQ(FlakyTransport::last->message_ids[0], "ids:orders:2:7");
  EXPECT_EQ(FlakyTransport::last->message_ids[1], "");  // a reused record keeps no old id
}

// A redelivery that comes while its first delivery is still in flight (the
// destination's retry backoff outlasting ack_wait) is settled with it, not
// sent again, where the source's ids name stored messages (Kafka here); an
// AMQP source's ids are the publishers' and are not trusted for that.
TEST_F(Bridge, RedeliveryInFlightIsFoldedByTheSourceId) {
  for (const std::string as : {"kafka", "amqp"}) {
    SCOPED_TRACE(as);
    start(
        "transports:\n"
        "  src: {type: durable_source, as: " +
        as +
        "}\n"
        "  dst: {type: flaky, failures: 1, durable: true}\n"
        "runtime: {transport: src}\n"
        "bridges:\n"
        "  - {name: fold, from: {transport: src, subject: 'in.>', durable: grp},\n"
        "     to: {transport: dst}, retry: {max_retries: 3, backoff_ms: 200}}\n");
    auto* src = DurableSourceTransport::last;
    ASSERT_NE(src, nullptr);
    auto first = src->deliver("in.a", "1", 5, "orders:0:5");  // fails once, retried in 200 ms
    ASSERT_TRUE(test::run_until(io, [&] { return FlakyTransport::last->attempts == 1; }));
    auto again = src->deliver("in.a", "1", 5, "orders:0:5", 2);
    auto other = src->deliver("in.b", "2", 6, "orders:0:6", 2);  // not in flight: sent
    ASSERT_TRUE(test::run_until(
        io, [&] { return counters().in_flight == 0 && first->acks + again->acks >= 1; }));
    EXPECT_EQ(counters().redelivered, 2u);
    EXPECT_EQ(first->acks, 1);
    EXPECT_EQ(again->acks, 1);
    EXPECT_EQ(other->acks, 1);
    std::vector<std::string> ids = FlakyTransport::last->message_ids;
    const auto copies = std::count(ids.begin(), ids.end(), "fold:orders:0:5");
    // Kafka: the failed attempt and its retry; AMQP: also the redelivery.
    EXPECT_EQ(copies, as == "kafka" ? 2 : 3);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), "fold:orders:0:6"), 1);
    bool closed = false;
    bridges->close([&] { closed = true; });
    ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
    bridges.reset();
  }
}

TEST_F(Bridge, PlainSourceDropsAboveTheWindowAndCountsIt) {
  start("transports:\n" + inproc("a") +
        "  bad: {type: flaky, failures: -1}\n"
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - {name: w, from: {transport: a, subject: 'in'}, to: {transport: bad},\n"
        "     max_in_flight: 2, retry: {max_retries: 1, backoff_ms: 200}}\n");
  auto a = open("inproc://" + bus + "-a");
  for (int i = 0; i < 5; ++i) ASSERT_FALSE(a->publish(Message{"in", Payload("x"), {}, ""}));
  ASSERT_TRUE(test::run_until(
      io, [&] { return counters().dropped == 5; }, 3s))
      << counters().dropped;
  auto c = counters();
  EXPECT_EQ(c.failed, 2u);  // the two in the window ran out of retries
  EXPECT_EQ(c.in_flight, 0u);
}

TEST_F(Bridge, BadOptionsNameTheLine) {
  expect_refused(
      "  - name: x\n"
      "    from: {transport: a, subject: 'in'}\n"
      "    to: {transport: b}\n"
      "    retry: {max_retires: 2}\n",
      "bridges[0].retry.max_retires", 9);
}

TEST_F(Bridge, AtLeastOnceFromASourceThatCannotAckIsRefused) {
  EXPECT_THROW(start("transports:\n" + inproc("a") + inproc("b") +
                     "runtime: {transport: a}\n"
                     "bridges:\n"
                     "  - {name: x, from: {transport: a, subject: in}, to: {transport: b},\n"
                     "     delivery: at_least_once}\n"),
               Error);
  bridges.reset();
}

// `codec: msgpack`: JSON in (no header, as the runtime sends it), MessagePack
// out with its content type; bytes already in MessagePack pass unchanged;
// a payload that is no JSON is dead-lettered at once, not retried.
TEST_F(Bridge, CodecConversionReencodesAndSetsContentType) {
  start("transports:\n" + inproc("a") + inproc("b") + inproc("dl") +
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - {name: conv, from: {transport: a, subject: 'in'}, to: {transport: b, subject: out},\n"
        "     codec: msgpack, retry: {max_retries: 5, backoff_ms: 1},\n"
        "     dead_letter: {transport: dl, subject: dead}}\n");
  auto a = open("inproc://" + bus + "-a");
  auto b = open("inproc://" + bus + "-b");
  auto dl = open("inproc://" + bus + "-dl");
  std::vector<Message> got, dead;
  auto sub = collect(*b, "out", got);
  auto dead_sub = collect(*dl, "dead", dead);
  auto msgpack = host.create_codec("msgpack");
  Json value = {{"n", 1}, {"s", "x"}, {"list", {1.5, true, nullptr}}};
  std::string packed = msgpack->encode(value);
  ASSERT_FALSE(a->publish(Message{"in", Payload(value.dump()), {}, ""}));
  ASSERT_FALSE(
      a->publish(Message{"in", Payload(packed), {{"content-type", msgpack->content_type()}}, ""}));
  ASSERT_FALSE(a->publish(Message{"in", Payload("not json {"), {}, ""}));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 2 && dead.size() == 1; }))
      << got.size() << " " << dead.size();
  for (const Message& m : got) {
    EXPECT_EQ(m.headers.at("content-type"), "application/msgpack");
    EXPECT_EQ(m.data.view(), packed);  // the same bytes whichever way they came
    Json back;
    std::string why;
    ASSERT_FALSE(msgpack->decode(m.data.view(), back, why)) << why;
    EXPECT_EQ(back, value);
  }
  EXPECT_EQ(dead[0].data.view(), "not json {");
  EXPECT_NE(dead[0].headers.at("switchboard-error").find("payload is not json"), std::string::npos)
      << dead[0].headers.at("switchboard-error");
  EXPECT_EQ(dead[0].headers.at("switchboard-attempts"), "0");  // never sent: no retries
  test::settle(io);
  auto c = counters();
  EXPECT_EQ(c.relayed, 2u);
  EXPECT_EQ(c.failed, 1u);
  EXPECT_EQ(c.retried, 0u);
  EXPECT_EQ(c.dead_lettered, 1u);
}

TEST_F(Bridge, CodecConversionMsgpackToJson) {
  start("transports:\n" + inproc("a") + inproc("b") +
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - {name: conv, from: {transport: a, subject: 'in'}, to: {transport: b}, codec: json}\n");
  auto a = open("inproc://" + bus + "-a");
  auto b = open("inproc://" + bus + "-b");
  std::vector<Message> got;
  auto sub = collect(*b, "in", got);
  auto msgpack = host.create_codec("msgpack");
  Json value = {{"order", 42}, {"items", {"a", "b"}}};
  ASSERT_FALSE(a->publish(Message{
      "in", Payload(msgpack->encode(value)), {{"content-type", "application/msgpack"}}, ""}));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 1; }));
  EXPECT_EQ(got[0].headers.at("content-type"), "application/json");
  EXPECT_EQ(Json::parse(got[0].data.view()), value) << got[0].data.view();
}

TEST_F(Bridge, UnknownCodecNamesTheLine) {
  expect_refused(
      "  - name: x\n"
      "    from: {transport: a, subject: 'in'}\n"
      "    to: {transport: b}\n"
      "    codec: protobuf\n",
      "bridges[0].codec", 9, "protobuf");
}

TEST_F(Bridge, MetricsOverHttp) {
  start("transports:\n" + inproc("a") + inproc("b") +
        "runtime: {transport: a}\n"
        "bridges:\n"
        "  - {name: m, from: {transport: a, subject: in}, to: {transport: b, subject: out}}\n");
  bridges::AdminServer admin(strand, "127.0.0.1:0", [this] { return bridges->metrics_text(); });
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), admin.port()});
  std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", response;
  asio::write(socket, asio::buffer(request));
  std::array<char, 4096> buf{};
  boost::system::error_code ec;
  while (!ec) {
    io.restart();
    io.run_for(5ms);
    socket.non_blocking(true);
    std::size_t n = socket.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block) ec = {};
    response.append(buf.data(), n);
    if (response.find("switchboard_bridge_up") != std::string::npos && response.ends_with("\n") &&
        response.find("delivery=") != std::string::npos)
      break;
  }
  EXPECT_NE(response.find("HTTP/1.1 200 OK"), std::string::npos) << response;
  EXPECT_NE(response.find("switchboard_bridge_relayed_total{bridge=\"m\"} 0"), std::string::npos)
      << response;
}

#ifdef SWITCHBOARD_BRIDGE_TEST_SERVERS

// ---- real servers ------------------------------------------------------------------

test::NatsServer& nats() {
  static test::NatsServer server(test::NatsServer::jetstream);
  return server;
}
test::RabbitMqServer& rabbit() {
  static test::RabbitMqServer server;
  return server;
}
std::string kafka_url() {
  return "kafka://" + test::KafkaBroker::shared_bootstrap();
}
std::string unique(const std::string& stem) {
  return stem + std::to_string(::getpid()) + "x" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

// Runs a command of another client (kcat, pika) and returns its stdout.
std::string shell(const std::string& command) {
  std::string out;
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  while (std::size_t got = std::fread(buf, 1, sizeof buf, p)) out.append(buf, got);
  int rc = ::pclose(p);
  EXPECT_EQ(rc, 0) << command << "\n" << out.substr(0, 2000);
  return out;
}

// Reads a Kafka topic from the start in a group of its own.
std::unique_ptr<Subscription> read_kafka(Transport& k, const std::string& topic,
                                         std::vector<Message>& got) {
  DurableSubscribe d;
  d.subject = topic;
  d.durable = unique("reader");
  d.start = DurableStart::earliest;
  std::unique_ptr<Subscription> sub;
  EXPECT_FALSE(k.subscribe_durable(
      d,
      [&got](std::shared_ptr<DurableDelivery> del) {
        got.push_back(del->message());
        del->ack();
      },
      sub));
  return sub;
}

TEST_F(Bridge, CoreNatsToKafka) {
  std::string topic = unique("br-n2k-");
  start("transports:\n" + test::instance_yaml("bus", nats().url()) + "  events: {url: '" +
        kafka_url() +
        "', key: 'header:switchboard-key'}\n"
        "runtime: {transport: bus}\n"
        "bridges:\n"
        "  - {name: n2k, from: {transport: bus, subject: 'orders.*'},\n"
        "     to: {transport: events, topic: '" +
        topic + "'}, key: '{2}'}\n");
  EXPECT_FALSE(bridges->status().at(0).at_least_once);
  auto bus = open(nats().url());
  constexpr int n = 200;
  for (int i = 0; i < n; ++i) {
    Message m{
        "orders.c" + std::to_string(i % 7), Payload("m" + std::to_string(i)), {{"h", "v"}}, ""};
    ASSERT_FALSE(bus->publish(std::move(m)));
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return counters().relayed == n; }, 15s))
      << counters().relayed;
  auto k = open(kafka_url());
  std::vector<Message> got;
  auto sub = read_kafka(*k, topic, got);
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= n; }, 20s))
      << got.size();
  std::set<std::string> payloads;
  for (const auto& m : got) payloads.insert(std::string(m.data.view()));
  EXPECT_EQ(payloads.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(got[0].headers.at("h"), "v");

  // The far side as a Kafka user sees it, with kcat: key, headers, bytes.
  std::string lines =
      shell("kcat -C -q -e -o beginning -b " + test::KafkaBroker::shared_bootstrap() + " -t " +
            topic + " -f '%k|%h|%s\\n'");
  std::map<std::string, std::string> by_payload;  // payload -> "key|headers"
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    auto last = line.rfind('|');
    if (last != std::string::npos) by_payload[line.substr(last + 1)] = line.substr(0, last);
  }
  ASSERT_EQ(by_payload.size(), static_cast<std::size_t>(n)) << lines.substr(0, 2000);
  const std::string& m12 = by_payload.at("m12");  // sent on orders.c5
  EXPECT_EQ(m12.substr(0, m12.find('|')), "c5") << m12;
  EXPECT_NE(m12.find("h=v"), std::string::npos) << m12;
  EXPECT_NE(m12.find("switchboard-key=c5"), std::string::npos) << m12;
}

TEST_F(Bridge, JetStreamToKafkaAtLeastOnce) {
  std::string topic = unique("br-js2k-"), stream = unique("BRJS");
  std::string subjects = unique("jsorders") + ".>";
  std::string prefix = subjects.substr(0, subjects.size() - 2);
  {
    // The first produce to a new topic waits for the broker to create it.
    auto warm = open(kafka_url());
    bool done = false;
    warm->publish_durable(Message{topic, Payload("warm-up"), {}, ""}, {},
                          [&](std::error_code, const DurableReceipt&) { done = true; });
    ASSERT_TRUE(test::run_until(
        io, [&] { return done; }, 15s));
  }
  std::string js = "{type: nats, url: '" + nats().url() +
                   "', jetstream: {streams: [{name: " + stream + ", subjects: ['" + subjects +
                   "'], storage: memory}]}}";
  start(
      "transports:\n"
      "  js: " +
      js + "\n" + test::instance_yaml("events", kafka_url()) +
      "runtime: {transport: js}\n"
      "bridges:\n"
      "  - {name: js2k, from: {transport: js, subject: '" +
      subjects +
      "', durable: br, ack_wait_ms: 1000},\n"
      "     to: {transport: events, topic: '" +
      topic + "'}, max_in_flight: 64}\n");
  EXPECT_TRUE(bridges->status().at(0).at_least_once);
  TransportConfig tc = config.transports.at("js");
  auto producer = host.create_transport(tc, TransportContext{strand});
  ASSERT_FALSE(producer->connect());
  opened.push_back(producer);
  constexpr int n = 300;
  int confirmed = 0;
  for (int i = 0; i < n; ++i) {
    producer->publish_durable(
        Message{prefix + ".o" + std::to_string(i % 5), Payload("j" + std::to_string(i)), {}, ""},
        {}, [&](std::error_code ec, const DurableReceipt&) {
          EXPECT_FALSE(ec) << ec.message();
          ++confirmed;
        });
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n; }, 10s));
  ASSERT_TRUE(test::run_until(
      io, [&] { return counters().relayed >= n && counters().in_flight == 0; }, 20s))
      << counters().relayed;
  auto k = open(kafka_url());
  std::vector<Message> got;
  auto sub = read_kafka(*k, topic, got);
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= n + 1; }, 20s))
      << got.size();
  test::settle(io, 300ms);  // duplicates, if any, come after
  std::set<std::string> payloads;
  for (const auto& m : got) payloads.insert(std::string(m.data.view()));
  payloads.erase("warm-up");
  EXPECT_EQ(payloads.size(), static_cast<std::size_t>(n)) << "lost messages";
  // Every copy Kafka has beyond one per message came from a redelivery.
  EXPECT_LE(got.size() - 1 - payloads.size(), counters().redelivered);

  // Every message was acked: the same durable, after ack_wait, has nothing.
  bool closed = false;
  bridges->close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
  bridges.reset();
  test::settle(io, 1200ms);
  DurableSubscribe again;
  again.subject = subjects;
  again.durable = "br";
  int redelivered = 0;
  std::unique_ptr<Subscription> resub;
  ASSERT_FALSE(producer->subscribe_durable(
      again, [&](std::shared_ptr<DurableDelivery> d) { ++redelivered, d->ack(); }, resub));
  test::settle(io, 500ms);
  EXPECT_EQ(redelivered, 0) << "unacknowledged messages on the JetStream consumer";
}

TEST_F(Bridge, KafkaToNats) {
  std::string topic = unique("br-k2n-");
  auto k = open(kafka_url());
  constexpr int n = 100;
  int confirmed = 0;
  for (int i = 0; i < n; ++i) {
    k->publish_durable(Message{topic, Payload("k" + std::to_string(i)), {{"h", "v"}}, ""}, {},
                       [&](std::error_code ec, const DurableReceipt&) {
                         EXPECT_FALSE(ec) << ec.message();
                         ++confirmed;
                       });
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n; }, 15s));
  auto bus = open(nats().url());
  std::vector<Message> got;
  auto sub = collect(*bus, "fromkafka.>", got);
  start("transports:\n" + test::instance_yaml("bus", nats().url()) + "" +
        test::instance_yaml("events", kafka_url()) +
        "runtime: {transport: bus}\n"
        "bridges:\n"
        "  - {name: k2n, from: {transport: events, topic: '" +
        topic +
        "'},\n"
        "     to: {transport: bus, subject: 'fromkafka.{subject}'}}\n");
  EXPECT_TRUE(bridges->status().at(0).at_least_once);
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= n; }, 25s))
      << got.size();
  EXPECT_EQ(got[0].subject, "fromkafka." + topic);
  EXPECT_EQ(got[0].headers.at("h"), "v");
  ASSERT_TRUE(test::run_until(io, [&] { return counters().in_flight == 0; }));
  EXPECT_EQ(counters().relayed, static_cast<std::uint64_t>(n));
}

TEST_F(Bridge, RabbitMqToNats) {
  std::string key = unique("rk");
  start("transports:\n" + test::instance_yaml("bus", nats().url()) + "" +
        test::instance_yaml("mq", rabbit().url()) +
        "runtime: {transport: bus}\n"
        "bridges:\n"
        "  - {name: r2n, from: {transport: mq, routing_key: '" +
        key + ".*', durable: " + key +
        "-q},\n"
        "     to: {transport: bus, subject: 'fromrabbit.{2}'}}\n");
  EXPECT_TRUE(bridges->status().at(0).at_least_once);
  auto bus = open(nats().url());
  std::vector<Message> got;
  auto sub = collect(*bus, "fromrabbit.>", got);
  auto mq = open(rabbit().url());
  constexpr int n = 100;
  int confirmed = 0;
  for (int i = 0; i < n; ++i) {
    mq->publish_durable(Message{key + ".r" + std::to_string(i), Payload("r"), {}, ""}, {},
                        [&](std::error_code ec, const DurableReceipt&) {
                          EXPECT_FALSE(ec) << ec.message();
                          ++confirmed;
                        });
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n; }, 15s));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= n; }, 15s))
      << got.size();
  EXPECT_EQ(got[7].subject, "fromrabbit.r7");
  ASSERT_TRUE(test::run_until(io, [&] { return counters().in_flight == 0; }));
  EXPECT_EQ(counters().relayed, static_cast<std::uint64_t>(n));
}

// core NATS -> RabbitMQ, read on the far side with pika (a client that is
// not switchboard): routing key from the template, headers, bytes.
TEST_F(Bridge, CoreNatsToRabbitMqReadByPika) {
  std::string stem = unique("n2r"), queue = stem + "-q";
  {
    // The reader's durable queue and binding exist before anything is sent;
    // switchboard's own AMQP transport declares them, pika reads them.
    auto mq = open(rabbit().url());
    DurableSubscribe d;
    d.subject = stem + ".*";
    d.durable = queue;
    std::unique_ptr<Subscription> declared;
    ASSERT_FALSE(mq->subscribe_durable(
        d, [](std::shared_ptr<DurableDelivery>) {}, declared));
    declared->unsubscribe();
  }
  start("transports:\n" + test::instance_yaml("bus", nats().url()) + "" +
        test::instance_yaml("mq", rabbit().url()) +
        "runtime: {transport: bus}\n"
        "bridges:\n"
        "  - {name: n2r, from: {transport: bus, subject: 'orders.*'},\n"
        "     to: {transport: mq, routing_key: '" +
        stem +
        ".{2}'},\n"
        "     headers: {set: {origin: nats}, remove: [secret]}}\n");
  EXPECT_FALSE(bridges->status().at(0).at_least_once);  // core NATS: at-most-once
  auto bus = open(nats().url());
  constexpr int n = 100;
  for (int i = 0; i < n; ++i) {
    Message m{"orders.c" + std::to_string(i % 7),
              Payload("r" + std::to_string(i)),
              {{"h", "v"}, {"secret", "s"}},
              ""};
    ASSERT_FALSE(bus->publish(std::move(m)));
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return counters().relayed == n; }, 15s))
      << counters().relayed;
  std::string lines = shell(std::string("/usr/bin/python3 ") + SWITCHBOARD_BRIDGE_AMQP_READER +
                            " '" + rabbit().url() + "' " + queue);
  std::map<std::string, std::vector<std::string>> by_body;  // body -> [routing key, headers]
  std::istringstream in(lines);
  for (std::string line; std::getline(in, line);) {
    auto first = line.find('|'), last = line.rfind('|');
    if (first == std::string::npos || first == last) continue;
    by_body[line.substr(last + 1)] = {line.substr(0, first),
                                      line.substr(first + 1, last - first - 1)};
  }
  ASSERT_EQ(by_body.size(), static_cast<std::size_t>(n)) << lines.substr(0, 2000);
  const auto& r12 = by_body.at("r12");  // sent on orders.c5
  EXPECT_EQ(r12[0], stem + ".c5");
  Json headers = Json::parse(r12[1]);
  EXPECT_EQ(headers.value("h", ""), "v") << r12[1];
  EXPECT_EQ(headers.value("origin", ""), "nats") << r12[1];
  EXPECT_FALSE(headers.contains("secret")) << r12[1];
}

// ---- lag: a destination that never confirms, a window of one --------------------
//
// The bridge holds one message (retried far in the future), so the source
// keeps the rest: lag is the number sent minus the one handed out.

std::string stuck_bridge(const std::string& from) {
  return "  - {name: lag, from: " + from +
         ",\n"
         "     to: {transport: stuck, subject: out}, max_in_flight: 1,\n"
         "     retry: {max_retries: 100, backoff_ms: 60000, max_backoff_ms: 60000}}\n";
}

void expect_lag(Bridge& t, std::uint64_t want) {
  bool seen = test::run_until(
      t.io,
      [&] {
        auto s = t.bridges->status().at(0);
        return s.lag_known && s.counters.lag == want;
      },
      20s);
  auto s = t.bridges->status().at(0);
  EXPECT_TRUE(seen) << "lag known: " << s.lag_known << ", lag " << s.counters.lag << ", want "
                    << want;
  EXPECT_EQ(s.counters.in_flight, 1u);
  std::string text = t.bridges->metrics_text();
  EXPECT_NE(text.find("switchboard_bridge_lag{bridge=\"lag\"} " + std::to_string(want)),
            std::string::npos)
      << text;
}

TEST_F(Bridge, LagOfAJetStreamSource) {
  std::string stream = unique("LAGJS"), subjects = unique("lagjs") + ".>";
  std::string js = "{type: nats, url: '" + nats().url() +
                   "', jetstream: {streams: [{name: " + stream + ", subjects: ['" + subjects +
                   "'], storage: memory}]}}";
  auto producer =
      open(nats().url(), Json{{"jetstream",
                               {{"streams", Json::array({{{"name", stream},
                                                          {"subjects", Json::array({subjects})},
                                                          {"storage", "memory"}}})}}}});
  constexpr int n = 50;
  int confirmed = 0;
  for (int i = 0; i < n; ++i) {
    producer->publish_durable(
        Message{subjects.substr(0, subjects.size() - 2) + ".x", Payload("l"), {}, ""}, {},
        [&](std::error_code ec, const DurableReceipt&) { confirmed += ec ? 0 : 1; });
  }
  ASSERT_TRUE(test::run_until(io, [&] { return confirmed == n; }));
  start("transports:\n  js: " + js +
        "\n  stuck: {type: flaky, failures: -1, durable: true}\n"
        "runtime: {transport: js}\n"
        "bridges:\n" +
        stuck_bridge("{transport: js, subject: '" + subjects + "', durable: lagger}"));
  expect_lag(*this, n - 1);
}

TEST_F(Bridge, LagOfARabbitMqSource) {
  std::string key = unique("lagr");
  start("transports:\n  mq: {url: '" + rabbit().url() +
        "'}\n  stuck: {type: flaky, failures: -1, durable: true}\n"
        "runtime: {transport: mq}\n"
        "bridges:\n" +
        stuck_bridge("{transport: mq, routing_key: '" + key + ".*', durable: " + key + "-q}"));
  auto mq = open(rabbit().url());
  constexpr int n = 50;
  int confirmed = 0;
  for (int i = 0; i < n; ++i) {
    mq->publish_durable(
        Message{key + ".x", Payload("l"), {}, ""}, {},
        [&](std::error_code ec, const DurableReceipt&) { confirmed += ec ? 0 : 1; });
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n; }, 15s));
  expect_lag(*this, n - 1);
}

TEST_F(Bridge, LagOfAKafkaSource) {
  std::string topic = unique("lagk-");
  auto k = open(kafka_url());
  constexpr int n = 50;
  int confirmed = 0;
  auto produce = [&](int count) {
    for (int i = 0; i < count; ++i) {
      k->publish_durable(
          Message{topic, Payload("l"), {}, ""}, {},
          [&](std::error_code ec, const DurableReceipt&) { confirmed += ec ? 0 : 1; });
    }
  };
  produce(n);
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n; }, 20s));
  start("transports:\n  events: {url: '" + kafka_url() +
        "'}\n  stuck: {type: flaky, failures: -1, durable: true}\n"
        "runtime: {transport: events}\n"
        "bridges:\n" +
        stuck_bridge("{transport: events, topic: '" + topic + "', durable: " + topic + "g}"));
  // Every partition counts, also one paused before its first fetch.
  expect_lag(*this, n - 1);
  // The consumer is paused (its window is full): the lag still grows with
  // what producers add.
  produce(10);
  ASSERT_TRUE(test::run_until(
      io, [&] { return confirmed == n + 10; }, 20s));
  expect_lag(*this, n + 10 - 1);
}

#endif  // SWITCHBOARD_BRIDGE_TEST_SERVERS

}  // namespace
}  // namespace switchboard
