// How the broker event stores (JetStream, Kafka) carry an event's fields in
// a message: the payload text is the body, unchanged, and the chain's fields
// travel in headers of the same names on every broker. Shared by the
// jetstream-events and kafka-events plugins so that both store an event the
// same way; each adds what its broker needs (JetStream: Nats-Msg-Id and the
// expected last sequence; Kafka: the sequence, the origin and the id as key).
// No I/O here. docs/events.md, "Backends".
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "switchboard/event_log.hpp"

namespace switchboard::event_records {

inline constexpr const char* kTypeHeader = "Sb-Type";
inline constexpr const char* kOriginSequenceHeader = "Sb-Origin-Sequence";
inline constexpr const char* kTimestampHeader = "Sb-Timestamp-Us";
inline constexpr const char* kPrevHashHeader = "Sb-Prev-Hash";
inline constexpr const char* kHashHeader = "Sb-Hash";

std::string hex_encode(std::string_view bytes);
std::optional<std::string> hex_decode(std::string_view hex);
std::optional<EventHash> hash_from_hex(std::string_view hex);

// Whether a header value can carry `text` (no CR, LF or NUL): event types
// travel in a header.
bool valid_header_value(std::string_view text);

// The headers every broker store writes: type, origin_sequence,
// timestamp_us (decimal), prev_hash and hash (64 hex digits each).
std::vector<std::pair<const char*, std::string>> chain_headers(const Event& e);

// A header's value by name, or nullopt when the message has none.
using HeaderLookup = std::function<std::optional<std::string>(const char* name)>;

// Fills type, origin_sequence, timestamp_us, prev_hash and hash of `e` from
// the headers. A missing or malformed value becomes empty or zero rather
// than an error: the hash check of verify() then names the event, which is
// what a forged or damaged message should produce.
void read_chain_headers(const HeaderLookup& header, Event& e);

// A decimal header value, or 0 when missing or not a number (see above).
std::int64_t number_or_zero(const std::optional<std::string>& text);

}  // namespace switchboard::event_records
