// Event-log replication over tcp_peer, two logs in one process (one
// io_context thread for both): how fast a late joiner catches up on N
// events (fetch path), and how fast live events reach a connected peer
// (emit -> commit -> publish -> ingest -> commit). Prints one JSON object.
//
//   switchboard_replication_bench [--events N] [--live M] [--dir DIR]
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "switchboard/app.hpp"  // set_log_level
#include "switchboard/event_log.hpp"
#include "switchboard/event_replication.hpp"
#include "switchboard/plugin_host.hpp"

using namespace switchboard;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

int free_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

struct Node {
  std::unique_ptr<EventLog> log;
  std::shared_ptr<Transport> transport;
  std::unique_ptr<EventReplicator> replicator;
};

Node make_node(asio::io_context& io, PluginHost& host, const std::string& path,
               const std::string& origin, const std::string& url) {
  Node n;
  EventLogOptions lo;
  lo.path = path;
  lo.origin = origin;
  n.log = std::make_unique<EventLog>(io.get_executor(), lo);
  n.log->declare("bench", {{"n", {{"type", "integer"}}}, {"text", {{"type", "string"}}}});
  auto strand = asio::make_strand(io);
  TransportConfig tc;
  tc.instance = origin;
  tc.type = "tcp_peer";
  tc.url = url;
  n.transport = host.create_transport(tc, TransportContext{strand});
  if (auto ec = n.transport->connect()) throw Error(errc::transport_error, ec.message());
  EventReplicatorOptions ro;
  ro.announce_interval = std::chrono::milliseconds(200);
  n.replicator = std::make_unique<EventReplicator>(*n.log, n.transport, strand, ro);
  if (auto ec = n.replicator->start()) throw Error(errc::transport_error, ec.message());
  return n;
}

// Emits `count` events with up to 4096 in flight; runs io until all acked.
void emit_all(asio::io_context& io, EventLog& log, long first, long count) {
  long next = first, done = 0;
  const long end = first + count;
  std::function<void()> one = [&] {
    if (next >= end) return;
    log.emit("bench",
             {{"n", next++}, {"text", "a payload of some sixty bytes, like a small event"}},
             [&](std::error_code ec, EmitResult) {
               if (ec) throw Error(errc::transport_error, ec.message());
               ++done;
               one();
             });
  };
  for (int i = 0; i < 4096; ++i) one();
  while (done < count) io.run_one();
}

void run_until(asio::io_context& io, const std::function<bool()>& done) {
  while (!done()) io.run_for(std::chrono::milliseconds(1));
}

}  // namespace

int main(int argc, char** argv) {
  long events = 100000, live = 50000;
  std::string dir = fs::temp_directory_path() / ("sb-repl-bench-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::stol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--live")) live = std::stol(argv[i + 1]);
    if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
  }
  set_log_level("warn");
  fs::remove_all(dir);
  fs::create_directories(dir);
  asio::io_context io;
  PluginHost host;
  std::string url = "tcp://127.0.0.1:" + std::to_string(free_port());

  Node a = make_node(io, host, dir + "/a.db", "a", url);
  emit_all(io, *a.log, 0, events);
  run_until(io,
            [&] { return a.replicator->stats().published == static_cast<std::uint64_t>(events); });

  auto t0 = Clock::now();
  Node b = make_node(io, host, dir + "/b.db", "b", url);
  run_until(io, [&] { return b.log->origin_head("a") == static_cast<std::uint64_t>(events); });
  double catch_up_s = std::chrono::duration<double>(Clock::now() - t0).count();
  auto fetches = b.replicator->stats().fetches_sent;

  auto t1 = Clock::now();
  emit_all(io, *a.log, events, live);
  double emit_s = std::chrono::duration<double>(Clock::now() - t1).count();
  run_until(io,
            [&] { return b.log->origin_head("a") == static_cast<std::uint64_t>(events + live); });
  double live_s = std::chrono::duration<double>(Clock::now() - t1).count();

  bool ok = a.log->verify().ok && b.log->verify().ok;
  std::cout << Json{{"catch_up",
                     {{"events", events},
                      {"seconds", catch_up_s},
                      {"per_s", events / catch_up_s},
                      {"fetches", fetches}}},
                    {"live",
                     {{"events", live},
                      {"emit_seconds", emit_s},
                      {"replicated_seconds", live_s},
                      {"per_s", live / live_s}}},
                    {"verify_ok", ok}}
                   .dump()
            << std::endl;
  for (Node* n : {&b, &a}) {
    n->replicator->stop();
    bool closed = false;
    n->transport->close([&] { closed = true; });
    run_until(io, [&] { return closed; });
  }
  b.log->close();
  a.log->close();
  fs::remove_all(dir);
  return ok ? 0 : 1;
}
