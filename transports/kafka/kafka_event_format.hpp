// How the Kafka event store lays an event log out on the brokers, and its
// options; no I/O here (kafka_event_store.cpp talks to the brokers).
// docs/events.md, "Kafka".
//
//   topic <name>        one partition, nothing deleted (retention.ms -1):
//                       one record per event, in sequence order; key = the
//                       event id, value = the payload text, headers Sb-Sequence,
//                       Sb-Origin and the chain's (event_record_fields.hpp)
//   topic <name>_meta   one partition, compacted: the latest record per key,
//                       "meta:<key>" (format marker, origin), "type:<name>"
//                       (a schema), "consumer:<name>" (a cursor, decimal),
//                       "origin:<origin>" ("<origin_sequence> <timestamp_us>",
//                       the per-origin heads, since Kafka has no index by
//                       header)
//
// Every commit is one Kafka transaction over both topics, produced with
// transactional.id "switchboard-events.<name>": a new writer's
// init_transactions fences the previous one. Transaction markers take
// offsets of their own, so an event's offset is not sequence - 1; the
// sequence is in the Sb-Sequence header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "switchboard/event_store.hpp"

namespace switchboard::kafka::events {

inline constexpr const char* kSequenceHeader = "Sb-Sequence";
inline constexpr const char* kOriginHeader = "Sb-Origin";
inline constexpr const char* kFormat = "switchboard-events";

struct KafkaEventOptions {
  std::string brokers;           // from the url, "host:port[,host:port]"
  std::string topic;             // the events
  std::string meta_topic;        // types, cursors, meta, origin heads
  std::string transactional_id;  // one per log: the writer fencing
  int replicas = 1;              // replication factor of new topics
  std::int64_t timeout_ms = 10000;
};

// The options of `config` (url kafka://host:port[,host:port], location = the
// log's name); throws OptionError naming a bad option, EventStoreError for a
// bad url or name.
KafkaEventOptions read_kafka_event_options(const EventStoreConfig& config);

// Kafka's rule for topic names: 1 to 249 of [A-Za-z0-9._-], not "." or "..".
bool valid_topic_name(std::string_view name);

// Keys of the meta topic: "<kind>:<name>"; split_meta_key undoes it.
std::string meta_key(std::string_view kind, std::string_view name);
struct MetaKey {
  std::string kind, name;
};
std::optional<MetaKey> split_meta_key(std::string_view key);

// An origin head as kept in the meta topic, "<origin_sequence> <timestamp_us>".
std::string origin_head_value(const EventStore::OriginHead& head);
std::optional<EventStore::OriginHead> parse_origin_head(std::string_view value);

}  // namespace switchboard::kafka::events
