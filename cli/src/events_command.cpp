// switchboard events ...: every subcommand opens the store named by --store
// (default: $SWITCHBOARD_EVENTS_STORE, else ./switchboard-events.db).
// Results go to stdout as JSON, errors to stderr as {"name","message"}.
#include "events_command.hpp"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "cli_common.hpp"
#include "switchboard/event_log.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::cli {
namespace {

std::string default_store() {
  const char* env = std::getenv("SWITCHBOARD_EVENTS_STORE");
  return env && *env ? env : "switchboard-events.db";
}

std::unique_ptr<EventLog> open_log(asio::io_context& io, const std::string& store, bool read_only) {
  try {
    EventLogOptions options = event_log_options(store);
    options.read_only = read_only;
    return std::make_unique<EventLog>(io.get_executor(), options);
  } catch (const Error& e) {
    print_error(e);
    return nullptr;
  }
}

std::optional<Json> parse_json(const std::string& text, const std::string& what) {
  Json j;
  std::string error;
  if (!switchboard::parse_json(text, j, error)) {
    print_error(Error(errc::parse_error, what + " is not JSON: " + text));
    return std::nullopt;
  }
  return j;
}

// beginning | now | a sequence number
std::optional<StreamFrom> parse_from(const std::string& text) {
  if (text == "beginning") return StreamFrom::beginning();
  if (text == "now") return StreamFrom::now();
  try {
    std::size_t used = 0;
    unsigned long long seq = std::stoull(text, &used);
    if (used == text.size()) return StreamFrom::at(seq);
  } catch (const std::exception&) {
  }
  print_error(Error(errc::invalid_argument,
                    "--from must be 'beginning', 'now' or a sequence number, got '" + text + "'"));
  return std::nullopt;
}

void add_declare(CLI::App& events, int& exit_code) {
  auto* cmd = events.add_subcommand("declare", "declare an event type and its payload schema");
  auto store = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  auto schema = std::make_shared<std::string>();
  add_store_option(*cmd, *store);
  cmd->add_option("type", *type, "event type, e.g. order.created")->required();
  cmd->add_option("schema", *schema,
                  R"(fields and types, e.g. '{"id":{"type":"integer","required":true}}')")
      ->required();
  cmd->callback([store, type, schema, &exit_code] {
    asio::io_context io;
    auto log = open_log(io, *store, false);
    auto s = parse_json(*schema, "the schema");
    if (!log || !s) {
      exit_code = kFailed;
      return;
    }
    try {
      log->declare(*type, *s);
    } catch (const Error& e) {
      print_error(e);
      exit_code = kFailed;
      return;
    }
    log->close();  // writes the declaration
  });
}

void add_emit(CLI::App& events, int& exit_code) {
  auto* cmd = events.add_subcommand("emit", "append one event; prints its sequence and id");
  auto store = std::make_shared<std::string>();
  auto type = std::make_shared<std::string>();
  auto payload = std::make_shared<std::string>();
  add_store_option(*cmd, *store);
  cmd->add_option("type", *type, "a declared event type")->required();
  cmd->add_option("payload", *payload, "the payload, a JSON object")->required();
  cmd->callback([store, type, payload, &exit_code] {
    asio::io_context io;
    auto log = open_log(io, *store, false);
    auto p = parse_json(*payload, "the payload");
    if (!log || !p) {
      exit_code = kFailed;
      return;
    }
    log->emit(*type, std::move(*p), [&](std::error_code ec, EmitResult r) {
      if (ec) {
        Error e = r.error ? *r.error : Error(errc::transport_error, ec.message());
        if (ec == errc::invalid_argument && !log->schema(*type)) {
          e = Error(errc::invalid_argument, e.message() +
                                                "; declare it first: switchboard events "
                                                "declare " +
                                                *type + " '{}'");
        }
        print_error(e);
        exit_code = kFailed;
        return;
      }
      std::cout << Json{{"sequence", r.sequence}, {"id", r.id}}.dump() << std::endl;
    });
    io.run();
  });
}

void add_tail(CLI::App& events, int& exit_code) {
  auto* cmd = events.add_subcommand("tail", "print events as JSON lines, following new ones");
  auto store = std::make_shared<std::string>();
  auto from = std::make_shared<std::string>("now");
  auto count = std::make_shared<std::uint64_t>(0);
  auto no_follow = std::make_shared<bool>(false);
  add_store_option(*cmd, *store);
  cmd->add_option("--from", *from, "beginning, now (default) or a sequence number");
  cmd->add_option("-n,--count", *count, "exit after N events");
  cmd->add_flag("--no-follow", *no_follow, "exit at the end of the log");
  cmd->callback([store, from, count, no_follow, &exit_code] {
    auto start = parse_from(*from);
    asio::io_context io;
    // Read-only: tail works beside the process that writes the store, and
    // follows it by polling.
    auto log = open_log(io, *store, true);
    if (!log || !start) {
      exit_code = kFailed;
      return;
    }
    std::uint64_t next = 1;
    if (start->kind == StreamFrom::Kind::sequence)
      next = std::max<std::uint64_t>(start->sequence, 1);
    if (start->kind == StreamFrom::Kind::now) next = log->last_sequence() + 1;
    std::uint64_t printed = 0;
    for (;;) {
      std::error_code ec;
      std::size_t n = log->read(
          next, 4096,
          [&](const Event& e) {
            if (*count && printed >= *count) return;
            std::cout << e.to_json().dump() << '\n';
            ++printed;
            next = e.sequence + 1;
          },
          ec);
      std::cout.flush();
      if (ec) {
        print_error(Error(errc::transport_error, "reading " + *store + ": " + ec.message()));
        exit_code = kFailed;
        return;
      }
      if (*count && printed >= *count) return;
      if (n == 0) {
        if (*no_follow) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });
}

void add_export(CLI::App& events, int& exit_code) {
  auto* cmd = events.add_subcommand(
      "export", "write events as NDJSON, from where the last export of this consumer stopped");
  auto store = std::make_shared<std::string>();
  auto ndjson = std::make_shared<bool>(false);
  auto from_scratch = std::make_shared<bool>(false);
  auto consumer = std::make_shared<std::string>("export");
  auto output = std::make_shared<std::string>();
  add_store_option(*cmd, *store);
  cmd->add_flag("--ndjson", *ndjson, "one JSON object per line (the only format)")->required();
  cmd->add_flag("--from-scratch", *from_scratch, "start at sequence 1, not at the stored cursor");
  cmd->add_option("--consumer", *consumer, "the named consumer whose cursor is kept (export)");
  cmd->add_option("-o,--output", *output, "append to this file instead of stdout");
  // Every bound variable is captured, unused ones too: CLI11 writes through
  // the references after this function has returned (ASan found --ndjson
  // written into a freed bool).
  cmd->callback([store, ndjson, from_scratch, consumer, output, &exit_code] {
    asio::io_context io;
    auto log = open_log(io, *store, false);
    if (!log) {
      exit_code = kFailed;
      return;
    }
    std::ofstream file;
    if (!output->empty()) {
      file.open(*output, std::ios::app);
      if (!file) {
        print_error(Error(errc::invalid_argument, "cannot open " + *output + " for writing"));
        exit_code = kFailed;
        return;
      }
    }
    std::ostream& out = output->empty() ? std::cout : file;
    std::uint64_t next = 1;
    if (!*from_scratch) next = log->consumer_position(*consumer).value_or(0) + 1;
    std::uint64_t last = next - 1;
    for (;;) {
      std::error_code ec;
      std::size_t n = log->read(
          next, 4096,
          [&](const Event& e) {
            out << e.to_json().dump() << '\n';
            last = e.sequence;
          },
          ec);
      if (ec) {
        print_error(Error(errc::transport_error, "reading " + *store + ": " + ec.message()));
        exit_code = kFailed;
        return;
      }
      if (n == 0) break;
      next = last + 1;
    }
    out.flush();
    if (!out) {
      print_error(Error(errc::transport_error, "writing the export failed"));
      exit_code = kFailed;
      return;
    }
    // The cursor moves only after the lines are out: a failed export is
    // repeated, never skipped.
    log->save_consumer(*consumer, last, [&](std::error_code ec) {
      if (ec) {
        print_error(Error(errc::transport_error, "saving the cursor: " + ec.message()));
        exit_code = kFailed;
      }
    });
    io.run();
  });
}

void add_verify(CLI::App& events, int& exit_code) {
  auto* cmd =
      events.add_subcommand("verify", "check the hash chain; exit 1 at the first bad event");
  auto store = std::make_shared<std::string>();
  add_store_option(*cmd, *store);
  cmd->callback([store, &exit_code] {
    asio::io_context io;
    auto log = open_log(io, *store, true);
    if (!log) {
      exit_code = kFailed;
      return;
    }
    VerifyResult v = log->verify();
    Json out = {{"ok", v.ok}, {"events", v.events}, {"head", to_hex(v.head)}};
    if (!v.ok) {
      out["first_bad"] = v.first_bad;
      out["reason"] = v.reason;
      exit_code = kFailed;
    }
    std::cout << out.dump() << std::endl;
  });
}

}  // namespace

void add_store_option(CLI::App& cmd, std::string& store) {
  store = default_store();
  cmd.add_option("--store", store,
                 "event store file, or BACKEND://HOST:PORT/NAME for a broker "
                 "(jetstream://127.0.0.1:4222/orders, kafka://127.0.0.1:9092/orders); default: "
                 "$SWITCHBOARD_EVENTS_STORE, "
                 "else ./switchboard-events.db");
}

EventLogOptions event_log_options(const std::string& store) {
  EventLogOptions options;
  auto scheme_end = store.find("://");
  if (scheme_end == std::string::npos) {
    options.path = store;
    return options;
  }
  auto bad = [&](const std::string& why) {
    return Error(errc::invalid_argument, "--store '" + store + "': " + why +
                                             " (expected BACKEND://HOST:PORT/NAME[?opt=value])");
  };
  options.backend = store.substr(0, scheme_end);
  std::string rest = store.substr(scheme_end + 3);
  std::string query;
  if (auto q = rest.find('?'); q != std::string::npos) {
    query = rest.substr(q + 1);
    rest.resize(q);
  }
  auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == rest.size()) {
    throw bad("no host or no log name");
  }
  // The backend's broker: JetStream lives on NATS; others use their own scheme.
  std::string broker = options.backend == "jetstream" ? "nats" : options.backend;
  options.url = broker + "://" + rest.substr(0, slash);
  options.path = rest.substr(slash + 1);
  std::size_t at = 0;
  while (at < query.size()) {
    auto amp = query.find('&', at);
    std::string pair = query.substr(at, amp == std::string::npos ? std::string::npos : amp - at);
    at = amp == std::string::npos ? query.size() : amp + 1;
    auto eq = pair.find('=');
    if (eq == std::string::npos || eq == 0) throw bad("option '" + pair + "' is not KEY=VALUE");
    std::string key = pair.substr(0, eq), value = pair.substr(eq + 1);
    bool number = !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    if (number) {
      options.backend_options[key] = std::stoll(value);
    } else {
      options.backend_options[key] = value;
    }
  }
  return options;
}

void add_events_command(CLI::App& app, int& exit_code) {
  auto* events =
      app.add_subcommand("events", "the event log: declare, emit, tail, export, verify, replicate");
  events->require_subcommand(1);
  add_declare(*events, exit_code);
  add_emit(*events, exit_code);
  add_tail(*events, exit_code);
  add_export(*events, exit_code);
  add_verify(*events, exit_code);
  add_replicate(*events, exit_code);
}

}  // namespace switchboard::cli
