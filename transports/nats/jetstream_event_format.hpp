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
// headers (Nats-Msg-Id = the event id; Sb-Type, Sb-Origin-Sequence,
// Sb-Timestamp-Us, Sb-Prev-Hash, Sb-Hash as every broker store writes them,
// transports/event_records/event_record_fields.hpp) and, when published,
// Nats-Expected-Last-Sequence = sequence - 1, so that a second writer
// cannot append between this writer's head and its next event.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "event_record_fields.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard::nats::events {

using event_records::hash_from_hex;
using event_records::hex_decode;
using event_records::hex_encode;
using event_records::kHashHeader;
using event_records::valid_header_value;

inline constexpr const char* kMsgIdHeader = "Nats-Msg-Id";
inline constexpr const char* kExpectedLastSequenceHeader = "Nats-Expected-Last-Sequence";
inline constexpr const char* kExpectedLastSubjectSequenceHeader =
    "Nats-Expected-Last-Subject-Sequence";

// JetStream's err_code for a refused Nats-Expected-Last-Sequence.
inline constexpr int kWrongLastSequence = 10071;

// One subject token: letters, digits, '-' and '_' (what an origin may be
// on this backend, since it names the event's subject).
bool valid_subject_token(std::string_view token);

}  // namespace switchboard::nats::events
