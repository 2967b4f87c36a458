// parse_json: Json::parse for text that comes from outside the process
// (network peers, servers' answers, files, command lines).
//
// Why not Json::parse: a Json object is a sorted vector (SortedVectorMap),
// and Json::parse inserts members one at a time, so each member that arrives
// out of key order moves the ones after it: O(n^2) for an object whose keys
// come in descending order, minutes of one thread for a single message of a
// few megabytes. parse_json runs nlohmann's own parser (the same lexer: the
// same texts accepted, the same errors, the same number kinds) with a SAX
// handler that gathers each object's members and sorts them once
// (SortedVectorMap::adopt), O(n log n) for any object. Of repeated keys the
// last wins, as with Json::parse.
#pragma once

#include <string>
#include <string_view>

#include "switchboard/json.hpp"

namespace switchboard {

// The value Json::parse(text) gives; throws what it throws:
// Json::parse_error (its message names the byte position) or
// Json::out_of_range (a number beyond a double, e.g. 1e400).
Json parse_json(std::string_view text);

// The same without exceptions: false, with that exception's message in
// `error`, where parse_json(text) throws; `out` is then a discarded value,
// as Json::parse(text, nullptr, false) returns.
bool parse_json(std::string_view text, Json& out, std::string& error);

}  // namespace switchboard
