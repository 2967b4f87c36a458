// The nats transport's options, read from its config section, and the
// cnats natsOptions built from them.
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <string>
#include <vector>

#include "switchboard/transport.hpp"

namespace switchboard::nats {

// One stream the transport declares at connect (`jetstream.streams`).
struct StreamSettings {
  std::string name;
  std::vector<std::string> subjects;
  bool memory = false;                   // storage: file (default) or memory
  std::int64_t max_age_ms = 0;           // 0: messages do not expire
  std::int64_t duplicate_window_ms = 0;  // 0: the server's default (2 min, or max_age if shorter)
  int replicas = 1;
};

// The `jetstream` option: `true`, or a mapping (which also turns it on).
struct JetStreamSettings {
  bool enabled = false;
  std::string domain;                      // JetStream domain: API under $JS.<domain>.API
  std::int64_t publish_timeout_ms = 5000;  // PubAck wait of publish_durable
  std::int64_t api_timeout_ms = 5000;      // stream and consumer management requests
  std::vector<StreamSettings> streams;
};

struct NatsSettings {
  std::vector<std::string> servers;  // url (comma-separated) and/or `servers`
  std::string name;                  // connection name shown by the server
  std::string user, password, token;
  std::string nkey_seed_file;  // NKey seed file (public key is derived by cnats)
  std::string nkey_public;     // the NKey public key matching the seed
  std::string creds_file;      // .creds file (JWT + seed)
  bool tls = false;
  std::string tls_ca, tls_cert, tls_key, tls_hostname;
  bool tls_skip_verify = false;
  int reconnect_max_attempts = 60;  // -1: forever
  std::int64_t reconnect_wait_ms = 2000;
  std::int64_t reconnect_jitter_ms = 100;
  std::int64_t reconnect_jitter_tls_ms = 1000;
  int reconnect_buffer_bytes = 8 * 1024 * 1024;
  std::int64_t connect_timeout_ms = 2000;
  bool retry_on_failed_connect = false;
  bool no_echo = false;
  std::int64_t ping_interval_ms = 120000;
  int max_pings_out = 2;
  int pending_messages = 65536;  // per subscription, before slow consumer
  int pending_bytes = 64 * 1024 * 1024;
  std::int64_t drain_timeout_ms = 5000;
  JetStreamSettings jetstream;
};

// Reads the options; throws OptionError naming the key.
NatsSettings read_settings(const TransportConfig& config);

// Builds cnats options (callbacks are set by the transport). Throws
// OptionError when cnats refuses one (a missing certificate file, ...).
natsOptions* build_options(const NatsSettings& settings);

}  // namespace switchboard::nats
