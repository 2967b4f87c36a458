// A nats-server killed and restarted under a steady act load: the runtime
// reconnects by itself, acts during the outage end quickly with a
// TransportError (or succeed within their timeout), acts succeed again soon
// after the restart, and nothing is left behind in the pending table.
#include <gtest/gtest.h>

#include <map>

#include "support/nats_server.hpp"
#include "support/test_support.hpp"

namespace switchboard {
namespace {

using Clock = std::chrono::steady_clock;

class NatsFaults : public ::testing::Test {
 protected:
  std::unique_ptr<App> app(const std::string& url, std::vector<std::string> plugins) {
    return test::start_app(io, url, std::move(plugins), [](Config& c) {
      auto& t = c.transports.begin()->second;
      t.options["reconnect"] = {{"wait_ms", 100}, {"max_attempts", -1}, {"jitter_ms", 20}};
    });
  }
  asio::io_context io;
};

struct Outcome {
  std::map<std::string, int> by_kind;  // "ok", or the error name and code
  int completed = 0;
  double slowest_failure_ms = 0;
};

TEST_F(NatsFaults, ServerKilledAndRestartedDuringActLoad) {
  test::NatsServer server;
  auto service = app(server.url(), {"math"});
  auto client = app(server.url(), {});
  auto& rt = client->runtime();
  int reconnected = 0;
  rt.on_transport_status([&](const StatusEvent& ev) {
    if (ev.status == TransportStatus::reconnected) ++reconnected;
  });

  // Keeps `in_flight` acts going until told to stop, recording outcomes.
  bool running = true;
  Outcome phase;
  std::function<void()> one = [&] {
    if (!running) return;
    auto start = Clock::now();
    rt.act({{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}, {"timeout$", 1000}},
           [&, start](std::error_code ec, Response r) {
             double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
             ++phase.completed;
             if (!ec && r.result == 3) {
               ++phase.by_kind["ok"];
             } else {
               ++phase.by_kind[r.error ? r.error->name() + "/" + ec.message() : ec.message()];
               phase.slowest_failure_ms = std::max(phase.slowest_failure_ms, ms);
             }
             // Pace the load a little so that the outage sees many acts.
             auto t = std::make_shared<asio::steady_timer>(io, std::chrono::milliseconds(2));
             t->async_wait([t, &one](std::error_code) { one(); });
           });
  };
  for (int i = 0; i < 4; ++i) one();

  auto run_for = [&](std::chrono::milliseconds d) {
    test::run_until(
        io, [] { return false; }, d);
  };
  run_for(std::chrono::milliseconds(700));
  Outcome before = std::exchange(phase, Outcome{});
  EXPECT_GT(before.by_kind["ok"], 20);
  EXPECT_EQ(before.by_kind["ok"], before.completed) << "failures before the outage";

  server.kill();
  run_for(std::chrono::milliseconds(1200));
  Outcome outage = std::exchange(phase, Outcome{});
  EXPECT_GT(outage.completed, 10) << "acts must keep completing during the outage";
  for (const auto& [kind, count] : outage.by_kind) {
    bool allowed = kind == "ok" || kind.rfind("TransportError/", 0) == 0 ||
                   kind.rfind("TimeoutError/", 0) == 0;
    EXPECT_TRUE(allowed) << kind << " x" << count;
  }
  EXPECT_LE(outage.slowest_failure_ms, 1000 + 250) << "a failure took longer than its timeout";
  int timeouts = 0;
  for (const auto& [kind, count] : outage.by_kind) {
    if (kind.rfind("TimeoutError/", 0) == 0) timeouts += count;
  }
  EXPECT_LT(timeouts, outage.completed / 2) << "most outage acts should fail fast, not time out";

  server.start();
  auto restarted = Clock::now();
  ASSERT_TRUE(test::run_until(
      io, [&] { return phase.by_kind["ok"] >= 5; }, std::chrono::seconds(5)))
      << "acts did not succeed again within 5 s of the restart";
  double recovery_ms = std::chrono::duration<double, std::milli>(Clock::now() - restarted).count();
  std::printf("outage: %d acts (%d timeouts), recovered %.0f ms after restart\n", outage.completed,
              timeouts, recovery_ms);
  EXPECT_GE(reconnected, 1);

  running = false;
  ASSERT_TRUE(test::run_until(io, [&] { return rt.pending_requests() == 0; }));
  EXPECT_EQ(service->runtime().inflight_handlers(), 0u);
  test::close(io, rt);
  test::close(io, service->runtime());
}

TEST_F(NatsFaults, UnreachableServerFailsAtStartWithTheUrl) {
  int port = test::free_loopback_port();
  Config c = test::test_config("nats://127.0.0.1:" + std::to_string(port));
  c.transports.begin()->second.options["connect_timeout_ms"] = 300;
  App app(io, std::move(c));
  try {
    app.start();
    FAIL() << "start() should fail without a server";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(std::to_string(port)), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace switchboard
