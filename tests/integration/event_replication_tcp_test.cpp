// Event-log replication over tcp_peer, three logs in one process on a free
// loopback port (the first node listens, the others join it): concurrent
// emits on every node converge; a node cut off (its transport closed) while
// both sides emit converges after it reconnects.
#include <gtest/gtest.h>

#include "support/nats_server.hpp"  // free_loopback_port()
#include "support/replication_nodes.hpp"

namespace switchboard {
namespace {

using test::ReplNode;

class TcpPeerReplication : public ::testing::Test {
 protected:
  void SetUp() override { set_log_level("warn"); }
  void TearDown() override {
    for (auto* n : {c_.get(), b_.get(), a_.get()}) {
      if (n && n->transport) n->disconnect(io_);
    }
  }
  TransportConfig mesh(const std::string& name) {
    return test::transport_config(name, "tcp_peer", url_, Json{{"drain_timeout_ms", 500}});
  }
  std::unique_ptr<ReplNode> node(const std::string& name) {
    return std::make_unique<ReplNode>(io_, host_, dir_.file(name + ".db"), name, mesh(name),
                                      options());
  }
  static EventReplicatorOptions options() {
    EventReplicatorOptions o;
    o.announce_interval = std::chrono::milliseconds(200);
    o.fetch_timeout = std::chrono::milliseconds(1000);
    return o;
  }
  void all_verify() {
    for (auto* n : {a_.get(), b_.get(), c_.get()}) {
      auto v = n->log->verify();
      EXPECT_TRUE(v.ok) << n->log->origin() << ": " << v.reason;
      for (auto& [origin, seqs] : test::origin_orders(*n->log)) {
        std::vector<std::uint64_t> want(seqs.size());
        for (std::size_t i = 0; i < want.size(); ++i) want[i] = i + 1;
        EXPECT_EQ(seqs, want) << "origin " << origin << " on " << n->log->origin();
      }
    }
  }

  asio::io_context io_;
  PluginHost host_{{test::plugin_dir()}};
  test::TempDir dir_{"tcp"};
  std::string url_ = "tcp://127.0.0.1:" + std::to_string(test::free_loopback_port());
  std::unique_ptr<ReplNode> a_, b_, c_;
};

TEST_F(TcpPeerReplication, ThreeNodesConvergeUnderConcurrentEmits) {
  a_ = node("a");
  b_ = node("b");
  c_ = node("c");
  auto acked = std::make_shared<int>(0);
  a_->emit(0, 300, acked);
  b_->emit(1000, 300, acked);
  c_->emit(2000, 300, acked);
  ASSERT_TRUE(test::run_until(io_, [&] { return *acked == 900; }));
  ASSERT_TRUE(test::converge(io_, {a_.get(), b_.get(), c_.get()}, 900))
      << a_->log->last_sequence() << " " << b_->log->last_sequence() << " "
      << c_->log->last_sequence();
  all_verify();
}

TEST_F(TcpPeerReplication, CutOffNodeConvergesAfterReconnecting) {
  a_ = node("a");
  b_ = node("b");
  c_ = node("c");
  auto acked = std::make_shared<int>(0);
  a_->emit(0, 20, acked);
  c_->emit(100, 20, acked);
  ASSERT_TRUE(test::run_until(io_, [&] { return *acked == 40; }));
  ASSERT_TRUE(test::converge(io_, {a_.get(), b_.get(), c_.get()}, 40));

  c_->disconnect(io_);  // the partition: c on its own
  a_->emit(20, 100, acked);
  b_->emit(200, 100, acked);
  c_->emit(120, 100, acked);
  ASSERT_TRUE(test::run_until(io_, [&] { return *acked == 340; }));
  ASSERT_TRUE(test::converge(io_, {a_.get(), b_.get()}, 240))
      << Json(a_->log->origin_heads()).dump() << " " << Json(b_->log->origin_heads()).dump();
  EXPECT_EQ(c_->log->last_sequence(), 140u);  // it really was cut off

  c_->connect(host_, mesh("c"), options());
  ASSERT_TRUE(test::converge(io_, {a_.get(), b_.get(), c_.get()}, 340));
  all_verify();
}

}  // namespace
}  // namespace switchboard
