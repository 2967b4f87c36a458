// Event-log replication tests: nodes (a log, a transport plugin and an
// EventReplicator) in one process, and what their stores hold. Shared by
// the in-process, tcp_peer and NATS replication tests.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "support/test_support.hpp"
#include "switchboard/event_log.hpp"
#include "switchboard/event_replication.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard::test {

// What must be the same on every node: an event without its local
// sequence and hashes.
using EventKey = std::tuple<std::string, std::string, std::string, std::uint64_t, std::int64_t,
                            std::string>;  // id, type, origin, origin_sequence, ts, payload

inline std::set<EventKey> event_set(const EventLog& log) {
  std::set<EventKey> out;
  std::error_code ec;
  for (std::uint64_t next = 1;;) {
    std::size_t n = log.read(
        next, 4096,
        [&](const Event& e) {
          out.emplace(e.id, e.type, e.origin, e.origin_sequence, e.timestamp_us, e.payload_json);
          next = e.sequence + 1;
        },
        ec);
    if (n == 0 || ec) break;
  }
  return out;
}

// Per origin, the origin_sequences in local sequence order.
inline std::map<std::string, std::vector<std::uint64_t>> origin_orders(const EventLog& log) {
  std::map<std::string, std::vector<std::uint64_t>> out;
  std::error_code ec;
  for (std::uint64_t next = 1;;) {
    std::size_t n = log.read(
        next, 4096,
        [&](const Event& e) {
          out[e.origin].push_back(e.origin_sequence);
          next = e.sequence + 1;
        },
        ec);
    if (n == 0 || ec) break;
  }
  return out;
}

// A fresh directory for stores, removed at the end.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() /
           ("sb-repl-" + tag + "-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// One replicating node. The log lives on `io`; the transport and the
// replicator on a strand of it.
struct ReplNode {
  std::unique_ptr<EventLog> log;
  std::shared_ptr<Transport> transport;
  std::unique_ptr<EventReplicator> replicator;
  asio::strand<asio::io_context::executor_type> strand;

  ReplNode(asio::io_context& io, PluginHost& host, const std::string& store,
           const std::string& origin, const TransportConfig& tc,
           EventReplicatorOptions options = {})
      : strand(asio::make_strand(io)) {
    EventLogOptions lo;
    lo.path = store;
    lo.origin = origin;
    log = std::make_unique<EventLog>(io.get_executor(), lo);
    log->declare("note", {{"n", {{"type", "integer"}, {"required", true}}}});
    connect(host, tc, options);
  }
  void connect(PluginHost& host, const TransportConfig& tc, EventReplicatorOptions options = {}) {
    transport = host.create_transport(tc, TransportContext{strand});
    auto ec = transport->connect();
    EXPECT_FALSE(ec) << tc.instance << " connect " << tc.url << ": " << ec.message();
    replicator = std::make_unique<EventReplicator>(*log, transport, strand, options);
    ec = replicator->start();
    EXPECT_FALSE(ec) << "replicator start: " << ec.message();
  }
  // Stops replicating and closes the transport (a partition, for this node).
  void disconnect(asio::io_context& io) {
    replicator->stop();
    replicator.reset();
    bool closed = false;
    transport->close([&] { closed = true; });
    EXPECT_TRUE(run_until(io, [&] { return closed; })) << "transport close";
    transport.reset();
  }
  // Emits `count` events of type note without waiting; `acked` counts.
  void emit(int first, int count, std::shared_ptr<int> acked) {
    for (int i = first; i < first + count; ++i) {
      log->emit("note", {{"n", i}}, [acked](std::error_code ec, EmitResult) {
        EXPECT_FALSE(ec) << ec.message();
        ++*acked;
      });
    }
  }
};

inline TransportConfig transport_config(const std::string& instance, const std::string& type,
                                        const std::string& url, Json options = Json::object()) {
  TransportConfig tc;
  tc.instance = instance;
  tc.type = type;
  tc.url = url;
  tc.options = std::move(options);
  return tc;
}

// Runs `io` until every node holds the same events, `expected` of them.
// The per-origin heads (in memory) are compared first; the stores are read
// only when those agree.
inline bool converge(asio::io_context& io, const std::vector<ReplNode*>& nodes,
                     std::size_t expected,
                     std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  return run_until(
      io,
      [&] {
        auto heads = nodes[0]->log->origin_heads();
        std::uint64_t total = 0;
        for (const auto& [origin, head] : heads) total += head;
        if (total != expected) return false;
        for (std::size_t i = 1; i < nodes.size(); ++i) {
          if (nodes[i]->log->origin_heads() != heads) return false;
        }
        auto first = event_set(*nodes[0]->log);
        if (first.size() != expected) return false;
        for (std::size_t i = 1; i < nodes.size(); ++i) {
          if (event_set(*nodes[i]->log) != first) return false;
        }
        return true;
      },
      limit);
}

}  // namespace switchboard::test
