// JetStream's JSON API as the nats transport speaks it: requests built and
// answers read here, without I/O (nats_transport.cpp sends and receives).
// Server API reference: https://docs.nats.io/reference/reference-protocols/nats_api_reference
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <system_error>

#include "nats_settings.hpp"
#include "switchboard/json.hpp"
#include "switchboard/transport.hpp"

namespace switchboard::nats {

// JetStream error codes (`err_code`) the transport tells apart.
inline constexpr int kJsNotEnabled = 10076;            // JetStream not enabled (server)
inline constexpr int kJsNotEnabledForAccount = 10039;  // JetStream not enabled for account
inline constexpr int kJsConsumerNotFound = 10014;
inline constexpr int kJsStreamNotFound = 10059;
inline constexpr int kJsStreamNameExists = 10058;  // ... with a different configuration
inline constexpr int kJsStreamNotMatch = 10060;    // Nats-Expected-Stream does not match

// The `error` member of an API answer.
struct ApiError {
  int code = 0;      // HTTP-like status
  int err_code = 0;  // JetStream's own code
  std::string description;
  std::string text() const;  // "description (code 404, err_code 10059)"
};
std::optional<ApiError> api_error(const Json& answer);

// A stream, consumer or domain name: one subject token without wildcards,
// and nothing the server could not use as a file name.
bool valid_jetstream_name(const std::string& name);

// $JS.API or $JS.<domain>.API
std::string api_prefix(const JetStreamSettings& settings);

// A stream's configuration as declared (for STREAM.CREATE), and an existing
// configuration (STREAM.INFO's `config`) with the declared fields applied
// (for STREAM.UPDATE, keeping whatever else was set on the server).
Json stream_config(const StreamSettings& stream);
Json merge_stream_config(Json existing, const StreamSettings& stream);

// A new durable push consumer: explicit acks, the start policy, the
// deliver subject and deliver group given.
Json consumer_config(const DurableSubscribe& options, const std::string& deliver_subject,
                     const std::string& deliver_group);

// RFC 3339 in UTC with nanoseconds, as the server reads times.
std::string rfc3339(std::chrono::system_clock::time_point t);

// What the reply subject of a JetStream delivery says:
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>
// or, with a domain and account hash (newer servers),
// $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<stream seq>...
struct AckSubject {
  std::string stream;
  std::string consumer;
  std::uint64_t delivered = 0;
  std::uint64_t stream_sequence = 0;
  std::uint64_t pending = 0;  // the consumer's num_pending when the server sent it
};
std::optional<AckSubject> parse_ack_subject(const std::string& reply);

// The body of a nak: "-NAK", or with a delay before redelivery.
std::string nak_body(std::chrono::milliseconds delay);

// A PubAck: the receipt, or the error (errc) and a sentence naming what
// was wrong, for the log.
struct PubAckResult {
  std::error_code ec;
  DurableReceipt receipt;
  std::string problem;
};
PubAckResult read_pub_ack(std::string_view body, const std::string& subject,
                          const std::string& expected_stream);

}  // namespace switchboard::nats
