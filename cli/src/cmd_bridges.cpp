// switchboard bridges status --admin HOST:PORT: the counters of a running
// `switchboard run --admin HOST:PORT`, read from its /metrics, as a table.
#include <iostream>
#include <map>
#include <sstream>

#include "cli_common.hpp"

namespace switchboard::cli {
namespace {

// GET /metrics; throws Error when the node cannot be reached.
std::string fetch_metrics(const std::string& address) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    throw Error(errc::invalid_argument, "admin address '" + address + "': expected host:port");
  }
  asio::io_context io;
  asio::ip::tcp::resolver resolver(io);
  asio::ip::tcp::socket socket(io);
  boost::system::error_code ec;
  auto endpoints = resolver.resolve(address.substr(0, colon), address.substr(colon + 1), ec);
  if (!ec) asio::connect(socket, endpoints, ec);
  if (ec) throw Error(errc::transport_error, "admin " + address + ": " + ec.message());
  std::string request =
      "GET /metrics HTTP/1.1\r\nHost: " + address + "\r\nConnection: close\r\n\r\n";
  asio::write(socket, asio::buffer(request), ec);
  std::string response;
  asio::read(socket, asio::dynamic_buffer(response), ec);  // until the server closes
  auto body = response.find("\r\n\r\n");
  if (!response.starts_with("HTTP/1.1 200") || body == std::string::npos) {
    throw Error(errc::transport_error,
                "admin " + address + ": " + response.substr(0, response.find("\r\n")));
  }
  return response.substr(body + 4);
}

}  // namespace

void add_bridges_command(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("bridges", "inspect the bridges of a running node");
  cmd->require_subcommand(1);
  auto* status = cmd->add_subcommand("status", "per-bridge counters from a node's admin port");
  auto address = std::make_shared<std::string>("127.0.0.1:9100");
  auto raw = std::make_shared<bool>(false);
  status->add_option("-a,--admin", *address, "the node's admin address (--admin or admin:)")
      ->capture_default_str();
  status->add_flag("--prometheus", *raw, "print the Prometheus text as served");
  status->callback([address, raw, &exit_code] {
    std::string text;
    try {
      text = fetch_metrics(*address);
    } catch (const Error& e) {
      print_error(e);
      exit_code = kFailed;
      return;
    }
    if (*raw) {
      std::cout << text;
      return;
    }
    // name{bridge="x",...} value -> table[x][short name]
    std::map<std::string, std::map<std::string, std::string>> table;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      auto brace = line.find('{'), close = line.rfind('}');
      auto q1 = line.find("bridge=\"");
      if (brace == std::string::npos || close == std::string::npos || q1 == std::string::npos)
        continue;
      std::string metric = line.substr(0, brace);
      auto q2 = line.find('"', q1 + 8);
      std::string bridge = line.substr(q1 + 8, q2 - q1 - 8);
      std::string value = line.substr(close + 2);
      const std::string prefix = "switchboard_bridge_";
      if (metric.starts_with(prefix)) metric = metric.substr(prefix.size());
      if (metric.ends_with("_total")) metric.resize(metric.size() - 6);
      table[bridge][metric] = value;
      if (metric == "up") {
        auto d = line.find("delivery=\"");
        if (d != std::string::npos)
          table[bridge]["delivery"] = line.substr(d + 10, line.find('"', d + 10) - d - 10);
      }
    }
    // lag: "-" when the source does not report it (plain sources).
    const char* columns[] = {"up",      "delivery",    "relayed",   "in_flight",
                             "lag",     "retried",     "failed",    "dead_lettered",
                             "dropped", "redelivered", "duplicates"};
    std::printf("%-24s", "BRIDGE");
    for (const char* c : columns) std::printf(" %13s", c);
    std::printf("\n");
    for (const auto& [bridge, row] : table) {
      std::printf("%-24s", bridge.c_str());
      for (const char* c : columns) {
        auto it = row.find(c);
        std::printf(" %13s", it == row.end() ? "-" : it->second.c_str());
      }
      std::printf("\n");
    }
  });
}

}  // namespace switchboard::cli
