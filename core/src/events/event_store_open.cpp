#include "event_store_open.hpp"

#include "sqlite_store.hpp"
#include "switchboard/config.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard::events {

std::shared_ptr<EventStore> open_event_store(const EventLogOptions& options, bool read_only,
                                             bool deferred_sync) {
  if (options.backend.empty() || options.backend == "sqlite") {
    return std::make_shared<SqliteStore>(
        options.path, read_only ? SqliteStore::Mode::read_only : SqliteStore::Mode::read_write,
        deferred_sync && !read_only ? SqliteStore::Sync::deferred : SqliteStore::Sync::on_commit);
  }
  const std::string where = "event log '" + options.path + "' (backend " + options.backend + ")";
  if (options.url.empty()) throw Error(errc::invalid_argument, where + ": no url given");
  if (!options.backend_options.is_object()) {
    throw Error(errc::invalid_argument, where + ": backend options must be a JSON object");
  }
  EventStoreConfig config;
  config.location = options.path;
  config.url = options.url;
  config.options = options.backend_options;
  config.read_only = read_only;
  PluginHost host(options.plugin_path);
  try {
    return host.create_event_store(options.backend + "-events", config);
  } catch (const OptionError& e) {
    throw Error(errc::invalid_argument, where + ": option '" + e.key + "': " + e.what());
  }
}

}  // namespace switchboard::events
