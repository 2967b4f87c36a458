// switchboard run CONFIG | run --url URL --plugin NAME...
#include <spdlog/spdlog.h>

#include "cli_common.hpp"

namespace switchboard::cli {

void add_run_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("run", "run the services a config (or URL + plugins) describes");
  auto source = std::make_shared<Source>();
  source->quiet_level = "info";
  cmd->add_option("config", source->config_file, "YAML config file");
  cmd->add_option("-c,--config", source->config_file, "YAML config file (same as the argument)");
  cmd->add_option("-u,--url", source->url, "transport URL");
  cmd->add_option("-p,--plugin", source->plugins, "runtime plugin to load");
  cmd->add_option("--plugin-path", source->plugin_path, "directory to search for plugins first");
  cmd->callback([source, &exit_code] {
    asio::io_context io;
    auto app = start_app(io, *source);
    if (!app) {
      exit_code = kFailed;
      return;
    }
    const auto& tc = app->config().runtime_transport();
    spdlog::info("running on {} ({}) with {} plugin(s)", tc.instance, tc.url,
                 app->runtime().plugins().size());
    // SIGINT/SIGTERM close gracefully: in-flight requests finish first.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int signo) {
      if (ec) return;
      spdlog::info("signal {}: closing", signo);
      app->runtime().close([] {});
    });
    std::printf("ready\n");
    std::fflush(stdout);
    io.run();
  });
}

}  // namespace switchboard::cli
