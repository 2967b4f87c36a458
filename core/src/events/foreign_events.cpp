#include "foreign_events.hpp"

#include <spdlog/spdlog.h>

#include "../payload_schema.hpp"
#include "event_hash.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::events {

ForeignCheck check_foreign(const Event& e, const Json* schema) {
  auto malformed = [&](const char* why) {
    spdlog::warn("event log: foreign event {} (origin '{}', origin_sequence {}) rejected: {}", e.id,
                 e.origin, e.origin_sequence, why);
    return ForeignCheck::malformed;
  };
  if (e.origin.empty()) return malformed("it has no origin");
  if (e.origin_sequence == 0) return malformed("origin_sequence must be 1 or more");
  if (e.type.empty() || e.type == "*") return malformed("its type is empty or '*'");
  if (e.id != event_id(e.origin, e.origin_sequence)) {
    return malformed("its id is not the one derived from (origin, origin_sequence)");
  }
  Json payload;
  std::string parse_error;
  if (!parse_json(e.payload_json, payload, parse_error) || !payload.is_object()) {
    return malformed("its payload is not a JSON object");
  }
  if (schema) {
    if (auto err = validate_payload(*schema, payload)) {
      spdlog::warn(
          "event log: foreign event {} (origin '{}', origin_sequence {}) does not fit the local "
          "schema of '{}' ({}); stored as its origin wrote it",
          e.id, e.origin, e.origin_sequence, e.type, *err);
      return ForeignCheck::schema_mismatch;
    }
  }
  return ForeignCheck::ok;
}

}  // namespace switchboard::events
