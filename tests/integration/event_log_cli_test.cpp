// `switchboard events ...` end to end: declare, emit, tail, export (resume
// and --from-scratch), verify (and its failure after an edit); the same on a
// JetStream log through --store jetstream://HOST:PORT/NAME and on a Kafka
// log through --store kafka://HOST:PORT/NAME.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "support/nats_server.hpp"
#include "support/test_dir.hpp"
#ifdef SWITCHBOARD_TEST_KAFKA
#include "support/kafka_broker.hpp"
#endif
#include "switchboard/json.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;

struct CliRun {
  std::string command;
  int status = -1;
  std::string out;
  std::string err;
};

// What a failed check prints: the command and everything it wrote.
std::ostream& operator<<(std::ostream& os, const CliRun& r) {
  return os << "`" << r.command << "` exited " << r.status << "\nstdout: [" << r.out
            << "]\nstderr: [" << r.err << "]";
}

class EventsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::fresh_test_dir("sb-events-cli");
    store_ = (dir_ / "ev.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `switchboard events ARGS --store STORE`; stderr is kept in
  // stderr.txt and in the result.
  CliRun events(const std::string& args) {
    CliRun r;
    r.command = "switchboard events " + args + " --store '" + store_ + "'";
    std::string cmd = std::string(SWITCHBOARD_CLI) + " events " + args + " --store '" + store_ +
                      "' 2>" + (dir_ / "stderr.txt").string();
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    if (std::ferror(p)) r.out += "<read error: " + std::string(std::strerror(errno)) + ">";
    int status = ::pclose(p);
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    std::ifstream err(dir_ / "stderr.txt");
    r.err.assign(std::istreambuf_iterator<char>(err), std::istreambuf_iterator<char>());
    return r;
  }
  // `text` (all or part of r's stdout) as one JSON value; a failure (not
  // an exception) that shows the whole run when it is not.
  static Json json_of(const CliRun& r, const std::string& text) {
    Json j;
    std::string error;
    EXPECT_TRUE(parse_json(text, j, error)) << error << "\n" << r;
    return j;
  }
  static Json json_of(const CliRun& r) { return json_of(r, r.out); }
  void a_broker_log_end_to_end(const std::string& store, const std::string& bad_option,
                               const std::string& bad_key);
  static std::vector<Json> lines(const CliRun& r) {
    std::vector<Json> out;
    std::istringstream in(r.out);
    std::string line;
    while (std::getline(in, line)) out.push_back(json_of(r, line));
    return out;
  }

  fs::path dir_;
  std::string store_;
};

TEST_F(EventsCli, DeclareEmitTailExportVerify) {
  EXPECT_EQ(events("emit order.created '{\"id\":1}'").status, 1);  // not declared
  ASSERT_EQ(
      events("declare order.created '{\"id\":{\"type\":\"integer\",\"required\":true}}'").status,
      0);
  EXPECT_EQ(events("emit order.created '{\"id\":\"x\"}'").status, 1);  // does not fit
  for (int i = 1; i <= 3; ++i) {
    auto r = events("emit order.created '{\"id\":" + std::to_string(i) + "}'");
    ASSERT_EQ(r.status, 0) << r;
    auto j = json_of(r);
    EXPECT_EQ(j["sequence"], i);
    EXPECT_EQ(j["id"].get<std::string>().size(), 32u);
  }

  auto tail = lines(events("tail --from beginning -n 2"));
  ASSERT_EQ(tail.size(), 2u);
  EXPECT_EQ(tail[0]["sequence"], 1);
  EXPECT_EQ(tail[1]["payload"]["id"], 2);
  EXPECT_EQ(tail[1]["prev_hash"], tail[0]["hash"]);
  EXPECT_EQ(lines(events("tail --from 3 --no-follow")).size(), 1u);

  auto first = lines(events("export --ndjson"));
  ASSERT_EQ(first.size(), 3u);
  EXPECT_TRUE(lines(events("export --ndjson")).empty());  // resumes: nothing new
  ASSERT_EQ(events("emit order.created '{\"id\":4}'").status, 0);
  auto second = lines(events("export --ndjson"));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0]["sequence"], 4);
  EXPECT_EQ(lines(events("export --ndjson --from-scratch")).size(), 4u);

  auto ok = events("verify");
  EXPECT_EQ(ok.status, 0);
  EXPECT_EQ(json_of(ok)["ok"], true);
  EXPECT_EQ(json_of(ok)["events"], 4);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(store_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE events SET payload = '{\"id\":9}' WHERE seq = 2", nullptr,
                         nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto bad = events("verify");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(json_of(bad)["first_bad"], 2);
}

// On a broker log at `store`: declare, a refused emit, three emits, tail,
// export twice (the cursor is on the broker), verify; then `bad_option`
// (a query with a bad value) must fail naming `bad_key`.
void EventsCli::a_broker_log_end_to_end(const std::string& store, const std::string& bad_option,
                                        const std::string& bad_key) {
  store_ = store;
  ASSERT_EQ(events("declare t '{\"id\":{\"type\":\"integer\",\"required\":true}}'").status, 0);
  EXPECT_EQ(events("emit t '{\"id\":\"x\"}'").status, 1);  // does not fit
  for (int i = 1; i <= 3; ++i) {
    auto r = events("emit t '{\"id\":" + std::to_string(i) + "}'");
    ASSERT_EQ(r.status, 0) << r;
    EXPECT_EQ(json_of(r)["sequence"], i);
  }
  EXPECT_EQ(lines(events("tail --from 2 --no-follow")).size(), 2u);
  EXPECT_EQ(lines(events("export --ndjson")).size(), 3u);
  EXPECT_TRUE(lines(events("export --ndjson")).empty());  // the cursor is on the broker
  auto ok = events("verify");
  EXPECT_EQ(ok.status, 0);
  EXPECT_EQ(json_of(ok)["events"], 3);

  // Options ride in the query; a bad one is named.
  store_ = store + "?" + bad_option;
  auto refused = events("verify");
  EXPECT_EQ(refused.status, 1);
  EXPECT_NE(refused.err.find(bad_key), std::string::npos) << refused;
}

TEST_F(EventsCli, AJetStreamLogThroughAStoreUrl) {
  test::NatsServer nats(test::NatsServer::jetstream);
  std::string host = "127.0.0.1:" + std::to_string(nats.port());
  a_broker_log_end_to_end("jetstream://" + host + "/clilog", "replicas=9", "replicas");
  store_ = "jetstream://" + host;  // no log name
  EXPECT_EQ(events("verify").status, 1);
}

#ifdef SWITCHBOARD_TEST_KAFKA
TEST_F(EventsCli, AKafkaLogThroughAStoreUrl) {
  std::string store =
      "kafka://" + test::KafkaBroker::shared_bootstrap() + "/clilog" + std::to_string(::getpid());
  a_broker_log_end_to_end(store, "timeout_ms=soon", "timeout_ms");
}
#endif

}  // namespace
}  // namespace switchboard
