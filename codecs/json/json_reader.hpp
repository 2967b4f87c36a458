// Parses JSON text into a Json: simdjson first, nlohmann's parser (through
// parse_json, which reads any object in O(n log n)) for what
// simdjson refuses (so that integers beyond 64 bits still parse as numbers,
// and errors read the same as before).
#pragma once

#include <string>
#include <string_view>

#include "switchboard/json.hpp"

namespace switchboard::json_codec {

// On failure returns false and sets `error` to what was wrong and where.
bool read(std::string_view text, Json& out, std::string& error);

}  // namespace switchboard::json_codec
