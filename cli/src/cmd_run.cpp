// switchboard run CONFIG | run --url URL --plugin NAME...
#include <spdlog/spdlog.h>

#include "cli_common.hpp"
#include "switchboard/bridges/admin_server.hpp"
#include "switchboard/bridges/bridge.hpp"
#include "switchboard/event_loop.hpp"

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
  auto admin = std::make_shared<std::string>();
  cmd->add_option("--admin", *admin,
                  "serve GET /metrics (Prometheus text) on this address, e.g. 127.0.0.1:9100 "
                  "(overrides the config's admin key)");
  auto idle_spin_us = std::make_shared<std::int64_t>(0);
  auto* idle_spin_flag =
      cmd->add_option("--idle-spin-us", *idle_spin_us,
                      "keep polling this long after the last message before sleeping: lower "
                      "latency for CPU (overrides the config's runtime.idle_spin_us)");
  idle_spin_flag->check(CLI::Range(std::int64_t{0}, std::int64_t{1'000'000}));
  cmd->callback([source, admin, idle_spin_us, idle_spin_flag, &exit_code] {
    asio::io_context io;
    auto app = start_app(io, *source);
    if (!app) {
      exit_code = kFailed;
      return;
    }
    // Bridges from the config, on the runtime's executor (docs/bridges.md).
    std::unique_ptr<bridges::BridgeHost> relays;
    std::unique_ptr<bridges::AdminServer> admin_server;
    try {
      relays = std::make_unique<bridges::BridgeHost>(*app);
      relays->start();
      // The flag wins over the config's `admin:` key.
      std::string listen = admin->empty() ? app->config().admin : *admin;
      if (!listen.empty()) {
        admin_server = std::make_unique<bridges::AdminServer>(
            app->runtime().executor(), listen, [&relays] { return relays->metrics_text(); });
        spdlog::info("admin: http://{}:{}/metrics", listen.substr(0, listen.rfind(':')),
                     admin_server->port());
      }
    } catch (const Error& e) {
      print_error(e);
      exit_code = kFailed;
      return;
    } catch (const std::exception& e) {
      print_error(Error("StartupError", e.what()));
      exit_code = kFailed;
      return;
    }
    const auto& tc = app->config().runtime_transport();
    spdlog::info("running on {} ({}) with {} plugin(s) and {} bridge(s)", tc.instance, tc.url,
                 app->runtime().plugins().size(), relays->size());
    // SIGINT/SIGTERM close gracefully: in-flight requests finish first.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code ec, int signo) {
      if (ec) return;
      spdlog::info("signal {}: closing", signo);
      if (admin_server) admin_server->close();
      // Bridges first: they may publish on the runtime's transport.
      relays->close([&] { app->runtime().close([] {}); });
    });
    std::printf("ready\n");
    std::fflush(stdout);
    run_event_loop(io, idle_spin_flag->count() > 0 ? std::chrono::microseconds(*idle_spin_us)
                                                   : app->config().runtime.idle_spin);
  });
}

}  // namespace switchboard::cli
