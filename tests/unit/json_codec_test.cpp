// The json codec's reader (simdjson, nlohmann as fallback) and writer agree
// with nlohmann's parse and dump, which is what Hemera peers and earlier
// Switchboard versions read and wrote.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "json_reader.hpp"
#include "json_text_codec.hpp"
#include "json_writer.hpp"
#include "support/hostile_json.hpp"
#include "switchboard/json.hpp"

namespace switchboard {
namespace {

std::string written(const Json& v) {
  std::string out;
  json_codec::write(v, out);
  return out;
}

std::string nlohmann_dump(const Json& v) {
  return v.dump(-1, ' ', false, Json::error_handler_t::replace);
}

Json read_ok(const std::string& text) {
  Json out;
  std::string error;
  EXPECT_TRUE(json_codec::read(text, out, error)) << text << ": " << error;
  return out;
}

TEST(JsonWriter, WritesWhatNlohmannWrites) {
  const std::vector<Json> values = {
      nullptr,
      true,
      false,
      0,
      -1,
      std::numeric_limits<std::int64_t>::min(),
      std::numeric_limits<std::uint64_t>::max(),
      "",
      "plain",
      "quote \" backslash \\ slash / tab \t newline \n cr \r bs \b ff \f",
      std::string("nul \x00 unit \x1f del \x7f", 19),
      "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80",  // é € 😀 stay UTF-8
      "bad \xff\xfe utf8",                           // replaced with U+FFFD
      "truncated \xe2\x82",
      Json::array({1, "two", Json::array(), Json::object(), nullptr}),
      {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2.5}, {"nested", {{"k", {1, 2}}}}},
      {{"we\"ird\nkey", 1}},
      0.5,
      3.0,
      -0.0,
      0.1,
      1e300,
      123456789.0,
      2.5e-8,
  };
  for (const auto& v : values) EXPECT_EQ(written(v), nlohmann_dump(v)) << nlohmann_dump(v);
}

TEST(JsonWriter, NonFiniteNumbersBecomeNullAsWithNlohmann) {
  for (double d : {std::nan(""), std::numeric_limits<double>::infinity()}) {
    EXPECT_EQ(written(Json(d)), "null");
    EXPECT_EQ(written(Json(d)), nlohmann_dump(Json(d)));
  }
}

TEST(JsonWriter, FloatsStayFloatsAcrossTheWire) {
  for (double d : {3.0, -7.0, 1e21, 0.1, 1.0 / 3.0, 5e-324, 1.7976931348623157e308}) {
    Json back = read_ok(written(Json(d)));
    EXPECT_TRUE(back.is_number_float()) << written(Json(d));
    EXPECT_EQ(back.get<double>(), d) << written(Json(d));
  }
}

TEST(JsonReader, ReadsWhatNlohmannReads) {
  const std::vector<std::string> texts = {
      R"({"pattern":{"topic":"math","cmd":"add","a":1,"b":2},"meta":{},"request":{"id":"x"}})",
      R"([1, -2, 3.25, 1e3, -0, 18446744073709551615, -9223372036854775808])",
      R"({"s":"\u00e9\ud83d\ude00\n\"\\","t":true,"f":false,"n":null})",
      R"({"dup":1,"dup":2})",  // the last wins
      R"(  {"spaces" :  [ ] }  )",
      R"(123456789012345678901234567890)",  // beyond 64 bits: a double, through nlohmann
  };
  for (const auto& t : texts) EXPECT_EQ(read_ok(t), Json::parse(t)) << t;
}

// Json objects are sorted vectors: members arriving in reverse key order
// would cost O(n^2) moves if inserted one by one (one hostile message could
// stall a node for many seconds); the reader gathers and sorts them once.
TEST(JsonReader, AnObjectWithManyKeysInReverseOrderReadsWhole) {
  const int n = 100000;
  Json out = read_ok(test::descending_object(n));
  ASSERT_EQ(out.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(out.begin().key(), "k1000000");
  EXPECT_EQ(out["k1000000"], 0);
  EXPECT_EQ(out["k1099999"], n - 1);
}

// What simdjson refuses goes to nlohmann's parser (through parse_json): an
// integer beyond 64 bits (nlohmann reads a double) or nesting deeper than
// simdjson's 1024. A sender who adds one to a hostile object must not get
// Json::parse's O(n^2) (minutes for this object); no timing is asserted.
TEST(JsonCodec, TextSimdjsonRefusesWithAHostileObjectDecodesWhole) {
  const int n = 200000;
  const std::string members = test::descending_members(n);
  const std::string big = R"({"big":18446744073709551616,"members":{)" + members + "}}";
  const std::string deep = std::string(1100, '[') + "{" + members + "}" + std::string(1100, ']');
  const json_codec::JsonCodec codec;
  for (const auto* text : {&big, &deep}) {
    Json out;
    std::string error;
    ASSERT_FALSE(codec.decode(*text, out, error)) << error;
    const Json* object = &out;
    if (text == &big) {
      EXPECT_TRUE(out["big"].is_number_float());
      EXPECT_EQ(out["big"], 18446744073709551616.0);
      object = &out["members"];
    } else {
      for (int depth = 0; depth < 1100; ++depth) object = &object->at(0);
    }
    ASSERT_EQ(object->size(), static_cast<std::size_t>(n));
    EXPECT_EQ(object->begin().key(), "k1000000");
    EXPECT_EQ(object->at("k1199999"), n - 1);
  }
}

TEST(JsonReader, NumbersBeyondADoubleAreRefusedNotThrown) {
  Json out;
  std::string error;
  EXPECT_FALSE(json_codec::read(R"({"a":1e400})", out, error));
  EXPECT_NE(error.find("number overflow"), std::string::npos) << error;
}

TEST(JsonReader, RefusesMalformedTextWithNlohmannsMessage) {
  for (const std::string text : {"{", "{\"a\":}", "[1,]", "nul", "{\"a\":1} x", "\"\xff\""}) {
    Json out;
    std::string error;
    EXPECT_FALSE(json_codec::read(text, out, error)) << text;
    EXPECT_NE(error.find("parse error"), std::string::npos) << text << ": " << error;
  }
}

}  // namespace
}  // namespace switchboard
