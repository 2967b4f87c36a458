// The event log tests' fixture: a fresh directory per test for SQLite, and
// helpers that emit and wait. Shared by the SQLite-only tests
// (tests/unit/event_log_test.cpp) and the behaviour suite that runs on
// every backend (tests/integration/event_log_backends.hpp).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include "support/test_dir.hpp"
#include "support/test_support.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard::test {

namespace fs = std::filesystem;

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fresh_test_dir("sb-events");
    path_ = (dir_ / "events.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  virtual std::unique_ptr<EventLog> open(EventLogOptions o = {}) {
    o.path = path_;
    return std::make_unique<EventLog>(io_.get_executor(), o);
  }

  struct Emitted {
    bool done = false;
    std::error_code ec;
    EmitResult r;
  };
  Emitted emit(EventLog& log, const std::string& type, Json payload) {
    auto out = std::make_shared<Emitted>();
    log.emit(type, std::move(payload), [out](std::error_code ec, EmitResult r) {
      out->done = true;
      out->ec = ec;
      out->r = std::move(r);
    });
    EXPECT_TRUE(run_until(io_, [&] { return out->done; }));
    return *out;
  }
  // Emits n events at once (one group commit or a few) and waits for all.
  void emit_many(EventLog& log, int first, int last,
                 const std::function<std::pair<std::string, Json>(int)>& make) {
    int done = 0, failed = 0;
    for (int i = first; i <= last; ++i) {
      auto [type, payload] = make(i);
      log.emit(type, payload, [&](std::error_code ec, EmitResult) {
        ++done;
        if (ec) ++failed;
      });
    }
    ASSERT_TRUE(run_until(io_, [&] { return done == last - first + 1; }));
    EXPECT_EQ(failed, 0);
  }
  // Runs the io_context a little, for deliveries that should (not) happen.
  void settle() {
    io_.restart();
    io_.run_for(std::chrono::milliseconds(50));
  }

  asio::io_context io_;
  fs::path dir_;
  std::string path_;
};

inline StreamOptions opts(StreamFrom from, std::string type = {}, std::string consumer = {}) {
  StreamOptions o;
  o.from = from;
  o.type = std::move(type);
  o.consumer = std::move(consumer);
  return o;
}

inline const Json kOrderSchema = {{"amount", {{"type", "number"}, {"required", true}}},
                                  {"sku", {{"type", "string"}, {"minLength", 1}}}};

}  // namespace switchboard::test
