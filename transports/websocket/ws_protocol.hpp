// The WebSocket protocol's frames (docs/websocket.md), without any I/O:
// bytes in through decode_frame(), bytes out through the encoders. One
// WebSocket message is one frame: a JSON object in a text message, the same
// object as a MessagePack map in a binary message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "switchboard/message.hpp"

namespace switchboard::websocket {

inline constexpr int kProtocolVersion = 1;

enum class Op { info, sub, unsub, pub, msg, ping, pong, err };
const char* to_string(Op op) noexcept;

// One decoded frame; which fields are set depends on `op`.
struct Frame {
  Op op = Op::ping;
  std::uint64_t sid = 0;          // sub, unsub, msg (and err about a sub)
  std::string subject;            // sub (a filter), pub, msg
  std::string queue;              // sub: queue group, empty for none
  std::string reply_to;           // pub, msg
  Headers headers;                // pub, msg
  std::string data;               // pub, msg: the payload bytes
  std::string message;            // err
  std::string code;               // err
  bool fatal = false;             // err: the server closes the connection after it
  std::string info;               // info: the whole frame as JSON text (for logs)
  std::uint64_t max_payload = 0;  // info
};

// Decodes one frame (`binary`: a MessagePack map, else JSON text). On
// failure returns false and says why in `why` (for the err frame and the log).
bool decode_frame(std::string_view bytes, bool binary, Frame& out, std::string& why);

// `{"op":"pub",...}` for a message.
std::string encode_pub(const Message& msg, bool binary);
// `{"op":"sub",...}`, `{"op":"unsub",...}`.
std::string encode_sub(std::uint64_t sid, const std::string& subject, const std::string& queue,
                       bool binary);
std::string encode_unsub(std::uint64_t sid, bool binary);
// `{"op":"ping"}` / `{"op":"pong"}`.
std::string encode_simple(Op op, bool binary);
// `{"op":"err",...}`; sid 0: not about a subscription.
std::string encode_err(const std::string& code, const std::string& message, bool fatal,
                       std::uint64_t sid, bool binary);
// `{"op":"info",...}`, always JSON text.
std::string encode_info(const std::string& node, std::size_t max_payload, std::size_t max_message);

// A msg frame in two parts, so that fan-out encodes the message once: the
// head carries the op and the subscription id, the tail (shared by every
// receiver with the same format) the rest.
struct MsgTail {
  std::string bytes;
  unsigned fields = 0;  // MessagePack: entries in the tail
};
MsgTail encode_msg_tail(const Message& msg, bool binary);
std::string encode_msg_head(std::uint64_t sid, const MsgTail& tail, bool binary);

// Helpers, public for the tests.
bool valid_utf8(std::string_view s) noexcept;
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string& out);
void append_json_string(std::string& out, std::string_view s);  // s must be valid UTF-8

}  // namespace switchboard::websocket
