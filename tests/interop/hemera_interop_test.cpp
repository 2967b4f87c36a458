// Interoperability with the real nats-hemera 7.0.2 (Node, nats 1.2 client)
// through a real nats-server, in both directions: a Hemera client calling
// Switchboard services and a Switchboard client calling Hemera services,
// with results, handler errors, PatternNotFound, timeouts, meta$/delegate$,
// pubsub$, the shared queue group and traces that continue across.
//
// Each test gets its own nats-server on a free loopback port and its own
// Hemera service process (tests/interop/hemera/hemera-service.js), which
// says when its patterns are subscribed. The Hemera client
// (hemera-client.js) takes a list of acts on the command line and prints
// one JSON line per act; the test runs the Switchboard side meanwhile.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <optional>
#include <regex>

#include "support/nats_server.hpp"
#include "support/test_support.hpp"

extern char** environ;

namespace switchboard {
namespace {

using namespace std::chrono_literals;

const std::string kHemeraDir = SWITCHBOARD_HEMERA_DIR;
const std::string kNode = SWITCHBOARD_NODE_EXECUTABLE;
constexpr const char* kServiceApp = "hemera-calc";  // the Hemera service's app name
constexpr const char* kSwitchboardApp = "sb-interop";

bool is_hex_span(const std::string& id) {
  return std::regex_match(id, std::regex("[0-9a-f]{16}"));
}

// A node program whose stdout is read as JSON lines. Its stdin is a pipe
// the test holds open: the Hemera service exits when it closes, so it never
// outlives a crashed test. stderr is the test's own, so node's errors show
// in the test output.
class NodeProcess {
 public:
  explicit NodeProcess(const std::vector<std::string>& args) {
    int out[2];
    int in[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe2 failed");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    std::vector<std::string> argv_storage = {kNode};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    int rc = ::posix_spawn(&pid_, kNode.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(in[0]);
    ::close(out[1]);
    out_ = out[0];
    in_ = in[1];
    if (rc != 0) {
      pid_ = -1;
      throw std::runtime_error("cannot start " + kNode + ": " + std::strerror(rc));
    }
    ::fcntl(out_, F_SETFL, O_NONBLOCK);
  }
  ~NodeProcess() { stop(); }
  NodeProcess(const NodeProcess&) = delete;
  NodeProcess& operator=(const NodeProcess&) = delete;

  // Reads what stdout holds, waiting up to `wait` for something to arrive;
  // every complete line is parsed into lines().
  void pump(std::chrono::milliseconds wait = 0ms) {
    if (eof_) return;
    pollfd p{out_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(out_, buf, sizeof buf);
      if (n > 0) {
        partial_.append(buf, static_cast<std::size_t>(n));
        continue;
      }
      if (n == 0) eof_ = true;
      if (n < 0 && errno == EINTR) continue;
      break;
    }
    std::size_t nl;
    while ((nl = partial_.find('\n')) != std::string::npos) {
      std::string line = partial_.substr(0, nl);
      partial_.erase(0, nl + 1);
      try {
        lines_.push_back(Json::parse(line));
      } catch (const std::exception& e) {
        ADD_FAILURE() << "node printed a line that is not JSON: " << line;
      }
    }
  }

  bool eof() const { return eof_; }
  const std::vector<Json>& lines() const { return lines_; }

  // The first line from `from` on that satisfies `pred`, waiting up to
  // `limit`; with `io`, runs it meanwhile (the Switchboard side must serve).
  std::optional<Json> wait_line(const std::function<bool(const Json&)>& pred,
                                std::chrono::milliseconds limit, asio::io_context* io = nullptr,
                                std::size_t from = 0) {
    std::optional<Json> found;
    auto check = [&] {
      pump(io ? 0ms : 20ms);
      for (std::size_t i = from; i < lines_.size(); ++i) {
        if (pred(lines_[i])) {
          found = lines_[i];
          return true;
        }
      }
      return eof_;
    };
    if (io) {
      test::run_until(*io, check, limit);
    } else {
      auto deadline = std::chrono::steady_clock::now() + limit;
      while (!check() && std::chrono::steady_clock::now() < deadline) {
      }
    }
    return found;
  }

  // Waits for the end of stdout (running `io`), then for the exit; returns
  // the exit status, or -1 when it did not finish within `limit`.
  int wait_exit(asio::io_context& io, std::chrono::milliseconds limit) {
    if (!test::run_until(
            io,
            [&] {
              pump();
              return eof_;
            },
            limit)) {
      return -1;
    }
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  void stop() {
    if (in_ >= 0) ::close(in_);
    in_ = -1;
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
    if (out_ >= 0) ::close(out_);
    out_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  bool eof_ = false;
  std::string partial_;
  std::vector<Json> lines_;
};

class HemeraInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat st {};
    ASSERT_EQ(::stat((kHemeraDir + "/node_modules/nats-hemera/package.json").c_str(), &st), 0)
        << "nats-hemera is not installed; run scripts/npm-install.sh " << kHemeraDir
        << " (ctest does it in the fixture interop.hemera.npm_install)";
    nats_ = std::make_unique<test::NatsServer>();
    service_ = std::make_unique<NodeProcess>(
        std::vector<std::string>{kHemeraDir + "/hemera-service.js", nats_->url(), kServiceApp});
    auto ready =
        service_->wait_line([](const Json& l) { return l.value("event", "") == "ready"; }, 15s);
    ASSERT_TRUE(ready) << "the Hemera service did not become ready";
  }

  void TearDown() override {
    for (auto& app : apps_) test::close(io_, app->runtime());
    apps_.clear();
    service_.reset();  // before the server, so that it does not reconnect
    nats_.reset();
  }

  // A started Switchboard app on the test's nats-server.
  Runtime& start_switchboard(std::vector<std::string> plugins = {},
                             std::string name = kSwitchboardApp, std::string codec = "json") {
    apps_.push_back(test::start_app(io_, nats_->url(), std::move(plugins), [&](Config& c) {
      c.runtime.name = name;
      c.codec = codec;
    }));
    return apps_.back()->runtime();
  }

  // Runs hemera-client.js with `calls` while serving; returns its lines by id.
  std::map<std::string, Json> run_hemera_client(const Json& calls) {
    NodeProcess client({kHemeraDir + "/hemera-client.js", nats_->url(), calls.dump()});
    int status = client.wait_exit(io_, 20s);
    EXPECT_EQ(status, 0) << "hemera-client.js did not finish cleanly";
    std::map<std::string, Json> by_id;
    for (const auto& line : client.lines()) by_id[line.at("id").get<std::string>()] = line;
    for (const auto& call : calls) {
      EXPECT_TRUE(by_id.count(call.at("id").get<std::string>()))
          << "no answer for call " << call.dump();
    }
    return by_id;
  }

  // The Hemera service's next "pubsub" event whose pattern has `marker`.
  std::optional<Json> wait_pubsub_event(const std::string& marker) {
    return service_->wait_line(
        [&](const Json& l) {
          return l.value("event", "") == "pubsub" && l["pattern"].value("marker", "") == marker;
        },
        10s, &io_);
  }

  test::ActResult act(Runtime& rt, Json pattern) { return test::act(io_, rt, std::move(pattern)); }

  asio::io_context io_;
  std::unique_ptr<test::NatsServer> nats_;
  std::unique_ptr<NodeProcess> service_;
  std::vector<std::unique_ptr<App>> apps_;
};

Json call(const std::string& id, Json pattern) {
  return {{"id", id}, {"pattern", std::move(pattern)}};
}

// ---------------------------------------------------------------------------
// A Hemera client calls Switchboard services.
// ---------------------------------------------------------------------------

TEST_F(HemeraInterop, HemeraClientGetsResultsFromSwitchboard) {
  Runtime& rt = start_switchboard({"math"});
  rt.add({{"topic", "sb"}, {"cmd", "echo"}}, [](Call& c) { return c.pattern(); });
  rt.add({{"topic", "sb"}, {"cmd", "null"}}, [](Call&) -> Json { return nullptr; });
  rt.add({{"topic", "orders.*"}, {"cmd", "get"}}, [](Call& c) { return c.pattern()["topic"]; });

  Json nested = {{"name", "ann"}, {"tags", {1, "two", nullptr}}, {"deep", {{"x", 1.25}}}};
  auto out = run_hemera_client(Json::array({
      call("add", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}}),
      call("sub", {{"topic", "math"}, {"cmd", "sub"}, {"a", 5}, {"b", 8}}),
      call("mul", {{"topic", "math"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}}),
      call("div", {{"topic", "math"}, {"cmd", "div"}, {"a", 7}, {"b", 2}}),
      call("echo", {{"topic", "sb"}, {"cmd", "echo"}, {"user", nested}, {"timeout$", 1000}}),
      call("null", {{"topic", "sb"}, {"cmd", "null"}}),
      call("wildcard", {{"topic", "orders.eu"}, {"cmd", "get"}}),
  }));

  EXPECT_EQ(out["add"]["ok"], true);
  EXPECT_EQ(out["add"]["result"], 3);
  EXPECT_EQ(out["sub"]["result"], -3);
  EXPECT_EQ(out["mul"]["result"], 42);
  EXPECT_EQ(out["div"]["result"], 3.5);
  // The payload travels inside the pattern; `$` keys never do.
  EXPECT_EQ(out["echo"]["result"], (Json{{"topic", "sb"}, {"cmd", "echo"}, {"user", nested}}));
  EXPECT_EQ(out["null"]["ok"], true);
  EXPECT_EQ(out["null"]["result"], nullptr);
  // A wildcard topic, as Hemera allows on add, answers acts on matching subjects.
  EXPECT_EQ(out["wildcard"]["result"], "orders.eu");
  // What Hemera copies from the reply into the act context.
  EXPECT_EQ(out["add"]["request"]["type"], "request");
  EXPECT_EQ(out["add"]["request"]["service"], "math");
  EXPECT_EQ(out["add"]["request"]["method"], "a:1,b:2,cmd:add,topic:math");
  EXPECT_EQ(out["add"]["trace"]["service"], "math");
  EXPECT_EQ(out["add"]["trace"]["method"], "a:1,b:2,cmd:add,topic:math");
  EXPECT_TRUE(out["add"]["trace"]["duration"].is_number());
}

// A Switchboard service set to msgpack keeps answering Hemera (JSON, no
// headers) in JSON, while a msgpack caller gets msgpack from it.
TEST_F(HemeraInterop, MsgpackSwitchboardServiceAnswersHemeraInJson) {
  Runtime& service = start_switchboard({"math"}, kSwitchboardApp, "msgpack");
  ASSERT_EQ(service.codec().name(), "msgpack");
  Runtime& msgpack_client = start_switchboard({}, "sb-msgpack-client", "msgpack");

  auto out = run_hemera_client(Json::array({
      call("add", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}}),
      call("div0", {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 0}}),
  }));
  EXPECT_EQ(out["add"]["ok"], true);
  EXPECT_EQ(out["add"]["result"], 3);
  EXPECT_EQ(out["div0"]["ok"], false);
  EXPECT_EQ(out["div0"]["error"]["message"], "division by zero");

  auto r = act(msgpack_client, {{"topic", "math"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 42);
}

TEST_F(HemeraInterop, HemeraClientGetsSwitchboardHandlerErrors) {
  Runtime& rt = start_switchboard({"math"});
  rt.add({{"topic", "quota"}}, [](Call&) -> Json { throw Error("QuotaError", "too many", 429); });
  rt.add({{"topic", "crash"}}, [](Call&) -> Json { throw std::runtime_error("kaputt"); });

  auto out = run_hemera_client(Json::array({
      call("div0", {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 0}}),
      call("quota", {{"topic", "quota"}, {"n", 3}}),
      call("crash", {{"topic", "crash"}}),
      call("invalid", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}}),
  }));

  const Json& div0 = out["div0"];
  EXPECT_EQ(div0["ok"], false);
  EXPECT_EQ(div0["error"]["name"], "MathError");
  EXPECT_EQ(div0["error"]["message"], "division by zero");
  EXPECT_EQ(div0["error"]["code"], "DIVISION_BY_ZERO");
  ASSERT_EQ(div0["error"]["hops"].size(), 1u);
  EXPECT_EQ(div0["error"]["hops"][0]["service"], "math");
  EXPECT_EQ(div0["error"]["hops"][0]["method"], "a:1,b:0,cmd:div,topic:math");
  EXPECT_EQ(div0["error"]["hops"][0]["app"], kSwitchboardApp);
  EXPECT_TRUE(div0["error"]["hops"][0]["ts"].is_number());

  EXPECT_EQ(out["quota"]["error"]["name"], "QuotaError");
  EXPECT_EQ(out["quota"]["error"]["message"], "too many");
  EXPECT_EQ(out["quota"]["error"]["code"], 429);

  EXPECT_EQ(out["crash"]["error"]["name"], "Error");
  EXPECT_EQ(out["crash"]["error"]["message"], "kaputt");
  EXPECT_FALSE(out["crash"]["error"].contains("code"));
  // Hemera rebuilds a plain Error as its own Error class.
  EXPECT_EQ(out["crash"]["error"]["class"], "Error");

  EXPECT_EQ(out["invalid"]["error"]["name"], "PayloadValidationError");
  EXPECT_EQ(out["invalid"]["error"]["message"], "b: is required");
}

TEST_F(HemeraInterop, HemeraClientGetsPatternNotFoundFromSwitchboard) {
  start_switchboard({"math"});

  auto out = run_hemera_client(Json::array({
      call("pow", {{"topic", "math"}, {"cmd", "pow"}, {"a", 2}}),
  }));

  const Json& e = out["pow"]["error"];
  EXPECT_EQ(out["pow"]["ok"], false);
  EXPECT_EQ(e["name"], "PatternNotFound");
  EXPECT_EQ(e["message"], "No action found for this pattern");
  // Hemera knows the name: the error comes back as its own PatternNotFound.
  EXPECT_EQ(e["class"], "PatternNotFound");
  EXPECT_EQ(e["details"]["pattern"], (Json{{"topic", "math"}, {"cmd", "pow"}, {"a", 2}}));
  ASSERT_EQ(e["hops"].size(), 1u);
  EXPECT_EQ(e["hops"][0]["method"], "a:2,cmd:pow,topic:math");
}

TEST_F(HemeraInterop, HemeraClientTimesOutOnASlowSwitchboardHandler) {
  Runtime& rt = start_switchboard();
  int calls = 0;
  rt.add({{"topic", "slow"}}, [&calls](Call& c, Reply reply) {
    ++calls;
    auto timer = std::make_shared<asio::steady_timer>(
        c.runtime().executor(), std::chrono::milliseconds(c.pattern()["ms"].get<int>()));
    timer->async_wait([timer, reply, ms = c.pattern()["ms"]](std::error_code) {
      reply.send({{"slept", ms}});
    });
  });

  // The first reply comes after its act timed out, while the second act
  // waits: Hemera must drop it and still get the second one right.
  auto out = run_hemera_client(Json::array({
      call("late", {{"topic", "slow"}, {"ms", 400}, {"timeout$", 100}}),
      call("ontime", {{"topic", "slow"}, {"ms", 500}, {"timeout$", 5000}}),
  }));

  const Json& late = out["late"];
  EXPECT_EQ(late["ok"], false);
  EXPECT_EQ(late["error"]["name"], "TimeoutError");
  EXPECT_EQ(late["error"]["message"], "Client timeout");
  EXPECT_EQ(late["error"]["class"], "TimeoutError");
  EXPECT_EQ(late["error"]["pattern"], "ms:400,topic:slow");
  EXPECT_EQ(out["ontime"]["ok"], true);
  EXPECT_EQ(out["ontime"]["result"], (Json{{"slept", 500}}));
  EXPECT_EQ(calls, 2);
}

TEST_F(HemeraInterop, MetaAndDelegateRoundTripFromHemera) {
  Runtime& rt = start_switchboard();
  rt.add({{"topic", "meta"}}, [](Call& c) {
    Json seen = {{"meta", c.meta()}, {"delegate", c.delegate()}};
    c.meta()["seenBy"] = "switchboard";
    return seen;
  });

  auto out = run_hemera_client(Json::array({
      call("m", {{"topic", "meta"},
                 {"meta$", {{"user", "ann"}, {"n", 1}}},
                 {"delegate$", {{"token", "t1"}}}}),
  }));

  const Json& m = out["m"];
  ASSERT_EQ(m["ok"], true);
  EXPECT_EQ(m["result"]["meta"], (Json{{"user", "ann"}, {"n", 1}}));
  EXPECT_EQ(m["result"]["delegate"], (Json{{"token", "t1"}}));
  // The handler's change comes back in the reply's meta.
  EXPECT_EQ(m["meta"], (Json{{"user", "ann"}, {"n", 1}, {"seenBy", "switchboard"}}));
}

TEST_F(HemeraInterop, HemeraPubsubReachesEverySubscriber) {
  // Two Switchboard instances with a pubsub$ add on `news` (no queue group)
  // beside the Hemera service's own; and one queue-group add on `jobs`.
  std::vector<Json> got_a;
  std::vector<Json> got_b;
  std::vector<Json> jobs;
  Runtime& a = start_switchboard({}, "sb-a");
  Runtime& b = start_switchboard({}, "sb-b");
  auto listen = [](Runtime& rt, std::vector<Json>& got) {
    rt.add({{"topic", "news"}, {"pubsub$", true}}, [&got](Call& c) -> Json {
      got.push_back({{"pattern", c.pattern()}, {"meta", c.meta()}});
      return nullptr;
    });
  };
  listen(a, got_a);
  listen(b, got_b);
  a.add({{"topic", "jobs"}}, [&jobs](Call& c) -> Json {
    jobs.push_back(c.pattern());
    return nullptr;
  });

  auto out = run_hemera_client(Json::array({
      call("news",
           {{"topic", "news"}, {"marker", "h-1"}, {"pubsub$", true}, {"meta$", {{"user", "ann"}}}}),
      call("job", {{"topic", "jobs"}, {"n", 7}, {"pubsub$", true}}),
  }));
  EXPECT_EQ(out["news"]["ok"], true);
  EXPECT_EQ(out["news"]["result"], nullptr);
  EXPECT_EQ(out["news"]["request"]["type"], "pubsub");

  ASSERT_TRUE(test::run_until(
      io_, [&] { return got_a.size() >= 1 && got_b.size() >= 1 && jobs.size() >= 1; }));
  auto hemera = wait_pubsub_event("h-1");
  ASSERT_TRUE(hemera) << "the Hemera subscriber did not get the message";
  test::settle(io_, 100ms);  // nothing more may arrive

  Json expected = {{"pattern", {{"topic", "news"}, {"marker", "h-1"}}},
                   {"meta", {{"user", "ann"}}}};
  EXPECT_EQ(got_a, std::vector<Json>{expected});
  EXPECT_EQ(got_b, std::vector<Json>{expected});
  EXPECT_EQ(jobs, std::vector<Json>{(Json{{"topic", "jobs"}, {"n", 7}})});
  EXPECT_EQ((*hemera)["request"]["type"], "pubsub");
}

TEST_F(HemeraInterop, TraceContinuesFromHemeraThroughSwitchboardToHemera) {
  // Hemera client -> Switchboard `relay` -> Hemera `calc echo`.
  Runtime& rt = start_switchboard();
  rt.add({{"topic", "relay"}}, [](Call& c, Reply reply) {
    Json seen = {{"traceId", c.trace().trace_id},
                 {"spanId", c.trace().span_id},
                 {"parentSpanId", c.trace().parent_span_id}};
    c.act({{"topic", "calc"}, {"cmd", "echo"}}, [reply, seen](std::error_code ec, Response r) {
      if (ec) return reply.fail(*r.error);
      reply.send({{"seen", seen}, {"nested", r.result}});
    });
  });

  auto out = run_hemera_client(Json::array({
      call("t", {{"topic", "relay"},
                 {"trace$", {{"traceId", "hemera-trace-1"}, {"spanId", "hemera-span-1"}}},
                 {"meta$", {{"user", "ann"}}}}),
  }));

  const Json& t = out["t"];
  ASSERT_EQ(t["ok"], true) << t.dump();
  // Switchboard's handler runs in the Hemera caller's span.
  EXPECT_EQ(
      t["result"]["seen"],
      (Json{{"traceId", "hemera-trace-1"}, {"spanId", "hemera-span-1"}, {"parentSpanId", ""}}));
  // Its nested act is a child span in the same trace, as the Hemera callee sees it.
  const Json& nested = t["result"]["nested"];
  EXPECT_EQ(nested["trace"]["traceId"], "hemera-trace-1");
  EXPECT_EQ(nested["trace"]["parentSpanId"], "hemera-span-1");
  EXPECT_TRUE(is_hex_span(nested["trace"]["spanId"].get<std::string>())) << nested["trace"];
  EXPECT_EQ(nested["trace"]["service"], "calc");
  EXPECT_EQ(nested["trace"]["method"], "cmd:echo,topic:calc");
  EXPECT_EQ(nested["request"]["type"], "request");
  EXPECT_EQ(nested["request"]["depth"], 1);  // Switchboard's extension, carried along
  // meta$ travels on through the nested act.
  EXPECT_EQ(nested["meta"], (Json{{"user", "ann"}}));
  // And the Hemera client's own span comes back in the reply.
  EXPECT_EQ(t["trace"]["traceId"], "hemera-trace-1");
  EXPECT_EQ(t["trace"]["spanId"], "hemera-span-1");
}

TEST_F(HemeraInterop, HemeraClientReceivesASwitchboardStream) {
  Runtime& rt = start_switchboard();
  rt.add({{"topic", "numbers"}}, [](Call& c, Reply reply) {
    int n = c.pattern()["n"].get<int>();
    for (int i = 1; i < n; ++i) reply.next(i);
    reply.send(n);
  });

  auto out = run_hemera_client(Json::array({
      {{"id", "s"},
       {"pattern", {{"topic", "numbers"}, {"n", 3}, {"expectedMessages$", 3}}},
       {"messages", 3}},
  }));

  EXPECT_EQ(out["s"]["ok"], true) << out["s"].dump();
  EXPECT_EQ(out["s"]["result"], Json::array({1, 2, 3}));
}

// ---------------------------------------------------------------------------
// A Switchboard client calls Hemera services.
// ---------------------------------------------------------------------------

TEST_F(HemeraInterop, SwitchboardClientGetsResultsFromHemera) {
  Runtime& rt = start_switchboard();

  auto add = act(rt, {{"topic", "calc"}, {"cmd", "add"}, {"a", 1}, {"b", 2}});
  ASSERT_FALSE(add.ec) << add.response.error->message();
  EXPECT_EQ(add.response.result, 3);
  EXPECT_EQ(act(rt, {{"topic", "calc"}, {"cmd", "sub"}, {"a", 5}, {"b", 8}}).response.result, -3);
  EXPECT_EQ(act(rt, {{"topic", "calc"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}}).response.result, 42);
  EXPECT_EQ(act(rt, {{"topic", "calc"}, {"cmd", "div"}, {"a", 7}, {"b", 2}}).response.result, 3.5);

  Json nested = {{"name", "ann"}, {"tags", {1, "two", nullptr}}, {"deep", {{"x", 1.25}}}};
  auto echo = act(rt, {{"topic", "calc"}, {"cmd", "echo"}, {"user", nested}, {"timeout$", 1000}});
  ASSERT_FALSE(echo.ec);
  EXPECT_EQ(echo.response.result["pattern"],
            (Json{{"topic", "calc"}, {"cmd", "echo"}, {"user", nested}}));

  // Hemera leaves `result` out of the reply when the handler gives none.
  auto nothing = act(rt, {{"topic", "calc"}, {"cmd", "nothing"}});
  ASSERT_FALSE(nothing.ec);
  EXPECT_EQ(nothing.response.result, nullptr);

  // A Hemera add on a wildcard topic.
  auto sensor = act(rt, {{"topic", "sensors.kitchen"}, {"cmd", "read"}});
  ASSERT_FALSE(sensor.ec) << sensor.response.error->message();
  EXPECT_EQ(sensor.response.result, (Json{{"sensor", "sensors.kitchen"}}));
}

TEST_F(HemeraInterop, SwitchboardClientGetsHemeraHandlerErrors) {
  Runtime& rt = start_switchboard();

  auto div0 = act(rt, {{"topic", "calc"}, {"cmd", "div"}, {"a", 1}, {"b", 0}});
  EXPECT_EQ(div0.ec, errc::response_error);
  ASSERT_TRUE(div0.response.error);
  const Error& e = *div0.response.error;
  EXPECT_EQ(e.name(), "MathError");
  EXPECT_EQ(e.message(), "division by zero");
  EXPECT_EQ(e.code(), "DIVISION_BY_ZERO");
  ASSERT_EQ(e.hops().size(), 1u);
  EXPECT_EQ(e.hops()[0].service, "calc");
  EXPECT_EQ(e.hops()[0].method, "a:1,b:0,cmd:div,topic:calc");
  EXPECT_EQ(e.hops()[0].app, kServiceApp);
  EXPECT_GT(e.hops()[0].ts, 0);

  auto fail = act(rt, {{"topic", "calc"}, {"cmd", "fail"}, {"message", "boom"}, {"code", 42}});
  EXPECT_EQ(fail.ec, errc::response_error);
  ASSERT_TRUE(fail.response.error);
  EXPECT_EQ(fail.response.error->name(), "Error");
  EXPECT_EQ(fail.response.error->message(), "boom");
  EXPECT_EQ(fail.response.error->code(), 42);
  EXPECT_EQ(fail.response.result, nullptr);
}

TEST_F(HemeraInterop, SwitchboardClientGetsPatternNotFoundFromHemera) {
  Runtime& rt = start_switchboard();

  auto r = act(rt, {{"topic", "calc"}, {"cmd", "pow"}, {"a", 2}});
  EXPECT_EQ(r.ec, errc::pattern_not_found);
  ASSERT_TRUE(r.response.error);
  EXPECT_EQ(r.response.error->name(), "PatternNotFound");
  EXPECT_EQ(r.response.error->message(), "No action found for this pattern");
  ASSERT_EQ(r.response.error->hops().size(), 1u);
  EXPECT_EQ(r.response.error->hops()[0].app, kServiceApp);
  EXPECT_EQ(r.response.error->hops()[0].method, "a:2,cmd:pow,topic:calc");
}

TEST_F(HemeraInterop, SwitchboardClientTimesOutOnASlowHemeraHandler) {
  Runtime& rt = start_switchboard();

  auto late = act(rt, {{"topic", "calc"}, {"cmd", "slow"}, {"ms", 400}, {"timeout$", 100}});
  EXPECT_EQ(late.ec, errc::timeout);
  ASSERT_TRUE(late.response.error);
  EXPECT_EQ(late.response.error->name(), "TimeoutError");
  EXPECT_EQ(late.response.error->message(), "Timeout: cmd:slow,ms:400,topic:calc after 100 ms");
  EXPECT_EQ(rt.pending_requests(), 0u);

  // The late reply arrives while this act waits; it must not be taken for it.
  auto ontime = act(rt, {{"topic", "calc"}, {"cmd", "slow"}, {"ms", 500}, {"timeout$", 5000}});
  ASSERT_FALSE(ontime.ec) << ontime.response.error->message();
  EXPECT_EQ(ontime.response.result, (Json{{"slept", 500}}));
  EXPECT_EQ(rt.pending_requests(), 0u);
}

TEST_F(HemeraInterop, SwitchboardClientReceivesAHemeraStream) {
  Runtime& rt = start_switchboard();

  std::vector<Json> got;
  test::ActResult last;
  rt.act_stream(
      {{"topic", "calc"}, {"cmd", "count"}, {"n", 3}, {"expectedMessages$", 3}},
      [&got](const Response& r) { got.push_back(r.result); },
      [&last](std::error_code ec, Response r) {
        last.ec = ec;
        last.response = std::move(r);
        last.done = true;
      });
  ASSERT_TRUE(test::run_until(io_, [&] { return last.done; }));
  EXPECT_FALSE(last.ec) << last.response.error->message();
  EXPECT_EQ(got, (std::vector<Json>{1, 2, 3}));
  EXPECT_EQ(last.response.result, 3);
  EXPECT_EQ(rt.pending_requests(), 0u);
}

TEST_F(HemeraInterop, MetaAndDelegateRoundTripToHemera) {
  Runtime& rt = start_switchboard();

  auto r = act(rt, {{"topic", "calc"},
                    {"cmd", "echo"},
                    {"meta$", {{"user", "ann"}}},
                    {"delegate$", {{"token", "t1"}}},
                    {"requestId$", "sbreq1"}});
  ASSERT_FALSE(r.ec) << r.response.error->message();
  const Json& seen = r.response.result;
  EXPECT_EQ(seen["pattern"], (Json{{"topic", "calc"}, {"cmd", "echo"}}));
  EXPECT_EQ(seen["meta"], (Json{{"user", "ann"}}));
  EXPECT_EQ(seen["delegate"], (Json{{"token", "t1"}}));
  EXPECT_EQ(seen["request"]["id"], "sbreq1");
  EXPECT_EQ(seen["request"]["type"], "request");
  EXPECT_EQ(seen["request"]["service"], "calc");
  EXPECT_EQ(seen["request"]["method"], "cmd:echo,topic:calc");
  // The Hemera handler's change to meta$ comes back.
  EXPECT_EQ(r.response.meta, (Json{{"user", "ann"}, {"seenBy", kServiceApp}}));
}

TEST_F(HemeraInterop, SwitchboardPubsubReachesHemera) {
  Runtime& rt = start_switchboard();

  auto r = act(rt, {{"topic", "news"},
                    {"marker", "sb-1"},
                    {"pubsub$", true},
                    {"meta$", {{"user", "ann"}}},
                    {"delegate$", {{"token", "t1"}}}});
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.response.result, nullptr);

  auto event = wait_pubsub_event("sb-1");
  ASSERT_TRUE(event) << "the Hemera pubsub$ subscriber did not get the message";
  EXPECT_EQ((*event)["pattern"], (Json{{"topic", "news"}, {"marker", "sb-1"}}));
  EXPECT_EQ((*event)["meta"], (Json{{"user", "ann"}}));
  EXPECT_EQ((*event)["delegate"], (Json{{"token", "t1"}}));
  EXPECT_EQ((*event)["request"]["type"], "pubsub");
  EXPECT_EQ((*event)["trace"]["traceId"], r.response.trace.trace_id);
}

TEST_F(HemeraInterop, TraceContinuesFromSwitchboardThroughHemeraToSwitchboard) {
  // Switchboard client -> Hemera `calc relay` -> Switchboard `sbtrace`.
  Runtime& rt = start_switchboard();
  std::optional<Trace> callee;
  Json callee_meta;
  rt.add({{"topic", "sbtrace"}}, [&](Call& c) -> Json {
    callee = c.trace();
    callee_meta = c.meta();
    return "from switchboard";
  });

  auto r = act(rt, {{"topic", "calc"},
                    {"cmd", "relay"},
                    {"call", {{"topic", "sbtrace"}}},
                    {"meta$", {{"user", "ann"}}}});
  ASSERT_FALSE(r.ec) << r.response.error->message();
  const Trace& caller = r.response.trace;
  ASSERT_TRUE(is_hex_span(caller.trace_id));
  ASSERT_TRUE(is_hex_span(caller.span_id));

  // The Hemera handler ran in the Switchboard caller's span ...
  EXPECT_EQ(r.response.result["trace"]["traceId"], caller.trace_id);
  EXPECT_EQ(r.response.result["trace"]["spanId"], caller.span_id);
  EXPECT_EQ(r.response.result["result"], "from switchboard");
  // ... and its nested act reached Switchboard as a child of that span.
  ASSERT_TRUE(callee);
  EXPECT_EQ(callee->trace_id, caller.trace_id);
  EXPECT_EQ(callee->parent_span_id, caller.span_id);
  EXPECT_EQ(callee->service, "sbtrace");
  EXPECT_EQ(callee_meta, (Json{{"user", "ann"}}));
}

TEST_F(HemeraInterop, SwitchboardErrorCrossesHemeraWithItsHops) {
  // Switchboard client -> Hemera `calc relay` -> Switchboard math, which fails.
  Runtime& rt = start_switchboard({"math"});

  auto r = act(rt, {{"topic", "calc"},
                    {"cmd", "relay"},
                    {"call", {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 0}}}});
  EXPECT_EQ(r.ec, errc::response_error);
  ASSERT_TRUE(r.response.error);
  const Error& e = *r.response.error;
  EXPECT_EQ(e.name(), "MathError");
  EXPECT_EQ(e.message(), "division by zero");
  EXPECT_EQ(e.code(), "DIVISION_BY_ZERO");
  ASSERT_EQ(e.hops().size(), 2u);
  EXPECT_EQ(e.hops()[0].service, "math");
  EXPECT_EQ(e.hops()[0].app, kSwitchboardApp);
  EXPECT_EQ(e.hops()[1].service, "calc");
  EXPECT_EQ(e.hops()[1].method, "cmd:relay,topic:calc");
  EXPECT_EQ(e.hops()[1].app, kServiceApp);
}

TEST_F(HemeraInterop, QueueGroupIsSharedWithHemera) {
  // Both serve {topic: shared, cmd: who} in the queue group queue.shared:
  // each request is answered by exactly one of them.
  Runtime& rt = start_switchboard();
  int served = 0;
  rt.add({{"topic", "shared"}, {"cmd", "who"}}, [&served](Call&) {
    ++served;
    return Json{{"by", "switchboard"}};
  });

  constexpr int kRequests = 40;
  int by_switchboard = 0;
  int by_hemera = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto r = act(rt, {{"topic", "shared"}, {"cmd", "who"}, {"i", i}});
    ASSERT_FALSE(r.ec) << r.response.error->message();
    if (r.response.result["by"] == "switchboard") ++by_switchboard;
    if (r.response.result["by"] == "hemera") ++by_hemera;
  }
  auto count = act(rt, {{"topic", "calc"}, {"cmd", "sharedCount"}});
  ASSERT_FALSE(count.ec);

  EXPECT_EQ(by_switchboard + by_hemera, kRequests);
  EXPECT_EQ(served, by_switchboard);
  EXPECT_EQ(count.response.result, by_hemera);  // Hemera saw no request twice
  // nats-server picks a member at random: all 40 to one side has odds 2^-39.
  EXPECT_GT(by_switchboard, 0);
  EXPECT_GT(by_hemera, 0);
}

}  // namespace
}  // namespace switchboard
