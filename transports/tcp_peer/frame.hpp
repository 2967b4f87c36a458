// tcp_peer wire frames: a pure encoder and decoder over bytes, with no I/O,
// so that the connection code, the tests and a fuzz target drive the same
// functions. The format, byte by byte, is in docs/tcp-peer.md.
//
//   u32 length (big endian): bytes that follow (type + body), 1..max_frame
//   u8  type
//   ... body, by type
//
// Strings are a u16 big-endian length and the bytes (str16); a header value
// is a u32 length and the bytes (str32); a MSG's data is the rest of the
// frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "switchboard/message.hpp"

namespace switchboard::tcp_peer {

inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr char kMagic[4] = {'S', 'B', 'T', 'P'};
// Bytes before the body: the length field and the type.
inline constexpr std::size_t kFrameOverhead = 5;
// The largest frame accepted before the handshake is done (a HELLO).
inline constexpr std::size_t kMaxHandshakeFrame = 64 * 1024;

enum class FrameType : std::uint8_t {
  hello = 1,   // handshake: who I am, my token
  error = 2,   // a reason, then the sender closes
  ping = 3,    // heartbeat
  pong = 4,    // heartbeat answer
  sub = 5,     // interest in (filter, queue) with a weight
  unsub = 6,   // no more interest in (filter, queue)
  synced = 7,  // the full interest set has been sent
  msg = 8,     // one message
  peers = 9,   // gossip: listen addresses of the sender's mesh peers
};
const char* to_string(FrameType type) noexcept;

// Codes of an error frame.
enum class ErrorCode : std::uint8_t {
  protocol = 1,       // malformed or unexpected frame
  version = 2,        // unsupported protocol version
  unauthorized = 3,   // wrong or missing token
  self = 4,           // a node connected to itself
  duplicate = 5,      // another link to the same node already exists
  slow_consumer = 6,  // outbound queue above its limit
  timeout = 7,        // handshake not finished in time
  closing = 8,        // the sender is closing gracefully (everything before was sent)
};
const char* to_string(ErrorCode code) noexcept;

// HELLO flags.
inline constexpr std::uint8_t kHelloListens = 0x01;  // the sender accepts connections

struct Hello {
  std::uint16_t version = kProtocolVersion;
  std::uint8_t flags = 0;
  std::uint64_t node_id = 0;
  std::uint64_t nonce = 0;      // per connection, breaks ties between duplicate links
  std::uint32_t max_frame = 0;  // the largest frame the sender accepts
  std::string token;
  std::string advertise;  // "host:port" others may dial; empty if not listening
  std::string name;       // for logs
};

struct Interest {
  std::string filter;
  std::string queue;
  std::uint32_t weight = 0;  // members behind this interest (queue groups); sub only
};

// A decoded MSG. `data` points into the decoded bytes.
struct MsgFrame {
  std::string subject;
  std::string reply_to;
  Headers headers;
  std::vector<std::string> queues;  // queue groups the receiver delivers to
  std::string_view data;
};

struct Frame {
  FrameType type = FrameType::ping;
  Hello hello;  // hello
  ErrorCode error = ErrorCode::protocol;
  std::string text;                // error
  Interest interest;               // sub, unsub
  MsgFrame msg;                    // msg
  std::vector<std::string> peers;  // peers
};

enum class DecodeStatus {
  frame,       // one frame decoded; `consumed` bytes used
  incomplete,  // more bytes needed; `needed` says how many in total, when known
  error,       // malformed or oversize; `error` says why
};

struct DecodeResult {
  DecodeStatus status = DecodeStatus::incomplete;
  std::size_t consumed = 0;
  std::size_t needed = 0;
  std::string error;
};

// Decodes the first frame of `bytes`. A length above `max_frame` is an error
// as soon as the length field is in (the body is never waited for).
DecodeResult decode_frame(std::string_view bytes, std::size_t max_frame, Frame& out);

// Encoders append one whole frame to `out`.
void encode_hello(const Hello& hello, std::string& out);
void encode_error(ErrorCode code, std::string_view text, std::string& out);
void encode_empty(FrameType type, std::string& out);  // ping, pong, synced
void encode_sub(const Interest& interest, std::string& out);
void encode_unsub(std::string_view filter, std::string_view queue, std::string& out);
void encode_peers(const std::vector<std::string>& addresses, std::string& out);

// A MSG frame is its head (everything up to the data) followed by the data
// bytes, so that one payload buffer can follow several heads without a
// copy. Appends the head for `data_size` bytes of data.
void encode_msg_head(std::string_view subject, std::string_view reply_to, const Headers& headers,
                     const std::vector<std::string>& queues, std::size_t data_size,
                     std::string& out);
// The whole frame, head and data.
void encode_msg(std::string_view subject, std::string_view reply_to, const Headers& headers,
                const std::vector<std::string>& queues, std::string_view data, std::string& out);

// Bytes the head of a MSG takes, for size checks before encoding.
std::size_t msg_head_size(std::string_view subject, std::string_view reply_to,
                          const Headers& headers, const std::vector<std::string>& queues);

}  // namespace switchboard::tcp_peer
