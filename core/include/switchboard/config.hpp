// Config: the YAML file that picks transports, codec, runtime options,
// runtime plugins and bridges (docs/config.md has every key).
//
// Loading validates everything the core knows about and throws ConfigError
// naming file, line, column and key. What only a plugin knows (its own
// options) is checked when the plugin is created: it throws OptionError with
// a key relative to its section, and rethrow_with_location() turns that into
// a ConfigError pointing at the line of that key. Exceptions are used here
// because this runs only at start-up.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "switchboard/json.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

// A position in the config source, 1-based.
struct Location {
  int line = 0;
  int column = 0;
};

// A config that cannot be used: `file:line:column: key: message`. Parts that
// are unknown are left out (line() == 0 when there is no position, key()
// empty when the error is about the document as a whole).
class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string file, std::optional<Location> where, std::string key,
              std::string message);

  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }
  int column() const noexcept { return column_; }
  const std::string& key() const noexcept { return key_; }
  // The message without the file, position and key.
  const std::string& message() const noexcept { return message_; }

 private:
  std::string file_;
  int line_ = 0;
  int column_ = 0;
  std::string key_;
  std::string message_;
};

// Thrown by plugin factories for a bad plugin-specific option. `key` is
// relative to the plugin's section ("max_payload", "tls.ca_file"); empty
// means the section as a whole (e.g. a missing required option).
struct OptionError : std::runtime_error {
  OptionError(std::string key, const std::string& message)
      : std::runtime_error(message), key(std::move(key)) {}
  std::string key;
};

struct RuntimeSection {
  std::string transport;                    // instance name in `transports`
  std::chrono::milliseconds timeout{2000};  // `timeout_ms`: default timeout$
  std::string name = "switchboard";         // app name in hops and logs
  std::string order = "specificity";        // or "insertion" (Hemera's order)
  int max_recursion = 0;                    // nested act depth limit; 0 = none
  std::string inbox_prefix = "_INBOX";      // reply subjects: <prefix>.<node>.<request>
  // `idle_spin_us`: how long `switchboard run`'s event loop keeps polling
  // after its last handler before it blocks (run_event_loop); 0 = at once.
  std::chrono::microseconds idle_spin{0};
};

struct PluginSpec {
  std::string name;
  Json options = Json::object();
};

// One side of a bridge: an instance and the subject on it. `subject` is read
// from `subject`, `topic` or `routing_key`, whichever the transport's users
// call it; the other keys (queue_group, ...) are in `options`.
struct Endpoint {
  std::string transport;
  std::string subject;  // empty on `to`: keep the subject the message came with
  Json options = Json::object();
};

struct BridgeSpec {
  std::string name;
  Endpoint from;
  Endpoint to;
  Json options = Json::object();  // the bridge's other keys, for the relay engine
};

struct LogSection {
  std::string level = "info";  // trace, debug, info, warn, error, critical, off
};

struct Config {
  std::string source = "<string>";  // file path, "<string>" or "<command line>"
  std::vector<std::string> plugin_path;
  std::string codec = "json";
  std::map<std::string, TransportConfig> transports;  // by instance name
  RuntimeSection runtime;
  std::vector<PluginSpec> plugins;
  std::vector<BridgeSpec> bridges;
  LogSection log;
  // `admin: "127.0.0.1:9100"`: where `switchboard run` serves GET /metrics;
  // empty: nowhere (the --admin flag overrides it).
  std::string admin;

  // Where each key was written, by path: "transports.bus.url",
  // "plugins[0].options.precision", "bridges[1].to.topic". Empty for
  // configs not read from YAML.
  std::map<std::string, Location, std::less<>> locations;

  std::optional<Location> locate(std::string_view key_path) const;
  // The instance runtime.transport names (always present after loading).
  const TransportConfig& runtime_transport() const;
};

// Reads and validates a config file. Throws ConfigError.
Config load_config_file(const std::string& path);
// The same for YAML text; `source_name` stands for the file in errors.
Config load_config_string(const std::string& yaml, const std::string& source_name = "<string>");

// `run --url URL --plugin NAME...`: one instance "default" whose type comes
// from the URL's scheme, used by the runtime. Throws ConfigError.
Config config_from_url(const std::string& url, std::vector<std::string> plugin_names);

// inproc:// -> inproc, tcp:// -> tcp_peer, ws:// wss:// -> websocket,
// nats:// tls:// -> nats, kafka:// -> kafka, amqp:// amqps:// -> amqp.
// Throws ConfigError (key "url") for a missing or unknown scheme.
std::string transport_type_for_url(std::string_view url);

// Turns a plugin's OptionError into a ConfigError at the line of
// `<key_prefix>.<error.key>` (or of the nearest enclosing key that was
// written), e.g. key_prefix "transports.bus" or "plugins[0].options".
[[noreturn]] void rethrow_with_location(const Config& config, const std::string& key_prefix,
                                        const OptionError& error);

}  // namespace switchboard
