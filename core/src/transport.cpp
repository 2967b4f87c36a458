#include "switchboard/transport.hpp"

namespace switchboard {

const char* to_string(TransportStatus s) noexcept {
  switch (s) {
    case TransportStatus::connected:
      return "connected";
    case TransportStatus::disconnected:
      return "disconnected";
    case TransportStatus::reconnected:
      return "reconnected";
    case TransportStatus::closed:
      return "closed";
    case TransportStatus::error:
      return "error";
    case TransportStatus::slow_consumer:
      return "slow consumer";
  }
  return "unknown";
}

}  // namespace switchboard
