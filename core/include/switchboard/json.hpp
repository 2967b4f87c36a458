// The value type of patterns, payloads and results: nlohmann's basic_json,
// so that users write patterns the way they read them on the wire, with
// objects stored as sorted vectors (SortedVectorMap) instead of std::map:
// the same key order, one allocation per object instead of one per member.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "switchboard/sorted_vector_map.hpp"

namespace switchboard {
using Json = nlohmann::basic_json<SortedVectorMap>;

// Reads a field of a JSON object that came from the wire, where any field
// may have any type: the fallback when it is missing or of another type.
inline std::string string_or(const Json& object, const char* key, std::string fallback = {}) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : fallback;
}
inline double number_or(const Json& object, const char* key, double fallback = 0) {
  if (!object.is_object()) return fallback;
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : fallback;
}
}  // namespace switchboard
