// The msgpack codec: conversion both ways, clear errors for bad bytes, and
// json and msgpack nodes calling each other over one bus.
#include <gtest/gtest.h>

#include "msgpack_json.hpp"
#include "support/test_support.hpp"

namespace switchboard {
namespace {

namespace mp = msgpack_codec;

Json decoded(const std::string& bytes) {
  Json out;
  std::string error;
  EXPECT_TRUE(mp::decode(bytes, out, error)) << error;
  return out;
}

std::string decode_error(const std::string& bytes) {
  Json out;
  std::string error;
  EXPECT_FALSE(mp::decode(bytes, out, error)) << "decoded: " << out.dump();
  return error;
}

TEST(MsgpackJson, EveryJsonTypeRoundTrips) {
  Json v = {{"nil", nullptr},
            {"t", true},
            {"f", false},
            {"small", 7},
            {"neg", -123456789012},
            {"big", std::uint64_t(18446744073709551615ULL)},
            {"pi", 3.25},
            {"s", "héllo"},
            {"empty", ""},
            {"arr", Json::array({1, "two", Json::array()})},
            {"obj", {{"a", {{"b", nullptr}}}}}};
  EXPECT_EQ(decoded(mp::encode(v)), v);
}

TEST(MsgpackJson, IntegersUseTheSmallestForm) {
  EXPECT_EQ(mp::encode(Json(5)), std::string("\x05", 1));
  EXPECT_EQ(mp::encode(Json(-1)), std::string("\xff", 1));
  EXPECT_EQ(mp::encode(Json(300)).size(), 3u);  // uint 16
}

TEST(MsgpackJson, BinaryTravelsAsBinWithoutBase64) {
  Json v = Json::binary({0x00, 0xff, 0x10});
  std::string bytes = mp::encode(v);
  EXPECT_EQ(bytes, std::string("\xc4\x03\x00\xff\x10", 5));
  Json back = decoded(bytes);
  ASSERT_TRUE(back.is_binary());
  EXPECT_EQ(back.get_binary(), v.get_binary());
}

// As with JSON text: a map whose keys arrive in reverse order is gathered
// and sorted once, not inserted key by key (O(n^2) for a hostile sender).
TEST(MsgpackJson, AMapWithManyKeysInReverseOrderDecodesWhole) {
  const std::uint32_t n = 100000;
  std::string bytes = "\xdf";  // map 32
  for (int shift = 24; shift >= 0; shift -= 8) bytes += static_cast<char>((n >> shift) & 0xff);
  for (std::uint32_t i = n; i-- > 0;) {
    std::string key = "k" + std::to_string(1000000 + i);
    bytes += static_cast<char>(0xa0 | key.size());  // fixstr
    bytes += key;
    bytes += "\xc0";  // nil
  }
  Json out;
  std::string error;
  ASSERT_TRUE(mp::decode(bytes, out, error)) << error;
  ASSERT_EQ(out.size(), n);
  EXPECT_EQ(out.begin().key(), "k1000000");
  EXPECT_TRUE(out.contains("k1099999"));
}

TEST(MsgpackJson, MalformedInputIsRefusedWithAReason) {
  EXPECT_NE(decode_error("").find("empty"), std::string::npos);
  // A map of one entry that stops after its key.
  EXPECT_NE(decode_error("\x81\xa1k").find("truncated"), std::string::npos);
  EXPECT_NE(decode_error(std::string("\x01\x02", 2)).find("trailing bytes"), std::string::npos);
  // {1: 2}: JSON keys must be strings.
  EXPECT_NE(decode_error("\x81\x01\x02").find("not a string"), std::string::npos);
  // fixext 1, type 5.
  EXPECT_NE(decode_error(std::string("\xd4\x05\x00", 3)).find("extension type 5"),
            std::string::npos);
  // 0xc1 is never used.
  EXPECT_NE(decode_error("\xc1").find("malformed"), std::string::npos);
}

TEST(MsgpackJson, HugeCountsInAShortInputAllocateNothing) {
  // array 32 claiming 4,294,967,295 elements in 5 bytes.
  EXPECT_FALSE(decode_error(std::string("\xdd\xff\xff\xff\xff", 5)).empty());
  EXPECT_FALSE(decode_error(std::string("\xdf\xff\xff\xff\xff", 5)).empty());
  EXPECT_FALSE(decode_error(std::string("\xdb\xff\xff\xff\xff", 5)).empty());
}

TEST(MsgpackJson, DeepNestingIsRefused) {
  std::string deep(mp::kMaxDepth + 10, '\x91');  // [[[[...
  deep += '\x01';
  EXPECT_NE(decode_error(deep).find("deeper"), std::string::npos);
  std::string fine(100, '\x91');
  fine += '\x01';
  EXPECT_TRUE(decoded(fine).is_array());
}

TEST(MsgpackJson, SniffTellsMsgpackFromJson) {
  EXPECT_TRUE(mp::looks_like_msgpack(mp::encode(Json{{"a", 1}})));
  EXPECT_TRUE(mp::looks_like_msgpack(mp::encode(Json::array({1}))));
  EXPECT_FALSE(mp::looks_like_msgpack(R"({"a":1})"));
  EXPECT_FALSE(mp::looks_like_msgpack(" [1]"));
  EXPECT_FALSE(mp::looks_like_msgpack(""));
}

// Two apps on one inproc bus, each with its own codec.
class MixedCodecs : public ::testing::Test {
 protected:
  asio::io_context io;
  std::string url = test::unique_url();
  std::unique_ptr<App> start(const std::string& codec, std::vector<std::string> plugins) {
    return test::start_app(io, url, std::move(plugins), [&](Config& c) { c.codec = codec; });
  }
  void TearDown() override {
    for (auto* app : {&json_node, &msgpack_node}) {
      if (*app) test::close(io, (*app)->runtime());
    }
  }
  std::unique_ptr<App> json_node, msgpack_node;
  std::unique_ptr<Subscription> sub;
};

TEST_F(MixedCodecs, MsgpackCallerAndJsonServiceUnderstandEachOther) {
  json_node = start("json", {"math"});
  msgpack_node = start("msgpack", {});
  ASSERT_EQ(msgpack_node->runtime().codec().name(), "msgpack");

  std::vector<Message> seen;
  ASSERT_FALSE(json_node->runtime().transport().subscribe(
      ">", "", [&](Message m) { seen.push_back(std::move(m)); }, sub));

  auto r = test::act(io, msgpack_node->runtime(),
                     {{"topic", "math"}, {"cmd", "add"}, {"a", 2}, {"b", 3}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 5);

  // The request went out as msgpack and said so; the reply came back in it.
  // (The snooping subscriber may see the reply after the caller has it.)
  ASSERT_TRUE(test::run_until(io, [&] { return seen.size() >= 2; })) << seen.size();
  for (const auto& m : seen) {
    EXPECT_EQ(m.headers.count("content-type"), 1u) << m.subject;
    EXPECT_TRUE(mp::looks_like_msgpack(m.data.view())) << m.subject;
  }
}

TEST_F(MixedCodecs, MsgpackServiceAnswersAJsonCallerInJson) {
  msgpack_node = start("msgpack", {"math"});
  json_node = start("json", {});

  std::vector<Message> seen;
  ASSERT_FALSE(msgpack_node->runtime().transport().subscribe(
      ">", "", [&](Message m) { seen.push_back(std::move(m)); }, sub));

  auto r =
      test::act(io, json_node->runtime(), {{"topic", "math"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 42);

  // Like a Hemera caller: no headers, JSON text both ways.
  ASSERT_TRUE(test::run_until(io, [&] { return seen.size() >= 2; })) << seen.size();
  for (const auto& m : seen) {
    EXPECT_TRUE(m.headers.empty()) << m.subject;
    EXPECT_EQ(m.data.view().front(), '{') << m.subject;
  }
}

TEST_F(MixedCodecs, UndecodableRequestGetsAParseErrorReply) {
  msgpack_node = start("msgpack", {"math"});
  json_node = start("json", {});
  // Says msgpack, is not: the caller hears why instead of timing out.
  Message bad;
  bad.subject = "math";
  bad.data = Payload(std::string("\x81\xa1", 2));
  bad.headers.emplace("content-type", "application/msgpack");
  bad.reply_to = "test.reply";
  std::vector<Message> replies;
  ASSERT_FALSE(json_node->runtime().transport().subscribe(
      "test.reply", "", [&](Message m) { replies.push_back(std::move(m)); }, sub));
  ASSERT_FALSE(json_node->runtime().publish_raw(bad));
  ASSERT_TRUE(test::run_until(io, [&] { return !replies.empty(); }));
  Json reply;
  std::string error;
  ASSERT_TRUE(mp::decode(replies[0].data.view(), reply, error)) << error;
  EXPECT_EQ(reply["error"]["name"], "ParseError");
  EXPECT_NE(reply["error"]["message"].get<std::string>().find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace switchboard
