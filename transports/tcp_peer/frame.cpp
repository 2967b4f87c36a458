#include "frame.hpp"

#include <cstring>
#include <limits>

namespace switchboard::tcp_peer {
namespace {

void put_u8(std::string& out, std::uint8_t v) {
  out.push_back(static_cast<char>(v));
}
void put_u16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}
// Callers keep strings within their limits (the transport checks subjects
// and headers before encoding); longer ones are cut rather than corrupting
// the stream.
void put_str16(std::string& out, std::string_view s) {
  auto n = std::min<std::size_t>(s.size(), std::numeric_limits<std::uint16_t>::max());
  put_u16(out, static_cast<std::uint16_t>(n));
  out.append(s.data(), n);
}
void put_str32(std::string& out, std::string_view s) {
  auto n = std::min<std::size_t>(s.size(), std::numeric_limits<std::uint32_t>::max());
  put_u32(out, static_cast<std::uint32_t>(n));
  out.append(s.data(), n);
}

// Reserves the length field and the type; finish() fills the length in.
std::size_t begin(std::string& out, FrameType type) {
  std::size_t at = out.size();
  put_u32(out, 0);
  put_u8(out, static_cast<std::uint8_t>(type));
  return at;
}
void finish(std::string& out, std::size_t at, std::size_t extra = 0) {
  auto length = static_cast<std::uint32_t>(out.size() - at - 4 + extra);
  for (int i = 0; i < 4; ++i) out[at + i] = static_cast<char>((length >> (24 - 8 * i)) & 0xff);
}

// Bounds-checked reads over one frame's body; the first failure sticks.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  std::size_t left() const { return bytes_.size() - pos_; }

  std::uint64_t uint(int size, const char* what) {
    if (!need(static_cast<std::size_t>(size), what)) return 0;
    std::uint64_t v = 0;
    for (int i = 0; i < size; ++i) v = (v << 8) | static_cast<unsigned char>(bytes_[pos_++]);
    return v;
  }
  std::string_view bytes(std::size_t n, const char* what) {
    if (!need(n, what)) return {};
    auto v = bytes_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  std::string str16(const char* what) {
    auto n = uint(2, what);
    return std::string(bytes(static_cast<std::size_t>(n), what));
  }
  std::string str32(const char* what) {
    auto n = uint(4, what);
    return std::string(bytes(static_cast<std::size_t>(n), what));
  }
  std::string_view rest() {
    auto v = bytes_.substr(pos_);
    pos_ = bytes_.size();
    return v;
  }
  void fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
  }
  void expect_end(const char* frame) {
    if (ok() && left() != 0) {
      fail(std::to_string(left()) + " unexpected bytes at the end of a " + frame + " frame");
    }
  }

 private:
  bool need(std::size_t n, const char* what) {
    if (!ok()) return false;
    if (left() < n) {
      fail(std::string("truncated ") + what);
      return false;
    }
    return true;
  }

  std::string_view bytes_;
  std::size_t pos_ = 0;
  std::string error_;
};

std::size_t str16_size(std::string_view s) {
  return 2 + std::min<std::size_t>(s.size(), std::numeric_limits<std::uint16_t>::max());
}

}  // namespace

const char* to_string(FrameType type) noexcept {
  switch (type) {
    case FrameType::hello:
      return "HELLO";
    case FrameType::error:
      return "ERROR";
    case FrameType::ping:
      return "PING";
    case FrameType::pong:
      return "PONG";
    case FrameType::sub:
      return "SUB";
    case FrameType::unsub:
      return "UNSUB";
    case FrameType::synced:
      return "SYNCED";
    case FrameType::msg:
      return "MSG";
    case FrameType::peers:
      return "PEERS";
  }
  return "?";
}

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::protocol:
      return "protocol error";
    case ErrorCode::version:
      return "unsupported version";
    case ErrorCode::unauthorized:
      return "unauthorized";
    case ErrorCode::self:
      return "connected to itself";
    case ErrorCode::duplicate:
      return "duplicate link";
    case ErrorCode::slow_consumer:
      return "slow consumer";
    case ErrorCode::timeout:
      return "handshake timeout";
    case ErrorCode::closing:
      return "closing";
  }
  return "unknown error";
}

DecodeResult decode_frame(std::string_view bytes, std::size_t max_frame, Frame& out) {
  DecodeResult r;
  if (bytes.size() < 4) {
    r.status = DecodeStatus::incomplete;
    return r;
  }
  std::size_t length = 0;
  for (int i = 0; i < 4; ++i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  if (length == 0) {
    r.status = DecodeStatus::error;
    r.error = "empty frame (length 0)";
    return r;
  }
  if (length > max_frame) {
    r.status = DecodeStatus::error;
    r.error = "frame of " + std::to_string(length) + " bytes above the maximum of " +
              std::to_string(max_frame);
    return r;
  }
  if (bytes.size() < 4 + length) {
    r.status = DecodeStatus::incomplete;
    r.needed = 4 + length;
    return r;
  }
  auto type_byte = static_cast<std::uint8_t>(bytes[4]);
  Reader in(bytes.substr(5, length - 1));
  switch (static_cast<FrameType>(type_byte)) {
    case FrameType::hello: {
      out.type = FrameType::hello;
      auto magic = in.bytes(4, "HELLO magic");
      if (in.ok() && magic != std::string_view(kMagic, 4)) in.fail("bad HELLO magic");
      Hello& h = out.hello;
      h.version = static_cast<std::uint16_t>(in.uint(2, "HELLO version"));
      h.flags = static_cast<std::uint8_t>(in.uint(1, "HELLO flags"));
      h.node_id = in.uint(8, "HELLO node id");
      h.nonce = in.uint(8, "HELLO nonce");
      h.max_frame = static_cast<std::uint32_t>(in.uint(4, "HELLO max frame"));
      h.token = in.str16("HELLO token");
      h.advertise = in.str16("HELLO address");
      h.name = in.str16("HELLO name");
      in.expect_end("HELLO");
      break;
    }
    case FrameType::error: {
      out.type = FrameType::error;
      out.error = static_cast<ErrorCode>(in.uint(1, "ERROR code"));
      out.text = in.str16("ERROR text");
      in.expect_end("ERROR");
      break;
    }
    case FrameType::ping:
    case FrameType::pong:
    case FrameType::synced:
      out.type = static_cast<FrameType>(type_byte);
      in.expect_end(to_string(out.type));
      break;
    case FrameType::sub:
    case FrameType::unsub: {
      out.type = static_cast<FrameType>(type_byte);
      out.interest.filter = in.str16("subscription filter");
      out.interest.queue = in.str16("subscription queue");
      out.interest.weight = 0;
      if (out.type == FrameType::sub) {
        out.interest.weight = static_cast<std::uint32_t>(in.uint(4, "subscription weight"));
      }
      in.expect_end(to_string(out.type));
      break;
    }
    case FrameType::msg: {
      out.type = FrameType::msg;
      MsgFrame& m = out.msg;
      m.subject = in.str16("MSG subject");
      m.reply_to = in.str16("MSG reply subject");
      m.headers.clear();
      auto header_count = in.uint(2, "MSG header count");
      for (std::uint64_t i = 0; i < header_count && in.ok(); ++i) {
        auto key = in.str16("MSG header name");
        auto value = in.str32("MSG header value");
        if (in.ok()) m.headers.insert_or_assign(std::move(key), std::move(value));
      }
      m.queues.clear();
      auto queue_count = in.uint(2, "MSG queue count");
      for (std::uint64_t i = 0; i < queue_count && in.ok(); ++i) {
        auto q = in.str16("MSG queue");
        if (in.ok()) m.queues.push_back(std::move(q));
      }
      m.data = in.ok() ? in.rest() : std::string_view();
      break;
    }
    case FrameType::peers: {
      out.type = FrameType::peers;
      out.peers.clear();
      auto count = in.uint(2, "PEERS count");
      for (std::uint64_t i = 0; i < count && in.ok(); ++i) {
        auto a = in.str16("PEERS address");
        if (in.ok()) out.peers.push_back(std::move(a));
      }
      in.expect_end("PEERS");
      break;
    }
    default:
      in.fail("unknown frame type " + std::to_string(type_byte));
  }
  if (!in.ok()) {
    r.status = DecodeStatus::error;
    r.error = in.error();
    return r;
  }
  r.status = DecodeStatus::frame;
  r.consumed = 4 + length;
  return r;
}

void encode_hello(const Hello& h, std::string& out) {
  auto at = begin(out, FrameType::hello);
  out.append(kMagic, 4);
  put_u16(out, h.version);
  put_u8(out, h.flags);
  put_u64(out, h.node_id);
  put_u64(out, h.nonce);
  put_u32(out, h.max_frame);
  put_str16(out, h.token);
  put_str16(out, h.advertise);
  put_str16(out, h.name);
  finish(out, at);
}

void encode_error(ErrorCode code, std::string_view text, std::string& out) {
  auto at = begin(out, FrameType::error);
  put_u8(out, static_cast<std::uint8_t>(code));
  put_str16(out, text);
  finish(out, at);
}

void encode_empty(FrameType type, std::string& out) {
  auto at = begin(out, type);
  finish(out, at);
}

void encode_sub(const Interest& interest, std::string& out) {
  auto at = begin(out, FrameType::sub);
  put_str16(out, interest.filter);
  put_str16(out, interest.queue);
  put_u32(out, interest.weight);
  finish(out, at);
}

void encode_unsub(std::string_view filter, std::string_view queue, std::string& out) {
  auto at = begin(out, FrameType::unsub);
  put_str16(out, filter);
  put_str16(out, queue);
  finish(out, at);
}

void encode_peers(const std::vector<std::string>& addresses, std::string& out) {
  auto at = begin(out, FrameType::peers);
  auto n = std::min<std::size_t>(addresses.size(), std::numeric_limits<std::uint16_t>::max());
  put_u16(out, static_cast<std::uint16_t>(n));
  for (std::size_t i = 0; i < n; ++i) put_str16(out, addresses[i]);
  finish(out, at);
}

std::size_t msg_head_size(std::string_view subject, std::string_view reply_to,
                          const Headers& headers, const std::vector<std::string>& queues) {
  std::size_t n = kFrameOverhead + str16_size(subject) + str16_size(reply_to) + 2 + 2;
  for (const auto& [k, v] : headers) n += str16_size(k) + 4 + v.size();
  for (const auto& q : queues) n += str16_size(q);
  return n;
}

void encode_msg_head(std::string_view subject, std::string_view reply_to, const Headers& headers,
                     const std::vector<std::string>& queues, std::size_t data_size,
                     std::string& out) {
  auto at = begin(out, FrameType::msg);
  put_str16(out, subject);
  put_str16(out, reply_to);
  auto header_count =
      std::min<std::size_t>(headers.size(), std::numeric_limits<std::uint16_t>::max());
  put_u16(out, static_cast<std::uint16_t>(header_count));
  std::size_t written = 0;
  for (const auto& [k, v] : headers) {
    if (written++ == header_count) break;
    put_str16(out, k);
    put_str32(out, v);
  }
  auto queue_count =
      std::min<std::size_t>(queues.size(), std::numeric_limits<std::uint16_t>::max());
  put_u16(out, static_cast<std::uint16_t>(queue_count));
  for (std::size_t i = 0; i < queue_count; ++i) put_str16(out, queues[i]);
  finish(out, at, data_size);
}

void encode_msg(std::string_view subject, std::string_view reply_to, const Headers& headers,
                const std::vector<std::string>& queues, std::string_view data, std::string& out) {
  encode_msg_head(subject, reply_to, headers, queues, data.size(), out);
  out.append(data);
}

}  // namespace switchboard::tcp_peer
