#include "kafka_settings.hpp"

#include <charconv>
#include <set>

#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/option_reader.hpp"

namespace switchboard::kafka {
namespace {

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    auto at = text.find(sep, start);
    out.emplace_back(text.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) break;
    start = at + 1;
  }
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && s.front() == ' ') s.erase(s.begin());
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// "kafka://a:1,b:2" or "a:1, kafka://b:2" -> "a:1,b:2"
std::string broker_list(const std::string& text, const char* key) {
  std::string out;
  for (auto part : split(text, ',')) {
    part = trim(part);
    if (part.rfind("kafka://", 0) == 0) part.erase(0, 8);
    while (!part.empty() && part.back() == '/') part.pop_back();
    if (part.empty()) continue;
    auto colon = part.rfind(':');
    int port = 0;
    if (colon == std::string::npos || colon == 0 ||
        std::from_chars(part.data() + colon + 1, part.data() + part.size(), port).ec !=
            std::errc() ||
        port <= 0 || port > 65535) {
      throw OptionError(key, "'" + part + "' is not host:port");
    }
    out += (out.empty() ? "" : ",") + part;
  }
  return out;
}

// The transport's options, read with the shared OptionReader, plus maps of
// raw librdkafka properties.
struct Reader : OptionReader {
  Reader(const Json& object, std::string prefix)
      : OptionReader(object, std::move(prefix), "the kafka transport") {}

  // A mapping of raw properties: strings, numbers and booleans, as text.
  void read_map(const char* key, std::map<std::string, std::string>& out) {
    const Json* m = section(key);
    if (m == nullptr) return;
    for (auto p = m->begin(); p != m->end(); ++p) {
      if (p->is_string()) {
        out[p.key()] = p->get<std::string>();
      } else if (p->is_boolean()) {
        out[p.key()] = p->get<bool>() ? "true" : "false";
      } else if (p->is_number()) {
        out[p.key()] = p->dump();
      } else {
        throw OptionError(prefix() + key + "." + p.key(),
                          "expected a string, number or boolean, got " + p->dump());
      }
    }
  }
};

KeyRule read_key(const std::string& text) {
  KeyRule k;
  if (text == "none" || text.empty()) return k;
  if (text == "subject") {
    k.kind = KeyRule::from_subject;
    return k;
  }
  if (text.rfind("token:", 0) == 0) {
    k.kind = KeyRule::from_token;
    auto n = std::string_view(text).substr(6);
    if (std::from_chars(n.data(), n.data() + n.size(), k.token).ec != std::errc() || k.token < 1) {
      throw OptionError("key", "'" + text + "': token:N needs N >= 1 (1 is the first token)");
    }
    return k;
  }
  if (text.rfind("header:", 0) == 0 && text.size() > 7) {
    k.kind = KeyRule::from_header;
    k.header = text.substr(7);
    return k;
  }
  throw OptionError("key", "expected none, subject, token:N or header:NAME, got '" + text + "'");
}

bool topic_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

std::string regex_escape(const std::string& topic_text) {
  std::string out;
  for (char c : topic_text) {
    if (c == '.') out += '\\';
    out += c;
  }
  return out;
}

bool valid_topic(const std::string& t, std::string& why) {
  if (t.empty()) {
    why = "the topic would be empty";
    return false;
  }
  if (t.size() > 249) {
    why = "the topic '" + t.substr(0, 40) + "...' is longer than Kafka's 249 characters";
    return false;
  }
  if (t == "." || t == "..") {
    why = "'" + t + "' is not a topic name";
    return false;
  }
  return true;
}

}  // namespace

std::string sanitize_topic(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (!topic_char(c)) c = '_';
  }
  return out;
}

TopicTemplate::TopicTemplate(const std::string& text) : text_(text) {
  parts_.clear();
  std::string literal;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '}') throw OptionError("topic", "'" + text + "': unmatched '}'");
    if (text[i] != '{') {
      if (!topic_char(text[i])) {
        throw OptionError("topic", "'" + text + "': '" + std::string(1, text[i]) +
                                       "' cannot be in a topic name ([A-Za-z0-9._-] can)");
      }
      literal += text[i];
      continue;
    }
    auto close = text.find('}', i);
    if (close == std::string::npos) throw OptionError("topic", "'" + text + "': unmatched '{'");
    auto name = text.substr(i + 1, close - i - 1);
    int token = 0;
    if (name != "subject" &&
        (std::from_chars(name.data(), name.data() + name.size(), token).ec != std::errc() ||
         token < 1 || std::to_string(token) != name)) {
      throw OptionError("topic", "'" + text + "': {" + name +
                                     "} is not a placeholder ({subject}, {1}, {2}, ...)");
    }
    if (!literal.empty()) parts_.push_back(Part{std::move(literal), -1});
    literal.clear();
    parts_.push_back(Part{"", name == "subject" ? 0 : token});
    i = close;
  }
  if (!literal.empty()) parts_.push_back(Part{std::move(literal), -1});
  if (parts_.empty()) throw OptionError("topic", "the template is empty");
}

std::error_code TopicTemplate::topic_for(const std::string& subject, std::string& topic,
                                         std::string& why) const {
  topic.clear();
  std::vector<std::string> tokens;
  for (const auto& p : parts_) {
    if (p.token < 0) {
      topic += p.literal;
    } else if (p.token == 0) {
      topic += sanitize_topic(subject);
    } else {
      if (tokens.empty()) tokens = split(subject, '.');
      if (static_cast<std::size_t>(p.token) > tokens.size()) {
        why = "the topic template '" + text_ + "' needs token " + std::to_string(p.token) +
              " and '" + subject + "' has " + std::to_string(tokens.size());
        return make_error_code(errc::invalid_argument);
      }
      topic += sanitize_topic(tokens[p.token - 1]);
    }
  }
  if (!valid_topic(topic, why)) return make_error_code(errc::invalid_argument);
  return {};
}

std::error_code TopicTemplate::topics_for(const std::string& filter, std::string& out,
                                          std::string& why) const {
  auto tokens = split(filter, '.');
  bool tail = !tokens.empty() && tokens.back() == ">";
  std::size_t fixed = tail ? tokens.size() - 1 : tokens.size();  // tokens before '>'
  bool wild = false;
  std::string regex, literal;
  auto token_regex = [&](const std::string& t) -> std::string {
    if (t == "*") {
      wild = true;
      return "[^.]+";
    }
    return regex_escape(sanitize_topic(t));
  };
  for (const auto& p : parts_) {
    if (p.token < 0) {
      regex += regex_escape(p.literal);
      literal += p.literal;
    } else if (p.token == 0) {
      for (std::size_t i = 0; i < tokens.size(); ++i) {
        if (i) regex += "\\.";
        if (tokens[i] == ">") {
          wild = true;
          regex += ".+";
        } else {
          regex += token_regex(tokens[i]);
        }
      }
      literal += sanitize_topic(filter);
    } else if (static_cast<std::size_t>(p.token) <= fixed) {
      regex += token_regex(tokens[p.token - 1]);
      literal += sanitize_topic(tokens[p.token - 1]);
    } else if (tail) {
      // Covered by '>': any one token.
      wild = true;
      regex += "[^.]+";
    } else {
      why = "the topic template '" + text_ + "' needs token " + std::to_string(p.token) + " and '" +
            filter + "' has " + std::to_string(tokens.size());
      return make_error_code(errc::invalid_argument);
    }
  }
  if (wild) {
    out = "^" + regex + "$";
    return {};
  }
  if (!valid_topic(literal, why)) return make_error_code(errc::invalid_argument);
  out = literal;
  return {};
}

std::error_code topic_for(const KafkaSettings& s, const std::string& subject, std::string& topic,
                          std::string& why) {
  const auto& p = s.inbox_prefix;
  if (!p.empty() && subject.size() > p.size() + 1 && subject.compare(0, p.size(), p) == 0 &&
      subject[p.size()] == '.') {
    // <prefix>.<node>.<request...>: one topic per node.
    auto node_end = subject.find('.', p.size() + 1);
    if (node_end != std::string::npos) {
      topic = sanitize_topic(std::string_view(subject).substr(0, node_end));
      return {};
    }
  }
  return s.topic.topic_for(subject, topic, why);
}

std::error_code topics_for(const KafkaSettings& s, const std::string& filter, std::string& out,
                           std::string& why) {
  const auto& p = s.inbox_prefix;
  if (!p.empty() && filter.size() > p.size() + 1 && filter.compare(0, p.size(), p) == 0 &&
      filter[p.size()] == '.') {
    auto node_end = filter.find('.', p.size() + 1);
    auto node = filter.substr(
        p.size() + 1, node_end == std::string::npos ? std::string::npos : node_end - p.size() - 1);
    if (node_end != std::string::npos && node != "*" && node != ">") {
      out = sanitize_topic(std::string_view(filter).substr(0, node_end));
      return {};
    }
    // A wildcard in the node position: every node's inbox topic.
    if (node == "*" || node == ">") {
      out = "^" + regex_escape(sanitize_topic(p)) + "\\.[^.]+$";
      return {};
    }
  }
  return s.topic.topics_for(filter, out, why);
}

std::string key_for(const KeyRule& rule, const Message& msg) {
  switch (rule.kind) {
    case KeyRule::from_none:
      return {};
    case KeyRule::from_subject:
      return msg.subject;
    case KeyRule::from_token: {
      auto tokens = split(msg.subject, '.');
      return static_cast<std::size_t>(rule.token) <= tokens.size() ? tokens[rule.token - 1]
                                                                   : std::string();
    }
    case KeyRule::from_header: {
      auto it = msg.headers.find(rule.header);
      return it == msg.headers.end() ? std::string() : it->second;
    }
  }
  return {};
}

KafkaSettings read_settings(const TransportConfig& config) {
  KafkaSettings s;
  if (!config.url.empty()) s.brokers = broker_list(config.url, "url");
  Reader top(config.options, "");
  std::string brokers;
  top.read("brokers", brokers);
  if (!brokers.empty()) {
    auto more = broker_list(brokers, "brokers");
    s.brokers += (s.brokers.empty() || more.empty() ? "" : ",") + more;
  }
  if (s.brokers.empty()) s.brokers = "127.0.0.1:9092";
  top.read("client_id", s.client_id);
  std::string topic = "{subject}";
  top.read("topic", topic);
  s.topic = TopicTemplate(topic);
  top.read("inbox_prefix", s.inbox_prefix);
  std::string key = "none";
  top.read("key", key);
  s.key = read_key(key);
  top.read("idempotence", s.idempotence);
  top.mark_seen("acks");
  if (auto it = config.options.find("acks"); it != config.options.end() && !it->is_null()) {
    if (it->is_number_integer()) {
      s.acks = std::to_string(it->get<long long>());
    } else if (it->is_string()) {
      s.acks = it->get<std::string>();
    } else {
      throw OptionError("acks", "expected all, 1 or 0, got " + it->dump());
    }
    if (s.acks == "-1") s.acks = "all";
    if (s.acks != "all" && s.acks != "1" && s.acks != "0") {
      throw OptionError("acks", "expected all, 1 or 0, got '" + s.acks + "'");
    }
  }
  top.read("linger_ms", s.linger_ms);
  top.read("delivery_timeout_ms", s.delivery_timeout_ms);
  top.read("flush_timeout_ms", s.flush_timeout_ms);
  top.read("connect_timeout_ms", s.connect_timeout_ms);
  top.read("session_timeout_ms", s.session_timeout_ms);
  top.read("heartbeat_ms", s.heartbeat_ms);
  top.read("group_join_wait_ms", s.group_join_wait_ms);
  top.read("metadata_refresh_ms", s.metadata_refresh_ms);
  top.read_map("librdkafka", s.librdkafka);
  top.read_map("producer", s.producer);
  top.read_map("consumer", s.consumer);
  top.reject_unknown();
  if (s.idempotence && s.acks != "all") {
    throw OptionError("acks", "idempotence needs acks: all (or set idempotence: false)");
  }
  for (auto [key_name, value] : {std::pair{"delivery_timeout_ms", s.delivery_timeout_ms},
                                 {"flush_timeout_ms", s.flush_timeout_ms},
                                 {"connect_timeout_ms", s.connect_timeout_ms},
                                 {"session_timeout_ms", s.session_timeout_ms},
                                 {"heartbeat_ms", s.heartbeat_ms},
                                 {"metadata_refresh_ms", s.metadata_refresh_ms}}) {
    if (value <= 0) throw OptionError(key_name, "must be positive");
  }
  if (s.linger_ms < 0) throw OptionError("linger_ms", "must not be negative");
  if (s.group_join_wait_ms < 0) throw OptionError("group_join_wait_ms", "must not be negative");
  if (s.heartbeat_ms >= s.session_timeout_ms) {
    throw OptionError("heartbeat_ms", "must be shorter than session_timeout_ms");
  }
  // Every raw property must be one librdkafka knows, with a value it takes.
  rd_kafka_conf_destroy(make_conf({}, s.librdkafka, "librdkafka."));
  rd_kafka_conf_destroy(make_conf({}, s.producer, "producer."));
  rd_kafka_conf_destroy(make_conf({}, s.consumer, "consumer."));
  return s;
}

rd_kafka_conf_t* make_conf(const std::map<std::string, std::string>& own,
                           const std::map<std::string, std::string>& raw,
                           const std::string& key_prefix) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char err[512];
  for (const auto* props : {&own, &raw}) {
    for (const auto& [k, v] : *props) {
      if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        throw OptionError(props == &raw ? key_prefix + k : k, err);
      }
    }
  }
  return conf;
}

}  // namespace switchboard::kafka
