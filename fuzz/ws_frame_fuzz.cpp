// Any bytes as a WebSocket frame of the websocket transport, as text (JSON)
// and as binary (MessagePack): decode_frame never crashes, a refusal says
// why, and a decoded pub re-encodes to a frame that decodes to the same
// message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "websocket/ws_protocol.hpp"

namespace ws = switchboard::websocket;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (bool binary : {false, true}) {
    ws::Frame frame;
    std::string why;
    if (!ws::decode_frame(bytes, binary, frame, why)) {
      if (why.empty()) std::abort();
      continue;
    }
    if (frame.op != ws::Op::pub) continue;
    switchboard::Message m;
    m.subject = frame.subject;
    m.reply_to = frame.reply_to;
    m.headers = frame.headers;
    m.data = switchboard::Payload(frame.data);
    ws::Frame back;
    if (!ws::decode_frame(ws::encode_pub(m, binary), binary, back, why)) std::abort();
    if (back.subject != frame.subject || back.reply_to != frame.reply_to ||
        back.headers != frame.headers || back.data != frame.data) {
      std::abort();
    }
  }
  return 0;
}
