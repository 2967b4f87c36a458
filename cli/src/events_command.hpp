// switchboard events declare|emit|tail|export|verify|replicate: the event log
// from the command line (docs/events.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace switchboard::cli {

void add_events_command(CLI::App& app, int& exit_code);

// Shared by the events subcommands.
void add_store_option(CLI::App& cmd, std::string& store);
void add_replicate(CLI::App& events, int& exit_code);  // events_replicate.cpp

}  // namespace switchboard::cli
