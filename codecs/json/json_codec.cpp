// json: the envelope codec Hemera speaks. Reading (json_reader) and writing
// (json_writer) are files of their own, shared with the fuzz target.
#include "json_reader.hpp"
#include "json_writer.hpp"
#include "switchboard/codec.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard {
namespace {

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
    json_codec::write(value, out);
    return out;
  }
  std::error_code decode(std::string_view bytes, Json& out, std::string& error) const override {
    if (!json_codec::read(bytes, out, error)) return make_error_code(errc::parse_error);
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

class JsonCodecFactory final : public CodecFactory {
 public:
  std::unique_ptr<Codec> create(const Json& options) const override {
    if (!options.empty() && !options.is_null()) {
      throw OptionError("", "the json codec takes no options");
    }
    return std::make_unique<JsonCodec>();
  }
};

const JsonCodecFactory factory;

}  // namespace
}  // namespace switchboard

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_CODEC, "json", "1.0.0", switchboard::factory)
