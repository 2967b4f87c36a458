// The amqp transport's options, read from its config section (see
// docs/amqp.md, "Options").
#pragma once

#include <cstdint>
#include <string>

#include "switchboard/transport.hpp"

namespace switchboard::amqp {

struct AmqpSettings {
  // From the URL (amqp://user:password@host:port/vhost, amqps:// for TLS);
  // `user` and `password` options override the URL's.
  std::string host = "127.0.0.1";
  int port = 5672;
  std::string vhost = "/";
  std::string user = "guest";
  std::string password = "guest";
  std::string endpoint;  // host:port/vhost without credentials, for logs

  std::string exchange = "switchboard";  // topic exchange, declared durable
  std::string name;                      // connection name shown by the broker

  bool tls = false;
  std::string tls_ca, tls_cert, tls_key;
  bool tls_verify_peer = true;
  bool tls_verify_hostname = true;

  int heartbeat_s = 30;  // 0: none
  std::int64_t connect_timeout_ms = 5000;
  std::int64_t rpc_timeout_ms = 10000;  // declare, bind, consume, close
  int frame_max = 131072;
  int reconnect_max_attempts = 60;  // -1: forever
  std::int64_t reconnect_wait_ms = 1000;
  std::int64_t publish_timeout_ms = 10000;  // publisher confirm of publish_durable

  // Queue groups: queue `<prefix><group>`.
  std::string group_prefix;
  bool group_durable = true;
  bool group_auto_delete = false;

  // Bytes of messages queued for the connection's thread before publish()
  // fails (the broker is slow, or the connection is down and reconnecting).
  std::size_t max_pending_bytes = 64u * 1024 * 1024;
};

// Reads the options; throws OptionError naming the key.
AmqpSettings read_settings(const TransportConfig& config);

}  // namespace switchboard::amqp
