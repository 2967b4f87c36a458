// A partition with real processes: three `switchboard events replicate`
// nodes on tcp_peer (the first listens, the others join it). Node c is
// killed with kill -9 in the middle of a burst of emits, a and b emit while
// it is dead, c restarts on its store and emits more; then every store holds
// the same set of events, every acknowledged event among them, and each
// store's chain verifies. The stores are read by this process, read-only,
// beside the nodes that write them.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
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

TEST(EventReplicationPartition, KilledNodeRestartsAndAllConverge) {
  test::TempDir dir("partition");
  std::string url = "tcp://127.0.0.1:" + std::to_string(test::free_loopback_port());
  std::string sa = dir.file("a.db"), sb = dir.file("b.db"), sc = dir.file("c.db");
  auto a = start_node(url, sa, "a");  // listens
  auto b = start_node(url, sb, "b");
  auto c = start_node(url, sc, "c");
  std::set<std::string> acked;

  emit(*a, 0, 30);
  emit(*b, 100, 30);
  collect(*a, 30, acked);
  collect(*b, 30, acked);
  // c: a burst, killed after some of it was acknowledged, the rest in flight.
  emit(*c, 200, 300);
  collect(*c, 40, acked);
  c->kill(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(c->exit_status()));
  c.reset();

  emit(*a, 30, 50);
  emit(*b, 130, 50);
  collect(*a, 50, acked);
  collect(*b, 50, acked);

  c = start_node(url, sc, "c");  // same store, same origin
  emit(*c, 500, 25);
  collect(*c, 25, acked);

  asio::io_context io;
  std::set<test::EventKey> sets[3];
  bool converged = false;
  // Polled every 100 ms, bounded: a bug fails the test instead of hanging it.
  for (auto deadline = std::chrono::steady_clock::now() + 60s;
       !converged && std::chrono::steady_clock::now() < deadline;) {
    std::this_thread::sleep_for(100ms);
    sets[0] = read_store(io, sa);
    sets[1] = read_store(io, sb);
    sets[2] = read_store(io, sc);
    converged = !sets[0].empty() && sets[0] == sets[1] && sets[1] == sets[2];
  }
  ASSERT_TRUE(converged) << sets[0].size() << " " << sets[1].size() << " " << sets[2].size();
  std::set<std::string> ids;
  for (const auto& k : sets[0]) ids.insert(std::get<0>(k));
  for (const auto& id : acked) EXPECT_TRUE(ids.count(id)) << "acknowledged " << id << " missing";
  EXPECT_GE(ids.size(), acked.size());
  std::cout << "converged: " << ids.size() << " events on each store, " << acked.size()
            << " of them acknowledged to the emitters\n";

  for (auto* p : {a.get(), b.get(), c.get()}) {
    p->kill(SIGTERM);
    EXPECT_TRUE(WIFEXITED(p->exit_status()) && WEXITSTATUS(p->exit_status()) == 0)
        << "status " << p->exit_status();
  }
  for (const auto& path : {sa, sb, sc}) {
    EventLogOptions o;
    o.path = path;
    o.read_only = true;
    EventLog log(io.get_executor(), o);
    auto v = log.verify();
    EXPECT_TRUE(v.ok) << path << ": " << v.reason;
    EXPECT_EQ(v.events, ids.size()) << path;
  }
}

}  // namespace
}  // namespace switchboard
