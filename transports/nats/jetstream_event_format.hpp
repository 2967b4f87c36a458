// How the JetStream event store lays an event log out on the broker, without
// I/O (jetstream_event_store.cpp talks to the server). docs/events.md,
// "Backends".
//
//   stream <name>        subjects <prefix>.e.*   one message per event, on
//                        <prefix>.e.<origin>; stream sequence = event sequence
//   stream <name>_META   subjects <prefix>.m.>   max one message per subject:
//                        <prefix>.m.meta.<hex key>, .type.<hex name>,
//                        .consumer.<hex name>
//
// An event message: the payload text as its body, the other fields in
// headers (Nats-Msg-Id = the event id, Sb-Type, Sb-Origin-Sequence,
// Sb-Timestamp-Us, Sb-Prev-Hash, Sb-Hash in hex) and, when published,
// Nats-Expected-Last-Sequence = sequence - 1, so that a second writer
// cannot append between this writer's head and its next event.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "switchboard/event_log.hpp"

namespace switchboard::nats::events {

inline constexpr const char* kTypeHeader = "Sb-Type";
inline constexpr const char* kOriginSequenceHeader = "Sb-Origin-Sequence";
inline constexpr const char* kTimestampHeader = "Sb-Timestamp-Us";
inline constexpr const char* kPrevHashHeader = "Sb-Prev-Hash";
inline constexpr const char* kHashHeader = "Sb-Hash";
inline constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
inline constexpr const char* kExpectedLastSequenceHeader = "Nats-Expected-Last-Sequence";
inline constexpr const char* kExpectedLastSubjectSequenceHeader =
    "Nats-Expected-Last-Subject-Sequence";

// JetStream's err_code for a refused Nats-Expected-Last-Sequence.
inline constexpr int kWrongLastSequence = 10071;

std::string hex_encode(std::string_view bytes);
std::optional<std::string> hex_decode(std::string_view hex);
std::optional<EventHash> hash_from_hex(std::string_view hex);

// One subject token: letters, digits, '-' and '_' (what an origin may be
// on this backend, since it names the event's subject).
bool valid_subject_token(std::string_view token);

// Whether a header value can carry `text` (no CR, LF or NUL).
bool valid_header_value(std::string_view text);

}  // namespace switchboard::nats::events
