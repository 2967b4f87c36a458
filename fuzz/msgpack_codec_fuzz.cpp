// Any bytes through the msgpack decoder: it never crashes or leaks, and what
// it accepts re-encodes to bytes that decode to the same encoding again.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "msgpack_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace mp = switchboard::msgpack_codec;
  switchboard::Json value;
  std::string error;
  if (!mp::decode({reinterpret_cast<const char*>(data), size}, value, error)) {
    if (error.empty()) std::abort();  // a refusal always says why
    return 0;
  }
  // Compared as bytes, not values: NaN never equals itself.
  const std::string once = mp::encode(value);
  switchboard::Json again;
  if (!mp::decode(once, again, error)) std::abort();
  if (mp::encode(again) != once) std::abort();
  return 0;
}
