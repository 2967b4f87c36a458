#include "jetstream_event_format.hpp"

namespace switchboard::nats::events {

bool valid_subject_token(std::string_view token) {
  if (token.empty()) return false;
  for (char c : token) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace switchboard::nats::events
