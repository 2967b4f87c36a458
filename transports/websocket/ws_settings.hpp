// The websocket transport's options, read from its config section (the
// table is in docs/websocket.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "switchboard/transport.hpp"

namespace switchboard::websocket {

// A parsed ws:// or wss:// URL (or host:port).
struct Endpoint {
  bool tls = false;
  std::string host;
  std::string port;
  std::string target = "/";  // path and query, as sent in the upgrade request
  std::string token;         // the `token` query parameter, if any
  std::string text() const;  // host:port (IPv6 in brackets)
  std::string url() const;   // ws://host:port (without path and query)
};

// Parses "ws://host[:port][/path][?token=...]", "wss://..." or "host:port";
// throws OptionError(key) when bad.
Endpoint parse_endpoint(const std::string& text, const std::string& key);

enum class Mode {
  auto_,   // listen; if the address is taken, connect to the node holding it
  listen,  // listen (fail if taken): a hub
  connect  // connect to the url: a client of a hub
};

enum class FrameFormat { json, msgpack };

struct TlsSettings {
  std::string ca, cert, key;
  std::string hostname;  // expected server name; default: the url's host
  bool verify = true;    // client: verify the server's certificate
};

struct Settings {
  Mode mode = Mode::auto_;
  Endpoint listen;  // where to listen (auto, listen)
  Endpoint server;  // where to connect (auto when taken, connect)
  std::string token;
  std::vector<std::string> allowed_origins;   // empty: any Origin
  FrameFormat frames = FrameFormat::msgpack;  // what this node sends as a client
  std::size_t max_message_bytes = 0;          // 0 before read_settings: 2 * max_payload + 64 KiB
  std::size_t max_outbound_bytes = 16 * 1024 * 1024;
  std::size_t max_connections = 10000;
  std::int64_t handshake_timeout_ms = 5000;
  std::int64_t idle_timeout_ms = 60000;  // 0: no keep-alive pings
  std::int64_t connect_timeout_ms = 2000;
  std::int64_t drain_timeout_ms = 5000;
  bool retry_on_failed_connect = false;
  std::int64_t reconnect_wait_ms = 500;
  int reconnect_max_attempts = -1;  // -1: forever
  std::size_t reconnect_buffer_bytes = 8 * 1024 * 1024;
  std::int64_t request_timeout_ms = 5000;
  int request_retries = 0;
  TlsSettings tls;
  bool tls_server = false;  // listening with TLS (wss:// or tls.cert)
};

// Reads the options; throws OptionError naming the key.
Settings read_settings(const TransportConfig& config);

}  // namespace switchboard::websocket
