// Extension points: the order hooks run in, hooks that abort, middleware,
// runtime plugins and their dependencies, graceful close.
#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace switchboard {
namespace {

using test::act;

class RuntimeHooks : public ::testing::Test {
 protected:
  void SetUp() override { app = test::start_app(io, test::unique_url()); }
  Runtime& rt() { return app->runtime(); }
  asio::io_context io;
  std::unique_ptr<App> app;
};

TEST_F(RuntimeHooks, RunInHemerasOrder) {
  std::vector<std::string> order;
  rt().on_add([&](const Json&) { order.push_back("onAdd"); });
  rt().on_act([&](ActInfo&) { order.push_back("onAct"); });
  rt().on_request([&](Call&) { order.push_back("onRequest"); });
  rt().pre_handler([&](Call&) { order.push_back("preHandler"); });
  rt().on_send([&](Call&, Json&, std::optional<Error>&) { order.push_back("onSend"); });
  rt().on_response([&](Call&) { order.push_back("onResponse"); });
  rt().on_act_finished([&](const ActInfo&, const Response&) { order.push_back("onActFinished"); });
  rt().on_close([&] { order.push_back("onClose"); });
  rt().add({{"topic", "t"}},
           [&](Call&) {
             order.push_back("handler");
             return 1;
           })
      .use([&](Call&) { order.push_back("middleware"); });
  act(io, rt(), {{"topic", "t"}});
  test::close(io, rt());
  EXPECT_EQ(order, (std::vector<std::string>{"onAdd", "onAct", "onRequest", "preHandler",
                                             "middleware", "handler", "onSend", "onResponse",
                                             "onActFinished", "onClose"}));
}

TEST_F(RuntimeHooks, OnErrorSeesBothSides) {
  std::vector<std::string> names;
  rt().on_error([&](const Error& e) { names.push_back(e.name()); });
  rt().add({{"topic", "t"}}, [](Call&) -> Json { throw Error("Bad", "x"); });
  act(io, rt(), {{"topic", "t"}});
  EXPECT_EQ(names, (std::vector<std::string>{"Bad", "Bad"}));  // service, then client
}

TEST_F(RuntimeHooks, OnActCanRewriteAndAbort) {
  rt().add({{"topic", "t"}}, [](Call& c) { return c.pattern().value("added", 0); });
  rt().on_act([](ActInfo& info) {
    if (info.pattern.value("forbidden", false)) throw Error("Forbidden", "not allowed");
    info.pattern["added"] = 5;
  });
  EXPECT_EQ(act(io, rt(), {{"topic", "t"}}).response.result, 5);
  auto r = act(io, rt(), {{"topic", "t"}, {"forbidden", true}});
  EXPECT_EQ(r.response.error->name(), "Forbidden");
}

TEST_F(RuntimeHooks, MiddlewareAndPreHandlerCanReject) {
  int handled = 0;
  rt().add({{"topic", "t"}}, [&](Call&) { return ++handled; }).use([](Call& c) {
    if (!c.meta().contains("user")) throw Error("Unauthorized", "who are you?", 401);
  });
  auto r = act(io, rt(), {{"topic", "t"}});
  EXPECT_EQ(r.response.error->name(), "Unauthorized");
  EXPECT_EQ(r.response.error->code(), 401);
  EXPECT_EQ(handled, 0);
  EXPECT_EQ(act(io, rt(), {{"topic", "t"}, {"meta$", {{"user", "u"}}}}).response.result, 1);
  rt().pre_handler([](Call&) { throw Error("Maintenance", "down"); });
  EXPECT_EQ(act(io, rt(), {{"topic", "t"}, {"meta$", {{"user", "u"}}}}).response.error->name(),
            "Maintenance");
}

TEST_F(RuntimeHooks, PlainPublishSubscribeWithWildcardsAndQueueGroups) {
  std::vector<std::string> star, rest;
  int q1 = 0, q2 = 0;
  ASSERT_FALSE(
      rt().subscribe("orders.*", "", [&](const Message& m) { star.push_back(m.subject); }));
  ASSERT_FALSE(
      rt().subscribe("orders.>", "", [&](const Message& m) { rest.push_back(m.subject); }));
  Runtime::SubscriptionId id = 0;
  ASSERT_FALSE(rt().subscribe(
      "orders.new", "g", [&](const Message&) { ++q1; }, &id));
  ASSERT_FALSE(rt().subscribe("orders.new", "g", [&](const Message&) { ++q2; }));
  ASSERT_FALSE(rt().publish("orders.new", {{"id", 1}}));
  ASSERT_FALSE(rt().publish("orders.eu.new", {{"id", 2}}));
  ASSERT_TRUE(test::run_until(io, [&] { return rest.size() == 2; }));
  test::settle(io);
  EXPECT_EQ(star, (std::vector<std::string>{"orders.new"}));
  EXPECT_EQ(q1 + q2, 1);
  rt().unsubscribe(id);
  EXPECT_EQ(rt().publish("orders.*", {{"id", 3}}), errc::invalid_argument);
  EXPECT_EQ(rt().subscribe("orders..x", "", [](const Message&) {}), errc::invalid_argument);
}

TEST_F(RuntimeHooks, OnSendCanChangeTheResult) {
  rt().add({{"topic", "t"}}, [](Call&) { return 1; });
  rt().on_send([](Call&, Json& result, std::optional<Error>&) { result = result.get<int>() + 1; });
  EXPECT_EQ(act(io, rt(), {{"topic", "t"}}).response.result, 2);
}

class Named : public RuntimePlugin {
 public:
  Named(std::string name, std::vector<std::string> deps = {}) : name_(name), deps_(deps) {}
  std::string name() const override { return name_; }
  std::string version() const override { return "0.1.0"; }
  std::vector<std::string> dependencies() const override { return deps_; }
  void attach(Runtime& rt, const Json& options) override {
    attached_with = options;
    rt.add({{"topic", name_}}, [](Call&) { return "ok"; });
  }
  Json attached_with;

 private:
  std::string name_;
  std::vector<std::string> deps_;
};

TEST_F(RuntimeHooks, PluginsRegisterWithOptionsAndDependencies) {
  auto base = std::make_shared<Named>("base");
  rt().use(base, {{"level", 2}});
  EXPECT_EQ(base->attached_with["level"], 2);
  rt().use(std::make_shared<Named>("auth", std::vector<std::string>{"base"}));
  EXPECT_EQ(rt().plugins().size(), 2u);
  EXPECT_EQ(act(io, rt(), {{"topic", "auth"}}).response.result, "ok");
}

TEST_F(RuntimeHooks, MissingDependencyFailsClearly) {
  try {
    rt().use(std::make_shared<Named>("auth", std::vector<std::string>{"base"}));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), errc::plugin_error);
    EXPECT_NE(std::string(e.what()).find("'auth' depends on 'base'"), std::string::npos);
  }
  EXPECT_TRUE(rt().plugins().empty());
}

TEST_F(RuntimeHooks, DuplicatePluginFails) {
  rt().use(std::make_shared<Named>("base"));
  EXPECT_THROW(rt().use(std::make_shared<Named>("base")), Error);
}

TEST_F(RuntimeHooks, PluginsFromConfigLoadAsSharedLibraries) {
  auto other = test::start_app(io, test::unique_url(), {"math"});
  ASSERT_EQ(other->runtime().plugins().size(), 1u);
  EXPECT_EQ(other->runtime().plugins()[0]->name(), "math");
}

TEST_F(RuntimeHooks, CloseWaitsForInflightHandlers) {
  std::optional<Reply> held;
  rt().add({{"topic", "slow"}}, [&](Call&, Reply r) { held = r; });
  bool answered = false, closed = false;
  rt().act({{"topic", "slow"}},
           [&](std::error_code ec, Response r) { answered = !ec && r.result == "late"; });
  ASSERT_TRUE(test::run_until(io, [&] { return held.has_value(); }));
  rt().close([&] { closed = true; });
  test::settle(io);
  EXPECT_FALSE(closed);  // a handler is still working
  EXPECT_EQ(rt().inflight_handlers(), 1u);
  held->send("late");
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
  EXPECT_TRUE(answered);
  EXPECT_THROW(rt().add({{"topic", "x"}}, [](Call&) { return 1; }), Error);
}

TEST_F(RuntimeHooks, CloseGivesUpOnAHandlerThatNeverReplies) {
  auto app2 = test::start_app(io, test::unique_url(), {}, [](Config& c) {
    c.runtime.timeout = std::chrono::milliseconds(100);
  });
  auto& r2 = app2->runtime();
  std::optional<Reply> held;
  r2.add({{"topic", "stuck"}}, [&](Call&, Reply r) { held = r; });
  std::error_code act_ec;
  bool act_done = false, closed = false;
  r2.act({{"topic", "stuck"}, {"timeout$", 60000}}, [&](std::error_code ec, Response) {
    act_ec = ec;
    act_done = true;
  });
  ASSERT_TRUE(test::run_until(io, [&] { return held.has_value(); }));
  r2.close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(
      io, [&] { return closed; }, std::chrono::seconds(3)));
  EXPECT_TRUE(act_done);
  EXPECT_EQ(act_ec, errc::closed);
  held->send("too late");  // dropped, no crash
  EXPECT_EQ(r2.inflight_handlers(), 0u);
}

TEST_F(RuntimeHooks, CloseMovesQueueWorkToOtherMembers) {
  // After close starts, the closing member is out of the queue group.
  auto url = test::unique_url();
  auto a = test::start_app(io, url);
  auto b = test::start_app(io, url);
  auto caller = test::start_app(io, url);
  int on_a = 0, on_b = 0;
  a->runtime().add({{"topic", "w"}}, [&](Call&) { return ++on_a; });
  b->runtime().add({{"topic", "w"}}, [&](Call&) { return ++on_b; });
  test::close(io, a->runtime());
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(act(io, caller->runtime(), {{"topic", "w"}}).ec);
  EXPECT_EQ(on_a, 0);
  EXPECT_EQ(on_b, 5);
}

}  // namespace
}  // namespace switchboard
