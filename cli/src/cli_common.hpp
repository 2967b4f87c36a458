// What the subcommands share: where the config comes from, building and
// starting an App, running the io_context until done, and exit codes.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "switchboard/app.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard::cli {

// --config FILE | --url URL, plus --plugin NAME... and --plugin-path DIR...
struct Source {
  std::string config_file;
  std::string url;
  std::vector<std::string> plugins;
  std::vector<std::string> plugin_path;
  // Log level when neither --log-level nor the config sets one: one-shot
  // commands keep stderr for errors.
  std::string quiet_level = "warn";
  void add_options(CLI::App& cmd);
  // The config these options describe; the embedded default (inproc) when
  // neither --config nor --url is given.
  Config load() const;
};

extern std::string g_log_level;  // --log-level, overrides the config's

// Builds and starts an App; on failure prints the error and returns null.
std::unique_ptr<App> start_app(asio::io_context& io, const Source& source);

// Prints an error as {"name":..., "message":...} on stderr.
void print_error(const Error& error);

enum Exit { kOk = 0, kFailed = 1, kUsage = 2 };

void add_run_command(CLI::App& app, int& exit_code);
void add_act_command(CLI::App& app, int& exit_code);
void add_pub_command(CLI::App& app, int& exit_code);
void add_sub_command(CLI::App& app, int& exit_code);
void add_plugins_command(CLI::App& app, int& exit_code);
void add_bridges_command(CLI::App& app, int& exit_code);

}  // namespace switchboard::cli
