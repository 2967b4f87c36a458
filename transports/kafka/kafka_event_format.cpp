#include "kafka_event_format.hpp"

#include <charconv>

#include "switchboard/config.hpp"
#include "switchboard/option_reader.hpp"

namespace switchboard::kafka::events {

KafkaEventOptions read_kafka_event_options(const EventStoreConfig& config) {
  const std::string& name = config.location;
  auto where = "event log '" + name + "' (kafka " + config.url + "): ";
  if (!valid_topic_name(name) || name.size() > 240) {
    throw EventStoreError(where +
                          "the name must be a Kafka topic name (up to 240 of letters, digits, "
                          "'.', '_' and '-')");
  }
  KafkaEventOptions o;
  const std::string scheme = "kafka://";
  if (config.url.rfind(scheme, 0) != 0 || config.url.size() == scheme.size()) {
    throw EventStoreError(where + "the url must be kafka://HOST:PORT[,HOST:PORT...]");
  }
  o.brokers = config.url.substr(scheme.size());
  if (!o.brokers.empty() && o.brokers.back() == '/') o.brokers.pop_back();
  o.topic = name;
  o.meta_topic = name + "_meta";
  o.transactional_id = "switchboard-events." + name;
  OptionReader reader(config.options, "", "the kafka event store");
  if (reader.read("meta_topic", o.meta_topic) && !valid_topic_name(o.meta_topic)) {
    throw OptionError("meta_topic", "must be a Kafka topic name, got '" + o.meta_topic + "'");
  }
  if (reader.read("transactional_id", o.transactional_id) && o.transactional_id.empty()) {
    throw OptionError("transactional_id", "must not be empty");
  }
  reader.read_positive("replicas", o.replicas);
  reader.read_positive("timeout_ms", o.timeout_ms);
  reader.reject_unknown();
  if (o.meta_topic == o.topic) throw OptionError("meta_topic", "must differ from the log's topic");
  return o;
}

bool valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::string meta_key(std::string_view kind, std::string_view name) {
  std::string key(kind);
  key += ':';
  key += name;
  return key;
}

std::optional<MetaKey> split_meta_key(std::string_view key) {
  auto colon = key.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  return MetaKey{std::string(key.substr(0, colon)), std::string(key.substr(colon + 1))};
}

std::string origin_head_value(const EventStore::OriginHead& head) {
  return std::to_string(head.origin_sequence) + " " + std::to_string(head.timestamp_us);
}

std::optional<EventStore::OriginHead> parse_origin_head(std::string_view value) {
  EventStore::OriginHead h;
  auto space = value.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  auto a = std::from_chars(value.data(), value.data() + space, h.origin_sequence);
  auto b = std::from_chars(value.data() + space + 1, value.data() + value.size(), h.timestamp_us);
  if (a.ec != std::errc() || a.ptr != value.data() + space || b.ec != std::errc() ||
      b.ptr != value.data() + value.size()) {
    return std::nullopt;
  }
  return h;
}

}  // namespace switchboard::kafka::events
