// Event-log replication over a real nats-server: live events both ways, a
// late joiner catching up, and a node that was away while the server
// restarted.
#include <gtest/gtest.h>

#include "support/nats_server.hpp"
#include "support/replication_nodes.hpp"

namespace switchboard {
namespace {

using test::ReplNode;

TEST(NatsReplication, LiveEventsLateJoinerAndServerRestart) {
  set_log_level("warn");
  test::NatsServer server;
  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  test::TempDir dir("nats");
  EventReplicatorOptions o;
  o.announce_interval = std::chrono::milliseconds(200);
  o.fetch_timeout = std::chrono::milliseconds(1000);
  auto bus = [&](const std::string& name) {
    return test::transport_config(name, "nats", server.url());
  };
  auto a = std::make_unique<ReplNode>(io, host, dir.file("a.db"), "a", bus("a"), o);
  auto b = std::make_unique<ReplNode>(io, host, dir.file("b.db"), "b", bus("b"), o);
  auto acked = std::make_shared<int>(0);
  a->emit(0, 200, acked);
  b->emit(1000, 200, acked);
  ASSERT_TRUE(test::run_until(io, [&] { return *acked == 400; }));
  ASSERT_TRUE(test::converge(io, {a.get(), b.get()}, 400));

  auto c = std::make_unique<ReplNode>(io, host, dir.file("c.db"), "c", bus("c"), o);
  ASSERT_TRUE(test::converge(io, {a.get(), b.get(), c.get()}, 400));
  EXPECT_GT(c->replicator->stats().fetches_sent, 0u);

  // The server goes away and comes back; events emitted meanwhile arrive.
  server.stop();
  a->emit(200, 50, acked);
  c->emit(2000, 50, acked);
  ASSERT_TRUE(test::run_until(io, [&] { return *acked == 500; }));
  server.start();
  ASSERT_TRUE(test::converge(io, {a.get(), b.get(), c.get()}, 500, std::chrono::seconds(60)));
  for (auto* n : {a.get(), b.get(), c.get()}) {
    auto v = n->log->verify();
    EXPECT_TRUE(v.ok) << n->log->origin() << ": " << v.reason;
  }
  for (auto* n : {a.get(), b.get(), c.get()}) n->disconnect(io);
}

}  // namespace
}  // namespace switchboard
