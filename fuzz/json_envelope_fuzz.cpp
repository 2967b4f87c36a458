// Any bytes as an incoming request: the JSON parse and the envelope reader
// either accept it or say why; nothing crashes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "envelope.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using switchboard::Json;
  Json j = Json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  switchboard::RequestEnvelope request;
  std::string why;
  if (!switchboard::decode_request(j, request, why)) {
    if (why.empty()) std::abort();
    return 0;
  }
  // What a service does next with an accepted request.
  (void)switchboard::method_of(request.pattern);
  Json reply =
      switchboard::encode_reply(request.meta, request.trace, request, Json(nullptr), Json(nullptr));
  (void)reply.dump(-1, ' ', false, Json::error_handler_t::replace);
  return 0;
}
