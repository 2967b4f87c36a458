// Writes a Json value as compact JSON text, the same text nlohmann's
// dump(-1, ' ', false, error_handler_t::replace) gives for envelopes, about
// three times faster: strings are copied in runs between the bytes that need
// escaping instead of byte by byte, and numbers go through std::to_chars.
// What it does not special-case (binary values, strings with invalid UTF-8)
// it hands to nlohmann, so the output never differs in meaning.
#pragma once

#include <string>

#include "switchboard/json.hpp"

namespace switchboard::json_codec {

void write(const Json& value, std::string& out);

}  // namespace switchboard::json_codec
