// switchboard act [--url URL | --config FILE] [--timeout MS] 'JSON'
#include <iostream>

#include "cli_common.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::cli {

void add_act_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("act", "call a pattern; result on stdout, error on stderr");
  auto source = std::make_shared<Source>();
  auto pattern_text = std::make_shared<std::string>();
  auto timeout_ms = std::make_shared<long>(0);
  source->add_options(*cmd);
  cmd->add_option("pattern", *pattern_text, "the act pattern as JSON")->required();
  cmd->add_option("-t,--timeout", *timeout_ms, "timeout in milliseconds (default: config)");
  cmd->callback([source, pattern_text, timeout_ms, &exit_code] {
    Json pattern;
    std::string error;
    if (!parse_json(*pattern_text, pattern, error) || !pattern.is_object()) {
      print_error(Error(errc::invalid_argument, "pattern is not a JSON object: " + *pattern_text));
      exit_code = kUsage;
      return;
    }
    if (*timeout_ms > 0) pattern["timeout$"] = *timeout_ms;
    asio::io_context io;
    auto app = start_app(io, *source);
    if (!app) {
      exit_code = kFailed;
      return;
    }
    app->runtime().act(pattern, [&](std::error_code ec, Response r) {
      if (ec) {
        print_error(r.error ? *r.error : Error(errc::transport_error, ec.message()));
        exit_code = kFailed;
      } else {
        std::cout << r.result.dump() << std::endl;
      }
      app->runtime().close([] {});
    });
    io.run();
  });
}

}  // namespace switchboard::cli
