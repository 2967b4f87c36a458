// Conversion between JSON values and MessagePack bytes, on msgpack-c.
//
// Kept apart from the plugin so that the fuzz target and the benchmark can
// drive it directly.
#pragma once

#include <string>
#include <string_view>

#include "switchboard/json.hpp"

namespace switchboard::msgpack_codec {

// Nesting deeper than this is refused on decode (the conversion recurses).
inline constexpr std::size_t kMaxDepth = 512;

// Every JSON value has a MessagePack form; binary values become `bin`.
std::string encode(const Json& value);

// Decodes exactly one value filling all of `bytes`. On failure returns false
// and says what was wrong (and at which byte, where msgpack-c tells).
bool decode(std::string_view bytes, Json& out, std::string& error);

// Whether `bytes` starts like a map or an array (what envelopes and most
// payloads are); JSON text never does, since '{' and '[' are fixints here.
bool looks_like_msgpack(std::string_view bytes) noexcept;

}  // namespace switchboard::msgpack_codec
