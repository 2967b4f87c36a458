// json: the envelope codec Hemera speaks. Reading (json_reader) and writing
// (json_writer) are files of their own, shared with the fuzz target.
#include "json_text_codec.hpp"
#include "switchboard/codec.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard {
namespace {

class JsonCodecFactory final : public CodecFactory {
 public:
  std::unique_ptr<Codec> create(const Json& options) const override {
    if (!options.empty() && !options.is_null()) {
      throw OptionError("", "the json codec takes no options");
    }
    return std::make_unique<json_codec::JsonCodec>();
  }
};

const JsonCodecFactory factory;

}  // namespace
}  // namespace switchboard

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_CODEC, "json", "1.0.0", switchboard::factory)
