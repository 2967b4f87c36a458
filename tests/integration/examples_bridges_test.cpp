// The ready-made bridge configs in examples/bridges/, run as a user runs
// them (`switchboard run FILE`) with only the broker addresses changed to
// this test's servers. Plain NATS publishers on one side (cnats, each
// publish answered by JetStream's PubAck, as the example's stream stores the
// subjects), and on the other side independent clients: kcat for Kafka,
// python3-pika for RabbitMQ, checking bytes, keys and headers.
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "support/child_process.hpp"
#include "support/kafka_broker.hpp"
#include "support/nats_server.hpp"
#include "support/rabbitmq_server.hpp"
#include "switchboard/json.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The example's text with `from` replaced by `to` (each must be there).
void replace_all(std::string& text, const std::string& from, const std::string& to) {
  std::size_t at = text.find(from);
  ASSERT_NE(at, std::string::npos) << "the example no longer names " << from;
  for (; at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

class ExamplesBridges : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/switchboard-examples-XXXXXX";
    ASSERT_TRUE(::mkdtemp(dir));
    dir_ = dir;
  }
  void TearDown() override {
    bridge_.reset();
    if (nc_) natsConnection_Destroy(nc_);
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Starts `switchboard run` on the example, its addresses rewritten.
  void run_example(const std::string& name,
                   const std::vector<std::pair<std::string, std::string>>& addresses) {
    std::string text = read_file(std::string(SWITCHBOARD_SOURCE_DIR) + "/examples/bridges/" + name);
    ASSERT_FALSE(text.empty()) << name;
    for (auto& [from, to] : addresses) replace_all(text, from, to);
    std::string config = dir_ + "/" + name;
    std::ofstream(config) << text;
    bridge_ = std::make_unique<test::ChildProcess>(
        std::vector<std::string>{SWITCHBOARD_CLI, "run", config}, dir_ + "/bridge.log");
  }

  // Publishes on core NATS and waits for JetStream's PubAck, retrying while
  // the bridge has not declared its stream yet (no responders).
  void publish_stored(const std::string& url, const std::string& subject, const std::string& data,
                      const std::string& header_value) {
    if (!nc_) {
      ASSERT_EQ(natsConnection_ConnectTo(&nc_, url.c_str()), NATS_OK);
    }
    auto deadline = std::chrono::steady_clock::now() + 60s;
    for (;;) {
      natsMsg* msg = nullptr;
      ASSERT_EQ(natsMsg_Create(&msg, subject.c_str(), nullptr, data.data(),
                               static_cast<int>(data.size())),
                NATS_OK);
      natsMsgHeader_Set(msg, "x-order", header_value.c_str());
      natsMsg* reply = nullptr;
      natsStatus s = natsConnection_RequestMsg(&reply, nc_, msg, 2000);
      natsMsg_Destroy(msg);
      std::string answer = reply
                               ? std::string(natsMsg_GetData(reply),
                                             static_cast<std::size_t>(natsMsg_GetDataLength(reply)))
                               : "";
      if (reply) natsMsg_Destroy(reply);
      if (s == NATS_OK && answer.find("\"stream\"") != std::string::npos) return;
      ASSERT_TRUE(bridge_->running()) << "the bridge exited:\n" << bridge_->log();
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "no stream stored " << subject << " in 60 s (last answer '" << answer
          << "'); bridge log:\n"
          << bridge_->log();
      std::this_thread::sleep_for(200ms);
    }
  }

  std::string dir_;
  std::unique_ptr<test::ChildProcess> bridge_;
  natsConnection* nc_ = nullptr;
};

TEST_F(ExamplesBridges, NatsToKafkaAsShipped) {
  if (test::shell_output("command -v kcat").empty()) GTEST_SKIP() << "kcat missing (make deps)";
  test::NatsServer nats(test::NatsServer::jetstream);
  std::string bootstrap = test::KafkaBroker::shared_bootstrap();
  run_example("nats-to-kafka.yaml", {{"nats://127.0.0.1:4222", nats.url()},
                                     {"kafka://127.0.0.1:9092", "kafka://" + bootstrap}});
  const int count = 20;
  for (int i = 0; i < count; ++i) {
    publish_stored(nats.url(), "orders.eu." + std::string(i % 2 ? "paid" : "created"),
                   "{\"order\":" + std::to_string(i) + "}", std::to_string(i));
  }
  // kcat: key, the headers we care about, the value; one line a message.
  std::vector<std::string> lines;
  auto deadline = std::chrono::steady_clock::now() + 90s;
  while (static_cast<int>(lines.size()) < count) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << lines.size() << " of " << count << " messages on topic orders.eu; bridge log:\n"
        << bridge_->log();
    std::this_thread::sleep_for(500ms);
    std::string out = test::shell_output("kcat -C -b " + bootstrap +
                                         " -t orders.eu -o beginning -e -q -f '%k|%h|%s\\n'");
    lines.clear();
    std::stringstream in(out);
    for (std::string line; std::getline(in, line);) {
      if (line.find('|') != std::string::npos) lines.push_back(line);
    }
  }
  ASSERT_EQ(static_cast<int>(lines.size()), count);  // at-least-once, and no copies on a quiet run
  for (int i = 0; i < count; ++i) {
    const std::string& line = lines[static_cast<std::size_t>(i)];
    std::string key = line.substr(0, line.find('|'));
    std::string value = line.substr(line.rfind('|') + 1);
    EXPECT_EQ(key, i % 2 ? "paid" : "created") << line;
    EXPECT_EQ(value, "{\"order\":" + std::to_string(i) + "}") << line;
    EXPECT_NE(line.find("origin=nats"), std::string::npos) << line;
    EXPECT_NE(line.find("x-order=" + std::to_string(i)), std::string::npos) << line;
  }
}

TEST_F(ExamplesBridges, NatsToRabbitMqAsShipped) {
  if (test::shell_output("/usr/bin/python3 -c 'import pika; print(\"pika ok\")'").find("pika ok") ==
      std::string::npos) {
    GTEST_SKIP() << "python3-pika missing (make deps)";
  }
  test::NatsServer nats(test::NatsServer::jetstream);
  test::RabbitMqServer rabbit;
  // A queue bound as the example says, before anything is published.
  std::string script = dir_ + "/read.py";
  std::ofstream(script) << "import pika,sys,json\n"
                           "c=pika.BlockingConnection(pika.URLParameters(sys.argv[1]))\n"
                           "ch=c.channel()\n"
                           "if sys.argv[2]=='prepare':\n"
                           "  ch.exchange_declare('switchboard','topic',durable=True)\n"
                           "  ch.queue_declare(queue='shipments',durable=True)\n"
                           "  ch.queue_bind(queue='shipments',exchange='switchboard',"
                           "routing_key='shipments.#')\n"
                           "  print('ready')\n"
                           "else:\n"
                           "  out=[]\n"
                           "  while True:\n"
                           "    m,p,b=ch.basic_get(queue='shipments',auto_ack=True)\n"
                           "    if m is None: break\n"
                           "    out.append({'key':m.routing_key,'body':b.decode(),"
                           "'headers':p.headers,'persistent':p.delivery_mode==2})\n"
                           "  print(json.dumps(out))\n"
                           "c.close()\n";
  std::string py = "/usr/bin/python3 " + script + " '" + rabbit.url() + "' ";
  ASSERT_NE(test::shell_output(py + "prepare").find("ready"), std::string::npos);
  run_example("nats-to-rabbitmq.yaml", {{"nats://127.0.0.1:4222", nats.url()},
                                        {"amqp://guest:guest@127.0.0.1:5672", rabbit.url()},
                                        {"127.0.0.1:9101", "127.0.0.1:0"}});
  const int count = 20;
  for (int i = 0; i < count; ++i) {
    publish_stored(nats.url(), "shipments.berlin.packed", "box " + std::to_string(i),
                   std::to_string(i));
  }
  Json got = Json::array();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (static_cast<int>(got.size()) < count) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline)
        << got.size() << " of " << count << " messages in the queue; bridge log:\n"
        << bridge_->log();
    std::this_thread::sleep_for(300ms);
    Json batch = Json::parse(test::shell_output(py + "drain"), nullptr, false);
    ASSERT_TRUE(batch.is_array()) << "pika: " << batch.dump();
    for (auto& m : batch) got.push_back(m);
  }
  ASSERT_EQ(static_cast<int>(got.size()), count);
  for (int i = 0; i < count; ++i) {
    const Json& m = got[static_cast<std::size_t>(i)];
    EXPECT_EQ(m["key"], "shipments.berlin.packed");
    EXPECT_EQ(m["body"], "box " + std::to_string(i));
    EXPECT_EQ(m["headers"]["origin"], "nats") << m.dump();
    EXPECT_EQ(m["headers"]["x-order"], std::to_string(i)) << m.dump();
    EXPECT_TRUE(m["persistent"].get<bool>()) << m.dump();
  }
}

}  // namespace
}  // namespace switchboard
