// Checks on events that come from other logs (EventLog::ingest, for
// replication), done on the caller's thread before they are queued to the
// writer, the way emit() validates before queueing.
#pragma once

#include "switchboard/event_log.hpp"
#include "switchboard/json.hpp"

namespace switchboard::events {

enum class ForeignCheck {
  ok,
  // Stored anyway: the origin validated the payload against its own schema
  // when it was emitted, and refusing it would stop that origin's stream
  // here for good (per-origin order). Logged and counted.
  schema_mismatch,
  // Not stored: no origin, origin_sequence 0, an id that is not
  // event_id(origin, origin_sequence), no type, or a payload that is not a
  // JSON object. Logged, naming the event.
  malformed,
};

// `schema`: the local schema of e.type, or null when the type is not
// declared here (then the payload is only checked to be an object).
ForeignCheck check_foreign(const Event& e, const Json* schema);

}  // namespace switchboard::events
