// The amqp transport against a real rabbitmq-server (tests/support/
// rabbitmq_server.hpp): one private node for the whole binary (starting one
// takes about 5 s), restarted once by the reconnect test. The broker side is
// also read by independent clients (amqp-tools, python3-pika).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <vector>

#include "amqp_frames.hpp"
#include "amqp_mapping.hpp"
#include "support/child_process.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/test_support.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/trace.hpp"

namespace switchboard {
namespace {

test::RabbitMqServer* g_rabbit = nullptr;

class RabbitEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    g_rabbit = new test::RabbitMqServer();
    std::printf("rabbitmq-server %s up in %lld ms\n", g_rabbit->node().c_str(),
                static_cast<long long>(g_rabbit->last_start_time().count()));
  }
  void TearDown() override {
    delete g_rabbit;
    g_rabbit = nullptr;
  }
};
const auto* const g_env = ::testing::AddGlobalTestEnvironment(new RabbitEnvironment);

// ---- mapping rules (no broker) ----

TEST(AmqpMapping, WildcardsTranslateExactly) {
  std::string key, why;
  ASSERT_FALSE(amqp::binding_key_for("a.*.c", key, why));
  EXPECT_EQ(key, "a.*.c");
  ASSERT_FALSE(amqp::binding_key_for("a.>", key, why));
  EXPECT_EQ(key, "a.*.#");  // one or more words, as NATS' '>'
  ASSERT_FALSE(amqp::binding_key_for(">", key, why));
  EXPECT_EQ(key, "#");
  EXPECT_EQ(amqp::binding_key_for("a.#", key, why), errc::invalid_argument);
  EXPECT_EQ(amqp::binding_key_for("a.>.b", key, why), errc::invalid_argument);
  EXPECT_EQ(amqp::routing_key_for(std::string(256, 'a'), key, why), errc::invalid_argument);
  EXPECT_EQ(amqp::routing_key_for("a.*", key, why), errc::invalid_argument);
}

TEST(AmqpMapping, HeadersRoundTripThroughATable) {
  Headers in{{"a", "1"}, {"content-type", "application/msgpack"}, {"empty", ""}};
  amqp::HeaderTable table;
  std::string why;
  ASSERT_FALSE(amqp::to_table(in, table, why));
  Headers out;
  EXPECT_EQ(amqp::from_table(table.table(), out), 0);
  EXPECT_EQ(out, in);
}

// The frames of one basic.publish, byte for byte (AMQP 0-9-1 section 4.2).
TEST(AmqpFrames, PublishIsMethodHeaderAndBodyFrames) {
  amqp_basic_properties_t props{};
  props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
  props.delivery_mode = 2;
  std::string out = "x";  // appended to, not replaced
  amqp::PublishFrames p;
  p.channel = 2;
  p.exchange = amqp_cstring_bytes("ex");
  p.routing_key = amqp_cstring_bytes("k");
  p.mandatory = true;
  p.properties = &props;
  p.body = amqp_cstring_bytes("hi");
  ASSERT_EQ(amqp::append_publish(out, p, 131072), 0);
  const unsigned char bytes[] = {
      'x',                             // what was there before
      1,    0,   2,   0,  0,   0, 12,  // method frame, channel 2, 12 bytes:
      0,    60,  0,   40, 0,   0,      //   basic.publish (60, 40), ticket 0,
      2,    'e', 'x', 1,  'k', 1,      //   exchange, routing key, bits: mandatory
      0xce,                            //   frame-end
      2,    0,   2,   0,  0,   0, 15,  // header frame, 15 bytes:
      0,    60,  0,   0,  0,   0, 0,  0,   0,   0,    0, 2,  //   class 60, weight 0, body size 2,
      0x10, 0,   2,                                    //   flags (delivery-mode), 2 (persistent)
      0xce,                                            //   frame-end
      3,    0,   2,   0,  0,   0, 2,  'h', 'i', 0xce,  // body frame
  };
  const std::string expected(reinterpret_cast<const char*>(bytes), sizeof bytes);
  EXPECT_EQ(out, expected);
}

TEST(AmqpFrames, BodyIsSplitAtFrameMax) {
  std::string body(10000, 'b');
  std::string out;
  amqp::PublishFrames p;
  p.exchange = amqp_cstring_bytes("ex");
  p.routing_key = amqp_cstring_bytes("k");
  p.body = amqp_bytes_t{body.size(), body.data()};
  ASSERT_EQ(amqp::append_publish(out, p, 4096), 0);
  // Walk the frames: type, channel, size, payload, frame-end.
  std::vector<std::pair<int, std::size_t>> frames;
  std::size_t at = 0, body_bytes = 0;
  while (at + 8 <= out.size()) {
    const auto* f = reinterpret_cast<const unsigned char*>(out.data() + at);
    const std::size_t size = (std::size_t{f[3]} << 24) | (f[4] << 16) | (f[5] << 8) | f[6];
    ASSERT_LE(at + 8 + size, out.size());
    EXPECT_EQ(f[7 + size], 0xce);
    frames.emplace_back(f[0], size);
    if (f[0] == 3) body_bytes += size;
    at += 8 + size;
  }
  EXPECT_EQ(at, out.size());
  ASSERT_EQ(frames.size(), 5u);
  EXPECT_EQ(frames[0].first, 1);
  EXPECT_EQ(frames[1].first, 2);
  EXPECT_EQ(frames[2], (std::pair<int, std::size_t>{3, 4088}));  // frame_max - 8
  EXPECT_EQ(frames[3], (std::pair<int, std::size_t>{3, 4088}));
  EXPECT_EQ(frames[4], (std::pair<int, std::size_t>{3, 1824}));
  EXPECT_EQ(body_bytes, body.size());
}

TEST(AmqpFrames, AnEmptyBodyHasNoBodyFrame) {
  std::string out;
  amqp::PublishFrames p;
  p.exchange = amqp_cstring_bytes("ex");
  p.routing_key = amqp_cstring_bytes("k");
  ASSERT_EQ(amqp::append_publish(out, p, 131072), 0);
  ASSERT_GE(out.size(), 1u);
  // Method (8 + 12 bytes) and header (8 + 14: no property flags set).
  EXPECT_EQ(out.size(), 20u + 22u);
}

// ---- against the broker ----

class Amqp : public ::testing::Test {
 protected:
  void SetUp() override { prefix = "amqptest." + random_id(); }

  std::shared_ptr<Transport> open(Json options = Json::object()) {
    TransportConfig config;
    config.instance = "test";
    config.type = "amqp";
    config.url = g_rabbit->url();
    config.options = std::move(options);
    auto t = host.create_transport(config, TransportContext{io.get_executor()});
    t->on_status([this](const StatusEvent& ev) { statuses.push_back(ev.status); });
    auto ec = t->connect();
    EXPECT_FALSE(ec) << ec.message();
    opened.push_back(t);
    return t;
  }

  std::unique_ptr<Subscription> subscribe(Transport& t, const std::string& subject,
                                          const std::string& group,
                                          std::function<void(Message)> handler) {
    std::unique_ptr<Subscription> sub;
    auto ec = t.subscribe(subject, group, std::move(handler), sub);
    EXPECT_FALSE(ec) << subject << ": " << ec.message();
    return sub;
  }

  static Message message(std::string subject, std::string data, std::string reply_to = "") {
    Message m;
    m.subject = std::move(subject);
    m.data = Payload(std::move(data));
    m.reply_to = std::move(reply_to);
    return m;
  }

  // publish_durable, waiting for the confirm.
  std::error_code publish_durable(Transport& t, Message m, DurablePublish options = {}) {
    bool done = false;
    std::error_code result;
    t.publish_durable(std::move(m), options, [&](std::error_code ec, const DurableReceipt&) {
      result = ec;
      done = true;
    });
    EXPECT_TRUE(test::run_until(io, [&] { return done; })) << "no confirm";
    return result;
  }

  void TearDown() override {
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, std::chrono::seconds(5));
    }
  }

  static std::string run(const std::string& cmd) { return test::shell_output(cmd); }

  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  std::string prefix;
  std::vector<std::shared_ptr<Transport>> opened;
  std::vector<TransportStatus> statuses;
};

TEST_F(Amqp, WildcardSubscriptionsMatchAsInNats) {
  auto t = open();
  std::vector<std::string> star, greater;
  auto s1 = subscribe(*t, prefix + ".*.x", "", [&](Message m) { star.push_back(m.subject); });
  auto s2 = subscribe(*t, prefix + ".>", "", [&](Message m) { greater.push_back(m.subject); });
  for (auto s : {"", ".a.x", ".a.b.x", ".b.x", ".c"}) {
    ASSERT_FALSE(t->publish(message(prefix + s, "m")));
  }
  ASSERT_TRUE(test::run_until(io, [&] { return star.size() >= 2 && greater.size() >= 4; }));
  test::settle(io, std::chrono::milliseconds(100));
  EXPECT_EQ(star, (std::vector<std::string>{prefix + ".a.x", prefix + ".b.x"}));
  EXPECT_EQ(greater, (std::vector<std::string>{prefix + ".a.x", prefix + ".a.b.x", prefix + ".b.x",
                                               prefix + ".c"}));
}

TEST_F(Amqp, HeadersReplyToAndBinaryBytesTravel) {
  auto pub = open();
  auto sub = open();
  std::vector<Message> got;
  auto s = subscribe(*sub, prefix + ".h", "", [&](Message m) { got.push_back(m); });
  std::string bytes("bin\0ary\xff", 8);
  auto m = message(prefix + ".h", bytes, prefix + ".reply");
  m.headers["x-trace"] = "abc";
  m.headers["content-type"] = "application/msgpack";
  ASSERT_FALSE(pub->publish(m));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 1; }));
  EXPECT_EQ(got[0].data.view(), bytes);
  EXPECT_EQ(got[0].headers, m.headers);
  EXPECT_EQ(got[0].reply_to, prefix + ".reply");
}

TEST_F(Amqp, QueueGroupSplitsMessagesBetweenMembersExactlyOnce) {
  auto pub = open();
  auto a = open();
  auto b = open();
  std::map<std::string, int> seen;
  int got_a = 0, got_b = 0;
  std::string group = "group-" + prefix;
  auto sa = subscribe(*a, prefix + ".work", group, [&](Message m) {
    ++seen[std::string(m.data.view())];
    ++got_a;
  });
  auto sb = subscribe(*b, prefix + ".work", group, [&](Message m) {
    ++seen[std::string(m.data.view())];
    ++got_b;
  });
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i)
    ASSERT_FALSE(pub->publish(message(prefix + ".work", std::to_string(i))));
  ASSERT_TRUE(test::run_until(io, [&] { return got_a + got_b == kCount; }));
  test::settle(io, std::chrono::milliseconds(100));
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(kCount));
  for (const auto& [msg, n] : seen) EXPECT_EQ(n, 1) << msg;
  EXPECT_GT(got_a, 0);
  EXPECT_GT(got_b, 0);
  // The group's queue is a durable queue named after the group.
  EXPECT_NE(g_rabbit->ctl("rabbitmqctl", "list_queues name durable").find(group + "\ttrue"),
            std::string::npos);
}

TEST_F(Amqp, ActRoundTripAndNoRespondersThroughTheRuntime) {
  auto service = test::start_app(io, g_rabbit->url(), {"math"});
  auto client = test::start_app(io, g_rabbit->url());
  auto r =
      test::act(io, client->runtime(), {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 3);
  auto started = std::chrono::steady_clock::now();
  auto none = test::act(io, client->runtime(), {{"topic", prefix + "-nobody"}, {"timeout$", 5000}});
  EXPECT_EQ(none.ec, errc::no_responders);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(2));
  test::close(io, client->runtime());
  test::close(io, service->runtime());
}

TEST_F(Amqp, PublishDurableCompletesOnTheBrokersConfirm) {
  auto t = open();
  // A durable queue bound to the subject stores it: confirmed.
  std::unique_ptr<Subscription> holder;
  DurableSubscribe ds;
  ds.subject = prefix + ".stored";
  ds.durable = "store-" + prefix;
  ASSERT_FALSE(t->subscribe_durable(
      ds, [](std::shared_ptr<DurableDelivery> d) { d->ack(); }, holder));
  EXPECT_FALSE(publish_durable(*t, message(prefix + ".stored", "kept")));
  // No queue takes it: the broker returns it.
  EXPECT_EQ(publish_durable(*t, message(prefix + ".nowhere", "lost")), errc::no_responders);
  // No such exchange: the broker closes the confirm channel; the transport
  // goes on with a new one.
  DurablePublish missing;
  missing.target = "no-such-exchange-" + prefix;
  EXPECT_EQ(publish_durable(*t, message(prefix + ".stored", "x"), missing), errc::invalid_argument);
  EXPECT_FALSE(publish_durable(*t, message(prefix + ".stored", "again")));
}

TEST_F(Amqp, UnackedDeliveryIsRedeliveredAfterTheConsumerCloses) {
  auto pub = open();
  auto consumer = open();
  DurableSubscribe ds;
  ds.subject = prefix + ".jobs";
  ds.durable = "jobs-" + prefix;
  ds.max_in_flight = 4;
  std::vector<std::shared_ptr<DurableDelivery>> first;
  std::unique_ptr<Subscription> sub;
  ASSERT_FALSE(consumer->subscribe_durable(
      ds, [&](std::shared_ptr<DurableDelivery> d) { first.push_back(d); }, sub));
  DurablePublish id;
  id.message_id = "job-1";
  ASSERT_FALSE(publish_durable(*pub, message(prefix + ".jobs", "one"), id));
  ASSERT_FALSE(publish_durable(*pub, message(prefix + ".jobs", "two")));
  ASSERT_TRUE(test::run_until(io, [&] { return first.size() == 2; }));
  EXPECT_EQ(first[0]->delivery_count(), 1u);
  // source_id is the message-id property the publisher set, empty without one.
  EXPECT_EQ(first[0]->source_id(), "job-1");
  EXPECT_EQ(first[1]->source_id(), "");
  first[1]->ack();  // "two" is done; "one" is not
  test::settle(io, std::chrono::milliseconds(100));
  bool closed = false;
  consumer->close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));

  auto again = open();
  std::vector<std::shared_ptr<DurableDelivery>> second;
  std::unique_ptr<Subscription> sub2;
  ASSERT_FALSE(again->subscribe_durable(
      ds, [&](std::shared_ptr<DurableDelivery> d) { second.push_back(d); }, sub2));
  ASSERT_TRUE(test::run_until(io, [&] { return second.size() == 1; }));
  test::settle(io, std::chrono::milliseconds(200));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]->message().data.view(), "one");
  EXPECT_EQ(second[0]->delivery_count(), 2u);
  EXPECT_EQ(second[0]->source_id(), "job-1");  // a requeued message keeps its properties
  // nak: back to the queue, and here again.
  second[0]->nak();
  ASSERT_TRUE(test::run_until(io, [&] { return second.size() == 2; }));
  EXPECT_EQ(second[1]->source_id(), "job-1");
  second[1]->ack();
  test::settle(io, std::chrono::milliseconds(200));
  EXPECT_EQ(second.size(), 2u);
}

TEST_F(Amqp, BrokerSeesWhatAUserExpectsAndForeignPublishesArrive) {
  // Debian's python3 (python3-pika), not whichever python3 comes first.
  if (run("command -v amqp-get && command -v amqp-publish").find("amqp-publish") ==
          std::string::npos ||
      run("/usr/bin/python3 -c 'import pika; print(\"pika ok\")'").find("pika ok") ==
          std::string::npos) {
    GTEST_SKIP() << "amqp-tools or python3-pika missing (make deps)";
  }
  auto t = open();
  std::string queue = "check-" + prefix;
  std::string subject = prefix + ".out";
  std::string py =
      "import pika,sys,json\n"
      "c=pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n"
      "ch=c.channel()\n"
      "if sys.argv[2]=='prepare':\n"
      "  ch.queue_declare(queue=sys.argv[3],durable=True)\n"
      "  ch.queue_bind(queue=sys.argv[3],exchange='switchboard',routing_key=sys.argv[4])\n"
      "  print('ready')\n"
      "else:\n"
      "  m,p,b=ch.basic_get(queue=sys.argv[3],auto_ack=False)\n"
      "  print(json.dumps({'routing_key':m.routing_key,'exchange':m.exchange,'body':b.hex(),"
      "'headers':p.headers,'reply_to':p.reply_to,'message_id':p.message_id,"
      "'delivery_mode':p.delivery_mode}))\n"
      "  ch.basic_nack(m.delivery_tag,requeue=True)\n"
      "c.close()\n";
  std::string script = g_rabbit->dir() + "/check.py";
  { std::ofstream(script) << py; }
  std::string base = "/usr/bin/python3 " + script + " '" + g_rabbit->url() + "' ";
  ASSERT_NE(run(base + "prepare " + queue + " " + subject).find("ready"), std::string::npos);
  auto m = message(subject, std::string("hello\0world", 11), "inbox.1");
  m.headers["x-order"] = "42";
  DurablePublish id;
  id.message_id = "order-42";
  ASSERT_FALSE(publish_durable(*t, m, id));
  auto seen = Json::parse(run(base + "get " + queue));
  EXPECT_EQ(seen["routing_key"], subject);
  EXPECT_EQ(seen["exchange"], "switchboard");
  EXPECT_EQ(seen["body"], "68656c6c6f00776f726c64");
  EXPECT_EQ(seen["headers"], Json({{"x-order", "42"}}));
  EXPECT_EQ(seen["reply_to"], "inbox.1");
  EXPECT_EQ(seen["message_id"], "order-42");
  EXPECT_EQ(seen["delivery_mode"], 2);
  // amqp-tools reads the body as it is.
  EXPECT_EQ(run("amqp-get -u '" + g_rabbit->url() + "' -q " + queue),
            std::string("hello\0world", 11));

  // The other way: amqp-publish, read by a subscription.
  std::vector<Message> got;
  auto s = subscribe(*t, prefix + ".in.*", "", [&](Message msg) { got.push_back(msg); });
  run("amqp-publish -u '" + g_rabbit->url() + "' -e switchboard -r " + prefix +
      ".in.1 -H 'x-from: cli' -t " + prefix + ".answer -b 'from amqp-tools'");
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 1; }));
  EXPECT_EQ(got[0].subject, prefix + ".in.1");
  EXPECT_EQ(got[0].data.view(), "from amqp-tools");
  EXPECT_EQ(got[0].headers["x-from"], "cli");
  EXPECT_EQ(got[0].reply_to, prefix + ".answer");
}

TEST_F(Amqp, BadOptionsNameTheKey) {
  TransportConfig config;
  config.type = "amqp";
  config.url = g_rabbit->url();
  config.options = {{"exchange", "amq.topic"}};
  try {
    host.create_transport(config, TransportContext{io.get_executor()});
    FAIL() << "expected an OptionError";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("exchange"), std::string::npos) << e.what();
  }
  config.options = {{"reconnect", {{"wait", 1}}}};
  EXPECT_ANY_THROW(host.create_transport(config, TransportContext{io.get_executor()}));
}

// Last: restarts the shared broker.
TEST_F(Amqp, ReconnectsAfterABrokerRestartAndDeclaresTheTopologyAgain) {
  auto t = open({{"reconnect", {{"wait_ms", 200}, {"max_attempts", -1}}}});
  std::vector<std::string> plain, durable;
  auto s = subscribe(*t, prefix + ".r.>", "", [&](Message m) { plain.push_back(m.subject); });
  DurableSubscribe ds;
  ds.subject = prefix + ".d";
  ds.durable = "restart-" + prefix;
  std::unique_ptr<Subscription> ds_sub;
  ASSERT_FALSE(t->subscribe_durable(
      ds,
      [&](std::shared_ptr<DurableDelivery> d) {
        durable.emplace_back(d->message().data.view());
        d->ack();
      },
      ds_sub));
  ASSERT_FALSE(t->publish(message(prefix + ".r.1", "before")));
  ASSERT_TRUE(test::run_until(io, [&] { return plain.size() == 1; }));

  auto began = std::chrono::steady_clock::now();
  g_rabbit->stop();
  ASSERT_TRUE(test::run_until(io, [&] {
    return std::count(statuses.begin(), statuses.end(), TransportStatus::disconnected) == 1;
  }));
  EXPECT_EQ(t->publish(message(prefix + ".r.2", "while down")), errc::disconnected);
  g_rabbit->start();
  ASSERT_TRUE(test::run_until(
      io,
      [&] {
        return std::count(statuses.begin(), statuses.end(), TransportStatus::reconnected) == 1;
      },
      std::chrono::seconds(20)));
  std::printf("broker restart to reconnected: %lld ms\n",
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now() - began)
                                         .count()));
  // The exclusive queue of the plain subscription was re-declared and bound.
  auto other = open();
  ASSERT_FALSE(other->publish(message(prefix + ".r.3", "after")));
  ASSERT_TRUE(test::run_until(io, [&] { return plain.size() == 2; }));
  EXPECT_EQ(plain.back(), prefix + ".r.3");
  // The durable queue's consumer is back too.
  EXPECT_FALSE(publish_durable(*other, message(prefix + ".d", "durable after")));
  ASSERT_TRUE(test::run_until(io, [&] { return durable.size() == 1; }));
  EXPECT_EQ(durable[0], "durable after");
}

}  // namespace
}  // namespace switchboard
