// Bridges that lose nothing (issue 5, item 6), run as a user runs them:
// `switchboard run --config bridge.yaml` in a process of its own, fed 10,000
// numbered messages on a durable source, and read at the destination by a
// durable reader in this process (so nothing is missed while the bridge is
// down).
//
// - kill -9 of the bridge in the middle of the stream, then a restart
//   (JetStream -> Kafka, Kafka -> JetStream, RabbitMQ -> Kafka);
// - the destination broker restarted in the middle of the stream
//   (JetStream -> RabbitMQ, JetStream -> Kafka).
//
// Each test fails when an id is missing at the destination; duplicates
// (the price of at-least-once) are counted and printed. Kafka -> JetStream
// also fails on any duplicate: the bridge's message ids
// ("<bridge>:<topic>:<partition>:<offset>") let the destination stream drop
// the copies a redelivery makes.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>

#include "integration/bridge_process.hpp"
#include "integration/bridge_stream.hpp"
#include "support/kafka_broker.hpp"
#include "support/nats_server.hpp"
#include "support/rabbitmq_server.hpp"
#include "support/test_support.hpp"
#include "switchboard/config.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

constexpr int kMessages = 10000;
// The bridge is killed (or the destination broker stopped) once this many
// distinct ids reached the destination.
constexpr std::size_t kInterruptAt = 2000;

std::string unique(const std::string& stem) {
  return stem + std::to_string(::getpid()) + "x" +
         std::to_string(std::chrono::steady_clock::now().time_since_epoch().count() % 1000000);
}

class BridgeCrash : public ::testing::Test {
 protected:
  ~BridgeCrash() override {
    for (auto& s : subscriptions) s->unsubscribe();
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(io, [&] { return closed; });
    }
  }

  std::shared_ptr<Transport> open(const std::string& url, Json options = Json::object()) {
    TransportConfig tc;
    tc.instance = "test";
    tc.url = url;
    tc.type = transport_type_for_url(url);
    tc.options = std::move(options);
    auto t = host.create_transport(tc, TransportContext{strand});
    EXPECT_FALSE(t->connect()) << url;
    opened.push_back(t);
    return t;
  }

  // duplicate_window_ms 0: the server's default (2 minutes).
  static Json jetstream(const std::string& stream, const std::string& subjects,
                        int duplicate_window_ms = 0) {
    Json s{{"name", stream}, {"subjects", Json::array({subjects})}, {"storage", "file"}};
    if (duplicate_window_ms > 0) s["duplicate_window_ms"] = duplicate_window_ms;
    return Json{{"jetstream", {{"streams", Json::array({s})}}}};
  }

  // A durable reader of the destination: every message counted in `tally`,
  // then acked.
  void read_durable(Transport& t, const std::string& subject, const std::string& durable,
                    test::Tally& tally, const std::string& target = {}) {
    DurableSubscribe d;
    d.subject = subject;
    d.durable = durable;
    d.target = target;
    d.start = DurableStart::earliest;
    d.max_in_flight = 1024;
    std::unique_ptr<Subscription> sub;
    ASSERT_FALSE(t.subscribe_durable(
        d,
        [&tally](std::shared_ptr<DurableDelivery> del) {
          tally.add(del->message().data.view());
          del->ack();
        },
        sub))
        << subject;
    subscriptions.push_back(std::move(sub));
  }

  // Produces one message so that the topic exists before anybody reads it.
  void create_topic(const std::string& kafka_url, const std::string& topic) {
    auto k = open(kafka_url);
    bool done = false;
    std::error_code result;
    k->publish_durable(Message{topic, Payload("warm-up"), {}, ""}, {},
                       [&](std::error_code ec, const DurableReceipt&) {
                         result = ec;
                         done = true;
                       });
    ASSERT_TRUE(test::run_until(
        io, [&] { return done; }, 30s))
        << "creating " << topic;
    ASSERT_FALSE(result) << result.message();
  }

  // Waits (bounded: a hang guard, not a speed check) for every id.
  void expect_all_arrive(const test::Tally& tally, test::BridgeProcess& bridge,
                         std::chrono::seconds limit = 60s) {
    bool complete = test::run_until(
        io, [&] { return tally.complete(); }, limit);
    test::settle(io, 1s);  // copies, if any, come after
    EXPECT_TRUE(complete) << "lost: " << tally.missing() << "\nbridge log (tail):\n"
                          << tail(bridge.log());
  }

  static std::string tail(const std::string& text) {
    return text.size() > 6000 ? text.substr(text.size() - 6000) : text;
  }

  // The bridge's counters as an operator sees them: `switchboard bridges
  // status` against the admin address the config named, once its lag gauge
  // came back to 0 (everything at the source was handed out).
  static void print_status(const char* test, const std::string& admin, const std::string& bridge) {
    const std::string caught_up = "switchboard_bridge_lag{bridge=\"" + bridge + "\"} 0\n";
    std::string metrics;
    auto deadline = std::chrono::steady_clock::now() + 15s;
    do {
      metrics = test::run_cli("bridges status --prometheus --admin " + admin);
      if (metrics.find(caught_up) != std::string::npos) break;
      std::this_thread::sleep_for(200ms);
    } while (std::chrono::steady_clock::now() < deadline);
    EXPECT_NE(metrics.find(caught_up), std::string::npos) << metrics;
    int status = -1;
    std::string table = test::run_cli("bridges status --admin " + admin, &status);
    std::printf("[%s] switchboard bridges status:\n%s", test, table.c_str());
    EXPECT_EQ(status, 0) << table;
    EXPECT_NE(table.find(bridge), std::string::npos) << table;
  }

  static void report(const char* test, const test::Tally& tally, std::size_t at_interrupt,
                     const test::Feeder& feeder) {
    std::printf(
        "[%s] %d messages: %zu distinct at the destination, %zu received, %zu duplicates; "
        "%zu had reached the reader at the interruption; feeder re-sent %d\n",
        test, kMessages, tally.distinct(), tally.received() - tally.foreign(), tally.duplicates(),
        at_interrupt, feeder.retried());
    std::fflush(stdout);
  }

  // One of the bridge's counters (`switchboard_bridge_<name>_total`), from
  // its /metrics on the admin address (-1 while it does not answer).
  static long long counter_of(const std::string& admin, const std::string& bridge,
                              const std::string& name = "relayed") {
    asio::io_context ctx;
    asio::ip::tcp::socket socket(ctx);
    auto colon = admin.rfind(':');
    boost::system::error_code ec;
    socket.connect({asio::ip::make_address(admin.substr(0, colon)),
                    static_cast<unsigned short>(std::stoi(admin.substr(colon + 1)))},
                   ec);
    if (ec) return -1;
    std::string request = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
    asio::write(socket, asio::buffer(request), ec);
    std::string response;
    asio::read(socket, asio::dynamic_buffer(response), ec);  // until the server closes
    const std::string metric = "switchboard_bridge_" + name + "_total{bridge=\"" + bridge + "\"} ";
    auto at = response.find(metric);
    return at == std::string::npos ? -1 : std::atoll(response.c_str() + at + metric.size());
  }

  // The scenario of every test here, once the source, the bridge and the
  // destination's reader exist: half of the messages are fed; once the
  // bridge relayed kInterruptAt of them, `interrupt` (kill -9 of the
  // bridge, or the destination broker stopped); the other half is fed while
  // it is down; `resume`; then every id must arrive.
  void interrupt_in_the_middle(const char* name, test::BridgeProcess& bridge,
                               const std::shared_ptr<test::Feeder>& feeder,
                               const test::Tally& tally, const std::string& admin,
                               const std::string& bridge_name,
                               const std::function<void()>& interrupt,
                               const std::function<void()>& resume,
                               std::chrono::seconds limit = 60s) {
    // Phase times are printed for the reader, never asserted.
    auto began = std::chrono::steady_clock::now();
    auto seconds = [&] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    };
    feeder->pump(kMessages / 2);
    long long relayed = 0;
    ASSERT_TRUE(test::run_until(
        io,
        [&] {
          relayed = counter_of(admin, bridge_name);
          return relayed >= static_cast<long long>(kInterruptAt);
        },
        60s))
        << relayed << " relayed; bridge log:\n"
        << tail(bridge.log());
    interrupt();
    std::size_t at_interrupt = tally.distinct();
    std::printf(
        "[%s] interrupted at %.1f s: the bridge had relayed %lld, the reader had %zu, %d fed\n",
        name, seconds(), relayed, at_interrupt, feeder->confirmed());
    // The source fills up while the bridge (or its destination) is down.
    feeder->pump(kMessages);
    ASSERT_TRUE(test::run_until(
        io, [&] { return feeder->done(); }, 60s))
        << feeder->confirmed();
    resume();
    std::printf("[%s] resumed at %.1f s\n", name, seconds());
    expect_all_arrive(tally, bridge, limit);
    std::printf("[%s] all there at %.1f s\n", name, seconds());
    report(name, tally, at_interrupt, *feeder);
    print_status(name, admin, bridge_name);
    // Counted by the restarted bridge (or the one that was not killed).
    dropped_by_destination = counter_of(admin, bridge_name, "duplicates");
    std::printf("[%s] publishes the destination recognised as duplicates: %lld\n", name,
                dropped_by_destination);
    EXPECT_TRUE(bridge.running()) << tail(bridge.log());
    EXPECT_EQ(bridge.terminate(), 0) << tail(bridge.log());
  }

  void kill_in_the_middle(const char* name, test::BridgeProcess& bridge,
                          const std::shared_ptr<test::Feeder>& feeder, const test::Tally& tally,
                          const std::string& admin, const std::string& bridge_name) {
    interrupt_in_the_middle(
        name, bridge, feeder, tally, admin, bridge_name, [&] { bridge.kill(); },
        [&] { bridge.start(); });
  }

  asio::io_context io;
  asio::strand<asio::io_context::executor_type> strand = asio::make_strand(io);
  PluginHost host{{test::plugin_dir()}};
  std::vector<std::shared_ptr<Transport>> opened;
  std::vector<std::unique_ptr<Subscription>> subscriptions;
  long long dropped_by_destination = -1;  // the bridge's duplicates counter at the end
};

// The config's first lines; `admin` serves /metrics (the `admin:` key, no
// command-line flag).
std::string header(const std::string& runtime_transport, const std::string& admin) {
  return "plugin_path: ['" + test::plugin_dir() + "']\nlog: {level: info}\nadmin: '" + admin +
         "'\nruntime: {transport: " + runtime_transport + "}\n";
}

// `  js: ...`: the NATS instance with JetStream and a stream `stream`
// holding `prefix.>`.
// duplicate_window_ms 0: the server's default (2 minutes).
std::string js_instance(const test::NatsServer& nats, const std::string& stream,
                        const std::string& prefix, int duplicate_window_ms = 0) {
  std::string window = duplicate_window_ms > 0
                           ? ", duplicate_window_ms: " + std::to_string(duplicate_window_ms)
                           : std::string();
  return "  js: {url: '" + nats.url() + "', jetstream: {streams: [{name: " + stream +
         ", subjects: ['" + prefix + ".>']" + window + "}]}}\n";
}

std::string admin_address() {
  return "127.0.0.1:" + std::to_string(test::free_loopback_port());
}

std::string kafka_url() {
  return "kafka://" + test::KafkaBroker::shared_bootstrap();
}

// ---- kill -9 of the bridge ------------------------------------------------------

TEST_F(BridgeCrash, JetStreamToKafkaKill9) {
  test::NatsServer nats(test::NatsServer::jetstream);
  std::string admin = admin_address();
  std::string stream = unique("CRJS"), prefix = unique("crjs"), topic = unique("cr-js2k-");
  create_topic(kafka_url(), topic);
  test::BridgeProcess bridge(header("js", admin) + "transports:\n" +
                             js_instance(nats, stream, prefix) +
                             test::instance_yaml("events", kafka_url()) +
                             "bridges:\n"
                             "  - name: js2k\n"
                             "    from: {transport: js, subject: '" +
                             prefix +
                             ".>', durable: bridge, ack_wait_ms: 3000}\n"
                             "    to: {transport: events, topic: '" +
                             topic + "'}\n");
  bridge.start();
  auto js = open(nats.url(), jetstream(stream, prefix + ".>"));
  auto k = open(kafka_url());
  test::Tally tally("c", kMessages);
  read_durable(*k, topic, unique("reader"), tally);
  auto feeder = std::make_shared<test::Feeder>(
      *js, "c", kMessages, [&](int i) { return prefix + ".o" + std::to_string(i % 8); });
  kill_in_the_middle("JetStreamToKafkaKill9", bridge, feeder, tally, admin, "js2k");
}

TEST_F(BridgeCrash, KafkaToJetStreamKill9) {
  test::NatsServer nats(test::NatsServer::jetstream);
  std::string admin = admin_address();
  std::string stream = unique("CRDST"), prefix = unique("crk"), topic = unique("cr-k2js-");
  create_topic(kafka_url(), topic);
  // Static group membership (group.instance.id, KIP-345): the restarted
  // bridge takes the dead one's place, and its partitions, at once instead
  // of after a session timeout and two rebalances (which on this loaded
  // machine stalled the group for half a minute).
  // The destination remembers message ids for 10 minutes, longer than the
  // whole test: every copy a redelivery makes is recognised.
  constexpr int kWindowMs = 600000;
  test::BridgeProcess bridge(header("js", admin) + "transports:\n" +
                             js_instance(nats, stream, prefix, kWindowMs) + "  events: {url: '" +
                             kafka_url() + "', consumer: {group.instance.id: " + topic +
                             "-bridge}}\n"
                             "bridges:\n"
                             "  - name: k2js\n"
                             "    from: {transport: events, topic: '" +
                             topic +
                             "', durable: bridge, ack_wait_ms: 3000}\n"
                             "    to: {transport: js, subject: '" +
                             prefix + ".out'}\n");
  bridge.start();
  auto js = open(nats.url(), jetstream(stream, prefix + ".>", kWindowMs));
  auto k = open(kafka_url());
  test::Tally tally("c", kMessages);
  read_durable(*js, prefix + ".>", "reader", tally);
  auto feeder = std::make_shared<test::Feeder>(*k, "c", kMessages, [&](int) { return topic; });
  kill_in_the_middle("KafkaToJetStreamKill9", bridge, feeder, tally, admin, "k2js");
  // The restarted bridge reads again what the dead one relayed and had not
  // committed; the stream drops those copies by message id. Only a message
  // the feeder stored twice (a publish it retried) may arrive twice: a new
  // Kafka offset is a new id.
  EXPECT_LE(tally.duplicates(), static_cast<std::size_t>(feeder->retried()))
      << "copies at the destination; the destination recognised " << dropped_by_destination;
  if (dropped_by_destination == 0 && tally.duplicates() == 0) {
    std::printf("[KafkaToJetStreamKill9] the kill made no redelivery: nothing to de-duplicate\n");
  }
}

TEST_F(BridgeCrash, RabbitMqToKafkaKill9) {
  test::RabbitMqServer rabbit;
  std::string admin = admin_address();
  std::string key = unique("crr"), topic = unique("cr-r2k-");
  create_topic(kafka_url(), topic);
  test::BridgeProcess bridge(header("mq", admin) + "transports:\n  mq: {url: '" + rabbit.url() +
                             "'}\n" + test::instance_yaml("events", kafka_url()) +
                             "bridges:\n"
                             "  - name: r2k\n"
                             "    from: {transport: mq, routing_key: '" +
                             key + ".*', durable: " + key +
                             "-bridge}\n"
                             "    to: {transport: events, topic: '" +
                             topic + "'}\n");
  // The bridge declares its durable queue: messages sent before would find
  // no queue.
  bridge.start();
  auto mq = open(rabbit.url());
  auto k = open(kafka_url());
  test::Tally tally("c", kMessages);
  read_durable(*k, topic, unique("reader"), tally);
  auto feeder = std::make_shared<test::Feeder>(
      *mq, "c", kMessages, [&](int i) { return key + ".r" + std::to_string(i % 8); });
  kill_in_the_middle("RabbitMqToKafkaKill9", bridge, feeder, tally, admin, "r2k");
}

// ---- the destination broker restarted ----------------------------------------

TEST_F(BridgeCrash, JetStreamToRabbitMqDestinationRestart) {
  test::NatsServer nats(test::NatsServer::jetstream);
  test::RabbitMqServer rabbit;
  std::string admin = admin_address();
  std::string stream = unique("CRJR"), prefix = unique("crjr"), key = unique("crjrout");
  test::BridgeProcess bridge(
      header("js", admin) + "transports:\n" + js_instance(nats, stream, prefix) +
      test::instance_yaml("mq", rabbit.url()) +
      "bridges:\n"
      "  - name: js2r\n"
      "    from: {transport: js, subject: '" +
      prefix +
      ".>', durable: bridge, ack_wait_ms: 3000}\n"
      "    to: {transport: mq, routing_key: '" +
      key +
      ".{2}'}\n"
      "    retry: {max_retries: 3, backoff_ms: 200, max_backoff_ms: 2000}\n");
  auto mq = open(rabbit.url());
  test::Tally tally("c", kMessages);
  // The reader's durable queue exists before the bridge sends anything.
  read_durable(*mq, key + ".*", key + "-reader", tally);
  bridge.start();
  auto js = open(nats.url(), jetstream(stream, prefix + ".>"));
  auto feeder = std::make_shared<test::Feeder>(
      *js, "c", kMessages, [&](int i) { return prefix + ".o" + std::to_string(i % 8); });
  interrupt_in_the_middle(
      "JetStreamToRabbitMqDestinationRestart", bridge, feeder, tally, admin, "js2r",
      [&] { rabbit.stop(); }, [&] { rabbit.start(); });
}

TEST_F(BridgeCrash, JetStreamToKafkaDestinationRestart) {
  test::NatsServer nats(test::NatsServer::jetstream);
  test::KafkaBroker kafka;  // our own: it is restarted
  std::string admin = admin_address();
  std::string stream = unique("CRJK"), prefix = unique("crjk"), topic = unique("cr-rs-");
  create_topic(kafka.url(), topic);
  test::BridgeProcess bridge(header("js", admin) + "transports:\n" +
                             js_instance(nats, stream, prefix) + "  events: {url: '" + kafka.url() +
                             "', delivery_timeout_ms: 60000}\n"
                             "bridges:\n"
                             "  - name: js2k\n"
                             "    from: {transport: js, subject: '" +
                             prefix +
                             ".>', durable: bridge, ack_wait_ms: 3000}\n"
                             "    to: {transport: events, topic: '" +
                             topic + "'}\n");
  bridge.start();
  auto js = open(nats.url(), jetstream(stream, prefix + ".>"));
  auto k = open(kafka.url());
  test::Tally tally("c", kMessages);
  read_durable(*k, topic, unique("reader"), tally);
  auto feeder = std::make_shared<test::Feeder>(
      *js, "c", kMessages, [&](int i) { return prefix + ".o" + std::to_string(i % 8); });
  // kill -9 of the broker, the rest fed, then the same broker again (same
  // port and log dir).
  interrupt_in_the_middle(
      "JetStreamToKafkaDestinationRestart", bridge, feeder, tally, admin, "js2k",
      [&] { kafka.kill(); }, [&] { kafka.restart(); }, 90s);
}

}  // namespace
}  // namespace switchboard
