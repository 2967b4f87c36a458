#include "switchboard/transport.hpp"

#include "switchboard/error.hpp"

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

void Transport::publish_durable(Message, const DurablePublish&, DurablePublishHandler done) {
  // Called at once: the caller is on the executor already (threading contract).
  done(make_error_code(errc::not_supported), DurableReceipt{});
}

std::error_code Transport::subscribe_durable(const DurableSubscribe&, DurableHandler,
                                             std::unique_ptr<Subscription>&) {
  return make_error_code(errc::not_supported);
}

std::error_code Transport::durable_lag(const Subscription&, std::uint64_t&) {
  return make_error_code(errc::not_supported);
}

}  // namespace switchboard
