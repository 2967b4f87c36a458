// The bridge's config keys: templates and options (docs/bridges.md).
#include <charconv>

#include "switchboard/bridges/bridge.hpp"

namespace switchboard::bridges {

SubjectTemplate::SubjectTemplate(std::string text) : text_(std::move(text)) {
  std::string literal;
  for (std::size_t i = 0; i < text_.size(); ++i) {
    char c = text_[i];
    if (c != '{') {
      if (c == '}') throw OptionError("", "'" + text_ + "': '}' without '{'");
      literal += c;
      continue;
    }
    auto close = text_.find('}', i);
    if (close == std::string::npos) throw OptionError("", "'" + text_ + "': unclosed '{'");
    std::string name = text_.substr(i + 1, close - i - 1);
    if (!literal.empty()) parts_.push_back({std::move(literal), -1});
    literal.clear();
    if (name == "subject") {
      parts_.push_back({"", 0});
    } else {
      int n = 0;
      auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), n);
      if (ec != std::errc() || end != name.data() + name.size() || n < 1) {
        throw OptionError("", "'" + text_ + "': '{" + name +
                                  "}' is neither {subject} nor a token number {1}, {2}, ...");
      }
      parts_.push_back({"", n});
    }
    i = close;
  }
  if (!literal.empty()) parts_.push_back({std::move(literal), -1});
}

std::error_code SubjectTemplate::render(std::string_view subject, std::string& out) const {
  out.clear();
  for (const Part& p : parts_) {
    if (p.token < 0) {
      out += p.literal;
    } else if (p.token == 0) {
      out += subject;
    } else {
      // The N-th token, found in place (this runs for every relayed message).
      std::size_t start = 0;
      for (int i = 1; i < p.token; ++i) {
        auto dot = subject.find('.', start);
        if (dot == std::string_view::npos) return errc::invalid_argument;
        start = dot + 1;
      }
      out += subject.substr(start, subject.find('.', start) - start);
    }
  }
  return {};
}

namespace {

// Reads keys of one JSON object, refusing the ones nobody asked for.
class Keys {
 public:
  Keys(const Json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {
    if (!object_.is_object()) throw OptionError(strip(prefix_), "expected a mapping");
  }
  const Json* get(const std::string& key) {
    seen_.push_back(key);
    auto it = object_.find(key);
    return it == object_.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string(const std::string& key, std::string fallback = {}) {
    const Json* v = get(key);
    if (!v) return fallback;
    if (!v->is_string()) throw OptionError(path(key), "expected a string");
    return v->get<std::string>();
  }
  long long integer(const std::string& key, long long fallback, long long min) {
    const Json* v = get(key);
    if (!v) return fallback;
    if (!v->is_number_integer()) throw OptionError(path(key), "expected an integer");
    long long n = v->get<long long>();
    if (n < min) throw OptionError(path(key), "must be at least " + std::to_string(min));
    return n;
  }
  std::string path(const std::string& key) const { return prefix_ + key; }
  // Call last: any key not read is unknown.
  void finish(std::initializer_list<const char*> also_allowed = {}) {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      bool known = std::find(seen_.begin(), seen_.end(), it.key()) != seen_.end();
      for (const char* a : also_allowed) known = known || it.key() == a;
      if (!known) {
        std::string list;
        for (const auto& s : seen_) list += (list.empty() ? "" : ", ") + s;
        throw OptionError(path(it.key()), "unknown key (known: " + list + ")");
      }
    }
  }

 private:
  static std::string strip(const std::string& prefix) {
    return prefix.empty() ? prefix : prefix.substr(0, prefix.size() - 1);
  }
  const Json& object_;
  std::string prefix_;
  std::vector<std::string> seen_;
};

SubjectTemplate parse_template(const std::string& text, const std::string& key) {
  try {
    return SubjectTemplate(text);
  } catch (const OptionError& e) {
    throw OptionError(key, e.what());
  }
}

}  // namespace

BridgeOptions parse_bridge_options(const BridgeSpec& spec) {
  BridgeOptions o;
  o.durable = "switchboard-bridge-" + spec.name;
  Keys top(spec.options, "");
  std::string delivery = top.string("delivery", "auto");
  if (delivery == "auto") {
    o.delivery = Delivery::automatic;
  } else if (delivery == "at_least_once") {
    o.delivery = Delivery::at_least_once;
  } else if (delivery == "at_most_once") {
    o.delivery = Delivery::at_most_once;
  } else {
    throw OptionError("delivery", "expected auto, at_least_once or at_most_once");
  }
  o.max_in_flight = static_cast<std::size_t>(top.integer("max_in_flight", 256, 1));
  if (const Json* retry = top.get("retry")) {
    Keys r(*retry, "retry.");
    o.max_retries = static_cast<int>(r.integer("max_retries", o.max_retries, 0));
    o.backoff = std::chrono::milliseconds(r.integer("backoff_ms", o.backoff.count(), 1));
    o.max_backoff =
        std::chrono::milliseconds(r.integer("max_backoff_ms", o.max_backoff.count(), 1));
    r.finish();
  }
  if (const Json* dl = top.get("dead_letter")) {
    Keys d(*dl, "dead_letter.");
    o.dead_letter_transport = d.string("transport");
    if (o.dead_letter_transport.empty())
      throw OptionError("dead_letter", "missing key 'transport'");
    std::string subject = d.string("subject");
    if (subject.empty()) subject = d.string("topic");
    if (subject.empty()) subject = d.string("routing_key");
    if (subject.empty()) {
      throw OptionError("dead_letter", "missing key 'subject' (or 'topic', 'routing_key')");
    }
    o.dead_letter_subject = parse_template(subject, "dead_letter.subject");
    d.finish();
  }
  if (const Json* h = top.get("headers")) {
    Keys k(*h, "headers.");
    if (const Json* set = k.get("set")) {
      if (!set->is_object()) throw OptionError("headers.set", "expected a mapping");
      for (auto it = set->begin(); it != set->end(); ++it) {
        if (!it->is_string()) throw OptionError("headers.set." + it.key(), "expected a string");
        o.set_headers[it.key()] = it->get<std::string>();
      }
    }
    if (const Json* rm = k.get("remove")) {
      if (!rm->is_array()) throw OptionError("headers.remove", "expected a list of strings");
      for (const Json& n : *rm) {
        if (!n.is_string()) throw OptionError("headers.remove", "expected a list of strings");
        o.remove_headers.push_back(n.get<std::string>());
      }
    }
    if (const Json* rn = k.get("rename")) {
      if (!rn->is_object()) throw OptionError("headers.rename", "expected a mapping");
      for (auto it = rn->begin(); it != rn->end(); ++it) {
        if (!it->is_string()) throw OptionError("headers.rename." + it.key(), "expected a string");
        o.rename_headers[it.key()] = it->get<std::string>();
      }
    }
    k.finish();
  }
  if (const Json* key = top.get("key")) {
    if (!key->is_string()) throw OptionError("key", "expected a string");
    o.key = parse_template(key->get<std::string>(), "key");
  }
  o.key_header = top.string("key_header", o.key_header);
  o.codec = top.string("codec");
  top.finish();

  Keys from(spec.from.options, "from.");
  o.queue_group = from.string("queue_group");
  o.durable = from.string("durable", o.durable);
  o.source_target = from.string("target");
  std::string start = from.string("start", "earliest");
  if (start == "earliest") {
    o.start = DurableStart::earliest;
  } else if (start == "latest") {
    o.start = DurableStart::latest;
  } else {
    throw OptionError("from.start", "expected earliest or latest");
  }
  o.ack_wait = std::chrono::milliseconds(from.integer("ack_wait_ms", o.ack_wait.count(), 1));
  from.finish();

  Keys to(spec.to.options, "to.");
  o.target = to.string("target");
  to.finish();
  o.subject = parse_template(spec.to.subject, "to.subject");
  return o;
}

}  // namespace switchboard::bridges
