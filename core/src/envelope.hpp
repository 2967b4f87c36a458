// The Hemera 7 envelope: how a request and a reply look on the wire, and
// the `$` options an act or add pattern carries locally.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "switchboard/json.hpp"
#include "switchboard/trace.hpp"

namespace switchboard {

// The `$`-suffixed options of a pattern (Hemera's timeout$, meta$, ...).
struct DollarOptions {
  std::optional<std::chrono::milliseconds> timeout;
  bool pubsub = false;
  int max_messages = 0;       // 0: one reply; -1: unbounded stream
  int expected_messages = 0;  // 0: not set
  Json meta = Json::object();
  Json delegate = Json::object();
  Json context = Json::object();
  Json trace;              // trace$ as given, or null
  std::string request_id;  // requestId$
  std::string queue;       // queue$ (add only)
};

// Splits `pattern` into what travels (no key ending in '$') and the options.
// Fails with a message for an option of the wrong type.
bool split_dollar_keys(const Json& pattern, Json& travels, DollarOptions& options,
                       std::string& why);
// The same for a pattern you no longer need: without `$` keys (the usual
// act) it moves into `travels` instead of being copied member by member.
bool split_dollar_keys(Json&& pattern, Json& travels, DollarOptions& options, std::string& why);

// Hemera's `method`: the sorted "key:value" list of the pattern's scalars.
std::string method_of(const Json& pattern);

struct RequestEnvelope {
  Json pattern;
  Json meta = Json::object();
  Json delegate = Json::object();
  Trace trace;
  std::string request_id;
  std::string type = "request";  // or "pubsub"
  int depth = 0;                 // nested act depth (Switchboard extension)
};

// By value: pass an envelope you no longer need with std::move, and its
// pattern and meta move into the result instead of being copied.
Json encode_request(RequestEnvelope r);
// Accepts Hemera's minimal form {"pattern": {...}, "request": {"type": ...}}.
// By value for the same reason: a decoded message passed with std::move
// gives up its pattern and meta without a copy.
bool decode_request(Json j, RequestEnvelope& out, std::string& why);
// The same, taking what it keeps out of `j` and leaving the rest there, so
// that the caller frees it when it suits (the service: after the reply).
bool decode_request_from(Json& j, RequestEnvelope& out, std::string& why);

Json encode_reply(const Json& meta, const Trace& trace, const RequestEnvelope& request,
                  const Json& result, const Json& error);

}  // namespace switchboard
