// switchboard pub SUBJECT DATA / switchboard sub SUBJECT [--count N]
#include <iostream>

#include "cli_common.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::cli {
namespace {

// DATA is sent as JSON when it parses as JSON, otherwise as a JSON string.
Json parse_data(const std::string& text) {
  Json j;
  std::string error;
  if (!parse_json(text, j, error)) return Json(text);
  return j;
}

}  // namespace

void add_pub_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("pub", "publish one message on a subject");
  auto source = std::make_shared<Source>();
  auto subject = std::make_shared<std::string>();
  auto data = std::make_shared<std::string>();
  source->add_options(*cmd);
  cmd->add_option("subject", *subject, "subject, e.g. orders.new")->required();
  cmd->add_option("data", *data, "JSON (or text, sent as a JSON string)")->required();
  cmd->callback([source, subject, data, &exit_code] {
    asio::io_context io;
    auto app = start_app(io, *source);
    if (!app) {
      exit_code = kFailed;
      return;
    }
    if (auto ec = app->runtime().publish(*subject, parse_data(*data))) {
      print_error(Error(errc::transport_error, "publish to '" + *subject + "': " + ec.message()));
      exit_code = kFailed;
    }
    app->runtime().close([] {});  // drains, so the message leaves before exit
    io.run();
  });
}

void add_sub_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("sub", "print messages on a subject (wildcards allowed)");
  auto source = std::make_shared<Source>();
  auto subject = std::make_shared<std::string>();
  auto queue = std::make_shared<std::string>();
  auto count = std::make_shared<int>(0);
  source->add_options(*cmd);
  cmd->add_option("subject", *subject, "subject filter, e.g. orders.> or orders.*")->required();
  cmd->add_option("-q,--queue", *queue, "queue group");
  cmd->add_option("-n,--count", *count, "exit after N messages");
  cmd->callback([source, subject, queue, count, &exit_code] {
    asio::io_context io;
    auto app = start_app(io, *source);
    if (!app) {
      exit_code = kFailed;
      return;
    }
    int seen = 0;
    auto& rt = app->runtime();
    asio::signal_set signals(io, SIGINT, SIGTERM);
    auto ec = rt.subscribe(*subject, *queue, [&](const Message& m) {
      Json data;
      std::string error;
      if (!parse_json(m.data.view(), data, error)) data = m.data.view();
      Json line = {{"subject", m.subject}, {"data", std::move(data)}};
      std::cout << line.dump() << std::endl;
      // The pending signal wait would keep io.run() going after close.
      if (*count > 0 && ++seen == *count) rt.close([&] { signals.cancel(); });
    });
    if (ec) {
      print_error(Error(errc::invalid_argument, "subscribe '" + *subject + "': " + ec.message()));
      exit_code = kFailed;
      return;
    }
    std::cerr << "listening on " << *subject << std::endl;
    signals.async_wait([&](std::error_code e, int) {
      if (!e) rt.close([] {});
    });
    io.run();
  });
}

}  // namespace switchboard::cli
