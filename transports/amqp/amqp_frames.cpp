#include "amqp_frames.hpp"

#include <amqp_framing.h>

#include <algorithm>
#include <cstdint>

namespace switchboard::amqp {
namespace {

// `n` bytes of `value`, most significant first (AMQP is big-endian).
void put(unsigned char* dest, int n, std::uint64_t value) {
  for (int i = 0; i < n; ++i) dest[i] = static_cast<unsigned char>(value >> (8 * (n - 1 - i)));
}

// Frame header (type, channel, payload size) and frame-end around what
// `write_payload(dest, room)` writes into at most `room` bytes; it returns
// the payload's size or a negative status.
template <typename WritePayload>
int append_frame(std::string& out, std::uint8_t type, amqp_channel_t channel, std::size_t room,
                 WritePayload&& write_payload) {
  const std::size_t start = out.size();
  out.resize(start + 7 + room + 1);
  auto* p = reinterpret_cast<unsigned char*>(out.data() + start);
  const int size = write_payload(p + 7, room);
  if (size < 0) {
    out.resize(start);
    return size;
  }
  p[0] = type;
  put(p + 1, 2, channel);
  put(p + 3, 4, static_cast<std::uint64_t>(size));
  p[7 + size] = AMQP_FRAME_END;
  out.resize(start + 7 + static_cast<std::size_t>(size) + 1);
  return 0;
}

}  // namespace

int append_publish(std::string& out, const PublishFrames& p, std::size_t frame_max) {
  const std::size_t start = out.size();
  // A frame's payload is at most frame_max - 8 (7 bytes of header, 1 of end).
  const std::size_t most = frame_max - 8;
  // The method: its id, then rabbitmq-c's encoding of its fields (two short
  // strings and a few bits: well under 1 KiB).
  amqp_basic_publish_t method{};
  method.exchange = p.exchange;
  method.routing_key = p.routing_key;
  method.mandatory = p.mandatory ? 1 : 0;
  int rc = append_frame(out, AMQP_FRAME_METHOD, p.channel, std::min<std::size_t>(most, 1024),
                        [&](unsigned char* dest, std::size_t n) {
                          put(dest, 4, AMQP_BASIC_PUBLISH_METHOD);
                          int size = amqp_encode_method(AMQP_BASIC_PUBLISH_METHOD, &method,
                                                        amqp_bytes_t{n - 4, dest + 4});
                          return size < 0 ? size : size + 4;
                        });
  if (rc < 0) return rc;
  // The content header: class, weight 0, body size, then the properties.
  // Tried in 1 KiB first (a big headers table gets the whole frame), since
  // the room is zero-filled before it is written.
  amqp_basic_properties_t none{};
  auto* properties = const_cast<amqp_basic_properties_t*>(p.properties ? p.properties : &none);
  auto header = [&](unsigned char* dest, std::size_t n) {
    put(dest, 2, AMQP_BASIC_CLASS);
    put(dest + 2, 2, 0);
    put(dest + 4, 8, p.body.len);
    int size =
        amqp_encode_properties(AMQP_BASIC_CLASS, properties, amqp_bytes_t{n - 12, dest + 12});
    return size < 0 ? size : size + 12;
  };
  rc = append_frame(out, AMQP_FRAME_HEADER, p.channel, std::min<std::size_t>(most, 1024), header);
  if (rc < 0 && most > 1024) rc = append_frame(out, AMQP_FRAME_HEADER, p.channel, most, header);
  if (rc < 0) {
    out.resize(start);
    return rc;
  }
  const auto* body = static_cast<const char*>(p.body.bytes);
  for (std::size_t sent = 0; sent < p.body.len;) {
    const std::size_t chunk = std::min(most, p.body.len - sent);
    unsigned char head[7] = {AMQP_FRAME_BODY};
    put(head + 1, 2, p.channel);
    put(head + 3, 4, chunk);
    out.append(reinterpret_cast<const char*>(head), sizeof head);
    out.append(body + sent, chunk);
    out.push_back(static_cast<char>(AMQP_FRAME_END));
    sent += chunk;
  }
  return 0;
}

}  // namespace switchboard::amqp
