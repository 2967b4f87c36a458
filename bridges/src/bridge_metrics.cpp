// The bridge counters as Prometheus text (exposition format 0.0.4), served
// at /metrics by the admin endpoint (docs/bridges.md).
#include <sstream>

#include "switchboard/bridges/bridge.hpp"

namespace switchboard::bridges {

std::string to_prometheus(const std::vector<BridgeStatus>& statuses) {
  struct Metric {
    const char* name;
    const char* type;
    const char* help;
    std::uint64_t BridgeCounters::*field;
  };
  static const Metric metrics[] = {
      {"switchboard_bridge_relayed_total", "counter", "Messages the destination confirmed.",
       &BridgeCounters::relayed},
      {"switchboard_bridge_failed_total", "counter", "Messages whose retries ran out.",
       &BridgeCounters::failed},
      {"switchboard_bridge_retried_total", "counter", "Publish attempts after a failure.",
       &BridgeCounters::retried},
      {"switchboard_bridge_dead_lettered_total", "counter",
       "Messages stored on the dead-letter destination.", &BridgeCounters::dead_lettered},
      {"switchboard_bridge_dropped_total", "counter",
       "Messages given up (at-most-once sources only).", &BridgeCounters::dropped},
      {"switchboard_bridge_redelivered_total", "counter",
       "Source deliveries that were redeliveries.", &BridgeCounters::redelivered},
      {"switchboard_bridge_duplicates_total", "counter",
       "Publishes the destination recognised as duplicates.", &BridgeCounters::duplicates},
      {"switchboard_bridge_in_flight", "gauge", "Messages received and not yet settled.",
       &BridgeCounters::in_flight},
  };
  auto escape = [](const std::string& s) {
    std::string out;
    for (char c : s) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    return out;
  };
  std::ostringstream os;
  for (const Metric& m : metrics) {
    os << "# HELP " << m.name << ' ' << m.help << "\n# TYPE " << m.name << ' ' << m.type << '\n';
    for (const BridgeStatus& s : statuses) {
      os << m.name << "{bridge=\"" << escape(s.name) << "\"} " << s.counters.*(m.field) << '\n';
    }
  }
  os << "# HELP switchboard_bridge_lag Messages stored at the source and not yet handed to the "
        "bridge (durable sources that report it).\n"
     << "# TYPE switchboard_bridge_lag gauge\n";
  for (const BridgeStatus& s : statuses) {
    if (!s.lag_known) continue;
    os << "switchboard_bridge_lag{bridge=\"" << escape(s.name) << "\"} " << s.counters.lag << '\n';
  }
  os << "# HELP switchboard_bridge_up Whether the bridge is subscribed to its source.\n"
     << "# TYPE switchboard_bridge_up gauge\n";
  for (const BridgeStatus& s : statuses) {
    os << "switchboard_bridge_up{bridge=\"" << escape(s.name) << "\",from=\"" << escape(s.from)
       << "\",to=\"" << escape(s.to) << "\",delivery=\""
       << (s.at_least_once ? "at_least_once" : "at_most_once") << "\"} " << (s.running ? 1 : 0)
       << '\n';
  }
  return os.str();
}

}  // namespace switchboard::bridges
