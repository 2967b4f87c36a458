#include "replication_protocol.hpp"

#include "switchboard/json_parse.hpp"

namespace switchboard::events::replication {
namespace {

struct DecodeError {
  std::string what;
};

const Json& member(const Json& object, const char* key, const std::string& where) {
  auto it = object.find(key);
  if (it == object.end()) throw DecodeError{where + key + ": missing"};
  return *it;
}

std::string text(const Json& object, const char* key, const std::string& where = "") {
  const Json& v = member(object, key, where);
  if (!v.is_string()) throw DecodeError{where + key + ": expected a string"};
  return v.get<std::string>();
}

std::uint64_t unsigned_number(const Json& object, const char* key, const std::string& where = "") {
  const Json& v = member(object, key, where);
  if (!v.is_number_unsigned()) throw DecodeError{where + key + ": expected an unsigned integer"};
  return v.get<std::uint64_t>();
}

std::int64_t signed_number(const Json& object, const char* key, const std::string& where = "") {
  const Json& v = member(object, key, where);
  if (!v.is_number_integer()) throw DecodeError{where + key + ": expected an integer"};
  return v.get<std::int64_t>();
}

Json header(const char* kind, const std::string& node) {
  return Json{{"v", kVersion}, {"kind", kind}, {"node", node}};
}

}  // namespace

bool valid_token(std::string_view token) {
  if (token.empty()) return false;
  for (unsigned char c : token) {
    if (c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f) return false;
  }
  return true;
}

std::string encode_event(const Event& e) {
  return Json{{"id", e.id},
              {"type", e.type},
              {"origin", e.origin},
              {"origin_sequence", e.origin_sequence},
              {"timestamp_us", e.timestamp_us},
              {"payload_json", e.payload_json}}
      .dump();
}

std::string encode_events(const std::string& node, const std::vector<std::string>& encoded,
                          const std::string& answers) {
  Json h = header("events", node);
  if (!answers.empty()) h["answers"] = answers;
  std::string head = h.dump();
  head.pop_back();  // the closing brace: the events array goes in by hand
  std::size_t size = head.size() + 16;
  for (const auto& e : encoded) size += e.size() + 1;
  std::string out;
  out.reserve(size);
  out += head;
  out += ",\"events\":[";
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    if (i) out += ',';
    out += encoded[i];
  }
  out += "]}";
  return out;
}

std::string encode(const StateMessage& m) {
  Json j = header("state", m.node);
  j["heads"] = Json::object();
  for (const auto& [origin, head] : m.heads) j["heads"][origin] = head;
  return j.dump();
}

std::string encode(const FetchMessage& m) {
  Json j = header("fetch", m.node);
  j["origin"] = m.origin;
  j["from"] = m.from;
  j["max"] = m.max;
  return j.dump();
}

std::optional<AnyMessage> decode(std::string_view bytes, std::string& error) {
  Json j;
  if (!parse_json(bytes, j, error) || !j.is_object()) {
    error = "not a JSON object";
    return std::nullopt;
  }
  try {
    if (unsigned_number(j, "v") != static_cast<std::uint64_t>(kVersion)) {
      throw DecodeError{"v: version " + j["v"].dump() + " is not " + std::to_string(kVersion)};
    }
    std::string kind = text(j, "kind");
    std::string node = text(j, "node");
    if (!valid_token(node)) throw DecodeError{"node: '" + node + "' is not a node id"};
    if (kind == "events") {
      EventsMessage m;
      m.node = std::move(node);
      if (j.contains("answers")) m.answers = text(j, "answers");
      const Json& list = member(j, "events", "");
      if (!list.is_array()) throw DecodeError{"events: expected an array"};
      m.events.reserve(list.size());
      for (std::size_t i = 0; i < list.size(); ++i) {
        std::string where = "events[" + std::to_string(i) + "].";
        const Json& x = list[i];
        if (!x.is_object())
          throw DecodeError{"events[" + std::to_string(i) + "]: expected an object"};
        Event& e = m.events.emplace_back();
        e.id = text(x, "id", where);
        e.type = text(x, "type", where);
        e.origin = text(x, "origin", where);
        e.origin_sequence = unsigned_number(x, "origin_sequence", where);
        e.timestamp_us = signed_number(x, "timestamp_us", where);
        e.payload_json = text(x, "payload_json", where);
      }
      return AnyMessage{std::move(m)};
    }
    if (kind == "state") {
      StateMessage m;
      m.node = std::move(node);
      const Json& heads = member(j, "heads", "");
      if (!heads.is_object()) throw DecodeError{"heads: expected an object"};
      for (auto it = heads.begin(); it != heads.end(); ++it) {
        if (!it->is_number_unsigned()) {
          throw DecodeError{"heads." + it.key() + ": expected an unsigned integer"};
        }
        m.heads.emplace(it.key(), it->get<std::uint64_t>());
      }
      return AnyMessage{std::move(m)};
    }
    if (kind == "fetch") {
      FetchMessage m;
      m.node = std::move(node);
      m.origin = text(j, "origin");
      m.from = unsigned_number(j, "from");
      m.max = unsigned_number(j, "max");
      return AnyMessage{std::move(m)};
    }
    throw DecodeError{"kind: unknown kind '" + kind + "'"};
  } catch (const DecodeError& e) {
    error = e.what;
    return std::nullopt;
  }
}

}  // namespace switchboard::events::replication
