// switchboard events declare|emit|tail|export|verify: the event log from the
// command line (docs/events.md).
#pragma once

#include <CLI/CLI.hpp>

namespace switchboard::cli {

void add_events_command(CLI::App& app, int& exit_code);

}  // namespace switchboard::cli
