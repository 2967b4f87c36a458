// msgpack: the binary envelope codec, on msgpack-c. Nodes using it say so in
// a content-type header; a node decodes both codecs (Runtime::add_decoder).
#include "msgpack_json.hpp"
#include "switchboard/codec.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard {
namespace {

class MsgpackCodec final : public Codec {
 public:
  const std::string& name() const override {
    static const std::string n = "msgpack";
    return n;
  }
  const std::string& content_type() const override {
    static const std::string t = "application/msgpack";
    return t;
  }
  std::string encode(const Json& value) const override { return msgpack_codec::encode(value); }
  std::error_code decode(std::string_view bytes, Json& out, std::string& error) const override {
    if (!msgpack_codec::decode(bytes, out, error)) return make_error_code(errc::parse_error);
    return {};
  }
  bool sniff(std::string_view bytes) const override {
    return msgpack_codec::looks_like_msgpack(bytes);
  }
};

class MsgpackCodecFactory final : public CodecFactory {
 public:
  std::unique_ptr<Codec> create(const Json& options) const override {
    if (!options.empty() && !options.is_null()) {
      throw OptionError("", "the msgpack codec takes no options");
    }
    return std::make_unique<MsgpackCodec>();
  }
};

const MsgpackCodecFactory factory;

}  // namespace
}  // namespace switchboard

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_CODEC, "msgpack", "1.0.0", switchboard::factory)
