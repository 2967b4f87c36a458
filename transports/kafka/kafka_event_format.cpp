#include "kafka_event_format.hpp"

#include <charconv>

#include "switchboard/config.hpp"

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
  for (const auto& [key, value] : config.options.items()) {
    if (key == "meta_topic") {
      if (!value.is_string() || !valid_topic_name(value.get<std::string>())) {
        throw OptionError(key, "must be a Kafka topic name");
      }
      o.meta_topic = value.get<std::string>();
    } else if (key == "transactional_id") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        throw OptionError(key, "must be a non-empty string");
      }
      o.transactional_id = value.get<std::string>();
    } else if (key == "replicas") {
      if (!value.is_number_integer() || value.get<int>() < 1 || value.get<int>() > 32) {
        throw OptionError(key, "must be an integer from 1 to 32");
      }
      o.replicas = value.get<int>();
    } else if (key == "timeout_ms") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1) {
        throw OptionError(key, "must be a positive integer (milliseconds)");
      }
      o.timeout_ms = value.get<std::int64_t>();
    } else {
      throw OptionError(key,
                        "unknown option (known: meta_topic, transactional_id, replicas, "
                        "timeout_ms)");
    }
  }
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
