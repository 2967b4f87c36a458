// add/act over the in-process transport: routing, sync and async handlers,
// and every `$` option.
#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace switchboard {
namespace {

using test::act;

class RuntimeAct : public ::testing::Test {
 protected:
  void SetUp() override {
    url = test::unique_url();
    service = test::start_app(io, url, {"math"});
    client = test::start_app(io, url);
  }
  Runtime& svc() { return service->runtime(); }
  Runtime& cli() { return client->runtime(); }

  asio::io_context io;
  std::string url;
  std::unique_ptr<App> service, client;
};

TEST_F(RuntimeAct, CallsTheMathPluginAcrossRuntimes) {
  auto r = act(io, cli(), {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 3);
  r = act(io, cli(), {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 4}});
  EXPECT_EQ(r.response.result, 0.25);
}

TEST_F(RuntimeAct, MostSpecificHandlerAnswers) {
  svc().add({{"topic", "t"}}, [](Call&) { return "general"; });
  svc().add({{"topic", "t"}, {"cmd", "x"}}, [](Call&) { return "specific"; });
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"cmd", "x"}, {"extra", 1}}).response.result,
            "specific");
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"cmd", "y"}}).response.result, "general");
}

TEST_F(RuntimeAct, InsertionOrderOptionPicksTheFirstAdded) {
  auto app =
      test::start_app(io, test::unique_url(), {}, [](Config& c) { c.runtime.order = "insertion"; });
  auto& rt = app->runtime();
  rt.add({{"topic", "t"}}, [](Call&) { return "first"; });
  rt.add({{"topic", "t"}, {"cmd", "x"}}, [](Call&) { return "second"; });
  EXPECT_EQ(act(io, rt, {{"topic", "t"}, {"cmd", "x"}}).response.result, "first");
}

TEST_F(RuntimeAct, AsyncHandlerRepliesLater) {
  svc().add({{"topic", "slow"}}, [this](Call& call, Reply reply) {
    auto timer = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(20));
    timer->async_wait(
        [timer, reply, a = call.pattern()["a"]](std::error_code) { reply.send(a.get<int>() * 2); });
  });
  auto r = act(io, cli(), {{"topic", "slow"}, {"a", 21}});
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(r.response.result, 42);
}

TEST_F(RuntimeAct, RegexAndGlobValuesRoute) {
  svc().add({{"topic", "users"}, {"cmd", glob("get*")}},
            [](Call& c) { return c.pattern()["cmd"]; });
  svc().add({{"topic", "users"}, {"cmd", Json{{"$regex", "^del(ete)?$"}}}},
            [](Call&) { return "deleted"; });
  EXPECT_EQ(act(io, cli(), {{"topic", "users"}, {"cmd", "getAll"}}).response.result, "getAll");
  EXPECT_EQ(act(io, cli(), {{"topic", "users"}, {"cmd", "del"}}).response.result, "deleted");
  EXPECT_EQ(act(io, cli(), {{"topic", "users"}, {"cmd", "put"}}).ec, errc::pattern_not_found);
}

TEST_F(RuntimeAct, DollarKeysAreStrippedFromWhatTravels) {
  Json seen;
  svc().add({{"topic", "echo"}}, [&](Call& c) {
    seen = c.pattern();
    return true;
  });
  act(io, cli(),
      {{"topic", "echo"}, {"a", 1}, {"timeout$", 500}, {"meta$", {{"k", 1}}}, {"custom$", 2}});
  EXPECT_EQ(seen, (Json{{"topic", "echo"}, {"a", 1}}));
}

TEST_F(RuntimeAct, MetaTravelsAndComesBackAndIsInheritedByNestedActs) {
  Json inner_meta;
  svc().add({{"topic", "inner"}}, [&](Call& c) {
    inner_meta = c.meta();
    return 1;
  });
  svc().add({{"topic", "outer"}}, [](Call& c, Reply reply) {
    c.meta()["seenBy"] = "outer";
    c.act({{"topic", "inner"}, {"meta$", {{"extra", true}}}},
          [reply](std::error_code ec, Response) { reply.send(!ec); });
  });
  auto r = act(io, cli(), {{"topic", "outer"}, {"meta$", {{"user", "ann"}}}});
  ASSERT_FALSE(r.ec) << r.response.error->message();
  EXPECT_EQ(r.response.meta["user"], "ann");
  EXPECT_EQ(r.response.meta["seenBy"], "outer");
  EXPECT_EQ(inner_meta["user"], "ann");
  EXPECT_EQ(inner_meta["extra"], true);
}

TEST_F(RuntimeAct, DelegateTravelsOneHopOnly) {
  Json inner_delegate, outer_delegate;
  svc().add({{"topic", "inner"}}, [&](Call& c) {
    inner_delegate = c.delegate();
    return 1;
  });
  svc().add({{"topic", "outer"}}, [&](Call& c, Reply reply) {
    outer_delegate = c.delegate();
    c.act({{"topic", "inner"}}, [reply](std::error_code, Response) { reply.send(1); });
  });
  act(io, cli(), {{"topic", "outer"}, {"delegate$", {{"token", "t1"}}}});
  EXPECT_EQ(outer_delegate["token"], "t1");
  EXPECT_TRUE(inner_delegate.empty());
}

TEST_F(RuntimeAct, ContextIsLocalAndInheritedByNestedActs) {
  // One runtime serves and calls, so context$ can reach a nested act.
  auto& rt = svc();
  Json on_wire, nested_context;
  rt.on_act([&](ActInfo& info) {
    if (info.pattern["topic"] == "inner") nested_context = info.context;
  });
  rt.add({{"topic", "inner"}}, [&](Call& c) {
    on_wire = c.context();  // a new request: the context did not travel
    return 1;
  });
  rt.add({{"topic", "outer"}}, [](Call& c, Reply reply) {
    c.context()["step"] = "outer";
    c.act({{"topic", "inner"}}, [reply](std::error_code, Response) { reply.send(1); });
  });
  act(io, rt, {{"topic", "outer"}, {"context$", {{"local", 1}}}});
  EXPECT_EQ(nested_context["step"], "outer");
  EXPECT_TRUE(on_wire.empty());
}

TEST_F(RuntimeAct, NestedActsMakeChildSpansWithDurations) {
  Trace outer_seen, inner_seen;
  svc().add({{"topic", "inner"}}, [&](Call& c) {
    inner_seen = c.trace();
    return 1;
  });
  svc().add({{"topic", "outer"}}, [&](Call& c, Reply reply) {
    outer_seen = c.trace();
    c.act({{"topic", "inner"}}, [reply](std::error_code, Response) { reply.send(1); });
  });
  auto r = act(io, cli(), {{"topic", "outer"}});
  ASSERT_FALSE(r.ec);
  EXPECT_EQ(outer_seen.trace_id, r.response.trace.trace_id);
  EXPECT_EQ(outer_seen.span_id, r.response.trace.span_id);
  EXPECT_EQ(inner_seen.trace_id, outer_seen.trace_id);
  EXPECT_EQ(inner_seen.parent_span_id, outer_seen.span_id);
  EXPECT_NE(inner_seen.span_id, outer_seen.span_id);
  EXPECT_GT(r.response.trace.duration, 0);
  EXPECT_EQ(outer_seen.method, "topic:outer");
}

TEST_F(RuntimeAct, TraceOptionSetsTheIds) {
  Trace seen;
  svc().add({{"topic", "t"}}, [&](Call& c) {
    seen = c.trace();
    return 1;
  });
  act(io, cli(),
      {{"topic", "t"}, {"trace$", {{"traceId", "T1"}, {"spanId", "S1"}, {"parentSpanId", "P1"}}}});
  EXPECT_EQ(seen.trace_id, "T1");
  EXPECT_EQ(seen.span_id, "S1");
  EXPECT_EQ(seen.parent_span_id, "P1");
}

TEST_F(RuntimeAct, RequestIdOptionTravels) {
  std::string seen;
  svc().add({{"topic", "t"}}, [&](Call& c) {
    seen = c.request_id();
    return 1;
  });
  act(io, cli(), {{"topic", "t"}, {"requestId$", "req-42"}});
  EXPECT_EQ(seen, "req-42");
}

TEST_F(RuntimeAct, TimeoutOptionOverridesTheDefault) {
  svc().add({{"topic", "never"}}, [](Call&, Reply) {});
  auto start = std::chrono::steady_clock::now();
  auto r = act(io, cli(), {{"topic", "never"}, {"timeout$", 50}});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.ec, errc::timeout);
  ASSERT_TRUE(r.response.error);
  EXPECT_EQ(r.response.error->name(), "TimeoutError");
  EXPECT_LT(took, std::chrono::milliseconds(1500));  // not the 2000 ms default
  EXPECT_EQ(cli().pending_requests(), 0u);
}

TEST_F(RuntimeAct, PubsubFansOutToEverySubscriberWithoutReply) {
  int a = 0, b = 0, queued = 0;
  svc().add({{"topic", "news"}, {"pubsub$", true}}, [&](Call&) { return ++a; });
  auto other = test::start_app(io, url);
  other->runtime().add({{"topic", "news"}, {"pubsub$", true}}, [&](Call&) { return ++b; });
  other->runtime().add({{"topic", "news"}}, [&](Call&) { return ++queued; });
  auto r = act(io, cli(), {{"topic", "news"}, {"pubsub$", true}, {"x", 1}});
  EXPECT_FALSE(r.ec);
  EXPECT_TRUE(r.response.result.is_null());
  ASSERT_TRUE(test::run_until(io, [&] { return a == 1 && b == 1 && queued == 1; }));
  test::settle(io);
  EXPECT_EQ(a + b + queued, 3);
}

TEST_F(RuntimeAct, QueueOptionMakesACustomGroup) {
  int first = 0, second = 0;
  svc().add({{"topic", "jobs"}, {"queue$", "workers"}}, [&](Call&) { return ++first; });
  auto other = test::start_app(io, url);
  other->runtime().add({{"topic", "jobs"}, {"queue$", "workers"}}, [&](Call&) { return ++second; });
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(act(io, cli(), {{"topic", "jobs"}}).ec);
  EXPECT_EQ(first + second, 10);
  EXPECT_GT(first, 0);
  EXPECT_GT(second, 0);
}

TEST_F(RuntimeAct, ExpectedMessagesCollectsSeveralReplies) {
  svc().add({{"topic", "stream"}}, [](Call&, Reply reply) {
    reply.next(1);
    reply.next(2);
    reply.send(3);
  });
  std::vector<Json> got;
  bool done = false;
  std::error_code ec;
  cli().act_stream(
      {{"topic", "stream"}, {"expectedMessages$", 3}},
      [&](const Response& r) { got.push_back(r.result); },
      [&](std::error_code e, Response) {
        ec = e;
        done = true;
      });
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  EXPECT_FALSE(ec);
  EXPECT_EQ(got, (std::vector<Json>{1, 2, 3}));
}

TEST_F(RuntimeAct, ExpectedMessagesTimesOutWhenTooFewArrive) {
  svc().add({{"topic", "stream"}}, [](Call&, Reply reply) { reply.send(1); });
  bool done = false;
  std::error_code ec;
  Response last;
  cli().act_stream({{"topic", "stream"}, {"expectedMessages$", 2}, {"timeout$", 100}}, nullptr,
                   [&](std::error_code e, Response r) {
                     ec = e;
                     last = std::move(r);
                     done = true;
                   });
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  EXPECT_EQ(ec, errc::timeout);
  EXPECT_NE(last.error->message().find("1 of 2"), std::string::npos);
}

TEST_F(RuntimeAct, MaxMessagesStopsAfterTheLimit) {
  svc().add({{"topic", "stream"}}, [](Call&, Reply reply) {
    for (int i = 0; i < 4; ++i) reply.next(i);
    reply.send(4);
  });
  int count = 0;
  bool done = false;
  cli().act_stream(
      {{"topic", "stream"}, {"maxMessages$", 2}}, [&](const Response&) { ++count; },
      [&](std::error_code, Response) { done = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  test::settle(io);
  EXPECT_EQ(count, 2);
  EXPECT_EQ(cli().pending_requests(), 0u);
}

TEST_F(RuntimeAct, UnboundedStreamEndsAtTheTimeoutAfterTheLastMessage) {
  svc().add({{"topic", "stream"}}, [](Call&, Reply reply) {
    reply.next("a");
    reply.next("b");
  });
  int count = 0;
  bool done = false;
  std::error_code ec;
  cli().act_stream(
      {{"topic", "stream"}, {"maxMessages$", -1}, {"timeout$", 100}},
      [&](const Response&) { ++count; },
      [&](std::error_code e, Response) {
        ec = e;
        done = true;
      });
  ASSERT_TRUE(test::run_until(io, [&] { return done; }));
  EXPECT_FALSE(ec);
  EXPECT_EQ(count, 2);
}

TEST_F(RuntimeAct, RemoveStopsRouting) {
  svc().add({{"topic", "t"}, {"cmd", "a"}}, [](Call&) { return "a"; });
  svc().add({{"topic", "t"}, {"cmd", "b"}}, [](Call&) { return "b"; });
  EXPECT_EQ(svc().remove({{"topic", "t"}, {"cmd", "a"}}), 1u);
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"cmd", "a"}}).ec, errc::pattern_not_found);
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"cmd", "b"}}).response.result, "b");
  EXPECT_EQ(svc().remove({{"topic", "t"}, {"cmd", "b"}}), 1u);
  // The topic's subscription is gone too: nobody listens any more.
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"cmd", "b"}}).ec, errc::no_responders);
}

TEST_F(RuntimeAct, WildcardTopicsRouteLikeSubjects) {
  svc().add({{"topic", "orders.*"}, {"pubsub$", true}}, [](Call&) { return nullptr; });
  svc().add({{"topic", "users.>"}, {"cmd", "get"}}, [](Call& c) { return c.pattern()["topic"]; });
  EXPECT_EQ(act(io, cli(), {{"topic", "users.eu.1"}, {"cmd", "get"}}).response.result,
            "users.eu.1");
  EXPECT_EQ(svc().remove({{"topic", "users.>"}, {"cmd", "get"}}), 1u);
  EXPECT_THROW(svc().add({{"topic", "a..b"}}, [](Call&) { return 1; }), Error);
}

TEST_F(RuntimeAct, ReplyFromAnotherThread) {
  std::thread worker;
  svc().add({{"topic", "threaded"}}, [&](Call&, Reply reply) {
    worker = std::thread([reply] { reply.send("from a worker"); });
  });
  auto r = act(io, cli(), {{"topic", "threaded"}});
  worker.join();
  EXPECT_EQ(r.response.result, "from a worker");
}

TEST_F(RuntimeAct, InflightHandlersMayStillActWhileClosing) {
  svc().add({{"topic", "down"}}, [](Call&) { return "downstream"; });
  std::optional<Reply> held;
  auto& rt = svc();
  rt.add({{"topic", "up"}}, [&](Call&, Reply r) { held = r; });
  bool answered = false;
  Json result;
  cli().act({{"topic", "up"}}, [&](std::error_code, Response r) {
    result = r.result;
    answered = true;
  });
  ASSERT_TRUE(test::run_until(io, [&] { return held.has_value(); }));
  bool closed = false;
  rt.close([&] { closed = true; });
  held->call().act({{"topic", "down"}}, [reply = *held](std::error_code ec, Response r) {
    reply.send(ec ? Json("refused") : r.result);
  });
  ASSERT_TRUE(test::run_until(io, [&] { return answered && closed; }));
  EXPECT_EQ(result, "refused");  // "down" lives on the closing runtime: unsubscribed
}

TEST_F(RuntimeAct, CompletionTokensFutureAndCoroutine) {
  // std::future: the tuple (error_code, Response).
  std::thread runner([&] {
    auto work = asio::make_work_guard(io);
    io.restart();
    io.run_for(std::chrono::seconds(5));
  });
  auto fut = cli().act({{"topic", "math"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}}, asio::use_future);
  auto [ec, response] = fut.get();
  EXPECT_FALSE(ec);
  EXPECT_EQ(response.result, 42);
  io.stop();
  runner.join();

  // co_await: the same tuple. (GCC 12 rejects braced JSON literals inside
  // a coroutine body, so the pattern is built outside.)
  Json result;
  Json pattern = {{"topic", "math"}, {"cmd", "sub"}, {"a", 5}, {"b", 3}};
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto [e, r] = co_await cli().act(pattern, asio::use_awaitable);
        result = e ? Json("error") : r.result;
      },
      asio::detached);
  ASSERT_TRUE(test::run_until(io, [&] { return !result.is_null(); }));
  EXPECT_EQ(result, 2);
}

}  // namespace
}  // namespace switchboard
