// switchboard events declare|emit|tail|export|verify|replicate: the event log
// from the command line (docs/events.md).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "switchboard/event_log.hpp"

namespace switchboard::cli {

void add_events_command(CLI::App& app, int& exit_code);

// Shared by the events subcommands.
void add_store_option(CLI::App& cmd, std::string& store);
// The log's options from --store: a file (SQLite), or a broker backend as
// BACKEND://HOST:PORT/NAME[?option=value&...], e.g.
// jetstream://127.0.0.1:4222/orders (a JetStream stream on nats://...).
// Throws Error (invalid_argument) naming what is wrong with the text.
EventLogOptions event_log_options(const std::string& store);
void add_replicate(CLI::App& events, int& exit_code);  // events_replicate.cpp

}  // namespace switchboard::cli
