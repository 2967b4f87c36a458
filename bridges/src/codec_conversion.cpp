// Payload codec conversion between bridge endpoints (docs/bridges.md).
#include "codec_conversion.hpp"

#include "switchboard/error.hpp"

namespace switchboard::bridges {

namespace {
constexpr const char* kContentType = "content-type";
}

CodecConversion::CodecConversion(std::shared_ptr<Codec> target,
                                 std::vector<std::shared_ptr<Codec>> decoders)
    : target_(std::move(target)), decoders_(std::move(decoders)) {}

const Codec& CodecConversion::source_of(const Message& msg) const {
  if (auto type = msg.headers.find(kContentType); type != msg.headers.end()) {
    for (const auto& d : decoders_) {
      if (d->content_type() == type->second) return *d;
    }
  }
  // JSON first: it is what a message without a header is taken to be.
  for (const auto& d : decoders_) {
    if (d->name() == "json" && d->sniff(msg.data.view())) return *d;
  }
  for (const auto& d : decoders_) {
    if (d->sniff(msg.data.view())) return *d;
  }
  for (const auto& d : decoders_) {
    if (d->name() == "json") return *d;
  }
  return *target_;
}

std::error_code CodecConversion::convert(Message& msg, std::string& why) const {
  const Codec& source = source_of(msg);
  if (&source != target_.get() && source.name() != target_->name()) {
    Json value;
    if (auto ec = source.decode(msg.data.view(), value, why)) {
      why = "not " + source.name() + ": " + why;
      return ec;
    }
    msg.data = Payload(target_->encode(value));
  }
  msg.headers[kContentType] = target_->content_type();
  return {};
}

}  // namespace switchboard::bridges
