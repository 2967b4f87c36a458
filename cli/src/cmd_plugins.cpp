// switchboard plugins: what the search path holds, with kind, name, version
// and ABI; refused files are listed with their reason.
#include <cstdio>
#include <iostream>

#include "cli_common.hpp"

namespace switchboard::cli {

void add_plugins_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("plugins", "list the plugins found on the search path");
  auto dirs = std::make_shared<std::vector<std::string>>();
  cmd->add_option("--plugin-path", *dirs, "directory to search first");
  cmd->callback([dirs, &exit_code] {
    PluginHost host(*dirs);
    std::vector<std::string> problems;
    auto found = host.discover(&problems);
    std::printf("%-11s %-16s %-9s %-4s %s\n", "KIND", "NAME", "VERSION", "ABI", "FILE");
    for (const auto& p : found) {
      std::printf("%-11s %-16s %-9s %-4u %s\n", to_string(p.kind), p.name.c_str(),
                  p.version.c_str(), p.abi_version, p.path.c_str());
    }
    for (const auto& problem : problems) std::cerr << "refused: " << problem << "\n";
    std::cerr << "searched:";
    for (const auto& d : host.search_path()) std::cerr << " " << d;
    std::cerr << "\n";
    if (found.empty()) exit_code = kFailed;
  });
}

}  // namespace switchboard::cli
