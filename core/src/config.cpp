#include "switchboard/config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <sstream>

namespace switchboard {
namespace {

struct Scheme {
  std::string_view scheme;
  std::string_view type;
};

constexpr Scheme kSchemes[] = {
    {"inproc", "inproc"}, {"tcp", "tcp_peer"}, {"ws", "websocket"},
    {"wss", "websocket"}, {"nats", "nats"},    {"tls", "nats"},
    {"kafka", "kafka"},   {"amqp", "amqp"},    {"amqps", "amqp"},
};

constexpr const char* kCommandLine = "<command line>";

std::string known_schemes() {
  std::string out;
  for (const auto& s : kSchemes) {
    if (!out.empty()) out += ", ";
    out += std::string(s.scheme) + "://";
  }
  return out;
}

std::string join(std::initializer_list<std::string_view> names) {
  std::string out;
  for (auto name : names) {
    if (!out.empty()) out += ", ";
    out += name;
  }
  return out;
}

std::string child(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string item(const std::string& path, std::size_t index) {
  return path + "[" + std::to_string(index) + "]";
}

std::optional<Location> to_location(const YAML::Mark& mark) {
  if (mark.is_null()) return std::nullopt;
  return Location{mark.line + 1, mark.column + 1};
}

// What a node is, for "expected X, got Y".
std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Sequence:
      return "a sequence";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar: {
      std::string text = node.Scalar();
      if (text.size() > 40) text = text.substr(0, 37) + "...";
      return "'" + text + "'";
    }
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool is_plain(const YAML::Node& node) {
  return node.Tag() == "?";
}

// True when all of `text` is one number.
template <typename T, typename... Base>
bool parse_number(std::string_view text, T& out, Base... base) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base...);
  return ec == std::errc() && end == text.data() + text.size() && !text.empty();
}

// A plain scalar typed by the YAML 1.2 core schema, so plugin options arrive
// as the JSON types the user meant; quoted scalars stay strings.
Json resolve_plain(const std::string& text) {
  if (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;

  std::string_view digits = text;
  bool negative = false;
  if (digits.front() == '+' || digits.front() == '-') {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  int base = 10;
  if (digits.starts_with("0x")) base = 16;
  if (digits.starts_with("0o")) base = 8;
  if (base != 10) digits.remove_prefix(2);
  if (!digits.empty() && std::isalnum(static_cast<unsigned char>(digits.front()))) {
    std::uint64_t magnitude = 0;
    if (parse_number(digits, magnitude, base)) {
      if (!negative) {
        if (magnitude <= static_cast<std::uint64_t>(INT64_MAX)) {
          return static_cast<std::int64_t>(magnitude);
        }
        return magnitude;
      }
      if (magnitude <= static_cast<std::uint64_t>(INT64_MAX) + 1) {
        return static_cast<std::int64_t>(0 - magnitude);
      }
    }
  }

  std::string_view body = text;
  if (body.front() == '+') body.remove_prefix(1);
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    return text.front() == '-' ? -HUGE_VAL : HUGE_VAL;
  }
  if (text == ".nan" || text == ".NaN" || text == ".NAN") return std::nan("");
  // from_chars also takes "inf" and "nan", which YAML does not: require digits.
  bool numeric =
      std::any_of(body.begin(), body.end(), [](unsigned char c) { return std::isdigit(c); }) &&
      std::all_of(body.begin(), body.end(), [](unsigned char c) {
        return std::isdigit(c) || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+';
      });
  double value = 0;
  if (numeric && parse_number(body, value)) return value;
  return text;
}

// A map entry or a sequence item, with the path and position it came from.
struct Field {
  std::string name;  // the key in its mapping; empty for sequence items
  std::string path;  // "transports.bus.url", "plugins[0]"
  YAML::Node value;
  YAML::Mark mark;  // of the key (entries) or of the item (sequence items)
};

class Parser {
 public:
  explicit Parser(Config& config) : config_(config) {}

  void parse(const YAML::Node& root) {
    if (root.IsNull()) {
      finish();
      return;
    }
    if (!root.IsMap()) {
      fail(root.Mark(), "", "expected a mapping at the top level, got " + describe(root));
    }
    for (const Field& f : entries(root, "")) {
      if (f.name == "plugin_path") {
        plugin_path(f);
      } else if (f.name == "codec") {
        config_.codec = name(f);
      } else if (f.name == "transports") {
        transports(f);
      } else if (f.name == "runtime") {
        runtime(f);
      } else if (f.name == "plugins") {
        plugins(f);
      } else if (f.name == "bridges") {
        bridges(f);
      } else if (f.name == "log") {
        log(f);
      } else if (f.name == "admin") {
        admin(f);
      } else if (f.name.starts_with("x-")) {
        // Ignored: a place for anchors shared by other sections.
      } else {
        unknown(f, {"plugin_path", "codec", "transports", "runtime", "plugins", "bridges", "log",
                    "admin"});
      }
    }
    finish();
  }

 private:
  [[noreturn]] void fail(const YAML::Mark& mark, const std::string& key,
                         const std::string& message) const {
    throw ConfigError(config_.source, to_location(mark), key, message);
  }
  [[noreturn]] void fail(const Field& f, const std::string& message) const {
    fail(f.mark, f.path, message);
  }
  // For checks made after parsing, from the recorded positions.
  [[noreturn]] void fail_at(const std::string& key, const std::string& position_key,
                            const std::string& message) const {
    throw ConfigError(config_.source, config_.locate(position_key), key, message);
  }

  [[noreturn]] void unknown(const Field& f, std::initializer_list<std::string_view> known) const {
    fail(f, "unknown key '" + f.name + "'; known keys: " + join(known));
  }

  // The entries of a mapping in document order, with `<<` merge keys
  // expanded (explicit keys win) and duplicate keys refused.
  std::vector<Field> collect(const YAML::Node& map, const std::string& path) const {
    std::vector<Field> out;
    std::vector<YAML::Node> merges;
    // yaml-cpp iterators yield temporaries: copy the (shared) nodes out.
    for (const auto& entry : map) {
      const YAML::Node key = entry.first;
      if (!key.IsScalar()) {
        fail(key.Mark(), path, "keys must be strings, got " + describe(key));
      }
      const std::string name = key.Scalar();
      if (name == "<<" && is_plain(key)) {
        merges.push_back(entry.second);
        continue;
      }
      for (const Field& seen : out) {
        if (seen.name == name) {
          fail(key.Mark(), child(path, name),
               "duplicate key; first defined at line " + std::to_string(seen.mark.line + 1));
        }
      }
      out.push_back(Field{name, child(path, name), entry.second, key.Mark()});
    }
    for (const YAML::Node& merge : merges) {
      std::vector<YAML::Node> sources;
      if (merge.IsMap()) {
        sources.push_back(merge);
      } else if (merge.IsSequence()) {
        for (const YAML::Node& m : merge) sources.push_back(m);
      }
      for (const YAML::Node& source : sources) {
        if (!source.IsMap()) {
          fail(merge.Mark(), child(path, "<<"),
               "expected a mapping to merge, got " + describe(source));
        }
        for (Field& f : collect(source, path)) {
          bool present =
              std::any_of(out.begin(), out.end(), [&](const Field& o) { return o.name == f.name; });
          if (!present) out.push_back(std::move(f));
        }
      }
      if (sources.empty()) {
        fail(merge.Mark(), child(path, "<<"),
             "expected a mapping to merge, got " + describe(merge));
      }
    }
    return out;
  }

  std::vector<Field> entries(const YAML::Node& map, const std::string& path) {
    std::vector<Field> out = collect(map, path);
    for (const Field& f : out) record(f);
    return out;
  }

  void record(const Field& f) {
    if (auto where = to_location(f.mark)) config_.locations.emplace(f.path, *where);
  }

  // A mapping's entries; null (`runtime:` with nothing after it) is empty.
  std::vector<Field> mapping(const Field& f) {
    if (f.value.IsNull()) return {};
    if (!f.value.IsMap()) fail(f, "expected a mapping, got " + describe(f.value));
    return entries(f.value, f.path);
  }

  std::vector<Field> sequence(const Field& f) {
    std::vector<Field> out;
    if (f.value.IsNull()) return out;
    if (!f.value.IsSequence()) fail(f, "expected a sequence, got " + describe(f.value));
    for (std::size_t i = 0; i < f.value.size(); ++i) {
      YAML::Node node = f.value[i];
      out.push_back(Field{"", item(f.path, i), node, node.Mark()});
      record(out.back());
    }
    return out;
  }

  std::string string(const Field& f) const {
    if (!f.value.IsScalar()) fail(f, "expected a string, got " + describe(f.value));
    return f.value.Scalar();
  }

  std::string name(const Field& f) const {
    std::string s = string(f);
    if (s.empty()) fail(f, "expected a non-empty string");
    return s;
  }

  std::string one_of(const Field& f, std::initializer_list<std::string_view> allowed) const {
    std::string s = string(f);
    if (std::find(allowed.begin(), allowed.end(), s) == allowed.end()) {
      fail(f, "expected one of " + join(allowed) + ", got " + describe(f.value));
    }
    return s;
  }

  std::int64_t integer(const Field& f, std::int64_t min, std::int64_t max,
                       const std::string& expected) const {
    std::int64_t value = 0;
    if (!f.value.IsScalar() || !parse_number(f.value.Scalar(), value) || value < min ||
        value > max) {
      fail(f, "expected " + expected + ", got " + describe(f.value));
    }
    return value;
  }

  // Bytes, as an integer or with a binary suffix: 1048576, "1MB", "64KiB".
  std::size_t size(const Field& f) const {
    const std::string expected = "a positive size in bytes (1048576, 1MB, 64KiB)";
    if (!f.value.IsScalar()) fail(f, "expected " + expected + ", got " + describe(f.value));
    std::string_view text = f.value.Scalar();
    std::size_t digits = 0;
    while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) {
      ++digits;
    }
    std::string suffix(text.substr(digits));
    std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    suffix.erase(0, suffix.find_first_not_of(' '));
    std::uint64_t scale = 0;
    if (suffix.empty() || suffix == "b") scale = 1;
    if (suffix == "k" || suffix == "kb" || suffix == "kib") scale = 1ull << 10;
    if (suffix == "m" || suffix == "mb" || suffix == "mib") scale = 1ull << 20;
    if (suffix == "g" || suffix == "gb" || suffix == "gib") scale = 1ull << 30;
    std::uint64_t count = 0;
    if (scale == 0 || !parse_number(text.substr(0, digits), count) || count == 0 ||
        count > SIZE_MAX / scale) {
      fail(f, "expected " + expected + ", got " + describe(f.value));
    }
    return static_cast<std::size_t>(count * scale);
  }

  Json json(const Field& f) {
    const YAML::Node& node = f.value;
    switch (node.Type()) {
      case YAML::NodeType::Scalar: {
        const std::string& tag = node.Tag();
        if (tag == "!" || tag == "tag:yaml.org,2002:str") return node.Scalar();
        return resolve_plain(node.Scalar());
      }
      case YAML::NodeType::Sequence: {
        Json out = Json::array();
        for (const Field& i : sequence(f)) out.push_back(json(i));
        return out;
      }
      case YAML::NodeType::Map: {
        Json out = Json::object();
        for (const Field& e : entries(node, f.path)) out[e.name] = json(e);
        return out;
      }
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined:
        break;
    }
    return nullptr;
  }

  void plugin_path(const Field& f) {
    if (f.value.IsScalar()) {
      config_.plugin_path.push_back(name(f));
      return;
    }
    for (const Field& i : sequence(f)) config_.plugin_path.push_back(name(i));
  }

  void transports(const Field& f) {
    for (const Field& instance : mapping(f)) {
      bool valid = !instance.name.empty() &&
                   std::all_of(instance.name.begin(), instance.name.end(), [](char c) {
                     return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                   });
      if (!valid) fail(instance, "instance names use letters, digits, '_' and '-'");
      config_.transports.emplace(instance.name, transport(instance));
    }
  }

  TransportConfig transport(const Field& f) {
    TransportConfig tc;
    tc.instance = f.name;
    const Field* url = nullptr;
    std::vector<Field> fields = mapping(f);
    for (const Field& e : fields) {
      if (e.name == "type") {
        tc.type = name(e);
      } else if (e.name == "url") {
        tc.url = string(e);
        url = &e;
      } else if (e.name == "max_payload") {
        tc.max_payload = size(e);
      } else {
        tc.options[e.name] = json(e);  // the plugin's own; it checks them
      }
    }
    if (tc.type.empty()) {
      if (url == nullptr || tc.url.empty()) {
        fail(f, "missing key 'type' (or a 'url' whose scheme picks it: " + known_schemes() + ")");
      }
      try {
        tc.type = transport_type_for_url(tc.url);
      } catch (const ConfigError& e) {
        fail(*url, e.message());
      }
    }
    return tc;
  }

  void runtime(const Field& f) {
    RuntimeSection& rt = config_.runtime;
    for (const Field& e : mapping(f)) {
      if (e.name == "transport") {
        rt.transport = name(e);
      } else if (e.name == "timeout_ms") {
        rt.timeout = std::chrono::milliseconds(
            integer(e, 1, INT64_MAX, "a positive integer (milliseconds)"));
      } else if (e.name == "name") {
        rt.name = name(e);
      } else if (e.name == "order") {
        rt.order = one_of(e, {"specificity", "insertion"});
      } else if (e.name == "max_recursion") {
        rt.max_recursion = static_cast<int>(integer(e, 0, INT_MAX, "a non-negative integer"));
      } else if (e.name == "inbox_prefix") {
        rt.inbox_prefix = name(e);
      } else if (e.name == "idle_spin_us") {
        rt.idle_spin = std::chrono::microseconds(
            integer(e, 0, 1'000'000, "an integer from 0 to 1000000 (microseconds)"));
      } else {
        unknown(e, {"transport", "timeout_ms", "name", "order", "max_recursion", "inbox_prefix",
                    "idle_spin_us"});
      }
    }
  }

  void plugins(const Field& f) {
    for (const Field& i : sequence(f)) {
      PluginSpec spec;
      if (i.value.IsScalar()) {
        spec.name = name(i);  // the short form `- math`
      } else {
        bool has_name = false;
        for (const Field& e : mapping(i)) {
          if (e.name == "name") {
            spec.name = name(e);
            has_name = true;
          } else if (e.name == "options") {
            if (!e.value.IsNull() && !e.value.IsMap()) {
              fail(e, "expected a mapping, got " + describe(e.value));
            }
            if (e.value.IsMap()) spec.options = json(e);
          } else {
            unknown(e, {"name", "options"});
          }
        }
        if (!has_name) fail(i, "missing key 'name'");
      }
      for (std::size_t k = 0; k < config_.plugins.size(); ++k) {
        if (config_.plugins[k].name == spec.name) {
          fail(i, "plugin '" + spec.name + "' is listed twice (also " + item("plugins", k) + ")");
        }
      }
      config_.plugins.push_back(std::move(spec));
    }
  }

  Endpoint endpoint(const Field& f, bool subject_required) {
    Endpoint ep;
    bool has_transport = false;
    const Field* subject = nullptr;
    std::vector<Field> fields = mapping(f);
    if (f.value.IsNull()) fail(f, "expected a mapping, got null");
    for (const Field& e : fields) {
      if (e.name == "transport") {
        ep.transport = name(e);
        has_transport = true;
      } else if (e.name == "subject" || e.name == "topic" || e.name == "routing_key") {
        if (subject != nullptr) {
          fail(e, "'" + e.name + "' and '" + subject->name + "' both name the subject; keep one");
        }
        ep.subject = name(e);
        subject = &e;
      } else {
        ep.options[e.name] = json(e);
      }
    }
    if (!has_transport) fail(f, "missing key 'transport'");
    if (subject_required && subject == nullptr) {
      fail(f, "missing key 'subject' (or 'topic', 'routing_key')");
    }
    return ep;
  }

  void bridges(const Field& f) {
    for (const Field& i : sequence(f)) {
      BridgeSpec spec;
      bool has_name = false, has_from = false, has_to = false;
      std::vector<Field> fields = mapping(i);
      if (!i.value.IsMap()) fail(i, "expected a mapping, got " + describe(i.value));
      for (const Field& e : fields) {
        if (e.name == "name") {
          spec.name = name(e);
          has_name = true;
        } else if (e.name == "from") {
          spec.from = endpoint(e, true);
          has_from = true;
        } else if (e.name == "to") {
          spec.to = endpoint(e, false);
          has_to = true;
        } else {
          spec.options[e.name] = json(e);  // the relay engine's; it checks them
        }
      }
      if (!has_name) fail(i, "missing key 'name'");
      if (!has_from) fail(i, "missing key 'from'");
      if (!has_to) fail(i, "missing key 'to'");
      for (const BridgeSpec& other : config_.bridges) {
        if (other.name == spec.name) {
          fail_at(child(i.path, "name"), child(i.path, "name"),
                  "bridge name '" + spec.name + "' is used twice");
        }
      }
      config_.bridges.push_back(std::move(spec));
    }
  }

  // host:port, [v6]:port or :port; the host is resolved when the server binds.
  void admin(const Field& f) {
    std::string address = string(f);
    auto colon = address.rfind(':');
    std::string port = colon == std::string::npos ? "" : address.substr(colon + 1);
    bool digits = !port.empty() && port.size() <= 5 &&
                  port.find_first_not_of("0123456789") == std::string::npos;
    if (!digits || std::stoul(port) > 65535) {
      fail(f, "expected host:port (e.g. 127.0.0.1:9100), got '" + address + "'");
    }
    config_.admin = address;
  }

  void log(const Field& f) {
    for (const Field& e : mapping(f)) {
      if (e.name == "level") {
        config_.log.level =
            one_of(e, {"trace", "debug", "info", "warn", "error", "critical", "off"});
      } else {
        unknown(e, {"level"});
      }
    }
  }

  std::string instance_names() const {
    std::string out;
    for (const auto& [n, tc] : config_.transports) {
      if (!out.empty()) out += ", ";
      out += n;
    }
    return out;
  }

  // Checks that need the whole document: references between sections.
  void finish() {
    if (config_.transports.empty()) {
      TransportConfig tc;
      tc.instance = "default";
      tc.type = "inproc";
      tc.url = "inproc://default";
      config_.transports.emplace(tc.instance, tc);
    }
    RuntimeSection& rt = config_.runtime;
    if (rt.transport.empty()) {
      if (config_.transports.size() != 1) {
        fail_at(
            "runtime.transport", config_.locate("runtime") ? "runtime" : "transports",
            "not set; required when more than one transport is defined (" + instance_names() + ")");
      }
      rt.transport = config_.transports.begin()->first;
    } else if (!config_.transports.contains(rt.transport)) {
      fail_at("runtime.transport", "runtime.transport", undefined(rt.transport));
    }
    for (std::size_t i = 0; i < config_.bridges.size(); ++i) {
      const BridgeSpec& b = config_.bridges[i];
      const std::string path = item("bridges", i);
      for (const auto& [side, ep] : {std::pair{"from", &b.from}, std::pair{"to", &b.to}}) {
        const std::string key = path + "." + side + ".transport";
        if (!config_.transports.contains(ep->transport))
          fail_at(key, key, undefined(ep->transport));
      }
      if (b.from.transport == b.to.transport &&
          (b.to.subject.empty() || b.to.subject == b.from.subject)) {
        const std::string key = path + ".to";
        fail_at(key, key,
                "relays '" + b.from.subject + "' onto itself on '" + b.to.transport + "'");
      }
    }
  }

  std::string undefined(const std::string& instance) const {
    return "names transport '" + instance +
           "', which is not defined (defined: " + instance_names() + ")";
  }

  Config& config_;
};

std::string format_error(const std::string& file, const std::optional<Location>& where,
                         const std::string& key, const std::string& message) {
  std::string out = file;
  if (where) out += ":" + std::to_string(where->line) + ":" + std::to_string(where->column);
  if (!out.empty()) out += ": ";
  if (!key.empty()) out += key + ": ";
  return out + message;
}

}  // namespace

ConfigError::ConfigError(std::string file, std::optional<Location> where, std::string key,
                         std::string message)
    : std::runtime_error(format_error(file, where, key, message)),
      file_(std::move(file)),
      line_(where ? where->line : 0),
      column_(where ? where->column : 0),
      key_(std::move(key)),
      message_(std::move(message)) {}

std::optional<Location> Config::locate(std::string_view key_path) const {
  auto it = locations.find(key_path);
  if (it == locations.end()) return std::nullopt;
  return it->second;
}

const TransportConfig& Config::runtime_transport() const {
  return transports.at(runtime.transport);
}

Config load_config_string(const std::string& yaml, const std::string& source_name) {
  Config config;
  config.source = source_name;
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(source_name, to_location(e.mark), "", e.msg);
  }
  if (documents.size() > 1) {
    throw ConfigError(source_name, to_location(documents[1].Mark()), "",
                      "expected one YAML document, found " + std::to_string(documents.size()));
  }
  Parser(config).parse(documents.empty() ? YAML::Node() : documents.front());
  return config;
}

Config load_config_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw ConfigError(path, std::nullopt, "", std::string("cannot open: ") + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw ConfigError(path, std::nullopt, "", "cannot read");
  return load_config_string(text.str(), path);
}

std::string transport_type_for_url(std::string_view url) {
  auto end = url.find("://");
  if (end == std::string_view::npos || end == 0) {
    throw ConfigError("", std::nullopt, "url",
                      "'" + std::string(url) + "' has no scheme; known: " + known_schemes());
  }
  std::string scheme(url.substr(0, end));
  std::transform(scheme.begin(), scheme.end(), scheme.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  for (const auto& s : kSchemes) {
    if (s.scheme == scheme) return std::string(s.type);
  }
  throw ConfigError("", std::nullopt, "url",
                    "unknown scheme '" + scheme + "://'; known: " + known_schemes());
}

Config config_from_url(const std::string& url, std::vector<std::string> plugin_names) {
  Config config;
  config.source = kCommandLine;
  TransportConfig tc;
  tc.instance = "default";
  tc.url = url;
  try {
    tc.type = transport_type_for_url(url);
  } catch (const ConfigError& e) {
    throw ConfigError(kCommandLine, std::nullopt, "--url", e.message());
  }
  config.transports.emplace(tc.instance, tc);
  config.runtime.transport = tc.instance;
  for (std::string& name : plugin_names) {
    if (name.empty())
      throw ConfigError(kCommandLine, std::nullopt, "--plugin", "empty plugin name");
    bool twice = std::any_of(config.plugins.begin(), config.plugins.end(),
                             [&](const PluginSpec& p) { return p.name == name; });
    if (twice) {
      throw ConfigError(kCommandLine, std::nullopt, "--plugin",
                        "plugin '" + name + "' is given twice");
    }
    config.plugins.push_back(PluginSpec{std::move(name), Json::object()});
  }
  return config;
}

void rethrow_with_location(const Config& config, const std::string& key_prefix,
                           const OptionError& error) {
  std::string key = error.key.empty() ? key_prefix : child(key_prefix, error.key);
  // A missing option has no line of its own: use its nearest written parent.
  std::string at = key;
  std::optional<Location> where = config.locate(at);
  while (!where && !at.empty()) {
    auto cut = at.find_last_of(".[");
    at = cut == std::string::npos ? std::string() : at.substr(0, cut);
    where = config.locate(at);
  }
  throw ConfigError(config.source, where, key, error.what());
}

}  // namespace switchboard
