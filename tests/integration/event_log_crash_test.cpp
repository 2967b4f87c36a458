// kill -9 in the middle of emits: a child process emits with many events in
// flight and writes each acknowledged (sequence, id) to a pipe; the parent
// kills it at a random moment, reopens the store and checks that every
// acknowledged event is there, unchanged, and that the chain verifies (no
// torn event). Several rounds on one store: each restart continues the
// chain the crash left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;

EventLogOptions options(const std::string& path) {
  EventLogOptions o;
  o.path = path;
  return o;
}

// The child: never returns.
[[noreturn]] void emit_forever(const std::string& path, int out_fd, int round) {
  try {
    asio::io_context io;
    EventLog log(io.get_executor(), options(path));
    log.declare("crash.test", {{"round", {{"type", "integer"}, {"required", true}}},
                               {"n", {{"type", "integer"}, {"required", true}}}});
    long n = 0;
    std::function<void()> one;
    one = [&] {
      log.emit("crash.test", {{"round", round}, {"n", n++}}, [&](std::error_code ec, EmitResult r) {
        if (ec) {
          std::string msg = "error " + ec.message() + "\n";
          (void)!::write(out_fd, msg.data(), msg.size());
          ::_exit(3);
        }
        // One write per line: whole lines in the pipe (< PIPE_BUF).
        std::string line = std::to_string(r.sequence) + " " + r.id + "\n";
        if (::write(out_fd, line.data(), line.size()) < 0) ::_exit(4);
        one();
      });
    };
    for (int i = 0; i < 512; ++i) one();  // many in flight: group commits
    io.run();
  } catch (const std::exception& e) {
    std::string msg = std::string("error ") + e.what() + "\n";
    (void)!::write(out_fd, msg.data(), msg.size());
  }
  ::_exit(2);
}

TEST(EventLogCrash, KillNineLosesNoAcknowledgedEventAndLeavesNoTornOne) {
  fs::path dir = fs::temp_directory_path() / ("sb-events-crash-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string path = (dir / "events.db").string();
  std::mt19937 rng(std::random_device{}());
  std::map<std::uint64_t, std::string> acknowledged;  // over all rounds

  for (int round = 1; round <= 4; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(fds[0]);
      emit_forever(path, fds[1], round);
    }
    ::close(fds[1]);
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);

    // Read acknowledgements until the first arrives, then for a random
    // while, then kill -9 without warning.
    std::string text;
    auto read_some = [&] {
      char buf[65536];
      for (;;) {
        ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) {
          text.append(buf, static_cast<std::size_t>(n));
        } else {
          return n == 0;  // true: end of pipe
        }
      }
    };
    auto start = std::chrono::steady_clock::now();
    while (text.find('\n') == std::string::npos) {
      ASSERT_FALSE(read_some()) << "the child exited early: " << text;
      ASSERT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20))
          << "no acknowledgement from the child";
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    auto kill_at = std::chrono::steady_clock::now() +
                   std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 700)(rng));
    while (std::chrono::steady_clock::now() < kill_at) {
      read_some();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child ended by itself: " << text.substr(text.rfind('\n', text.size() - 2) + 1);
    while (!read_some()) {
    }
    ::close(fds[0]);

    std::istringstream lines(text);
    std::string line;
    std::size_t this_round = 0;
    while (std::getline(lines, line)) {
      ASSERT_NE(line.rfind("error", 0), 0u) << line;
      std::istringstream fields(line);
      std::uint64_t seq = 0;
      std::string id;
      fields >> seq >> id;
      ASSERT_GT(seq, 0u) << line;
      acknowledged[seq] = id;
      ++this_round;
    }

    // Reopen: every acknowledged event is there with its id, the chain holds.
    asio::io_context io;
    EventLog log(io.get_executor(), options(path));
    std::uint64_t last = log.last_sequence();
    ASSERT_GE(last, acknowledged.rbegin()->first);
    std::map<std::uint64_t, std::string> stored;
    std::error_code ec;
    for (std::uint64_t from = 1; from <= last;) {
      std::size_t n = log.read(
          from, 100000, [&](const Event& e) { stored[e.sequence] = e.id; }, ec);
      ASSERT_FALSE(ec);
      ASSERT_GT(n, 0u);
      from += n;
    }
    std::size_t missing = 0;
    for (auto& [seq, id] : acknowledged) {
      auto it = stored.find(seq);
      if (it == stored.end() || it->second != id) ++missing;
    }
    EXPECT_EQ(missing, 0u) << "acknowledged events lost or changed in round " << round;
    VerifyResult v = log.verify();
    EXPECT_TRUE(v.ok) << "round " << round << ": first bad " << v.first_bad << ": " << v.reason;
    EXPECT_EQ(v.events, last);
    std::cout << "round " << round << ": " << this_round << " acknowledged, " << last
              << " stored in all, " << (last - acknowledged.rbegin()->first)
              << " committed but not yet acknowledged at the kill\n";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace switchboard
