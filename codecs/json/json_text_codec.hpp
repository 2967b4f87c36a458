// The json envelope codec (the plugin's Codec), in a header of its own so
// that tests can use the exact codec the plugin hands out.
#pragma once

#include <string>
#include <string_view>
#include <system_error>

#include "json_reader.hpp"
#include "json_writer.hpp"
#include "switchboard/codec.hpp"
#include "switchboard/error.hpp"

namespace switchboard::json_codec {

class JsonCodec final : public Codec {
 public:
  const std::string& name() const override {
    static const std::string n = "json";
    return n;
  }
  const std::string& content_type() const override {
    static const std::string t = "application/json";
    return t;
  }
  std::string encode(const Json& value) const override {
    // Invalid UTF-8 is replaced rather than thrown: a reply must not be lost
    // because a handler returned odd bytes.
    std::string out;
    out.reserve(256);
    write(value, out);
    return out;
  }
  std::error_code decode(std::string_view bytes, Json& out, std::string& error) const override {
    if (!read(bytes, out, error)) return make_error_code(errc::parse_error);
    return {};
  }
  bool sniff(std::string_view bytes) const override {
    for (char c : bytes) {
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
      return c == '{' || c == '[';
    }
    return false;
  }
};

}  // namespace switchboard::json_codec
