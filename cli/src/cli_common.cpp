#include "cli_common.hpp"

#include <spdlog/spdlog.h>

#include <iostream>

namespace switchboard::cli {

std::string g_log_level;

void Source::add_options(CLI::App& cmd) {
  auto* config = cmd.add_option("-c,--config", config_file, "YAML config file");
  cmd.add_option("-u,--url", url, "transport URL (inproc://, nats://, ...)")->excludes(config);
  cmd.add_option("-p,--plugin", plugins, "runtime plugin to load (with --url)");
  cmd.add_option("--plugin-path", plugin_path, "directory to search for plugins first");
}

Config Source::load() const {
  Config config;
  if (!config_file.empty()) {
    config = load_config_file(config_file);
    // --plugin adds to the file's list; a name already there is not loaded twice.
    for (const auto& p : plugins) {
      bool listed = false;
      for (const auto& spec : config.plugins) listed = listed || spec.name == p;
      if (!listed) config.plugins.push_back({p, Json::object()});
    }
  } else {
    config = config_from_url(url.empty() ? "inproc://default" : url, plugins);
  }
  config.plugin_path.insert(config.plugin_path.begin(), plugin_path.begin(), plugin_path.end());
  if (!g_log_level.empty()) {
    config.log.level = g_log_level;
  } else if (!config.locate("log.level")) {
    config.log.level = quiet_level;
  }
  return config;
}

std::unique_ptr<App> start_app(asio::io_context& io, const Source& source) {
  try {
    auto app = std::make_unique<App>(io, source.load());
    app->start();
    return app;
  } catch (const Error& e) {
    print_error(e);
  } catch (const std::exception& e) {
    // ConfigError and friends: their text already names file, line and key.
    print_error(Error("StartupError", e.what()));
  }
  return nullptr;
}

void print_error(const Error& error) {
  std::cerr << error.to_json().dump() << std::endl;
}

}  // namespace switchboard::cli
