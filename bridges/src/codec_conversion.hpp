// A bridge's `codec:` option: payloads re-encoded from the codec they came
// in (their content-type header, else what the bytes look like, else JSON,
// the runtime's rule) into the destination's codec, and the content-type
// header set to match. Private to bridges/.
#pragma once

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/codec.hpp"
#include "switchboard/message.hpp"

namespace switchboard::bridges {

class CodecConversion {
 public:
  // `target` encodes; `decoders` are every codec a payload may come in (the
  // target among them), first match wins.
  CodecConversion(std::shared_ptr<Codec> target, std::vector<std::shared_ptr<Codec>> decoders);

  // Re-encodes msg.data in place (unchanged bytes when it is in the target
  // codec already) and sets `content-type`. errc::parse_error with `why`
  // when the payload is not what its header or its look says.
  std::error_code convert(Message& msg, std::string& why) const;

  const Codec& target() const { return *target_; }

 private:
  const Codec& source_of(const Message& msg) const;

  std::shared_ptr<Codec> target_;
  std::vector<std::shared_ptr<Codec>> decoders_;
};

}  // namespace switchboard::bridges
