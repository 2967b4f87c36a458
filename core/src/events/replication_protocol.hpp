// The replication protocol's messages (docs/events.md, "Replication"):
// encoding and decoding only, no I/O, so it is tested without a transport.
//
// Every message is one JSON object {"v":1,"kind":...,"node":<sender>,...}:
//   events  {"events":[{id,type,origin,origin_sequence,timestamp_us,payload_json}],
//            "answers":O (only in the answer to a fetch)}
//   state   {"heads":{origin: highest origin_sequence held, ...}}
//   fetch   {"origin":O,"from":n,"max":m}  (reply: an events message)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "switchboard/event_log.hpp"

namespace switchboard::events::replication {

inline constexpr int kVersion = 1;

// The subjects of one replica set under a prefix (default "switchboard.events").
struct Subjects {
  std::string prefix;
  std::string live() const { return prefix + ".live"; }
  std::string state() const { return prefix + ".state"; }
  std::string fetch(const std::string& node) const { return prefix + ".fetch." + node; }
  std::string inbox(const std::string& node) const { return prefix + ".inbox." + node; }
};

// Whether `token` can be one subject token (no '.', '*', '>', spaces or
// control characters, not empty): node ids and the prefix's tokens.
bool valid_token(std::string_view token);

struct EventsMessage {
  std::string node;
  std::vector<Event> events;  // sequence and hashes are not sent
  std::string answers;        // in an answer to a fetch: the origin asked for; else empty
};
struct StateMessage {
  std::string node;
  std::map<std::string, std::uint64_t> heads;
};
struct FetchMessage {
  std::string node;  // who asks
  std::string origin;
  std::uint64_t from = 1;  // the first origin_sequence wanted
  std::uint64_t max = 0;   // events at most in the answer
};
using AnyMessage = std::variant<EventsMessage, StateMessage, FetchMessage>;

// One event as it appears in the "events" array (exact payload text).
std::string encode_event(const Event& e);
// An events message around already encoded events.
// `answers`: the origin of the fetch this answers; empty for live events.
std::string encode_events(const std::string& node, const std::vector<std::string>& encoded,
                          const std::string& answers = "");
std::string encode(const StateMessage& m);
std::string encode(const FetchMessage& m);

// Decodes any message; on failure returns nullopt and says in `error` what
// is wrong and where (e.g. "events[2].origin_sequence: expected an unsigned
// integer").
std::optional<AnyMessage> decode(std::string_view bytes, std::string& error);

}  // namespace switchboard::events::replication
