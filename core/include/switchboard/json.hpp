// The value type of patterns, payloads and results: nlohmann::json, so that
// users write patterns the way they read them on the wire.
#pragma once

#include <nlohmann/json.hpp>

namespace switchboard {
using Json = nlohmann::json;
}  // namespace switchboard
