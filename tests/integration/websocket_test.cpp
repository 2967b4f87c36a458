// The websocket transport in one process: a hub and its clients on free
// loopback ports, and raw WebSocket clients (Boost.Beast, on a thread of
// their own) that speak the protocol of docs/websocket.md the way a browser
// or a program in another language would.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <map>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "support/nats_server.hpp"  // free_loopback_port
#include "support/test_support.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace ws = beast::websocket;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A WebSocket client outside the transport, with its own io_context; each
// call runs to completion (or a 5 s limit) on the calling thread.
class RawClient {
 public:
  beast::error_code connect(int port, const std::string& target = "/",
                            std::map<http::field, std::string> headers = {}) {
    stream_ = std::make_unique<ws::stream<beast::tcp_stream>>(io_);
    beast::error_code ec;
    beast::get_lowest_layer(*stream_).socket().connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
    if (ec) return ec;
    stream_->set_option(ws::stream_base::decorator([headers](ws::request_type& req) {
      for (const auto& [field, value] : headers) req.set(field, value);
    }));
    return run([&](auto done) {
      stream_->async_handshake(response, "127.0.0.1:" + std::to_string(port), target, done);
    });
  }
  beast::error_code send(const std::string& frame, bool binary = false) {
    stream_->binary(binary);
    return run([&](auto done) { stream_->async_write(asio::buffer(frame), done); });
  }
  // The next message; an empty optional when the connection ended (ec says why).
  std::optional<Json> read(beast::error_code* why = nullptr,
                           std::chrono::milliseconds limit = 5000ms) {
    beast::flat_buffer buffer;
    auto ec = run([&](auto done) { stream_->async_read(buffer, done); }, limit);
    if (why) *why = ec;
    if (ec) return std::nullopt;
    auto bytes = beast::buffers_to_string(buffer.data());
    if (stream_->got_binary()) return Json::from_msgpack(bytes, true, false);
    return Json::parse(bytes, nullptr, false);
  }
  // Reads until a frame with this op (skipping others such as info).
  std::optional<Json> read_op(const std::string& op) {
    for (int i = 0; i < 100; ++i) {
      auto j = read();
      if (!j) return j;
      if (j->value("op", "") == op) return j;
    }
    return std::nullopt;
  }
  ws::close_reason close_reason() const { return stream_->reason(); }
  void drop() {
    beast::error_code ec;
    beast::get_lowest_layer(*stream_).socket().close(ec);
  }
  tcp::socket& socket() { return beast::get_lowest_layer(*stream_).socket(); }

  ws::response_type response;

 private:
  template <class Start>
  beast::error_code run(Start start, std::chrono::milliseconds limit = 5000ms) {
    beast::error_code result = asio::error::timed_out;
    bool done = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    io_.restart();
    io_.run_for(limit);
    if (!done) {
      beast::get_lowest_layer(*stream_).socket().close();
      io_.restart();
      io_.run_for(1000ms);
    }
    return result;
  }

  asio::io_context io_;
  std::unique_ptr<ws::stream<beast::tcp_stream>> stream_;
};

// GET path on the port: the status (0 when no answer).
unsigned http_get(int port, const std::string& path) {
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  stream.socket().connect(
      tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)), ec);
  if (ec) return 0;
  http::request<http::empty_body> req{http::verb::get, path, 11};
  req.set(http::field::host, "127.0.0.1");
  http::write(stream, req, ec);
  if (ec) return 0;
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res, ec);
  return ec ? 0 : res.result_int();
}

class WebSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port = test::free_loopback_port();
    url = "ws://127.0.0.1:" + std::to_string(port);
  }

  void TearDown() override {
    for (auto& t : opened) {
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, 5s);
    }
  }

  std::shared_ptr<Transport> open(const std::string& mode, Json options = Json::object(),
                                  std::size_t max_payload = 1024 * 1024) {
    TransportConfig config;
    config.instance = mode;
    config.type = "websocket";
    config.url = url;
    options["mode"] = mode;
    config.options = std::move(options);
    config.max_payload = max_payload;
    auto t = host.create_transport(config, TransportContext{io.get_executor()});
    t->on_status([this](const StatusEvent& ev) { statuses.push_back(ev); });
    auto ec = t->connect();
    EXPECT_FALSE(ec) << "connect " << url << ": " << ec.message();
    opened.push_back(t);
    return t;
  }

  std::unique_ptr<Subscription> subscribe(Transport& t, const std::string& subject,
                                          const std::string& queue,
                                          std::function<void(Message)> handler) {
    std::unique_ptr<Subscription> sub;
    auto ec = t.subscribe(subject, queue, std::move(handler), sub);
    EXPECT_FALSE(ec) << ec.message();
    test::settle(io, 100ms);
    return sub;
  }

  static Message message(std::string subject, std::string data, std::string reply_to = "") {
    Message m;
    m.subject = std::move(subject);
    m.data = Payload(std::move(data));
    m.reply_to = std::move(reply_to);
    return m;
  }

  // Runs `work` on a thread while this thread runs the transports.
  template <class F>
  auto on_thread(F work, std::chrono::milliseconds limit = 15s) {
    auto future = std::async(std::launch::async, std::move(work));
    EXPECT_TRUE(test::run_until(
        io, [&] { return future.wait_for(0ms) == std::future_status::ready; }, limit));
    return future.get();
  }

  bool saw_status(TransportStatus s) const {
    for (const auto& ev : statuses) {
      if (ev.status == s) return true;
    }
    return false;
  }

  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  int port = 0;
  std::string url;
  std::vector<std::shared_ptr<Transport>> opened;
  std::vector<StatusEvent> statuses;
};

TEST_F(WebSocketTest, HubAndTwoClientsPublishAndSubscribe) {
  auto hub = open("listen");
  auto a = open("connect", {{"frames", "json"}});
  auto b = open("connect", {{"frames", "msgpack"}});
  std::map<std::string, std::vector<std::string>> got;
  auto sh = subscribe(*hub, "news.*", "",
                      [&](Message m) { got["hub"].push_back(std::string(m.data.view())); });
  auto sa = subscribe(*a, "news.*", "",
                      [&](Message m) { got["a"].push_back(std::string(m.data.view())); });
  auto sb = subscribe(*b, "news.>", "", [&](Message m) {
    got["b"].push_back(std::string(m.data.view()));
    EXPECT_EQ(m.headers["x-from"], "a");
  });
  std::string binary("bin\0ary\xff", 8);
  auto m = message("news.today", binary);
  m.headers["x-from"] = "a";
  ASSERT_FALSE(a->publish(m));
  ASSERT_TRUE(test::run_until(
      io, [&] { return got["hub"].size() == 1 && got["a"].size() == 1 && got["b"].size() == 1; }));
  EXPECT_EQ(got["hub"][0], binary);
  EXPECT_EQ(got["a"][0], binary);  // a hears its own message, as on NATS
  EXPECT_EQ(got["b"][0], binary);
  // From the hub, and from the msgpack client to the JSON one.
  auto from_hub = message("news.hub", "{\"json\":\"text\"}");
  from_hub.headers["x-from"] = "a";
  ASSERT_FALSE(hub->publish(from_hub));
  ASSERT_TRUE(test::run_until(io, [&] { return got["a"].size() == 2 && got["b"].size() == 2; }));
  EXPECT_EQ(got["a"][1], "{\"json\":\"text\"}");
  EXPECT_TRUE(hub->capabilities().no_responders);
  EXPECT_FALSE(a->capabilities().no_responders);
}

TEST_F(WebSocketTest, QueueGroupDeliversExactlyOnceAcrossHubAndClients) {
  auto hub = open("listen");
  auto a = open("connect");
  auto b = open("connect", {{"frames", "json"}});
  std::map<std::string, int> times;
  std::map<std::string, int> per_member;
  auto count = [&](const char* who) {
    return [&, who](Message m) {
      ++times[std::string(m.data.view())];
      ++per_member[who];
    };
  };
  auto s1 = subscribe(*hub, "work", "workers", count("hub"));
  auto s2 = subscribe(*a, "work", "workers", count("a"));
  auto s3 = subscribe(*b, "work", "workers", count("b"));
  constexpr int kMessages = 300;
  for (int i = 0; i < kMessages; ++i) {
    ASSERT_FALSE((i % 2 ? a : hub)->publish(message("work", std::to_string(i))));
  }
  ASSERT_TRUE(test::run_until(io, [&] { return times.size() == kMessages; }));
  test::settle(io, 200ms);
  for (const auto& [msg, n] : times) EXPECT_EQ(n, 1) << "message " << msg;
  EXPECT_GT(per_member["hub"], 0);
  EXPECT_GT(per_member["a"], 0);
  EXPECT_GT(per_member["b"], 0);
}

TEST_F(WebSocketTest, RequestReplyThroughTheHub) {
  // Three runtimes on one URL: the first listens, the others join it.
  auto hub = test::start_app(io, url);
  auto service = test::start_app(io, url, {"math"});
  auto caller = test::start_app(io, url);
  test::settle(io, 200ms);
  auto r =
      test::act(io, caller->runtime(), {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 3);
  auto h = test::act(io, hub->runtime(), {{"topic", "math"}, {"cmd", "add"}, {"a", 20}, {"b", 22}});
  ASSERT_FALSE(h.ec) << h.ec.message();
  EXPECT_EQ(h.response.result, 42);
  // Nobody serves the topic: the hub tells the client at once.
  auto start = std::chrono::steady_clock::now();
  auto none = test::act(io, caller->runtime(), {{"topic", "nobody"}, {"timeout$", 5000}});
  EXPECT_EQ(none.ec, errc::no_responders);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  test::close(io, caller->runtime());
  test::close(io, service->runtime());
  test::close(io, hub->runtime());
}

TEST_F(WebSocketTest, RawJsonClientSpeaksTheProtocol) {
  auto hub = open("listen");
  std::string got;
  auto sh = subscribe(*hub, "greet.back", "", [&](Message m) { got = m.data.view(); });
  RawClient raw;
  ASSERT_FALSE(on_thread([&] { return raw.connect(port); }));
  auto info = on_thread([&] { return raw.read(); });
  ASSERT_TRUE(info);
  EXPECT_EQ((*info)["op"], "info");
  EXPECT_EQ((*info)["max_payload"], 1024 * 1024);
  ASSERT_FALSE(on_thread([&] { return raw.send(R"({"op":"sub","sid":7,"subject":"greet"})"); }));
  test::settle(io, 100ms);
  ASSERT_FALSE(hub->publish(message("greet", "hello", "greet.back")));
  auto msg = on_thread([&] { return raw.read_op("msg"); });
  ASSERT_TRUE(msg);
  EXPECT_EQ((*msg)["sid"], 7);
  EXPECT_EQ((*msg)["subject"], "greet");
  EXPECT_EQ((*msg)["reply_to"], "greet.back");
  EXPECT_EQ((*msg)["data"], "hello");
  // data as a JSON value is sent as its JSON text.
  ASSERT_FALSE(on_thread(
      [&] { return raw.send(R"({"op":"pub","subject":"greet.back","data":{"a":[1,2]}})"); }));
  ASSERT_TRUE(test::run_until(io, [&] { return !got.empty(); }));
  EXPECT_EQ(got, R"({"a":[1,2]})");
  got.clear();
  ASSERT_FALSE(on_thread(
      [&] { return raw.send(R"({"op":"pub","subject":"greet.back","data_b64":"AP8="})"); }));
  ASSERT_TRUE(test::run_until(io, [&] { return !got.empty(); }));
  EXPECT_EQ(got, std::string("\0\xff", 2));
  ASSERT_FALSE(on_thread([&] { return raw.send(R"({"op":"ping"})"); }));
  EXPECT_TRUE(on_thread([&] { return raw.read_op("pong"); }));
  // A bad subject is refused without closing the connection.
  ASSERT_FALSE(on_thread([&] { return raw.send(R"({"op":"sub","sid":8,"subject":"a..b"})"); }));
  auto err = on_thread([&] { return raw.read_op("err"); });
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["code"], "bad_subject");
  EXPECT_EQ((*err)["fatal"], false);
  EXPECT_EQ((*err)["sid"], 8);
  ASSERT_FALSE(on_thread([&] { return raw.send(R"({"op":"ping"})"); }));
  EXPECT_TRUE(on_thread([&] { return raw.read_op("pong"); }));
}

TEST_F(WebSocketTest, HealthIsOkWhileServingAnd503WhileClosing) {
  auto hub = open("listen", {{"handshake_timeout_ms", 1500}});
  EXPECT_EQ(on_thread([&] { return http_get(port, "/health"); }), 200u);
  EXPECT_EQ(on_thread([&] { return http_get(port, "/other"); }), 426u);
  // A client that will not answer the close handshake keeps the hub closing.
  RawClient stuck;
  ASSERT_FALSE(on_thread([&] { return stuck.connect(port); }));
  bool closed = false;
  hub->close([&] { closed = true; });
  opened.clear();
  test::settle(io, 50ms);
  EXPECT_EQ(on_thread([&] { return http_get(port, "/health"); }), 503u);
  EXPECT_TRUE(test::run_until(
      io, [&] { return closed; }, 5s));
  EXPECT_EQ(on_thread([&] { return http_get(port, "/health"); }), 0u);  // gone
}

TEST_F(WebSocketTest, WrongOrMissingTokenIsRefused) {
  auto hub = open("listen", {{"token", "s3cret"}});
  RawClient none, wrong, query, header;
  auto ec = on_thread([&] { return none.connect(port); });
  EXPECT_TRUE(ec);
  EXPECT_EQ(none.response.result_int(), 401u);
  on_thread([&] { return wrong.connect(port, "/?token=nope"); });
  EXPECT_EQ(wrong.response.result_int(), 401u);
  EXPECT_FALSE(on_thread([&] { return query.connect(port, "/?token=s3cret"); }));
  EXPECT_FALSE(on_thread([&] {
    return header.connect(port, "/", {{http::field::authorization, "Bearer s3cret"}});
  }));
  // A transport with the right token joins; one with a wrong one gives up.
  auto good = open("connect", {{"token", "s3cret"}});
  std::string got;
  auto s = subscribe(*good, "t", "", [&](Message m) { got = m.data.view(); });
  ASSERT_FALSE(hub->publish(message("t", "in")));
  EXPECT_TRUE(test::run_until(io, [&] { return got == "in"; }));
  statuses.clear();
  auto bad = open("connect", {{"token", "wrong"}});
  EXPECT_TRUE(test::run_until(io, [&] { return saw_status(TransportStatus::error); }));
  EXPECT_EQ(bad->publish(message("t", "x")), errc::disconnected);
}

TEST_F(WebSocketTest, OriginOutsideTheAllowListIsRefused) {
  auto hub = open("listen", {{"allowed_origins", {"https://good.example"}}});
  RawClient evil, good, no_origin;
  on_thread([&] {
    return evil.connect(port, "/", {{http::field::origin, "https://evil.example"}});
  });
  EXPECT_EQ(evil.response.result_int(), 403u);
  EXPECT_FALSE(on_thread([&] {
    return good.connect(port, "/", {{http::field::origin, "https://good.example"}});
  }));
  EXPECT_FALSE(on_thread([&] { return no_origin.connect(port); }));  // not a browser
}

TEST_F(WebSocketTest, MalformedFrameClosesOnlyThatClient) {
  auto hub = open("listen");
  auto client = open("connect");
  int got = 0;
  auto s = subscribe(*client, "still", "", [&](Message) { ++got; });
  RawClient raw;
  ASSERT_FALSE(on_thread([&] { return raw.connect(port); }));
  ASSERT_FALSE(on_thread([&] { return raw.send("{\"op\":\"pub\",\"subject\":"); }));
  auto err = on_thread([&] { return raw.read_op("err"); });
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["code"], "bad_frame");
  EXPECT_EQ((*err)["fatal"], true);
  EXPECT_NE((*err)["message"].get<std::string>().find("not JSON"), std::string::npos);
  beast::error_code why;
  EXPECT_FALSE(on_thread([&] { return raw.read(&why); }));
  EXPECT_EQ(why, ws::error::closed);
  EXPECT_EQ(raw.close_reason().code, ws::close_code::bad_payload);
  // Unknown ops and binary garbage are malformed too.
  RawClient raw2;
  ASSERT_FALSE(on_thread([&] { return raw2.connect(port); }));
  ASSERT_FALSE(on_thread([&] { return raw2.send(std::string("\xc1\x00", 2), true); }));
  auto err2 = on_thread([&] { return raw2.read_op("err"); });
  ASSERT_TRUE(err2);  // in MessagePack, the format the client used
  EXPECT_EQ((*err2)["code"], "bad_frame");
  // Everyone else is still served.
  ASSERT_FALSE(hub->publish(message("still", "x")));
  EXPECT_TRUE(test::run_until(io, [&] { return got == 1; }));
}

TEST_F(WebSocketTest, OversizeMessagesAreRefused) {
  constexpr std::size_t kMax = 1024;
  auto hub = open("listen", {{"max_message_bytes", 4096}}, kMax);
  // Above max_payload but within the message limit: refused, connection kept.
  RawClient raw;
  ASSERT_FALSE(on_thread([&] { return raw.connect(port); }));
  std::string big(2000, 'x');
  ASSERT_FALSE(
      on_thread([&] { return raw.send(R"({"op":"pub","subject":"big","data":")" + big + "\"}"); }));
  auto err = on_thread([&] { return raw.read_op("err"); });
  ASSERT_TRUE(err);
  EXPECT_EQ((*err)["code"], "payload_too_large");
  EXPECT_EQ((*err)["fatal"], false);
  // Above the message limit: the connection is closed with 1009.
  std::string huge(8000, 'x');
  on_thread([&] { return raw.send(R"({"op":"pub","subject":"big","data":")" + huge + "\"}"); });
  beast::error_code why;
  EXPECT_FALSE(on_thread([&] { return raw.read(&why); }));
  EXPECT_EQ(raw.close_reason().code, ws::close_code::too_big);
  // The transport itself refuses above max_payload.
  auto client = open("connect", {}, kMax);
  EXPECT_EQ(client->publish(message("big", std::string(kMax + 1, 'x'))), errc::payload_too_large);
  EXPECT_FALSE(client->publish(message("big", std::string(kMax, 'x'))));
}

TEST_F(WebSocketTest, SlowConsumerIsCutOff) {
  auto hub = open("listen", {{"max_outbound_bytes", 1024 * 1024}, {"handshake_timeout_ms", 1000}});
  auto fast = open("connect");
  std::size_t fast_got = 0;
  auto fs = subscribe(*fast, "flood", "", [&](Message) { ++fast_got; });
  RawClient slow;
  ASSERT_FALSE(on_thread([&] { return slow.connect(port); }));
  ASSERT_FALSE(on_thread([&] { return slow.send(R"({"op":"sub","sid":1,"subject":"flood"})"); }));
  test::settle(io, 100ms);
  // 32 MiB to a client that reads nothing: more than the socket buffers hold.
  constexpr std::size_t kCount = 512;
  std::string chunk(64 * 1024, 'z');
  for (std::size_t i = 0; i < kCount; ++i) {
    // Paced by the fast client, which keeps up; the slow one falls behind.
    ASSERT_TRUE(test::run_until(io, [&] { return fast_got + 4 >= i; }));
    ASSERT_FALSE(hub->publish(message("flood", chunk)));
  }
  EXPECT_TRUE(test::run_until(io, [&] { return saw_status(TransportStatus::slow_consumer); }));
  EXPECT_TRUE(test::run_until(
      io, [&] { return fast_got == kCount; }, 20s));
  // The slow one finds its connection ended before it got everything.
  int read = on_thread([&] {
    int n = 0;
    while (auto j = slow.read(nullptr, 3000ms)) ++n;
    return n;
  });
  EXPECT_LT(static_cast<std::size_t>(read), kCount);
}

TEST_F(WebSocketTest, ClientThatNeverFinishesTheHandshakeIsDropped) {
  auto hub = open("listen", {{"handshake_timeout_ms", 300}});
  auto start = std::chrono::steady_clock::now();
  bool dropped = on_thread([&] {
    asio::io_context io2;
    tcp::socket s(io2);
    s.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
    asio::write(s, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n")));  // never ends
    char c;
    beast::error_code ec;
    s.read_some(asio::buffer(&c, 1), ec);  // EOF when the hub drops it
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  });
  EXPECT_TRUE(dropped);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(on_thread([&] { return http_get(port, "/health"); }), 200u);
}

TEST_F(WebSocketTest, SilentClientIsDroppedAfterTheIdleTimeout) {
  // A client that sends nothing is pinged; when the ping gets no answer
  // either, the hub drops it (idle_timeout_ms, the keep-alive).
  auto hub = open("listen", {{"idle_timeout_ms", 200}});
  RawClient raw;
  ASSERT_FALSE(on_thread([&] { return raw.connect(port); }));
  bool dropped = on_thread([&] {
    // Bytes below the WebSocket layer: the ping arrives and is never
    // answered. Ten seconds without the end count as never.
    int fd = raw.socket().native_handle();
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);  // Asio made it non-blocking
    timeval limit{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    char buf[512];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) return true;                // the hub closed it
      if (n < 0) return errno == ECONNRESET;  // else the limit passed
    }
  });
  EXPECT_TRUE(dropped);
  EXPECT_EQ(on_thread([&] { return http_get(port, "/health"); }), 200u);
}

TEST_F(WebSocketTest, QuietClientIsKeptAliveByPings) {
  // Nothing to say for several idle timeouts: the pings of both sides are
  // answered, so the link stays up and still carries messages.
  auto hub = open("listen", {{"idle_timeout_ms", 200}});
  auto client = open("connect", {{"idle_timeout_ms", 200}});
  std::string got;
  auto sub = subscribe(*hub, "later", "", [&](Message m) { got = m.data.view(); });
  test::settle(io, 1000ms);
  ASSERT_FALSE(client->publish(message("later", "still here")));
  ASSERT_TRUE(test::run_until(io, [&] { return !got.empty(); }));
  EXPECT_EQ(got, "still here");
  EXPECT_FALSE(saw_status(TransportStatus::disconnected));
}

TEST_F(WebSocketTest, ClientReconnectsAfterServerRestart) {
  auto hub = open("listen");
  auto client = open("connect", {{"reconnect", {{"wait_ms", 100}}}});
  std::vector<std::string> got;
  auto s = subscribe(*client, "up", "", [&](Message m) { got.emplace_back(m.data.view()); });
  ASSERT_FALSE(hub->publish(message("up", "1")));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 1; }));
  bool closed = false;
  hub->close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
  opened.erase(opened.begin());
  hub.reset();
  ASSERT_TRUE(test::run_until(io, [&] { return saw_status(TransportStatus::disconnected); }));
  // Published while the server is away: sent once the client is back.
  ASSERT_FALSE(client->publish(message("back", "queued")));
  test::settle(io, 300ms);
  statuses.clear();
  auto hub2 = open("listen");
  std::vector<std::string> back;
  std::unique_ptr<Subscription> s2;
  ASSERT_FALSE(hub2->subscribe(
      "back", "", [&](Message m) { back.emplace_back(m.data.view()); }, s2));
  ASSERT_TRUE(test::run_until(io, [&] { return saw_status(TransportStatus::reconnected); }));
  test::settle(io, 100ms);
  // The client subscribed again on its own.
  ASSERT_FALSE(hub2->publish(message("up", "2")));
  ASSERT_TRUE(test::run_until(io, [&] { return got.size() == 2; }));
  EXPECT_EQ(got[1], "2");
  ASSERT_FALSE(client->publish(message("back", "again")));
  ASSERT_TRUE(test::run_until(io, [&] { return back.size() == 2; }));
  EXPECT_EQ(back, (std::vector<std::string>{"queued", "again"}));
}

TEST_F(WebSocketTest, RequestIsSentAgainAfterAReconnect) {
  auto hub = open("listen");
  auto requester = open("connect", {{"reconnect", {{"wait_ms", 100}}},
                                    {"request", {{"retries", 2}, {"timeout_ms", 5000}}}});
  int calls = 0;
  // The first server takes the request and never answers (it goes down).
  auto lost = subscribe(*hub, "svc", "", [&](Message) { ++calls; });
  std::string reply;
  auto is = subscribe(*requester, "inbox.*", "", [&](Message m) { reply = m.data.view(); });
  ASSERT_FALSE(requester->publish(message("svc", "q", "inbox.1")));
  ASSERT_TRUE(test::run_until(io, [&] { return calls == 1; }));
  bool closed = false;
  hub->close([&] { closed = true; });
  ASSERT_TRUE(test::run_until(io, [&] { return closed; }));
  opened.erase(opened.begin());
  hub.reset();
  // The next one answers; the requester sends the request again to it.
  auto hub2 = open("listen");
  std::unique_ptr<Subscription> answers;
  ASSERT_FALSE(hub2->subscribe(
      "svc", "",
      [&](Message m) {
        ++calls;
        hub2->publish(message(m.reply_to, "answer"));
      },
      answers));
  EXPECT_TRUE(test::run_until(io, [&] { return reply == "answer"; }));
  EXPECT_EQ(calls, 2);
}

TEST_F(WebSocketTest, TlsWithACertificateOfItsOwn) {
  auto dir = std::filesystem::temp_directory_path() / ("sb-ws-tls-" + std::to_string(port));
  std::filesystem::create_directories(dir);
  auto cert = (dir / "cert.pem").string(), key = (dir / "key.pem").string();
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl cannot make a certificate";
  url = "wss://127.0.0.1:" + std::to_string(port);
  auto hub = open("listen", {{"tls", {{"cert", cert}, {"key", key}}}});
  auto client = open("connect", {{"tls", {{"ca", cert}}}});
  std::string got;
  auto s = subscribe(*client, "secure", "", [&](Message m) { got = m.data.view(); });
  ASSERT_FALSE(hub->publish(message("secure", "over tls")));
  EXPECT_TRUE(test::run_until(io, [&] { return got == "over tls"; }));
  // Without the CA, the certificate does not verify: no connection.
  statuses.clear();
  auto untrusting = open("connect", {{"reconnect", {{"max_attempts", 0}}}});
  EXPECT_TRUE(test::run_until(io, [&] { return saw_status(TransportStatus::error); }));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace switchboard
