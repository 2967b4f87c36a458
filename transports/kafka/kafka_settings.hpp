// The kafka transport's options, read from its config section, and the
// subject <-> topic mapping (docs/kafka.md). No I/O here.
#pragma once

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/transport.hpp"

namespace switchboard::kafka {

// Headers the transport adds to every message it produces.
inline constexpr const char* kSubjectHeader = "switchboard-subject";
inline constexpr const char* kReplyToHeader = "switchboard-reply-to";
inline constexpr const char* kMessageIdHeader = "switchboard-msg-id";

// Where the Kafka message key comes from.
struct KeyRule {
  enum Kind { from_none, from_subject, from_token, from_header } kind = from_none;
  int token = 0;       // 1-based subject token (token)
  std::string header;  // header name (header)
};

// The `topic` template: literal text and placeholders, `{subject}` (the
// whole subject) and `{N}` (the N-th token, 1-based).
class TopicTemplate {
 public:
  TopicTemplate() = default;
  // Throws OptionError("topic", ...) for a template that cannot be used.
  explicit TopicTemplate(const std::string& text);

  // The topic a subject (no wildcards) is produced to; errc::invalid_argument
  // with `why` when the subject has too few tokens.
  std::error_code topic_for(const std::string& subject, std::string& topic, std::string& why) const;
  // What a subscription filter (NATS wildcards) reads: one topic, or a
  // librdkafka regex ("^...$") over topic names.
  std::error_code topics_for(const std::string& filter, std::string& topic_or_regex,
                             std::string& why) const;
  const std::string& text() const { return text_; }

 private:
  struct Part {
    std::string literal;
    int token = -1;  // -1: literal, 0: {subject}, N: {N}
  };
  std::string text_ = "{subject}";
  std::vector<Part> parts_{Part{"", 0}};
};

// Topic names allow [A-Za-z0-9._-]: anything else in a subject becomes '_'.
std::string sanitize_topic(std::string_view text);

struct KafkaSettings {
  std::string brokers;  // "host:port,host:port" (from url and/or `brokers`)
  std::string client_id = "switchboard";
  TopicTemplate topic;
  std::string inbox_prefix =
      "_INBOX";  // reply subjects <prefix>.<node>.<id> -> topic <prefix>.<node>
  KeyRule key;
  bool idempotence = true;
  std::string acks = "all";  // all, 1, 0
  std::int64_t linger_ms = 5;
  std::int64_t delivery_timeout_ms = 30000;  // message.timeout.ms: publish_durable fails after it
  std::int64_t flush_timeout_ms = 5000;      // close(): how long the producer may flush
  std::int64_t connect_timeout_ms = 5000;    // connect(): the first metadata answer
  std::int64_t session_timeout_ms = 10000;   // consumer group session
  std::int64_t heartbeat_ms = 500;           // how soon members learn of a rebalance
  std::int64_t group_join_wait_ms = 5000;    // subscribe() with a queue group waits to join
  std::int64_t metadata_refresh_ms = 2000;   // wildcard subscriptions see new topics after this
  std::map<std::string, std::string> librdkafka;  // raw properties, both clients
  std::map<std::string, std::string> producer;    // raw properties, producer only
  std::map<std::string, std::string> consumer;    // raw properties, consumers only
};

// Reads the options; throws OptionError naming the key (kafka_settings.cpp).
KafkaSettings read_settings(const TransportConfig& config);

// The topic of a subject: an inbox subject by the inbox rule, any other by
// the template.
std::error_code topic_for(const KafkaSettings& s, const std::string& subject, std::string& topic,
                          std::string& why);
std::error_code topics_for(const KafkaSettings& s, const std::string& filter,
                           std::string& topic_or_regex, std::string& why);

// The key of a message by the key rule; empty: none.
std::string key_for(const KeyRule& rule, const Message& msg);

// A librdkafka configuration with the raw properties applied over the
// transport's own; throws OptionError naming the property.
rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& own,
                           const std::map<std::string, std::string>& raw,
                           const std::string& key_prefix);

}  // namespace switchboard::kafka
