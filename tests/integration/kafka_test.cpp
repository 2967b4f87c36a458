// The kafka transport against a real Apache Kafka broker (KRaft, one node;
// tests/support/kafka_broker.hpp) and, for faults the real broker cannot be
// made to show on cue, librdkafka's mock cluster. Topics are named after
// each test's own random prefix, so tests never see each other's traffic.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <thread>
#include <vector>

#include "kafka_settings.hpp"
#include "support/kafka_broker.hpp"
#include "support/test_support.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"
#include "switchboard/trace.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

// ---- the mapping rules, without a broker ----------------------------------

TEST(KafkaMapping, TopicTemplateAndWildcards) {
  kafka::KafkaSettings s;
  std::string topic, why;
  ASSERT_FALSE(kafka::topic_for(s, "orders.eu.new", topic, why));
  EXPECT_EQ(topic, "orders.eu.new");
  ASSERT_FALSE(kafka::topic_for(s, "a$b.c", topic, why));
  EXPECT_EQ(topic, "a_b.c");
  ASSERT_FALSE(kafka::topic_for(s, "_INBOX.node1.42", topic, why));
  EXPECT_EQ(topic, "_INBOX.node1");
  ASSERT_FALSE(kafka::topics_for(s, "_INBOX.node1.*", topic, why));
  EXPECT_EQ(topic, "_INBOX.node1");
  ASSERT_FALSE(kafka::topics_for(s, "orders.*.new", topic, why));
  EXPECT_EQ(topic, "^orders\\.[^.]+\\.new$");
  ASSERT_FALSE(kafka::topics_for(s, "orders.>", topic, why));
  EXPECT_EQ(topic, "^orders\\..+$");

  s.topic = kafka::TopicTemplate("events-{1}");
  ASSERT_FALSE(kafka::topic_for(s, "orders.eu.new", topic, why));
  EXPECT_EQ(topic, "events-orders");
  ASSERT_FALSE(kafka::topics_for(s, "orders.>", topic, why));
  EXPECT_EQ(topic, "events-orders");
  ASSERT_FALSE(kafka::topics_for(s, "*.eu", topic, why));
  EXPECT_EQ(topic, "^events-[^.]+$");
  s.topic = kafka::TopicTemplate("{1}.{3}");
  EXPECT_EQ(kafka::topic_for(s, "a.b", topic, why), errc::invalid_argument);
  EXPECT_NE(why.find("token 3"), std::string::npos) << why;
  EXPECT_THROW(kafka::TopicTemplate("a/{x}"), OptionError);
}

TEST(KafkaMapping, OptionsAreCheckedAndNamed) {
  TransportConfig c;
  c.url = "kafka://127.0.0.1:9092,127.0.0.1:9093";
  auto s = kafka::read_settings(c);
  EXPECT_EQ(s.brokers, "127.0.0.1:9092,127.0.0.1:9093");
  auto key_of = [](const Json& options) {
    TransportConfig bad;
    bad.options = options;
    try {
      kafka::read_settings(bad);
    } catch (const OptionError& e) {
      return e.key;
    }
    return std::string("(none)");
  };
  EXPECT_EQ(key_of({{"key", "token:0"}}), "key");
  EXPECT_EQ(key_of({{"acks", 1}}), "acks");  // idempotence needs acks: all
  EXPECT_EQ(key_of({{"librdkafka", {{"no.such.property", "1"}}}}), "librdkafka.no.such.property");
  EXPECT_EQ(key_of({{"librdkafka", {{"security.protocol", "carrier-pigeon"}}}}),
            "librdkafka.security.protocol");
  EXPECT_EQ(key_of({{"colour", "red"}}), "colour");
  EXPECT_EQ(key_of({{"acks", 1}, {"idempotence", false}, {"key", "header:k"}}), "(none)");
}

// ---- against the real broker ------------------------------------------------

class KafkaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bootstrap = test::KafkaBroker::shared_bootstrap();
    prefix = "kt." + random_id();
  }
  void TearDown() override {
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, 10s);
    }
  }

  std::shared_ptr<Transport> open(Json options = Json::object(), std::string url = "") {
    TransportConfig config;
    config.instance = "kafka-test";
    config.type = "kafka";
    config.url = url.empty() ? "kafka://" + bootstrap : url;
    config.options = std::move(options);
    auto t = host.create_transport(config, TransportContext{io.get_executor()});
    auto ec = t->connect();
    EXPECT_FALSE(ec) << ec.message();
    opened.push_back(t);
    return t;
  }

  static Message message(std::string subject, std::string data, std::string reply_to = "") {
    Message m;
    m.subject = std::move(subject);
    m.data = Payload(std::move(data));
    m.reply_to = std::move(reply_to);
    return m;
  }

  // Publishes durably and waits for the delivery report.
  DurableReceipt store(Transport& t, Message m, std::error_code* out = nullptr,
                       DurablePublish options = {}) {
    bool done = false;
    std::error_code ec;
    DurableReceipt receipt;
    t.publish_durable(std::move(m), options, [&](std::error_code e, const DurableReceipt& r) {
      ec = e;
      receipt = r;
      done = true;
    });
    EXPECT_TRUE(test::run_until(
        io, [&] { return done; }, 15s))
        << "no delivery report";
    if (out) {
      *out = ec;
    } else {
      EXPECT_FALSE(ec) << ec.message();
    }
    return receipt;
  }

  // A command's standard output (kcat, the independent client).
  static std::string run(const std::string& command) {
    std::string out;
    if (FILE* p = ::popen(command.c_str(), "r")) {
      char buf[4096];
      std::size_t n;
      while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
      ::pclose(p);
    }
    return out;
  }

  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  std::string bootstrap, prefix;
  std::vector<std::shared_ptr<Transport>> opened;
};

TEST_F(KafkaTest, PublishSubscribeCarriesHeadersAndKeyAsKcatSeesThem) {
  auto pub = open({{"key", "token:3"}});  // kt.<id>.orders: "orders"
  auto sub = open();
  std::vector<Message> got;
  std::unique_ptr<Subscription> s;
  ASSERT_FALSE(sub->subscribe(
      prefix + ".orders", "", [&](Message m) { got.push_back(m); }, s));
  auto m = message(prefix + ".orders", std::string("bin\0ary", 7));
  m.headers["trace-id"] = "t-1";
  ASSERT_FALSE(pub->publish(m));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() == 1; }, 20s));
  EXPECT_EQ(got[0].subject, prefix + ".orders");
  EXPECT_EQ(got[0].data.view(), std::string("bin\0ary", 7));
  EXPECT_EQ(got[0].headers["trace-id"], "t-1");
  EXPECT_TRUE(got[0].reply_to.empty());
  // An independent client reads the topic as a Kafka user would.
  auto seen = run("kcat -b " + bootstrap + " -C -t " + prefix + ".orders -o beginning -e -q " +
                  "-f 'key=%k headers=%h\\n' 2>/dev/null");
  EXPECT_NE(seen.find("key=orders"), std::string::npos) << seen;
  EXPECT_NE(seen.find("trace-id=t-1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("switchboard-subject=" + prefix + ".orders"), std::string::npos) << seen;
}

TEST_F(KafkaTest, WildcardSubscriptionFindsNewTopicsAndFiltersBySubject) {
  auto t = open();
  std::vector<std::string> got;
  std::unique_ptr<Subscription> s;
  ASSERT_FALSE(t->subscribe(
      prefix + ".*.x", "", [&](Message m) { got.push_back(m.subject); }, s));
  for (auto subject : {".a.x", ".a.b.x", ".b.y", ".b.x"}) {
    ASSERT_FALSE(t->publish(message(prefix + subject, "m")));
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 2; }, 20s));
  test::settle(io, 300ms);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<std::string>{prefix + ".a.x", prefix + ".b.x"}));
}

TEST_F(KafkaTest, QueueGroupSplitsAcrossTwoMembers) {
  auto pub = open();
  auto a = open();
  auto b = open();
  std::map<std::string, int> times;
  int got_a = 0, got_b = 0;
  std::unique_ptr<Subscription> sa, sb;
  ASSERT_FALSE(a->subscribe(
      prefix + ".work", "workers-" + prefix,
      [&](Message m) {
        ++times[std::string(m.data.view())];
        ++got_a;
      },
      sa));
  ASSERT_FALSE(b->subscribe(
      prefix + ".work", "workers-" + prefix,
      [&](Message m) {
        ++times[std::string(m.data.view())];
        ++got_b;
      },
      sb));
  // Both members in the group before the work comes: then the split is
  // the assignor's, not who joined first.
  test::settle(io, 3s);
  constexpr int kCount = 200;
  for (int i = 0; i < kCount; ++i)
    ASSERT_FALSE(pub->publish(message(prefix + ".work", std::to_string(i))));
  ASSERT_TRUE(test::run_until(
      io, [&] { return times.size() == kCount; }, 20s));
  test::settle(io, 300ms);
  for (const auto& [m, n] : times) EXPECT_EQ(n, 1) << m;
  EXPECT_GT(got_a, 0);
  EXPECT_GT(got_b, 0);
}

TEST_F(KafkaTest, ActRoundTripOverKafka) {
  auto url = "kafka://" + bootstrap;
  auto service = test::start_app(io, url, {"math"});
  auto client = test::start_app(io, url);
  // The first act may wait for the groups to form and the topics to be
  // created (docs/kafka.md), so it gets more time than the default.
  auto r = test::act(io, client->runtime(),
                     {{"topic", "math"}, {"cmd", "add"}, {"a", 2}, {"b", 3}, {"timeout$", 15000}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 5);
  // A second one, once everything is warm, is quick.
  auto start = std::chrono::steady_clock::now();
  r = test::act(io, client->runtime(), {{"topic", "math"}, {"cmd", "add"}, {"a", 40}, {"b", 2}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 42);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  test::close(io, client->runtime());
  test::close(io, service->runtime());
}

TEST_F(KafkaTest, PublishDurableCompletesWithTheOffset) {
  auto t = open({{"key", "subject"}});  // one key: one partition, offsets 0, 1, 2
  for (std::uint64_t i = 0; i < 3; ++i) {
    auto r = store(*t, message(prefix + ".stored", "m" + std::to_string(i)));
    EXPECT_EQ(r.target, prefix + ".stored");
    EXPECT_EQ(r.sequence, i);
  }
  std::error_code ec;
  store(*t, message("bad subject", "m"), &ec);
  EXPECT_EQ(ec, errc::invalid_argument);
}

// Many durable publishes at once: delivery reports come in batches and are
// run on the executor (here: this thread, which runs io), each completion
// exactly once; librdkafka was handed the payloads without a copy, so the
// bytes read back prove the transport kept them alive until the report.
TEST_F(KafkaTest, ManyDurablePublishesCompleteOnceEachOnTheExecutorWithTheirBytes) {
  auto t = open({{"key", "subject"}});  // one key: one partition, offsets 0..n-1
  constexpr std::uint64_t n = 2000;
  const auto runner = std::this_thread::get_id();
  std::vector<int> completions(n, 0);
  std::set<std::uint64_t> offsets;
  std::uint64_t done = 0, off_thread = 0, failed = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    // The only reference to the payload's bytes is the message handed over.
    t->publish_durable(message(prefix + ".batch", "payload-" + std::to_string(i)), {},
                       [&, i](std::error_code ec, const DurableReceipt& r) {
                         ++completions[i];
                         ++done;
                         if (std::this_thread::get_id() != runner) ++off_thread;
                         if (ec) ++failed;
                         offsets.insert(r.sequence);
                       });
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return done >= n; }, 30s));
  EXPECT_EQ(failed, 0u);
  EXPECT_EQ(off_thread, 0u);
  EXPECT_EQ(std::count(completions.begin(), completions.end(), 1), static_cast<long>(n));
  ASSERT_EQ(offsets.size(), n);
  EXPECT_EQ(*offsets.begin(), 0u);
  EXPECT_EQ(*offsets.rbegin(), n - 1);

  auto reader = open();
  DurableSubscribe options;
  options.subject = prefix + ".batch";
  options.durable = "batch-" + prefix;
  options.start = DurableStart::earliest;
  options.max_in_flight = n;
  std::vector<std::string> got(n);
  std::uint64_t read = 0;
  std::unique_ptr<Subscription> s;
  ASSERT_FALSE(reader->subscribe_durable(
      options,
      [&](std::shared_ptr<DurableDelivery> d) {
        if (d->sequence() < n) got[d->sequence()] = std::string(d->message().data.view());
        ++read;
        d->ack();
      },
      s));
  ASSERT_TRUE(test::run_until(
      io, [&] { return read >= n; }, 30s));
  for (std::uint64_t i = 0; i < n; ++i) EXPECT_EQ(got[i], "payload-" + std::to_string(i));
}

TEST_F(KafkaTest, SubscribeDurableRedeliversWhatWasNotAcked) {
  auto pub = open({{"key", "subject"}});
  for (int i = 0; i < 5; ++i) store(*pub, message(prefix + ".jobs", std::to_string(i)));
  DurableSubscribe options;
  options.subject = prefix + ".jobs";
  options.durable = "d-" + prefix;
  options.start = DurableStart::earliest;
  {
    auto reader = open();
    std::vector<std::string> got;
    std::unique_ptr<Subscription> s;
    ASSERT_FALSE(reader->subscribe_durable(
        options,
        [&](std::shared_ptr<DurableDelivery> d) {
          auto body = std::string(d->message().data.view());
          got.push_back(body);
          EXPECT_EQ(d->delivery_count(), 1u);
          if (body == "0" || body == "1" || body == "3") d->ack();  // 2 and 4 are not
        },
        s));
    ASSERT_TRUE(test::run_until(
        io, [&] { return got.size() == 5; }, 20s));
    bool closed = false;
    reader->close([&] { closed = true; });
    ASSERT_TRUE(test::run_until(
        io, [&] { return closed; }, 10s));
  }
  // A new reader of the same durable: everything from the first offset not
  // acknowledged (2) on, minus nothing: 3 was acked but comes after 2.
  auto again = open();
  std::vector<std::string> got;
  std::unique_ptr<Subscription> s;
  ASSERT_FALSE(again->subscribe_durable(
      options,
      [&](std::shared_ptr<DurableDelivery> d) {
        got.push_back(std::string(d->message().data.view()));
        d->ack();
      },
      s));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 3; }, 20s));
  test::settle(io, 500ms);
  EXPECT_EQ(got, (std::vector<std::string>{"2", "3", "4"}));
}

TEST_F(KafkaTest, NakAndAckWaitRedeliverInTheSameSubscription) {
  auto pub = open({{"key", "subject"}});
  for (int i = 0; i < 3; ++i) store(*pub, message(prefix + ".retry", std::to_string(i)));
  auto reader = open();
  DurableSubscribe options;
  options.subject = prefix + ".retry";
  options.durable = "r-" + prefix;
  options.ack_wait = 1500ms;
  std::vector<std::pair<std::string, std::uint32_t>> got;
  std::unique_ptr<Subscription> s;
  ASSERT_FALSE(reader->subscribe_durable(
      options,
      [&](std::shared_ptr<DurableDelivery> d) {
        auto body = std::string(d->message().data.view());
        got.emplace_back(body, d->delivery_count());
        if (body == "0" && d->delivery_count() == 1) return d->nak(0ms);
        if (body == "1" && d->delivery_count() == 1) return;  // ack_wait brings it back
        d->ack();
      },
      s));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got.size() >= 5; }, 20s));
  test::settle(io, 500ms);
  std::multiset<std::pair<std::string, std::uint32_t>> seen(got.begin(), got.end());
  EXPECT_EQ(seen, (std::multiset<std::pair<std::string, std::uint32_t>>{
                      {"0", 1}, {"0", 2}, {"1", 1}, {"1", 2}, {"2", 1}}));
}

// The same offset on two partitions is two messages: source_id names the
// partition too, and stays the same when the message comes again (nak in
// the same subscription, or a new consumer after no commit).
TEST_F(KafkaTest, SourceIdIsUniqueAcrossPartitionsAndStableOnRedelivery) {
  const std::string topic = prefix + ".ids";
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  ASSERT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), err, sizeof err),
            RD_KAFKA_CONF_OK)
      << err;
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(rk, nullptr) << err;
  {
    // Two partitions, through the admin API.
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), 2, 1, err, sizeof err);
    ASSERT_NE(nt, nullptr) << err;
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 20000);
    ASSERT_NE(ev, nullptr) << "no answer to CreateTopics";
    std::size_t n = 0;
    const rd_kafka_topic_result_t** results =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    ASSERT_EQ(n, 1u);
    EXPECT_EQ(rd_kafka_topic_result_error(results[0]), RD_KAFKA_RESP_ERR_NO_ERROR)
        << rd_kafka_topic_result_error_string(results[0]);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy(nt);
  }
  // Offset 0 of partition 0 and offset 0 of partition 1.
  for (std::int32_t partition : {0, 1}) {
    std::string body = "p" + std::to_string(partition);
    ASSERT_EQ(
        rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_VALUE(body.data(), body.size()),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  EXPECT_EQ(rd_kafka_flush(rk, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_destroy(rk);

  DurableSubscribe options;
  options.subject = topic;
  options.durable = "ids-" + prefix;
  options.start = DurableStart::earliest;
  struct Seen {
    std::string body, id;
    std::uint64_t offset;
    std::uint32_t count;
  };
  auto seen_of = [](const DurableDelivery& d) {
    return Seen{std::string(d.message().data.view()), d.source_id(), d.sequence(),
                d.delivery_count()};
  };
  // A consumer of the group: each delivery goes into `got`, then to `settle`.
  auto consume = [&](std::vector<Seen>& got, std::unique_ptr<Subscription>& s,
                     std::function<void(const Seen&, DurableDelivery&)> settle) {
    auto reader = open();
    EXPECT_FALSE(reader->subscribe_durable(
        options,
        [&got, &seen_of, settle](std::shared_ptr<DurableDelivery> d) {
          got.push_back(seen_of(*d));
          settle(got.back(), *d);
        },
        s));
    return reader;
  };
  std::map<std::string, std::string> first_id;  // by body
  {
    std::vector<Seen> got;
    std::unique_ptr<Subscription> s;
    // p0: nak once, then ack; p1: never settled here.
    auto reader = consume(got, s, [](const Seen& seen, DurableDelivery& d) {
      if (seen.body == "p0") seen.count == 1 ? d.nak(0ms) : d.ack();
    });
    ASSERT_TRUE(test::run_until(
        io, [&] { return got.size() >= 3; }, 30s));
    test::settle(io, 300ms);
    ASSERT_EQ(got.size(), 3u);
    for (const auto& g : got) {
      EXPECT_EQ(g.offset, 0u) << g.body;
      if (g.count == 1) first_id[g.body] = g.id;
    }
    EXPECT_EQ(first_id["p0"], topic + ":0:0");
    EXPECT_EQ(first_id["p1"], topic + ":1:0");
    auto again = std::find_if(got.begin(), got.end(), [](const Seen& g) { return g.count == 2; });
    ASSERT_NE(again, got.end());
    EXPECT_EQ(again->body, "p0");
    EXPECT_EQ(again->id, first_id["p0"]);  // nak: the same id
    bool closed = false;
    reader->close([&] { closed = true; });
    ASSERT_TRUE(test::run_until(
        io, [&] { return closed; }, 10s));
  }
  // A new consumer of the group: p1 was never acknowledged, so never
  // committed, and comes again with its id.
  std::vector<Seen> got;
  std::unique_ptr<Subscription> s;
  auto reader = consume(got, s, [](const Seen&, DurableDelivery& d) { d.ack(); });
  ASSERT_TRUE(test::run_until(
      io, [&] { return !got.empty(); }, 30s));
  test::settle(io, 500ms);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "p1");
  EXPECT_EQ(got[0].id, first_id["p1"]);
}

TEST_F(KafkaTest, StartPolicies) {
  auto pub = open({{"key", "subject"}});
  auto subject = prefix + ".history";
  store(*pub, message(subject, "old-1"));
  store(*pub, message(subject, "old-2"));
  std::this_thread::sleep_for(50ms);
  auto middle = std::chrono::system_clock::now();
  std::this_thread::sleep_for(50ms);
  store(*pub, message(subject, "old-3"));

  auto read = [&](DurableStart start, const std::string& name) {
    auto reader = open();
    DurableSubscribe options;
    options.subject = subject;
    options.durable = name + "-" + prefix;
    options.start = start;
    options.start_time = middle;
    auto got = std::make_shared<std::vector<std::string>>();
    std::unique_ptr<Subscription> s;
    EXPECT_FALSE(reader->subscribe_durable(
        options,
        [got](std::shared_ptr<DurableDelivery> d) {
          got->push_back(std::string(d->message().data.view()));
          d->ack();
        },
        s));
    return std::make_pair(got, std::move(s));
  };
  auto earliest = read(DurableStart::earliest, "e");
  auto by_time = read(DurableStart::time, "t");
  auto latest = read(DurableStart::latest, "l");
  ASSERT_TRUE(test::run_until(
      io, [&] { return earliest.first->size() == 3 && by_time.first->size() == 1; }, 20s));
  test::settle(io, 2s);  // the latest reader has joined by now
  store(*pub, message(subject, "new"));
  ASSERT_TRUE(test::run_until(
      io,
      [&] {
        return latest.first->size() == 1 && earliest.first->size() == 4 &&
               by_time.first->size() == 2;
      },
      20s));
  test::settle(io, 300ms);
  EXPECT_EQ(*earliest.first, (std::vector<std::string>{"old-1", "old-2", "old-3", "new"}));
  EXPECT_EQ(*by_time.first, (std::vector<std::string>{"old-3", "new"}));
  EXPECT_EQ(*latest.first, (std::vector<std::string>{"new"}));
}

// ---- librdkafka's mock cluster: the broker goes down ----------------------------

TEST_F(KafkaTest, MockClusterBrokerDownFailsClearlyAndLosesNothingAcknowledged) {
  char err[256];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);  // the holder connects nowhere
  rd_kafka_t* holder = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  ASSERT_NE(holder, nullptr) << err;
  rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(holder, 1);
  ASSERT_NE(cluster, nullptr);
  std::string brokers = rd_kafka_mock_cluster_bootstraps(cluster);
  std::string topic = prefix + ".mock";
  ASSERT_FALSE(rd_kafka_mock_topic_create(cluster, topic.c_str(), 1, 1));
  {
    // Reconnect attempts at most 500 ms apart (librdkafka's default backs
    // off up to 10 s), passed through as a raw librdkafka property.
    auto t =
        open({{"delivery_timeout_ms", 2500}, {"librdkafka", {{"reconnect.backoff.max.ms", 500}}}},
             "kafka://" + brokers);
    std::vector<std::string> acknowledged;
    auto put = [&](const std::string& body) {
      std::error_code ec;
      store(*t, message(topic, body), &ec);
      if (!ec) acknowledged.push_back(body);
      return ec;
    };
    ASSERT_FALSE(put("before"));

    // Down for a moment: the publish waits and succeeds once it is back.
    rd_kafka_mock_broker_set_down(cluster, 1);
    bool done = false;
    std::error_code ec;
    t->publish_durable(message(topic, "across"), {}, [&](std::error_code e, const DurableReceipt&) {
      ec = e;
      done = true;
    });
    test::settle(io, 500ms);
    EXPECT_FALSE(done);
    rd_kafka_mock_broker_set_up(cluster, 1);
    ASSERT_TRUE(test::run_until(
        io, [&] { return done; }, 10s));
    EXPECT_FALSE(ec) << ec.message();
    if (!ec) acknowledged.push_back("across");

    // Down for longer than delivery_timeout_ms: a clear timeout.
    rd_kafka_mock_broker_set_down(cluster, 1);
    auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(put("lost"), errc::timeout);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 6s);
    rd_kafka_mock_broker_set_up(cluster, 1);
    // At-least-once is the caller retrying until the broker confirms.
    std::error_code after = put("after");
    for (int i = 0; i < 3 && after; ++i) after = put("after");
    ASSERT_FALSE(after) << after.message();

    // Every acknowledged message is in the log.
    auto reader = open({}, "kafka://" + brokers);
    DurableSubscribe options;
    options.subject = topic;
    options.durable = "mock-" + prefix;
    std::set<std::string> stored;
    std::unique_ptr<Subscription> s;
    ASSERT_FALSE(reader->subscribe_durable(
        options,
        [&](std::shared_ptr<DurableDelivery> d) {
          stored.insert(std::string(d->message().data.view()));
          d->ack();
        },
        s));
    ASSERT_TRUE(test::run_until(
        io, [&] { return stored.size() >= acknowledged.size(); }, 20s));
    for (const auto& body : acknowledged) EXPECT_TRUE(stored.count(body)) << body;
    TearDown();
    opened.clear();
  }
  rd_kafka_mock_cluster_destroy(cluster);
  rd_kafka_destroy(holder);
}

}  // namespace
}  // namespace switchboard
