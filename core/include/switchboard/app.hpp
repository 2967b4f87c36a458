// App: a runtime assembled from a Config: the plugin host, the codec and
// transport plugins, the runtime and its runtime plugins. What `switchboard
// run` and the examples use; embedders can also wire a Runtime by hand.
#pragma once

#include <memory>

#include "switchboard/config.hpp"
#include "switchboard/plugin_host.hpp"
#include "switchboard/runtime.hpp"

namespace switchboard {

class App {
 public:
  // Loads the plugins the config names and builds the runtime on a strand
  // of `io`. Throws ConfigError (bad option, with file and line),
  // PluginError (a plugin refused) or Error.
  App(asio::io_context& io, Config config);
  ~App();

  // Connects the transport and registers the runtime plugins, in config
  // order. Throws Error naming the transport instance and its URL.
  void start();

  Runtime& runtime() { return *runtime_; }
  PluginHost& host() { return host_; }
  const Config& config() const { return config_; }

 private:
  void add_decoders();

  Config config_;
  PluginHost host_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::unique_ptr<Runtime> runtime_;
};

// Sets spdlog's level from a name (trace ... off); throws Error for others.
void set_log_level(const std::string& level);

}  // namespace switchboard
