// Any bytes as a tcp_peer stream: decode_frame never crashes, never reads
// past its input, always makes progress or stops, and a decoded MSG
// re-encodes to a frame that decodes to the same message.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tcp_peer/frame.hpp"

namespace tp = switchboard::tcp_peer;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::size_t kMaxFrame = 64 * 1024;
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  while (!rest.empty()) {
    tp::Frame frame;
    tp::DecodeResult r = tp::decode_frame(rest, kMaxFrame, frame);
    if (r.status == tp::DecodeStatus::incomplete) break;
    if (r.status == tp::DecodeStatus::error) {
      if (r.error.empty()) std::abort();  // a refusal always says why
      break;
    }
    if (r.consumed == 0 || r.consumed > rest.size()) std::abort();
    if (frame.type == tp::FrameType::msg) {
      std::string again;
      tp::encode_msg(frame.msg.subject, frame.msg.reply_to, frame.msg.headers, frame.msg.queues,
                     frame.msg.data, again);
      tp::Frame back;
      tp::DecodeResult r2 = tp::decode_frame(again, kMaxFrame + again.size(), back);
      if (r2.status != tp::DecodeStatus::frame || r2.consumed != again.size()) std::abort();
      if (back.msg.subject != frame.msg.subject || back.msg.data != frame.msg.data ||
          back.msg.reply_to != frame.msg.reply_to || back.msg.headers != frame.msg.headers ||
          back.msg.queues != frame.msg.queues) {
        std::abort();
      }
    }
    rest.remove_prefix(r.consumed);
  }
  return 0;
}
