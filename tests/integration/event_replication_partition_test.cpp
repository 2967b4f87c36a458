// A partition with real processes: three `switchboard events replicate`
// nodes on tcp_peer (the first listens, the others join it). One node is
// killed with kill -9 in the middle of a burst of emits, the others emit
// while it is dead, it restarts on its store and emits more; then every
// store holds the same set of events, every acknowledged event among them,
// and each store's chain verifies. Once the joined node c is the victim,
// once the listening node a (then b and c are cut off from each other too). The stores are read by
// this process, read-only, beside the nodes that write them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>
#include <set>
#include <thread>

#include "support/nats_server.hpp"  // free_loopback_port()
#include "support/replication_nodes.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;

// One `switchboard events replicate --stdin` process: commands in on its
// stdin, JSON lines out on its stdout.
class NodeProcess {
 public:
  NodeProcess(const std::string& url, const std::string& store, const std::string& origin) {
    int in[2], out[2];
    EXPECT_EQ(::pipe(in), 0);
    EXPECT_EQ(::pipe(out), 0);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // not left behind if the test dies
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::close(in[1]);
      ::close(out[0]);
      ::execl(SWITCHBOARD_CLI, SWITCHBOARD_CLI, "--log-level", "warn", "events", "replicate",
              "--url", url.c_str(), "--store", store.c_str(), "--origin", origin.c_str(),
              "--interval-ms", "200", "--stdin", "--plugin-path", SWITCHBOARD_TEST_PLUGIN_DIR,
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    to_ = in[1];
    from_ = out[0];
  }
  ~NodeProcess() {
    if (pid_ > 0) kill(SIGKILL);
    if (to_ >= 0) ::close(to_);
    if (from_ >= 0) ::close(from_);
  }
  void send(const std::string& line) {
    std::string l = line + "\n";
    ASSERT_EQ(::write(to_, l.data(), l.size()), static_cast<ssize_t>(l.size()));
  }
  // The next line, or nullopt after `limit` (or at EOF).
  std::optional<Json> line(std::chrono::milliseconds limit = 20s) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    for (;;) {
      auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string text = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return Json::parse(text, nullptr, false);
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{from_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      ssize_t n = ::read(from_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }
  void kill(int signo) {
    ::kill(pid_, signo);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_status_ = status;
    pid_ = -1;
  }
  int exit_status() const { return exit_status_; }

 private:
  pid_t pid_ = -1;
  int to_ = -1, from_ = -1;
  std::string buffer_;
  int exit_status_ = -1;
};

// Starts a node and waits for its "replicating" line; declares the type.
std::unique_ptr<NodeProcess> start_node(const std::string& url, const std::string& store,
                                        const std::string& origin) {
  auto p = std::make_unique<NodeProcess>(url, store, origin);
  auto ready = p->line();
  EXPECT_TRUE(ready && ready->contains("replicating")) << origin << " did not start";
  p->send(R"(declare note {"n":{"type":"integer","required":true}})");
  auto declared = p->line();
  EXPECT_TRUE(declared && declared->contains("declared")) << origin << " declare";
  return p;
}

// Sends n emit commands; collect() reads n answers and keeps the ids.
void emit(NodeProcess& p, int first, int n) {
  for (int i = first; i < first + n; ++i) p.send("emit note {\"n\":" + std::to_string(i) + "}");
}
void collect(NodeProcess& p, int n, std::set<std::string>& acked) {
  for (int i = 0; i < n; ++i) {
    auto l = p.line();
    ASSERT_TRUE(l && l->contains("id")) << (l ? l->dump() : "no answer");
    acked.insert((*l)["id"].get<std::string>());
  }
}

std::set<test::EventKey> read_store(asio::io_context& io, const std::string& path) {
  EventLogOptions o;
  o.path = path;
  o.read_only = true;
  try {
    EventLog log(io.get_executor(), o);
    return test::event_set(log);
  } catch (const Error&) {
    return {};
  }
}

// Three nodes; `victim` (0: a, the one listening, so b and c lose each
// other too; 2: c, which joined a) is killed with kill -9 in a burst of its
// emits; the other two emit while it is dead; it restarts on its store and
// emits more. Then all three stores must hold the same events.
void partition_round(int victim) {
  test::TempDir dir("partition-" + std::to_string(victim));
  std::string url = "tcp://127.0.0.1:" + std::to_string(test::free_loopback_port());
  const std::string names[3] = {"a", "b", "c"};
  std::string stores[3];
  std::unique_ptr<NodeProcess> nodes[3];
  for (int i = 0; i < 3; ++i) {
    stores[i] = dir.file(names[i] + ".db");
    nodes[i] = start_node(url, stores[i], names[i]);  // a listens, b and c join it
  }
  std::set<std::string> acked;
  int next = 0;  // payload numbers, unique over the test

  for (int i = 0; i < 3; ++i) {
    if (i == victim) continue;
    emit(*nodes[i], next, 30);
    next += 30;
    collect(*nodes[i], 30, acked);
  }
  // The victim: a burst, killed after some of it was acknowledged, the
  // rest in flight.
  emit(*nodes[victim], next, 2000);
  next += 2000;
  collect(*nodes[victim], 40, acked);
  nodes[victim]->kill(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(nodes[victim]->exit_status()));
  nodes[victim].reset();

  for (int i = 0; i < 3; ++i) {
    if (i == victim) continue;
    emit(*nodes[i], next, 50);
    next += 50;
    collect(*nodes[i], 50, acked);
  }

  nodes[victim] = start_node(url, stores[victim], names[victim]);  // same store and origin
  emit(*nodes[victim], next, 25);
  collect(*nodes[victim], 25, acked);

  asio::io_context io;
  std::set<test::EventKey> sets[3];
  bool converged = false;
  // Polled every 100 ms, bounded: a bug fails the test instead of hanging it.
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       !converged && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(100ms);
    for (int i = 0; i < 3; ++i) sets[i] = read_store(io, stores[i]);
    converged = !sets[0].empty() && sets[0] == sets[1] && sets[1] == sets[2];
  }
  ASSERT_TRUE(converged) << sets[0].size() << " " << sets[1].size() << " " << sets[2].size();
  std::set<std::string> ids;
  for (const auto& k : sets[0]) ids.insert(std::get<0>(k));
  for (const auto& id : acked) EXPECT_TRUE(ids.count(id)) << "acknowledged " << id << " missing";
  EXPECT_GE(ids.size(), acked.size());
  std::cout << "converged: " << ids.size() << " events on each store, " << acked.size()
            << " of them acknowledged to the emitters\n";

  for (auto& p : nodes) {
    p->kill(SIGTERM);
    EXPECT_TRUE(WIFEXITED(p->exit_status()) && WEXITSTATUS(p->exit_status()) == 0)
        << "status " << p->exit_status();
  }
  for (const auto& path : stores) {
    EventLogOptions o;
    o.path = path;
    o.read_only = true;
    EventLog log(io.get_executor(), o);
    auto v = log.verify();
    EXPECT_TRUE(v.ok) << path << ": " << v.reason;
    EXPECT_EQ(v.events, ids.size()) << path;
  }
}

TEST(EventReplicationPartition, KilledJoinedNodeRestartsAndAllConverge) {
  partition_round(2);
}

TEST(EventReplicationPartition, KilledListeningNodeRestartsAndAllConverge) {
  partition_round(0);
}

}  // namespace
}  // namespace switchboard
