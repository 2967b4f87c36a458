// Every error an act can end with: its error_code, name, message and code,
// and that they survive the wire.
#include <gtest/gtest.h>

#include "support/test_support.hpp"

namespace switchboard {
namespace {

using test::act;

class RuntimeErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    url = test::unique_url();
    service = test::start_app(io, url, {}, [](Config& c) { c.runtime.name = "svc-app"; });
    client = test::start_app(io, url, {}, [](Config& c) { c.runtime.max_recursion = 3; });
  }
  Runtime& svc() { return service->runtime(); }
  Runtime& cli() { return client->runtime(); }
  asio::io_context io;
  std::string url;
  std::unique_ptr<App> service, client;
};

TEST_F(RuntimeErrors, TimeoutError) {
  svc().add({{"topic", "t"}}, [](Call&, Reply) {});
  auto r = act(io, cli(), {{"topic", "t"}, {"timeout$", 30}});
  EXPECT_EQ(r.ec, errc::timeout);
  EXPECT_EQ(r.response.error->name(), "TimeoutError");
  EXPECT_NE(r.response.error->message().find("topic:t"), std::string::npos);
}

TEST_F(RuntimeErrors, PatternNotFound) {
  svc().add({{"topic", "t"}, {"cmd", "a"}}, [](Call&) { return 1; });
  auto r = act(io, cli(), {{"topic", "t"}, {"cmd", "b"}});
  EXPECT_EQ(r.ec, errc::pattern_not_found);
  EXPECT_EQ(r.response.error->name(), "PatternNotFound");
  EXPECT_EQ(r.response.error->message(), "No action found for this pattern");
}

TEST_F(RuntimeErrors, HandlerErrorKeepsNameMessageCodeAndHops) {
  svc().add({{"topic", "t"}}, [](Call&) -> Json { throw Error("QuotaError", "too many", 429); });
  auto r = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(r.ec, errc::response_error);
  const Error& e = *r.response.error;
  EXPECT_EQ(e.kind(), errc::response_error);
  EXPECT_EQ(e.name(), "QuotaError");
  EXPECT_EQ(e.message(), "too many");
  EXPECT_EQ(e.code(), 429);
  ASSERT_EQ(e.hops().size(), 1u);
  EXPECT_EQ(e.hops()[0].service, "t");
  EXPECT_EQ(e.hops()[0].app, "svc-app");
  EXPECT_TRUE(r.response.result.is_null());
}

TEST_F(RuntimeErrors, StdExceptionBecomesAnError) {
  svc().add({{"topic", "t"}}, [](Call&) -> Json { throw std::runtime_error("boom"); });
  auto r = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(r.ec, errc::response_error);
  EXPECT_EQ(r.response.error->name(), "Error");
  EXPECT_EQ(r.response.error->message(), "boom");
}

TEST_F(RuntimeErrors, AsyncFail) {
  svc().add({{"topic", "t"}}, [](Call&, Reply reply) { reply.fail(Error("Nope", "no", "E1")); });
  auto r = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(r.response.error->name(), "Nope");
  EXPECT_EQ(r.response.error->code(), "E1");
}

TEST_F(RuntimeErrors, PayloadValidationError) {
  svc().add({{"topic", "t"},
             {"a", {{"type", "number"}, {"required", true}, {"min", 0}}},
             {"name", {{"type", "string"}, {"maxLength", 3}}}},
            [](Call&) { return 1; });
  EXPECT_FALSE(act(io, cli(), {{"topic", "t"}, {"a", 1}}).ec);
  auto missing = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(missing.ec, errc::payload_validation);
  EXPECT_EQ(missing.response.error->name(), "PayloadValidationError");
  EXPECT_EQ(missing.response.error->message(), "a: is required");
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"a", -1}}).response.error->message(),
            "a: must be at least 0");
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"a", 1}, {"name", "long"}}).response.error->message(),
            "name: length must be at most 3");
}

TEST_F(RuntimeErrors, SamePatternTwiceIsRefused) {
  svc().add({{"topic", "t"}, {"cmd", "a"}}, [](Call&) { return 1; });
  EXPECT_THROW(svc().add({{"topic", "t"}, {"cmd", "a"}}, [](Call&) { return 2; }), Error);
  // A more specific pattern is fine.
  svc().add({{"topic", "t"}, {"cmd", "a"}, {"v", 2}}, [](Call&) { return 2; });
}

TEST_F(RuntimeErrors, BadSchemaIsRefusedAtAdd) {
  EXPECT_THROW(svc().add({{"topic", "t"}, {"a", {{"typo", "number"}}}}, [](Call&) { return 1; }),
               Error);
}

TEST_F(RuntimeErrors, ParseErrorForUndecodableRequests) {
  // Raw bytes on the topic with a reply inbox: the service answers ParseError.
  svc().add({{"topic", "t"}}, [](Call&) { return 1; });
  bool got = false;
  Json reply;
  cli().subscribe("raw.reply", "", [&](const Message& m) {
    reply = Json::parse(m.data.view());
    got = true;
  });
  Message m;
  m.subject = "t";
  m.data = Payload("{not json");
  m.reply_to = "raw.reply";
  ASSERT_FALSE(cli().publish_raw(m));
  ASSERT_TRUE(test::run_until(io, [&] { return got; }));
  EXPECT_EQ(reply["error"]["name"], "ParseError");
  // The service keeps serving.
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}}).response.result, 1);
}

TEST_F(RuntimeErrors, ParseErrorForUndecodableReplies) {
  // A responder that answers garbage.
  cli().subscribe("t", "", [&](const Message& m) {
    Message out;
    out.subject = m.reply_to;
    out.data = Payload("\x01garbage");
    cli().publish_raw(out);
  });
  auto r = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(r.ec, errc::parse_error);
  EXPECT_EQ(r.response.error->name(), "ParseError");
}

TEST_F(RuntimeErrors, MaxRecursionErrorStopsACallLoop) {
  // A handler on the client runtime that calls itself forever.
  int calls = 0;
  cli().add({{"topic", "loop"}}, [&](Call& c, Reply reply) {
    ++calls;
    c.act({{"topic", "loop"}}, [reply](std::error_code ec, Response r) {
      if (ec) {
        reply.fail(*r.error);
      } else {
        reply.send(r.result);
      }
    });
  });
  auto r = act(io, cli(), {{"topic", "loop"}});
  ASSERT_TRUE(r.response.error);
  EXPECT_EQ(r.response.error->name(), "MaxRecursionError");
  EXPECT_EQ(r.ec, errc::max_recursion);
  EXPECT_EQ(calls, 3);
}

TEST_F(RuntimeErrors, TransportErrorWhenNobodyListens) {
  auto r = act(io, cli(), {{"topic", "nobody"}});
  EXPECT_EQ(r.ec, errc::no_responders);
  EXPECT_EQ(r.response.error->name(), "TransportError");
  EXPECT_EQ(cli().pending_requests(), 0u);
}

TEST_F(RuntimeErrors, TransportErrorForOversizePayload) {
  svc().add({{"topic", "t"}}, [](Call&) { return 1; });
  auto r = act(io, cli(), {{"topic", "t"}, {"blob", std::string(2 * 1024 * 1024, 'x')}});
  EXPECT_EQ(r.ec, errc::payload_too_large);
  EXPECT_EQ(r.response.error->name(), "TransportError");
  EXPECT_NE(r.response.error->message().find("larger"), std::string::npos);
  EXPECT_EQ(cli().pending_requests(), 0u);
}

TEST_F(RuntimeErrors, OversizeReplyBecomesAnErrorReply) {
  svc().add({{"topic", "big"}}, [](Call&) { return std::string(2 * 1024 * 1024, 'x'); });
  auto r = act(io, cli(), {{"topic", "big"}, {"timeout$", 1000}});
  // By name across the wire: TransportError, with the reason in the message.
  EXPECT_EQ(r.ec, errc::transport_error);
  EXPECT_EQ(r.response.error->name(), "TransportError");
  EXPECT_NE(r.response.error->message().find("reply of"), std::string::npos);
}

TEST_F(RuntimeErrors, MalformedEnvelopeFieldsDoNotCrashEitherSide) {
  // Wrong types where strings belong: the service still answers, and a
  // reply with odd hops still completes the act.
  svc().add({{"topic", "t"}}, [](Call& c) { return c.request_id(); });
  bool got = false;
  Json reply;
  cli().subscribe("raw.reply2", "", [&](const Message& m) {
    reply = Json::parse(m.data.view());
    got = true;
  });
  Message m;
  m.subject = "t";
  m.data = Payload(R"({"pattern":{"topic":"t"},"request":{"id":7,"type":[1]},"trace":5})");
  m.reply_to = "raw.reply2";
  ASSERT_FALSE(cli().publish_raw(m));
  ASSERT_TRUE(test::run_until(io, [&] { return got; }));
  EXPECT_EQ(reply["result"], "");
  cli().subscribe("odd", "", [&](const Message& in) {
    Message out;
    out.subject = in.reply_to;
    out.data =
        Payload(R"({"result":null,"error":{"name":"X","message":1,"hops":[{"service":2}]}})");
    cli().publish_raw(out);
  });
  auto r = act(io, cli(), {{"topic", "odd"}});
  EXPECT_EQ(r.response.error->name(), "X");
}

TEST_F(RuntimeErrors, RequestIdMustBeOneSubjectToken) {
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"requestId$", "a.b"}}).ec, errc::invalid_argument);
}

TEST_F(RuntimeErrors, InvalidPatterns) {
  EXPECT_EQ(act(io, cli(), {{"cmd", "no topic"}}).ec, errc::invalid_argument);
  EXPECT_EQ(act(io, cli(), {{"topic", "t"}, {"timeout$", "soon"}}).ec, errc::invalid_argument);
  EXPECT_THROW(svc().add({{"cmd", "x"}}, [](Call&) { return 1; }), Error);
}

TEST_F(RuntimeErrors, ErrorsRoundTripThroughJson) {
  Error e("TimeoutError", "late", 7);
  e.add_hop({"s", "m", "a", 1.5});
  Error back = Error::from_json(e.to_json());
  EXPECT_EQ(back.kind(), errc::timeout);
  EXPECT_EQ(back.name(), "TimeoutError");
  EXPECT_EQ(back.code(), 7);
  ASSERT_EQ(back.hops().size(), 1u);
  EXPECT_EQ(back.hops()[0].ts, 1.5);
  EXPECT_EQ(Error::from_json({{"name", "Custom"}, {"message", "x"}}).kind(), errc::response_error);
}

TEST_F(RuntimeErrors, ActAfterCloseFailsClearly) {
  test::close(io, cli());
  auto r = act(io, cli(), {{"topic", "t"}});
  EXPECT_EQ(r.ec, errc::closed);
}

}  // namespace
}  // namespace switchboard
