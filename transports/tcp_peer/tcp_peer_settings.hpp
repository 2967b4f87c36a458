// The tcp_peer transport's options, read from its config section. The
// table of options is in docs/tcp-peer.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "switchboard/transport.hpp"

namespace switchboard::tcp_peer {

// "host:port"; host may be a name, an IPv4 address or a bracketed IPv6 one.
struct Address {
  std::string host;
  std::string port;
  std::string text() const;  // host:port (IPv6 in brackets)
};

// Parses "tcp://host:port" or "host:port"; throws OptionError(key) when bad.
Address parse_address(const std::string& text, const std::string& key);

enum class Mode {
  auto_,   // listen; if the address is taken, join the node holding it
  listen,  // listen (fail if taken) and dial the peers
  connect  // do not listen; join one peer of the list (failover in order)
};

struct TlsSettings {
  bool enabled = false;
  std::string ca, cert, key;
  std::string hostname;         // expected name of the peers; default: the dialed host
  bool verify = true;           // verify the certificate of the peer we dial
  bool verify_clients = false;  // require and verify certificates of peers dialing us
};

struct Settings {
  Mode mode = Mode::auto_;
  bool has_listen = false;
  Address listen;              // url, or `listen`
  std::string advertise;       // what peers are told to dial; default: listen address
  std::vector<Address> peers;  // `peers` (and the url in connect mode)
  std::string name;
  std::string token;
  bool gossip = true;
  bool retry_on_failed_connect = false;
  std::int64_t connect_timeout_ms = 2000;
  std::int64_t handshake_timeout_ms = 5000;
  std::int64_t heartbeat_interval_ms = 5000;
  int heartbeat_max_missed = 3;
  std::int64_t reconnect_wait_ms = 250;
  std::int64_t reconnect_max_wait_ms = 5000;
  std::int64_t reconnect_jitter_ms = 100;
  int reconnect_max_attempts = -1;  // -1: forever
  std::size_t max_frame_bytes = 0;  // 0 before read_settings: max_payload + 64 KiB
  std::size_t max_outbound_bytes = 64 * 1024 * 1024;
  std::int64_t drain_timeout_ms = 5000;
  TlsSettings tls;
};

// Header room allowed on top of max_payload in a frame by default.
inline constexpr std::size_t kHeaderRoom = 64 * 1024;

// Reads the options; throws OptionError naming the key.
Settings read_settings(const TransportConfig& config);

}  // namespace switchboard::tcp_peer
