// The direct JSON envelope writers (core/src/envelope_json.*) against the
// generic path they stand in for: the json codec's bytes of the Json tree.
#include "envelope_json.hpp"

#include <gtest/gtest.h>

#include "json_text_codec.hpp"

namespace switchboard {
namespace {

// The json codec plugin's own codec class.
using JsonText = json_codec::JsonCodec;

RequestEnvelope sample() {
  RequestEnvelope r;
  r.pattern = {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2.5}};
  r.trace.trace_id = "0123456789abcdef";
  r.trace.span_id = "fedcba9876543210";
  r.trace.timestamp = 1732319000123.4567;
  r.trace.service = "math";
  r.trace.method = method_of(r.pattern);
  r.request_id = "00ff00ff00ff00ff";
  return r;
}

TEST(EnvelopeJson, OnlyForTheJsonCodec) {
  EXPECT_TRUE(writes_json_envelopes(JsonText()));
}

TEST(EnvelopeJson, RequestIsTheCodecsBytesOfTheTree) {
  JsonText codec;
  RequestEnvelope r = sample();
  EXPECT_EQ(write_json_request(r, codec), codec.encode(encode_request(r)));
}

TEST(EnvelopeJson, NestedPubsubRequestWithMetaDelegateAndParentSpan) {
  JsonText codec;
  RequestEnvelope r = sample();
  r.meta = {{"user", "ann"}, {"n", 3}};
  r.delegate = {{"token", "x"}};
  r.trace.parent_span_id = "1111222233334444";
  r.trace.duration = 1.25;
  r.trace.timestamp = 5.0;  // integral double: the codec writes "5.0"
  r.type = "pubsub";
  r.depth = 2;
  EXPECT_EQ(write_json_request(r, codec), codec.encode(encode_request(r)));
}

TEST(EnvelopeJson, StringsThatNeedEscapingOrUtf8ChecksGoThroughTheCodec) {
  JsonText codec;
  RequestEnvelope r = sample();
  r.pattern = {{"topic", "m\"a\\th"}, {"text", "line\nbreak\t\x01"}, {"name", "Zoë"}};
  r.trace.service = "m\"a\\th";
  r.trace.method = method_of(r.pattern);
  r.request_id = std::string("bad\xff utf-8");
  std::string bytes = write_json_request(r, codec);
  EXPECT_EQ(bytes, codec.encode(encode_request(r)));
  EXPECT_NE(bytes.find("Zo\xc3\xab"), std::string::npos);
}

TEST(EnvelopeJson, ReplyWithResultAndWithError) {
  JsonText codec;
  RequestEnvelope r = sample();
  r.meta = {{"k", "v"}};
  for (const Json& result :
       {Json(3), Json(-7), Json(2.0), Json("three"), Json::object(), Json{{"sum", {1, 2, nullptr}}},
        Json(nullptr), Json(std::uint64_t{18446744073709551615ULL})}) {
    EXPECT_EQ(write_json_reply(r.meta, r.trace, r, result, nullptr, codec),
              codec.encode(encode_reply(r.meta, r.trace, r, result, nullptr)))
        << result.dump();
  }
  Json error = {{"name", "Error"}, {"message", "boom"}, {"hops", Json::array()}};
  EXPECT_EQ(write_json_reply(r.meta, r.trace, r, nullptr, error, codec),
            codec.encode(encode_reply(r.meta, r.trace, r, nullptr, error)));
}

TEST(EnvelopeJson, NonFiniteTimestampIsNullAsInTheCodec) {
  JsonText codec;
  RequestEnvelope r = sample();
  r.trace.timestamp = std::numeric_limits<double>::infinity();
  EXPECT_EQ(write_json_request(r, codec), codec.encode(encode_request(r)));
}

}  // namespace
}  // namespace switchboard
