// The plugin host: finds, loads and checks transport, codec, runtime and
// event-store plugins (see plugin_abi.hpp and docs/plugins.md), and builds objects from
// their factories.
//
// Search order for a plugin by name: `plugin_path` from config, then
// SWITCHBOARD_PLUGIN_PATH (colon-separated), then next to the binary:
// <exe dir>/../lib/switchboard and <exe dir>/lib/switchboard. The first
// libswitchboard-<name>.so found wins, even if it is then refused: a refusal
// is reported rather than quietly replaced by another file.
//
// Every refusal (file not found, not loadable, no entry symbol, wrong ABI
// version, wrong toolchain tag, unknown kind, null name or factory, duplicate
// name) is a PluginError naming the file and the reason; nothing a plugin
// file contains is trusted before those checks pass.
//
// Lifetime: an object created from a plugin holds a reference to its library,
// so the library stays loaded, even after the host is gone, until the last
// such object is destroyed.
//
// Thread safety: all members may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "switchboard/codec.hpp"
#include "switchboard/error.hpp"
#include "switchboard/event_store.hpp"
#include "switchboard/json.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/runtime_plugin.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

// What a plugin says about itself, copied out of its info struct.
struct PluginDescriptor {
  std::string path;  // absolute path of the file; empty for built-ins
  std::string name;
  std::string version;
  std::string toolchain;
  std::uint32_t abi_version = 0;
  SwitchboardPluginKind kind = SWITCHBOARD_PLUGIN_TRANSPORT;
  bool builtin = false;  // registered with register_builtin(), not loaded from a file
};

// "transport", "codec", "plugin"; "unknown" for anything else.
const char* to_string(SwitchboardPluginKind kind) noexcept;

// A refused plugin. what() is "plugin file '<path>': <reason>" (just the
// reason when there is no file, as for built-ins). An Error of kind
// errc::plugin_error, so callers that catch Error see it too.
class PluginError : public Error {
 public:
  PluginError(std::string path, std::string reason);
  const std::string& path() const noexcept { return path_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string path_;
  std::string reason_;
};

class PluginHost {
 public:
  // Search path: config_paths, then SWITCHBOARD_PLUGIN_PATH, then the
  // directories next to the binary. Directories that do not exist are kept
  // (they appear in "not found" messages) and skipped when searching.
  explicit PluginHost(std::vector<std::string> config_paths = {});
  // Exactly these directories, without the environment or the binary's
  // directory: for tests and embedders that want no surprises.
  static PluginHost with_search_path(std::vector<std::string> dirs);

  PluginHost(PluginHost&&) noexcept;
  PluginHost& operator=(PluginHost&&) noexcept;
  ~PluginHost();

  const std::vector<std::string>& search_path() const;

  // Returns the registered plugin of this kind and name, loading
  // libswitchboard-<name>.so from the search path if needed. Throws
  // PluginError when not found (listing the directories searched), when the
  // file is refused, or when it declares another kind or name.
  const PluginDescriptor& load(SwitchboardPluginKind kind, const std::string& name);

  // Loads one file. Loading the same file again returns the same
  // descriptor; another file with the same kind and name is refused, naming
  // both files. Throws PluginError.
  const PluginDescriptor& load_file(const std::string& path);

  // Loads every libswitchboard-*.so in the search path (in search order,
  // file names sorted within a directory) and returns those accepted. Each
  // refusal becomes one line in `problems` (the PluginError text) instead
  // of an exception; without `problems` they are dropped.
  std::vector<PluginDescriptor> discover(std::vector<std::string>* problems = nullptr);

  // Everything registered so far, built-ins included, by kind then name.
  std::vector<PluginDescriptor> loaded() const;

  // Registers a factory linked into the program (static embedding), under
  // the same registry and duplicate rules as files. `factory` must point to
  // the factory type of `kind` and outlive the host and every object it
  // creates. Throws PluginError.
  const PluginDescriptor& register_builtin(SwitchboardPluginKind kind, std::string name,
                                           std::string version, const void* factory);
  const PluginDescriptor& register_builtin(std::string name, std::string version,
                                           const TransportFactory& factory);
  const PluginDescriptor& register_builtin(std::string name, std::string version,
                                           const CodecFactory& factory);
  const PluginDescriptor& register_builtin(std::string name, std::string version,
                                           const RuntimePluginFactory& factory);
  const PluginDescriptor& register_builtin(std::string name, std::string version,
                                           const EventStoreFactory& factory);

  // Build objects from the plugin of that name, loading it if needed. The
  // objects keep their library loaded. An OptionError from the factory is
  // rethrown as an OptionError (same key and text) for the caller to place
  // in the config; any other exception, or a null result, becomes a
  // PluginError naming the plugin and quoting the exception's what().
  std::shared_ptr<Transport> create_transport(const TransportConfig& config,
                                              const TransportContext& context);
  std::shared_ptr<Codec> create_codec(const std::string& name,
                                      const Json& options = Json::object());
  std::shared_ptr<RuntimePlugin> create_runtime_plugin(const std::string& name);
  // An event store from the event-store plugin `name` ("jetstream-events"),
  // with the same error rules as the others (a store that cannot be opened
  // is a PluginError quoting the store's EventStoreError).
  std::shared_ptr<EventStore> create_event_store(const std::string& name,
                                                 const EventStoreConfig& config);

 private:
  struct Impl;
  explicit PluginHost(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard
