// json: the envelope codec Hemera speaks.
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
    return value.dump(-1, ' ', false, Json::error_handler_t::replace);
  }
  std::error_code decode(std::string_view bytes, Json& out, std::string& error) const override {
    try {
      out = Json::parse(bytes.begin(), bytes.end());
      return {};
    } catch (const Json::parse_error& e) {
      error = e.what();
      return make_error_code(errc::parse_error);
    }
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
