// switchboard: run services, call them, publish, subscribe, list plugins.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <iostream>

#include "cli_common.hpp"
#include "events_command.hpp"

int main(int argc, char** argv) {
  using namespace switchboard::cli;
  // Logs go to stderr so that stdout carries only results.
  spdlog::set_default_logger(spdlog::stderr_color_mt("switchboard"));
  spdlog::set_level(spdlog::level::warn);

  CLI::App app{"switchboard: pattern-routed messaging over pluggable transports"};
  app.require_subcommand(1);
  app.add_option("--log-level", g_log_level, "trace, debug, info, warn, error, critical, off");
  int exit_code = kOk;
  add_run_command(app, exit_code);
  add_act_command(app, exit_code);
  add_pub_command(app, exit_code);
  add_sub_command(app, exit_code);
  add_plugins_command(app, exit_code);
  add_bridges_command(app, exit_code);
  add_events_command(app, exit_code);
  app.add_subcommand("version", "print the version and plugin ABI")->callback([] {
    std::cout << "switchboard " << SWITCHBOARD_VERSION << " (plugin ABI "
              << SWITCHBOARD_PLUGIN_ABI_VERSION << ", " << SWITCHBOARD_TOOLCHAIN_TAG << ")\n";
  });
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  return exit_code;
}
