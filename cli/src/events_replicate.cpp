// switchboard events replicate (--url URL | --config FILE) --store F
// [--origin NODE] [--prefix P] [--interval-ms N] [--stdin]
//
// Keeps the store in sync with the other nodes on that transport until
// SIGINT/SIGTERM. The store is locked while it runs, so events are emitted
// through it: with --stdin each input line is a command,
//   emit TYPE JSON | declare TYPE SCHEMA | heads
// answered with one JSON line on stdout.
#include <spdlog/spdlog.h>

#include <iostream>
#include <sstream>
#include <thread>

#include "cli_common.hpp"
#include "events_command.hpp"
#include "switchboard/event_log.hpp"
#include "switchboard/event_replication.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::cli {
namespace {

struct ReplicateArgs {
  Source source;
  std::string store;
  std::string origin;
  std::string prefix = EventReplicatorOptions{}.subject_prefix;
  long interval_ms = 1000;
  bool stdin_commands = false;
};

void print_line(const Json& j) {
  std::cout << j.dump() << std::endl;
}

// One --stdin command, on the io thread.
void run_command(EventLog& log, const std::string& line) {
  std::istringstream in(line);
  std::string verb, type;
  in >> verb >> type;
  std::string rest;
  std::getline(in, rest);
  auto fail = [&](const Error& e) { print_line(Json{{"error", e.to_json()}, {"command", verb}}); };
  if (verb == "heads") {
    print_line(Json{{"heads", log.origin_heads()}, {"last_sequence", log.last_sequence()}});
    return;
  }
  if (verb != "emit" && verb != "declare") {
    return fail(
        Error(errc::invalid_argument,
              "unknown command '" + verb + "' (emit TYPE JSON, declare TYPE SCHEMA, heads)"));
  }
  Json value;
  std::string error;
  const bool parsed = switchboard::parse_json(rest, value, error);
  if (type.empty() || !parsed) {
    return fail(Error(errc::parse_error, verb + ": expected TYPE and JSON, got '" + line + "'"));
  }
  if (verb == "declare") {
    try {
      log.declare(type, value);
      print_line(Json{{"declared", type}});
    } catch (const Error& e) {
      fail(e);
    }
    return;
  }
  log.emit(type, std::move(value), [](std::error_code ec, EmitResult r) {
    if (ec) {
      Error e = r.error ? *r.error : Error(errc::transport_error, ec.message());
      print_line(Json{{"error", e.to_json()}, {"command", "emit"}});
    } else {
      print_line(Json{{"sequence", r.sequence}, {"id", r.id}});
    }
  });
}

int replicate(const ReplicateArgs& args) {
  Config config;
  try {
    config = args.source.load();
    set_log_level(config.log.level);
  } catch (const std::exception& e) {
    print_error(Error("StartupError", e.what()));
    return kFailed;
  }
  asio::io_context io;
  std::unique_ptr<EventLog> log;
  try {
    EventLogOptions lo = event_log_options(args.store);
    lo.origin = args.origin;
    log = std::make_unique<EventLog>(io.get_executor(), lo);
  } catch (const Error& e) {
    print_error(e);
    return kFailed;
  }
  const TransportConfig& tc = config.runtime_transport();
  PluginHost host(config.plugin_path);
  auto strand = asio::make_strand(io);
  std::shared_ptr<Transport> transport;
  std::unique_ptr<EventReplicator> replicator;
  try {
    transport = host.create_transport(tc, TransportContext{strand});
    if (auto ec = transport->connect()) {
      throw Error(errc::transport_error, "transport '" + tc.instance + "' (" + tc.type + " " +
                                             tc.url + "): " + ec.message());
    }
    EventReplicatorOptions ro;
    ro.subject_prefix = args.prefix;
    ro.announce_interval = std::chrono::milliseconds(args.interval_ms);
    ro.fetch_timeout = 3 * ro.announce_interval;
    replicator = std::make_unique<EventReplicator>(*log, transport, strand, ro);
    if (auto ec = replicator->start()) {
      throw Error(errc::transport_error, "replication on '" + tc.instance + "': " + ec.message());
    }
  } catch (const Error& e) {
    print_error(e);
    return kFailed;
  } catch (const std::exception& e) {
    print_error(Error("StartupError", e.what()));
    return kFailed;
  }
  spdlog::info("replicating {} as node {} over {} ({})", args.store, log->origin(), tc.instance,
               tc.url);
  print_line(Json{{"replicating", args.store}, {"node", log->origin()}});

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code ec, int) {
    if (ec) return;
    replicator->stop();
    transport->close([&] {
      log->close();
      io.stop();
    });
  });
  if (args.stdin_commands) {
    // A detached reader: a blocked read must not hold up exit.
    std::thread([&io, &log] {
      std::string line;
      while (std::getline(std::cin, line)) {
        if (line.empty()) continue;
        asio::post(io, [&log, line] { run_command(*log, line); });
      }
    }).detach();
  }
  io.run();
  return kOk;
}

}  // namespace

void add_replicate(CLI::App& events, int& exit_code) {
  auto* cmd = events.add_subcommand(
      "replicate", "keep this store in sync with the other nodes on a transport (until Ctrl-C)");
  auto args = std::make_shared<ReplicateArgs>();
  args->source.add_options(*cmd);
  cmd->remove_option(cmd->get_option("--plugin"));  // runtime plugins: not used here
  args->source.quiet_level = "info";
  add_store_option(*cmd, args->store);
  cmd->add_option("--origin", args->origin, "node id for new events (default: the store's own)");
  cmd->add_option("--prefix", args->prefix, "subject prefix of the replica set");
  cmd->add_option("--interval-ms", args->interval_ms, "how often heads are announced (1000)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--stdin", args->stdin_commands,
                "read commands from stdin: emit TYPE JSON | declare TYPE SCHEMA | heads");
  cmd->callback([args, &exit_code] { exit_code = replicate(*args); });
}

}  // namespace switchboard::cli
