// Shared test helpers: apps on a private inproc bus, and running the
// io_context until an async result arrives (bounded, so a bug fails the
// test instead of hanging it).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "switchboard/app.hpp"

namespace switchboard::test {

// The build tree's plugin directory (set by tests/CMakeLists.txt).
// `  NAME: {url: 'URL'}`: one transport instance of a YAML config's
// `transports:` map.
inline std::string instance_yaml(const std::string& name, const std::string& url) {
  return "  " + name + ": {url: '" + url + "'}\n";
}

inline std::string plugin_dir() {
  return SWITCHBOARD_TEST_PLUGIN_DIR;
}

// A bus name no other test uses.
inline std::string unique_url(const std::string& scheme = "inproc://") {
  static int counter = 0;
  return scheme + ::testing::UnitTest::GetInstance()->current_test_info()->name() + "-" +
         std::to_string(++counter);
}

inline Config test_config(const std::string& url, std::vector<std::string> plugins = {}) {
  Config c = config_from_url(url, std::move(plugins));
  c.plugin_path = {plugin_dir()};
  c.log.level = "warn";
  return c;
}

// Runs `io` until `done()` or the deadline; returns whether done.
inline bool run_until(asio::io_context& io, const std::function<bool()>& done,
                      std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_for(std::chrono::milliseconds(5));
    io.restart();
  }
  return true;
}

struct ActResult {
  bool done = false;
  std::error_code ec;
  Response response;
};

// act and wait for the completion.
inline ActResult act(asio::io_context& io, Runtime& rt, Json pattern) {
  auto result = std::make_shared<ActResult>();
  rt.act(std::move(pattern), [result](std::error_code ec, Response r) {
    result->ec = ec;
    result->response = std::move(r);
    result->done = true;
  });
  EXPECT_TRUE(run_until(io, [&] { return result->done; })) << "act did not complete";
  return *result;
}

// Lets queued deliveries run (for asserting that nothing more arrives).
inline void settle(asio::io_context& io,
                   std::chrono::milliseconds d = std::chrono::milliseconds(50)) {
  io.restart();
  io.run_for(d);
}

inline void close(asio::io_context& io, Runtime& rt) {
  bool closed = false;
  rt.close([&] { closed = true; });
  EXPECT_TRUE(run_until(io, [&] { return closed; })) << "close did not complete";
}

// A started app on `url` (a fresh bus by default) with the given plugins.
inline std::unique_ptr<App> start_app(asio::io_context& io, const std::string& url,
                                      std::vector<std::string> plugins = {},
                                      std::function<void(Config&)> tweak = nullptr) {
  Config c = test_config(url, std::move(plugins));
  if (tweak) tweak(c);
  auto app = std::make_unique<App>(io, std::move(c));
  app->start();
  return app;
}

}  // namespace switchboard::test
