// parse_json agrees with Json::parse (values, number kinds, errors and their
// messages) and reads any object in O(n log n).
#include "switchboard/json_parse.hpp"

#include <gtest/gtest.h>

#include <string>
#include <typeinfo>
#include <vector>

#include "support/hostile_json.hpp"

namespace switchboard {
namespace {

// == says 1 == 1.0 and 1 == 1u; this also compares the kind of every value.
bool same_kinds(const Json& a, const Json& b) {
  if (a.type() != b.type() || a.size() != b.size()) return false;
  if (a.is_object()) {
    for (auto i = a.begin(), j = b.begin(); i != a.end(); ++i, ++j) {
      if (i.key() != j.key() || !same_kinds(*i, *j)) return false;
    }
  } else if (a.is_array()) {
    for (std::size_t i = 0; i < a.size(); ++i) {
      if (!same_kinds(a[i], b[i])) return false;
    }
  }
  return true;
}

// What Json::parse does with a text: its value, or its exception.
struct Outcome {
  bool ok = false;
  Json value;
  std::string error;                     // what()
  const std::type_info* type = nullptr;  // of the exception
};

template <class Parse>
Outcome outcome(Parse parse) {
  Outcome o;
  try {
    o.value = parse();
    o.ok = true;
  } catch (const Json::exception& e) {
    o.error = e.what();
    o.type = &typeid(e);
  }
  return o;
}

void expect_same_as_nlohmann(const std::string& text) {
  SCOPED_TRACE(text.size() > 200 ? text.substr(0, 200) + "..." : text);
  const Outcome want = outcome([&] { return Json::parse(text); });
  const Outcome got = outcome([&] { return parse_json(text); });
  ASSERT_EQ(got.ok, want.ok) << (want.ok ? got.error : want.error);
  Json out;
  std::string error;
  EXPECT_EQ(parse_json(text, out, error), want.ok);
  if (want.ok) {
    EXPECT_EQ(got.value, want.value);
    EXPECT_EQ(got.value.dump(), want.value.dump());
    EXPECT_TRUE(same_kinds(got.value, want.value)) << got.value.dump();
    EXPECT_EQ(out, want.value);
    EXPECT_TRUE(same_kinds(out, want.value));
    EXPECT_TRUE(error.empty()) << error;
  } else {
    EXPECT_EQ(got.error, want.error);
    EXPECT_EQ(*got.type, *want.type) << got.type->name() << " vs " << want.type->name();
    EXPECT_EQ(error, want.error);
    EXPECT_TRUE(out.is_discarded());
    EXPECT_TRUE(Json::parse(text, nullptr, false).is_discarded());
  }
}

TEST(ParseJson, GivesWhatJsonParseGives) {
  const std::vector<std::string> texts = {
      "null",
      "true",
      "false",
      "0",
      "-0",
      "-1",
      "42",
      " 7 ",
      "9223372036854775807",
      "-9223372036854775808",
      "-9223372036854775809",  // below int64: a double
      "18446744073709551615",  // unsigned
      "18446744073709551616",  // beyond 64 bits: a double
      "123456789012345678901234567890",
      "-0.0",
      "0.5",
      "3.0",
      "-2.5e-3",
      "1E2",
      "1e+2",
      "1e-400",
      "1.7976931348623157e308",
      "4.9e-324",
      R"("")",
      R"("plain")",
      R"("\u00e9\ud83d\ude00\n\t\"\\\/\b\f\r")",
      "\"h\xc3\xa9llo \xe2\x82\xac\"",
      "[]",
      "{}",
      "[[],{},[[]],{\"\":{}}]",
      " \t\r\n{ \"a\" : [ 1 , 2 ] }\n",
      R"([1, -2, 3.25, 1e3, -0, 18446744073709551615, -9223372036854775808, 1.0])",
      R"({"pattern":{"topic":"math","cmd":"add","a":1,"b":2},"meta":{},"request":{"id":"x"}})",
      R"({"z":1,"y":{"c":[{"b":2,"a":1}],"b":null},"x":"s","a":[true,false,null]})",
      R"({"dup":1,"dup":2})",                                  // the last wins
      R"({"b":{"x":1},"a":[1,2],"b":3,"c":0,"b":{"y":[4]}})",  // ... wherever it sits
      R"({"a":{"k":1,"k":{"k":2,"k":3}},"a":{"k":[{"k":4,"k":5}]}})",
      R"({"\u0061":1,"a":2})",  // the same key once unescaped
      R"({"":0,"a":1,"":2})",
      // Errors, with Json::parse's exception type and message.
      "",
      " ",
      "{",
      "}",
      "[",
      "[1,]",
      "[1 2]",
      "{\"a\":}",
      "{\"a\" 1}",
      "{\"a\":1,}",
      "{1:2}",
      "{\"a\":1} x",
      "[1] [2]",
      "nul",
      "tru",
      "01",
      "-",
      "1.",
      ".5",
      "+1",
      "1e",
      "0x10",
      "NaN",
      "Infinity",
      "1e400",
      "-1e400",
      "[1,1e400]",
      "{\"a\":{\"b\":2e308}}",
      "\"\\ud800\"",
      "\"\\udc00\"",
      "\"\\u12\"",
      "\"\\x\"",
      "\"\x01\"",
      "\"\xff\"",
      "\"\xc3\"",
      "\"abc",
      "/* comment */ 1",
      "// comment\n1",
      "[1]\n// trailing",
      "'single'",
      std::string("1\0", 2),
      std::string("{\"a\":\0}", 7),
  };
  for (const auto& t : texts) expect_same_as_nlohmann(t);
}

TEST(ParseJson, GivesWhatJsonParseGivesForDeepNesting) {
  // nlohmann's parser has no depth limit (simdjson stops at 1024); neither
  // has parse_json. Kept to a depth that dump() and == (recursive) bear.
  const int depth = 3000;
  std::string text;
  for (int i = 0; i < depth; ++i) text += i % 2 ? "[" : "{\"k\":";
  text += "1";
  for (int i = depth - 1; i >= 0; --i) text += i % 2 ? "]" : "}";
  expect_same_as_nlohmann(text);
  expect_same_as_nlohmann(text.substr(0, text.size() - 1));  // one closer short
}

TEST(ParseJson, ThrowsParseErrorNamingTheBytePosition) {
  try {
    parse_json(R"({"a":1,})");
    FAIL() << "no exception";
  } catch (const Json::parse_error& e) {
    EXPECT_EQ(e.byte, 8u);
    EXPECT_NE(std::string(e.what()).find("column 8"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse_json("[1e400]"), Json::out_of_range);
}

// The reason parse_json exists: Json objects are sorted vectors, and
// Json::parse inserts members one by one, so keys arriving in descending
// order cost O(n^2) moves. Measured by hand (Release, -O2): this object took
// Json::parse minutes (a few seconds for 20,000 keys already); parse_json
// reads it in a fraction of a second. No timing is asserted: it must finish.
TEST(ParseJson, AnObjectWithKeysInDescendingOrderParsesWhole) {
  const int n = 200000;
  const Json value = parse_json(test::descending_object(n));
  ASSERT_TRUE(value.is_object());
  ASSERT_EQ(value.size(), static_cast<std::size_t>(n));
  int expected = 0;
  for (auto it = value.begin(); it != value.end(); ++it, ++expected) {
    ASSERT_EQ(it.key(), "k" + std::to_string(1000000 + expected));
    ASSERT_EQ(*it, expected);
  }
  EXPECT_EQ(value.at("k1123456"), 123456);
}

TEST(ParseJson, AHostileObjectWithRepeatedKeysKeepsTheLastOfEach) {
  const int n = 50000;
  const std::string text =
      "{" + test::descending_members(n) + "," + test::descending_members(n, n) + "}";
  const Json value = parse_json(text);
  ASSERT_EQ(value.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(value.at("k1000000"), n);
  EXPECT_EQ(value.at("k1049999"), 2 * n - 1);
}

}  // namespace
}  // namespace switchboard
