// The Hemera 7 wire form, as observed between nats-hemera 7.0.2 peers.
#include "envelope.hpp"

#include <gtest/gtest.h>

#include "payload_schema.hpp"
#include "switchboard/error.hpp"

namespace switchboard {
namespace {

TEST(Envelope, MethodIsTheSortedScalarList) {
  EXPECT_EQ(method_of({{"topic", "math"}, {"cmd", "add"}, {"b", 2}, {"a", 1}, {"o", {{"x", 1}}}}),
            "a:1,b:2,cmd:add,topic:math");
}

TEST(Envelope, MethodPrintsNumbersAsJavaScriptDoesAndSkipsNull) {
  EXPECT_EQ(method_of({{"topic", "t"}, {"a", 1.0}, {"b", 1.5}, {"c", nullptr}}),
            "a:1,b:1.5,topic:t");
}

TEST(Envelope, MethodSortsPartsWhereAKeyIsAPrefixOfAnother) {
  // Key order puts "a" before "a-b" and "a1", but ':' sorts after '-' and
  // '1', so the parts are not in key order; method_of must still sort them.
  EXPECT_EQ(method_of({{"a", 1}, {"a-b", 2}, {"a1", 3}, {"b", true}, {"topic", "t"}}),
            "a-b:2,a1:3,a:1,b:true,topic:t");
  EXPECT_EQ(method_of({{"x", "1"}, {"x:y", "2"}}), "x:1,x:y:2");
}

TEST(Envelope, RequestHasHemerasFields) {
  RequestEnvelope r;
  r.pattern = {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}};
  r.trace.trace_id = "T";
  r.trace.span_id = "S";
  r.trace.service = "math";
  r.trace.method = method_of(r.pattern);
  r.request_id = "R";
  Json j = encode_request(r);
  EXPECT_EQ(j["pattern"], r.pattern);
  EXPECT_TRUE(j["meta"].is_object());
  EXPECT_TRUE(j["delegate"].is_object());
  EXPECT_EQ(j["trace"]["traceId"], "T");
  EXPECT_EQ(j["trace"]["spanId"], "S");
  EXPECT_EQ(j["trace"]["method"], "a:1,b:2,cmd:add,topic:math");
  EXPECT_EQ(j["request"]["id"], "R");
  EXPECT_EQ(j["request"]["type"], "request");
  EXPECT_EQ(j["request"]["service"], "math");
  EXPECT_FALSE(j["request"].contains("depth"));  // only nested calls carry it
}

TEST(Envelope, DecodesHemerasMinimalForeignRequest) {
  RequestEnvelope r;
  std::string why;
  ASSERT_TRUE(decode_request(
      Json::parse(R"({"pattern":{"topic":"math","cmd":"add"},"request":{"type":"request"}})"), r,
      why));
  EXPECT_EQ(r.pattern["cmd"], "add");
  EXPECT_EQ(r.type, "request");
  EXPECT_FALSE(decode_request(Json::parse(R"({"request":{}})"), r, why));
  EXPECT_NE(why.find("pattern"), std::string::npos);
}

TEST(Envelope, ReplyHasResultAndErrorFields) {
  RequestEnvelope r;
  r.request_id = "R";
  Trace t;
  t.service = "math";
  Json ok = encode_reply(Json::object(), t, r, 3, nullptr);
  EXPECT_EQ(ok["result"], 3);
  EXPECT_TRUE(ok["error"].is_null());
  EXPECT_EQ(ok["request"]["id"], "R");
  Json bad = encode_reply(Json::object(), t, r, nullptr, Error("Error", "boom").to_json());
  EXPECT_TRUE(bad["result"].is_null());
  EXPECT_EQ(bad["error"]["name"], "Error");
  EXPECT_EQ(bad["error"]["message"], "boom");
}

TEST(Envelope, DollarOptionsAreParsedAndChecked) {
  Json travels;
  DollarOptions o;
  std::string why;
  ASSERT_TRUE(split_dollar_keys(
      {{"topic", "t"}, {"timeout$", 10}, {"pubsub$", true}, {"maxMessages$", -1}, {"queue$", "q"}},
      travels, o, why));
  EXPECT_EQ(travels, (Json{{"topic", "t"}}));
  EXPECT_EQ(o.timeout->count(), 10);
  EXPECT_TRUE(o.pubsub);
  EXPECT_EQ(o.max_messages, -1);
  EXPECT_EQ(o.queue, "q");
  EXPECT_FALSE(split_dollar_keys({{"topic", "t"}, {"meta$", 1}}, travels, o, why));
  EXPECT_NE(why.find("meta$"), std::string::npos);
}

TEST(PayloadSchema, Keywords) {
  Json schema = {{"n", {{"type", "integer"}, {"max", 10}}},
                 {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
                 {"color", {{"enum", {"red", "blue"}}}},
                 {"code", {{"type", "string"}, {"pattern", "^[A-Z]+$"}}},
                 {"user", {{"type", "object"}, {"properties", {{"id", {{"required", true}}}}}}}};
  EXPECT_FALSE(check_schema_definition(schema));
  EXPECT_FALSE(validate_payload(schema, {{"n", 3}, {"tags", {"a"}}, {"color", "red"}}));
  EXPECT_EQ(*validate_payload(schema, {{"n", 1.5}}), "n: expected \"integer\", got number");
  EXPECT_EQ(*validate_payload(schema, {{"n", 11}}), "n: must be at most 10");
  EXPECT_EQ(*validate_payload(schema, {{"tags", {"a", 1}}}),
            "tags[1]: expected \"string\", got integer");
  EXPECT_EQ(*validate_payload(schema, {{"color", "green"}}),
            "color: must be one of [\"red\",\"blue\"]");
  EXPECT_EQ(*validate_payload(schema, {{"code", "ab"}}), "code: does not match \"^[A-Z]+$\"");
  EXPECT_EQ(*validate_payload(schema, {{"user", Json::object()}}), "user.id: is required");
  EXPECT_TRUE(check_schema_definition({{"x", {{"tpye", "string"}}}}));
  EXPECT_TRUE(check_schema_definition({{"x", {{"type", "numbr"}}}}));
  EXPECT_TRUE(check_schema_definition({{"x", {{"minLength", -1}}}}));
  EXPECT_EQ(*validate_payload({{"n", {{"type", "integer"}}}}, {{"n", 1e300}}),
            "n: expected \"integer\", got number");
}

}  // namespace
}  // namespace switchboard
