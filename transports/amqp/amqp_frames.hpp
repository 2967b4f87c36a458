// basic.publish as bytes: the method, content header and body frames of one
// publish, appended to a buffer, so that the connection's thread can write
// a whole batch of publishes with one send(2) instead of rabbitmq-c's three
// per publish (amqp_basic_publish sends each frame on its own).
//
// The encoding of the method and of the properties is rabbitmq-c's own
// (amqp_encode_method, amqp_encode_properties); only the framing (type,
// channel, size, payload, frame-end, AMQP 0-9-1 section 4.2.3) is written
// here.
#pragma once

#include <amqp.h>

#include <cstddef>
#include <string>

namespace switchboard::amqp {

struct PublishFrames {
  amqp_channel_t channel = 1;
  amqp_bytes_t exchange = amqp_empty_bytes;
  amqp_bytes_t routing_key = amqp_empty_bytes;
  bool mandatory = false;
  const amqp_basic_properties_t* properties = nullptr;
  amqp_bytes_t body = amqp_empty_bytes;
};

// Appends the frames of `p` to `out`, the body split into frames of at most
// frame_max - 8 bytes. Returns 0, or rabbitmq-c's negative status when the
// method or the properties cannot be encoded (`out` is then as before).
int append_publish(std::string& out, const PublishFrames& p, std::size_t frame_max);

}  // namespace switchboard::amqp
