// The tcp_peer mesh with several nodes in one process, on free loopback
// ports: interest propagation, routes completed by gossip, queue groups
// exactly once across the mesh, request/reply across nodes, dead and
// restarted peers, the token, bad clients (raw sockets) and slow
// consumers. Plus the frame codec on its own.
#include <gtest/gtest.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "frame.hpp"
#include "support/nats_server.hpp"  // free_loopback_port()
#include "support/test_support.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_host.hpp"

namespace switchboard {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;
namespace tp = tcp_peer;

std::string url_of(int port) {
  return "tcp://127.0.0.1:" + std::to_string(port);
}

Message message(std::string subject, std::string data, std::string reply_to = "") {
  Message m;
  m.subject = std::move(subject);
  m.data = Payload(std::move(data));
  m.reply_to = std::move(reply_to);
  return m;
}

// One node of the mesh and the status events it reported.
struct TestNode {
  std::shared_ptr<Transport> transport;
  std::shared_ptr<std::vector<StatusEvent>> events = std::make_shared<std::vector<StatusEvent>>();

  Transport* operator->() const { return transport.get(); }
  int count(TransportStatus status, const std::string& text = "") const {
    int n = 0;
    for (const auto& ev : *events) {
      if (ev.status == status && ev.detail.find(text) != std::string::npos) ++n;
    }
    return n;
  }
};

// A hand-driven peer on a raw socket: speaks the frames itself, or sends
// garbage, and reads what the node answers.
struct RawPeer {
  explicit RawPeer(asio::io_context& io, int port, int receive_buffer = 0) : socket(io) {
    socket.open(tcp::v4());
    if (receive_buffer > 0)
      socket.set_option(asio::socket_base::receive_buffer_size(receive_buffer));
    socket.connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)));
  }
  void send(const std::string& bytes) { asio::write(socket, asio::buffer(bytes)); }
  void hello(const std::string& token = "") {
    tp::Hello h;
    h.node_id = 0x1234567812345678ULL;
    h.nonce = 7;
    h.max_frame = 1 << 20;
    h.token = token;
    h.name = "raw";
    std::string frame;
    tp::encode_hello(h, frame);
    send(frame);
  }
  void sub(const std::string& filter) {
    std::string frame;
    tp::encode_sub(tp::Interest{filter, "", 1}, frame);
    send(frame);
  }
  // Reads until the node closes the connection.
  void read_all() {
    socket.async_read_some(asio::buffer(chunk),
                           [this](const boost::system::error_code& ec, std::size_t n) {
                             if (ec) {
                               ended = true;
                               return;
                             }
                             received.append(chunk.data(), n);
                             read_all();
                           });
  }
  // The error frame the node sent, if any.
  std::string error_text() const {
    std::string_view rest(received);
    while (!rest.empty()) {
      tp::Frame f;
      auto r = tp::decode_frame(rest, 1 << 24, f);
      if (r.status != tp::DecodeStatus::frame) break;
      if (f.type == tp::FrameType::error) return f.text;
      rest.remove_prefix(r.consumed);
    }
    return "";
  }

  tcp::socket socket;
  std::array<char, 65536> chunk{};
  std::string received;
  bool ended = false;
};

class TcpPeerMesh : public ::testing::Test {
 protected:
  void SetUp() override { spdlog_level_guard(); }

  // TCP_PEER_TEST_LOG=debug shows the nodes' logs.
  static std::string log_level() {
    const char* env = std::getenv("TCP_PEER_TEST_LOG");
    return env && *env ? env : "warn";
  }
  static void spdlog_level_guard() { set_log_level(log_level()); }

  // A connected node; with `ready`, after it said so (`connected`: its
  // first peers have sent their interest).
  TestNode node(const std::string& name, const std::string& url, Json options = Json::object(),
                std::size_t max_payload = 1024 * 1024, bool ready = true) {
    TransportConfig config;
    config.instance = name;
    config.type = "tcp_peer";
    config.url = url;
    config.max_payload = max_payload;
    config.options = std::move(options);
    if (!config.options.contains("drain_timeout_ms")) config.options["drain_timeout_ms"] = 1000;
    TestNode n;
    n.transport = host.create_transport(config, TransportContext{asio::make_strand(io)});
    n.transport->on_status([events = n.events](const StatusEvent& ev) { events->push_back(ev); });
    auto ec = n.transport->connect();
    EXPECT_FALSE(ec) << name << " connect " << url << ": " << ec.message();
    opened.push_back(n.transport);
    if (ready) {
      EXPECT_TRUE(test::run_until(io, [&] { return n.count(TransportStatus::connected) == 1; }))
          << name << " never said connected";
    }
    return n;
  }

  std::unique_ptr<Subscription> subscribe(TestNode& n, const std::string& subject,
                                          const std::string& queue,
                                          std::function<void(Message)> handler) {
    std::unique_ptr<Subscription> sub;
    auto ec = n->subscribe(subject, queue, std::move(handler), sub);
    EXPECT_FALSE(ec) << "subscribe " << subject << ": " << ec.message();
    return sub;
  }

  // Until `from` sees interest in `subject` (a publish with a reply
  // subject is not refused for want of responders).
  bool wait_for_interest(TestNode& from, const std::string& subject,
                         std::chrono::milliseconds limit = 3s) {
    return test::run_until(
        io, [&] { return !from->publish(message(subject, "probe", "probe.reply")); }, limit);
  }

  bool wait_no_interest(TestNode& from, const std::string& subject,
                        std::chrono::milliseconds limit = 3s) {
    return test::run_until(
        io,
        [&] {
          return from->publish(message(subject, "probe", "probe.reply")) == errc::no_responders;
        },
        limit);
  }

  void TearDown() override {
    for (auto& t : opened) {
      if (!t) continue;
      bool closed = false;
      t->close([&] { closed = true; });
      test::run_until(
          io, [&] { return closed; }, 3s);
    }
    opened.clear();
  }

  asio::io_context io;
  PluginHost host{{test::plugin_dir()}};
  std::vector<std::shared_ptr<Transport>> opened;
};

// ---- the frame codec -------------------------------------------------------------

TEST(TcpPeerFrames, EveryFrameRoundTrips) {
  std::string bytes;
  tp::Hello h;
  h.flags = tp::kHelloListens;
  h.node_id = 42;
  h.nonce = 9;
  h.max_frame = 70000;
  h.token = "t";
  h.advertise = "127.0.0.1:7400";
  h.name = "n";
  tp::encode_hello(h, bytes);
  tp::encode_sub(tp::Interest{"a.*", "q", 3}, bytes);
  tp::encode_unsub("a.*", "q", bytes);
  Headers headers{{"k", "v"}, {"empty", ""}};
  std::string data("bin\0ary\xff", 8);
  tp::encode_msg("a.b", "r.1", headers, {"q", "w"}, data, bytes);
  tp::encode_peers({"h:1", "[::1]:2"}, bytes);
  tp::encode_error(tp::ErrorCode::unauthorized, "no", bytes);
  tp::encode_empty(tp::FrameType::synced, bytes);

  std::string_view rest(bytes);
  std::vector<tp::FrameType> types;
  tp::Frame f;
  while (!rest.empty()) {
    auto r = tp::decode_frame(rest, 1 << 20, f);
    ASSERT_EQ(r.status, tp::DecodeStatus::frame) << r.error;
    types.push_back(f.type);
    switch (f.type) {
      case tp::FrameType::hello:
        EXPECT_EQ(f.hello.node_id, 42u);
        EXPECT_EQ(f.hello.max_frame, 70000u);
        EXPECT_EQ(f.hello.advertise, "127.0.0.1:7400");
        EXPECT_EQ(f.hello.flags, tp::kHelloListens);
        break;
      case tp::FrameType::sub:
        EXPECT_EQ(f.interest.filter, "a.*");
        EXPECT_EQ(f.interest.weight, 3u);
        break;
      case tp::FrameType::msg:
        EXPECT_EQ(f.msg.subject, "a.b");
        EXPECT_EQ(f.msg.reply_to, "r.1");
        EXPECT_EQ(f.msg.headers, headers);
        EXPECT_EQ(f.msg.queues, (std::vector<std::string>{"q", "w"}));
        EXPECT_EQ(f.msg.data, data);
        break;
      case tp::FrameType::peers:
        EXPECT_EQ(f.peers, (std::vector<std::string>{"h:1", "[::1]:2"}));
        break;
      case tp::FrameType::error:
        EXPECT_EQ(f.error, tp::ErrorCode::unauthorized);
        EXPECT_EQ(f.text, "no");
        break;
      default:
        break;
    }
    rest.remove_prefix(r.consumed);
  }
  EXPECT_EQ(types.size(), 7u);
}

TEST(TcpPeerFrames, PartialOversizeAndMalformedInput) {
  std::string frame;
  tp::encode_msg("a", "", {}, {}, std::string(100, 'x'), frame);
  tp::Frame f;
  for (std::size_t cut = 0; cut < frame.size(); ++cut) {
    auto r = tp::decode_frame(std::string_view(frame).substr(0, cut), 1 << 20, f);
    ASSERT_EQ(r.status, tp::DecodeStatus::incomplete) << "at " << cut;
  }
  // Above the maximum: refused from the length field alone.
  auto r = tp::decode_frame(std::string_view(frame).substr(0, 4), 50, f);
  EXPECT_EQ(r.status, tp::DecodeStatus::error);
  EXPECT_NE(r.error.find("above the maximum"), std::string::npos);
  // Empty frame, unknown type, lengths running past the frame, trailing bytes.
  for (std::string bad : {std::string("\0\0\0\0", 4), std::string("\0\0\0\1\x7f", 5),
                          std::string("\0\0\0\3\5\0\x09", 7), std::string("\0\0\0\2\3x", 6)}) {
    r = tp::decode_frame(bad, 1 << 20, f);
    EXPECT_EQ(r.status, tp::DecodeStatus::error) << "frame of " << bad.size() << " bytes";
    EXPECT_FALSE(r.error.empty());
  }
}

// ---- the mesh -----------------------------------------------------------------------

// A listens; B and C are given A's address and join it as leaves: A
// forwards between them, and interest follows subscriptions both ways.
TEST_F(TcpPeerMesh, LeavesReachEachOtherThroughTheHubAndInterestFollows) {
  auto url = url_of(test::free_loopback_port());
  auto a = node("A", url);
  auto b = node("B", url);  // address taken: joins A
  auto c = node("C", url, {{"mode", "connect"}});
  EXPECT_EQ(b.count(TransportStatus::connected, "joined"), 1);
  EXPECT_EQ(c.count(TransportStatus::connected, "joined"), 1);
  EXPECT_EQ(b->publish(message("leaf.c", "x", "inbox.b")), errc::no_responders);

  std::vector<std::string> got_c, got_a;
  auto keep = [](std::vector<std::string>& into) {
    return [&into](Message m) {
      if (m.data.view() != "probe") into.push_back(std::string(m.data.view()));
    };
  };
  auto sc = subscribe(c, "leaf.>", "", keep(got_c));
  auto sa = subscribe(a, "leaf.c", "", keep(got_a));
  ASSERT_TRUE(wait_for_interest(b, "leaf.c"));
  got_c.clear();
  got_a.clear();
  Message m = message("leaf.c", "from b");
  m.headers["h"] = "1";
  ASSERT_FALSE(b->publish(m));
  ASSERT_FALSE(a->publish(message("leaf.c", "from a")));
  ASSERT_TRUE(test::run_until(io, [&] { return got_c.size() == 2 && got_a.size() == 2; }));
  test::settle(io, 50ms);
  EXPECT_EQ(got_c.size(), 2u) << "no duplicates";
  EXPECT_EQ(std::set<std::string>(got_c.begin(), got_c.end()),
            (std::set<std::string>{"from a", "from b"}));

  // Interest leaves with the subscription.
  sc->unsubscribe();
  sa->unsubscribe();
  EXPECT_TRUE(wait_no_interest(b, "leaf.c"));
}

// Listening nodes linked to one seed (A) find each other by gossip and
// form a full mesh of routes; a message crosses one route, once.
TEST_F(TcpPeerMesh, RoutesFormAFullMeshByGossipAndDeliverOnce) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port(),
       pc = test::free_loopback_port();
  Json seed = {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}};
  auto a = node("A", url_of(pa), {{"mode", "listen"}});
  auto b = node("B", url_of(pb), seed);
  auto c = node("C", url_of(pc), seed);
  std::map<std::string, int> got;
  auto counter = [&](std::string name) {
    return [&got, name](Message m) {
      if (m.data.view() != "probe") ++got[name];
    };
  };
  auto s1 = subscribe(c, "mesh.x", "", counter("c"));
  auto s2 = subscribe(a, "mesh.x", "", counter("a"));
  auto s3 = subscribe(b, "mesh.x", "", counter("b"));
  auto pc_probe = subscribe(c, "probe.c", "", [](Message) {});
  auto pb_probe = subscribe(b, "probe.b", "", [](Message) {});
  // B knows C's interest only over a B-C route (A does not pass it on).
  ASSERT_TRUE(wait_for_interest(b, "probe.c"));
  ASSERT_TRUE(wait_for_interest(c, "probe.b"));
  ASSERT_TRUE(wait_for_interest(a, "mesh.x"));
  test::settle(io, 50ms);
  got.clear();
  for (int i = 0; i < 10; ++i) ASSERT_FALSE(b->publish(message("mesh.x", "m")));
  ASSERT_TRUE(
      test::run_until(io, [&] { return got["a"] == 10 && got["b"] == 10 && got["c"] == 10; }));
  test::settle(io, 100ms);
  EXPECT_EQ(got["a"], 10);
  EXPECT_EQ(got["b"], 10);
  EXPECT_EQ(got["c"], 10);
}

// Three routes and two leaves, queue members everywhere, publishers on a
// route and on leaves: every message reaches the group exactly once.
TEST_F(TcpPeerMesh, QueueGroupDeliversExactlyOnceAcrossTheMesh) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port(),
       pc = test::free_loopback_port();
  Json seed = {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}};
  auto a = node("A", url_of(pa), {{"mode", "listen"}});
  auto b = node("B", url_of(pb), seed);
  auto c = node("C", url_of(pc), seed);
  auto d = node("D", url_of(pa), {{"mode", "connect"}});  // leaf of A
  auto e = node("E", url_of(pb), {{"mode", "connect"}});  // leaf of B

  std::map<std::string, int> deliveries;  // message -> times delivered to the group
  std::map<std::string, int> per_member;
  int watched = 0;
  std::vector<std::unique_ptr<Subscription>> subs;
  auto member = [&](TestNode& n, const std::string& name) {
    subs.push_back(subscribe(n, "jobs.run", "workers", [&, name](Message m) {
      ++deliveries[std::string(m.data.view())];
      ++per_member[name];
    }));
  };
  member(a, "a");
  member(b, "b1");
  member(b, "b2");
  member(c, "c");
  member(d, "d");
  subs.push_back(subscribe(e, "jobs.*", "", [&](Message) { ++watched; }));
  for (auto [n, name] : {std::pair(&a, "a"), std::pair(&b, "b"), std::pair(&c, "c"),
                         std::pair(&d, "d"), std::pair(&e, "e")}) {
    subs.push_back(subscribe(*n, std::string("probe.") + name, "", [](Message) {}));
  }
  // Every publisher sees every node (routes complete, leaves synced).
  for (auto* from : {&c, &d, &e}) {
    for (const char* to : {"probe.a", "probe.b", "probe.c", "probe.d", "probe.e"}) {
      ASSERT_TRUE(wait_for_interest(*from, to)) << to;
    }
  }
  // Weights settle with the last SUB; give them a moment.
  test::settle(io, 100ms);

  constexpr int kEach = 200;
  for (int i = 0; i < kEach; ++i) {
    ASSERT_FALSE(c->publish(message("jobs.run", "c" + std::to_string(i))));
    ASSERT_FALSE(d->publish(message("jobs.run", "d" + std::to_string(i))));
    ASSERT_FALSE(e->publish(message("jobs.run", "e" + std::to_string(i))));
  }
  ASSERT_TRUE(test::run_until(
      io, [&] { return deliveries.size() == 3 * kEach && watched == 3 * kEach; }, 10s))
      << deliveries.size() << " distinct, " << watched << " watched";
  test::settle(io, 100ms);
  int twice = 0;
  for (const auto& [msg, times] : deliveries) twice += times != 1;
  EXPECT_EQ(twice, 0);
  for (const char* name : {"a", "b1", "b2", "c", "d"}) {
    EXPECT_GT(per_member[name], 0) << "member " << name << " got none";
  }
}

// An act from a leaf of A reaches a service on B (leaf -> A -> route -> B)
// and the reply finds its way back.
TEST_F(TcpPeerMesh, RequestReplyAcrossNodesThroughTheRuntime) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port();
  auto a = node("A", url_of(pa), {{"mode", "listen"}});
  auto service = test::start_app(io, url_of(pb), {"math"}, [&](Config& config) {
    config.log.level = log_level();
    auto& t = config.transports.begin()->second;
    t.options = {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}};
  });
  auto probe = node("probe", url_of(pa), {{"mode", "connect"}});
  ASSERT_TRUE(wait_for_interest(probe, "math"));
  auto client = test::start_app(io, url_of(pa), {}, [](Config& config) {
    config.log.level = log_level();
    config.transports.begin()->second.options = {{"mode", "connect"}};
  });
  auto r =
      test::act(io, client->runtime(), {{"topic", "math"}, {"cmd", "add"}, {"a", 2}, {"b", 3}});
  ASSERT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(r.response.result, 5);
  auto none = test::act(io, client->runtime(), {{"topic", "nobody"}, {"timeout$", 3000}});
  EXPECT_EQ(none.ec, errc::no_responders);
  test::close(io, client->runtime());
  test::close(io, service->runtime());
}

// A peer that keeps its connection open but stops answering is found by
// the heartbeat, and its interest is dropped.
TEST_F(TcpPeerMesh, SilentPeerIsFoundByTheHeartbeatAndItsInterestDropped) {
  auto port = test::free_loopback_port();
  auto a = node("A", url_of(port),
                {{"mode", "listen"}, {"heartbeat", {{"interval_ms", 100}, {"max_missed", 2}}}});
  RawPeer raw(io, port);
  raw.hello();
  raw.sub("quiet.x");
  ASSERT_TRUE(wait_for_interest(a, "quiet.x"));
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(wait_no_interest(a, "quiet.x", 3s));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 2s);
  EXPECT_TRUE(
      test::run_until(io, [&] { return a.count(TransportStatus::error, "heartbeat") == 1; }));
}

// A killed node (no close) is noticed at once; started again on its port,
// its peers link with it again and traffic resumes.
TEST_F(TcpPeerMesh, KilledPeerIsDroppedAndTheRestartedOneRejoined) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port();
  Json reconnect = {{"wait_ms", 50}, {"max_wait_ms", 200}, {"jitter_ms", 10}};
  auto a = node("A", url_of(pa), {{"mode", "listen"}});
  auto b =
      node("B", url_of(pb),
           {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}, {"reconnect", reconnect}});
  auto leaf = node("L", url_of(pa), {{"mode", "connect"}, {"reconnect", reconnect}});
  int got = 0;
  auto count = [&](Message m) {
    if (m.data.view() != "probe") ++got;
  };
  auto s = subscribe(a, "svc.x", "", count);
  ASSERT_TRUE(wait_for_interest(b, "svc.x"));
  ASSERT_TRUE(wait_for_interest(leaf, "svc.x"));

  // Kill A: destroyed without close(), as a crashed process.
  s.reset();
  opened.erase(std::find(opened.begin(), opened.end(), a.transport));
  a.transport.reset();
  ASSERT_TRUE(test::run_until(io, [&] {
    return b.count(TransportStatus::error, "lost peer A") == 1 &&
           leaf.count(TransportStatus::disconnected) == 1;
  }));
  EXPECT_EQ(b->publish(message("svc.x", "m", "r.1")), errc::no_responders);
  EXPECT_EQ(leaf->publish(message("svc.x", "m", "r.1")), errc::disconnected);

  // Restart on the same port.
  auto a2 = node("A2", url_of(pa), {{"mode", "listen"}});
  got = 0;
  auto s2 = subscribe(a2, "svc.x", "", count);
  ASSERT_TRUE(test::run_until(io, [&] {
    return b.count(TransportStatus::reconnected) == 1 &&
           leaf.count(TransportStatus::reconnected) == 1;
  }));
  ASSERT_TRUE(wait_for_interest(b, "svc.x"));
  ASSERT_TRUE(wait_for_interest(leaf, "svc.x"));
  got = 0;
  ASSERT_FALSE(b->publish(message("svc.x", "m")));
  ASSERT_FALSE(leaf->publish(message("svc.x", "m")));
  ASSERT_TRUE(test::run_until(io, [&] { return got == 2; }));
}

TEST_F(TcpPeerMesh, PeerWithoutTheTokenIsRefused) {
  auto port = test::free_loopback_port();
  auto a = node("A", url_of(port), {{"mode", "listen"}, {"token", "s3cret"}});
  auto s = subscribe(a, "secret.x", "", [](Message) {});
  auto wrong = node("W", url_of(port), {{"mode", "connect"}, {"token", "guess"}}, 1 << 20, false);
  auto none = node("N", url_of(port), {{"mode", "connect"}}, 1 << 20, false);
  ASSERT_TRUE(test::run_until(io, [&] {
    return a.count(TransportStatus::error, "wrong token") >= 1 &&
           a.count(TransportStatus::error, "no token") >= 1 &&
           wrong.count(TransportStatus::error, "refused this node") >= 1 &&
           none.count(TransportStatus::error, "refused this node") >= 1;
  }));
  EXPECT_EQ(wrong.count(TransportStatus::connected), 0);
  EXPECT_NE(wrong->publish(message("secret.x", "m", "r.1")), std::error_code());
  auto right = node("R", url_of(port), {{"mode", "connect"}, {"token", "s3cret"}});
  EXPECT_TRUE(wait_for_interest(right, "secret.x"));
}

// Garbage, oversize frames (before the handshake and after it, above
// max_payload + header room), a bad frame after the handshake and a client
// that never says HELLO: each closes its own connection (with the
// reason sent back where there is one); the node goes on serving.
TEST_F(TcpPeerMesh, BadClientsLoseOnlyTheirOwnConnection) {
  auto port = test::free_loopback_port();
  auto a = node("A", url_of(port), {{"mode", "listen"}, {"handshake_timeout_ms", 300}}, 1024);
  auto b = node("B", url_of(port), {{"mode", "connect"}});
  int got = 0;
  auto s = subscribe(b, "good.x", "", [&](Message m) { got += m.data.view() != "probe"; });
  ASSERT_TRUE(wait_for_interest(a, "good.x"));

  RawPeer garbage(io, port), oversize(io, port), after_hello(io, port), silent(io, port),
      big(io, port);
  garbage.send(std::string("\0\0\0\3\x7fzz", 7));
  std::string huge("\x7f\xff\xff\xff", 4);  // 2 GiB announced
  oversize.send(huge);
  after_hello.hello();
  after_hello.send(std::string("\0\0\0\3\5\0\x09", 7));  // SUB whose filter runs past the frame
  big.hello();
  std::string big_msg;
  tp::encode_msg("good.x", "", {}, {}, std::string(1024 + 65536, 'x'), big_msg);
  big.send(big_msg);
  for (auto* r : {&garbage, &oversize, &after_hello, &silent, &big}) r->read_all();
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(test::run_until(io, [&] {
    return garbage.ended && oversize.ended && after_hello.ended && silent.ended && big.ended;
  }));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_NE(garbage.error_text().find("unknown frame type"), std::string::npos)
      << garbage.error_text();
  EXPECT_NE(oversize.error_text().find("above the maximum"), std::string::npos)
      << oversize.error_text();
  EXPECT_NE(after_hello.error_text().find("truncated"), std::string::npos)
      << after_hello.error_text();
  EXPECT_NE(silent.error_text().find("handshake not finished"), std::string::npos)
      << silent.error_text();
  EXPECT_NE(big.error_text().find("above the maximum of 66560"), std::string::npos)
      << big.error_text();
  EXPECT_EQ(got, 0);

  ASSERT_FALSE(a->publish(message("good.x", "still here")));
  ASSERT_TRUE(test::run_until(io, [&] { return got == 1; }));
  EXPECT_EQ(b.count(TransportStatus::disconnected), 0);
}

// A peer that does not read: once the bytes queued to it pass the limit it
// is cut off with a slow-consumer event; the others keep getting messages.
TEST_F(TcpPeerMesh, SlowConsumerIsCutOff) {
  auto port = test::free_loopback_port();
  auto a = node("A", url_of(port), {{"mode", "listen"}, {"max_outbound_bytes", 256 * 1024}});
  auto b = node("B", url_of(port), {{"mode", "connect"}});
  int got = 0;
  auto s = subscribe(b, "flood.x", "", [&](Message m) { got += m.data.view() != "probe"; });
  RawPeer stuck(io, port, 4096);
  stuck.hello();
  stuck.sub("flood.>");
  ASSERT_TRUE(wait_for_interest(a, "flood.never"));  // the raw peer's interest arrived
  const std::string chunk(64 * 1024, 'x');
  int sent = 0;
  for (; sent < 400 && a.count(TransportStatus::slow_consumer) == 0; ++sent) {
    ASSERT_FALSE(a->publish(message("flood.x", chunk)));
    test::settle(io, 2ms);  // B keeps up; only the stuck peer falls behind
  }
  ASSERT_TRUE(test::run_until(io, [&] { return a.count(TransportStatus::slow_consumer) == 1; }));
  EXPECT_LT(sent, 400) << "the stuck peer was never cut off";
  EXPECT_GE(a.count(TransportStatus::slow_consumer, "above the limit"), 1);
  ASSERT_TRUE(test::run_until(
      io, [&] { return got == sent; }, 10s))
      << got << " of " << sent;
  EXPECT_TRUE(wait_no_interest(a, "flood.never"));
}

// Two listening nodes configured to dial each other: one link between them,
// each message once. A node given its own address stops dialing itself.
TEST_F(TcpPeerMesh, MutualPeersKeepOneLinkAndSelfIsIgnored) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port();
  auto a =
      node("A", url_of(pa), {{"mode", "listen"}, {"peers", Json::array({url_of(pb), url_of(pa)})}},
           1 << 20, false);
  auto b = node("B", url_of(pb), {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}});
  int got = 0;
  auto s = subscribe(b, "both.x", "", [&](Message m) { got += m.data.view() != "probe"; });
  ASSERT_TRUE(wait_for_interest(a, "both.x"));
  test::settle(io, 300ms);  // both dials done, the duplicate closed
  got = 0;
  for (int i = 0; i < 20; ++i) ASSERT_FALSE(a->publish(message("both.x", "m")));
  ASSERT_TRUE(test::run_until(io, [&] { return got == 20; }));
  test::settle(io, 100ms);
  EXPECT_EQ(got, 20);
  for (auto* n : {&a, &b}) {
    EXPECT_EQ(n->count(TransportStatus::error), 0);
    EXPECT_EQ(n->count(TransportStatus::disconnected), 0);
  }
}

// A leaf given two peers moves to the second when the first dies.
TEST_F(TcpPeerMesh, LeafFailsOverToTheNextPeer) {
  auto pa = test::free_loopback_port(), pb = test::free_loopback_port();
  auto a = node("A", url_of(pa), {{"mode", "listen"}});
  auto b = node("B", url_of(pb), {{"mode", "listen"}, {"peers", Json::array({url_of(pa)})}});
  auto leaf = node("L", url_of(pa),
                   {{"mode", "connect"},
                    {"peers", Json::array({url_of(pb)})},
                    {"reconnect", {{"wait_ms", 50}, {"max_wait_ms", 100}, {"jitter_ms", 0}}}});
  int got = 0;
  auto s = subscribe(b, "svc.y", "", [&](Message m) { got += m.data.view() != "probe"; });
  ASSERT_TRUE(wait_for_interest(leaf, "svc.y"));
  opened.erase(std::find(opened.begin(), opened.end(), a.transport));
  a.transport.reset();  // killed
  auto b_address = url_of(pb).substr(6);
  ASSERT_TRUE(test::run_until(
      io, [&] { return leaf.count(TransportStatus::reconnected, b_address) == 1; }));
  ASSERT_TRUE(wait_for_interest(leaf, "svc.y"));
  got = 0;
  ASSERT_FALSE(leaf->publish(message("svc.y", "m")));
  ASSERT_TRUE(test::run_until(io, [&] { return got == 1; }));
}

// ---- TLS ------------------------------------------------------------------------------

// A CA and a node certificate for 127.0.0.1, made with the openssl command.
struct Certificates {
  std::filesystem::path dir;
  bool ok = false;
  Certificates() {
    dir = std::filesystem::temp_directory_path() /
          ("tcp-peer-tls-" + std::to_string(::getpid()) + "-" + std::to_string(std::rand()));
    std::filesystem::create_directories(dir);
    std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
    std::string cmd =
        "cd '" + dir.string() + "' && openssl req -x509" + ec +
        "-keyout ca.key -out ca.pem -days 1 -subj /CN=test-ca && openssl req" + ec +
        "-keyout node.key -out node.csr -subj /CN=localhost && openssl x509 -req -in node.csr "
        "-CA ca.pem -CAkey ca.key -CAcreateserial -out node.pem -days 1 -extfile ext.cnf";
    ok = std::system(("(" + cmd + ") >/dev/null 2>&1").c_str()) == 0;
  }
  ~Certificates() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  std::string file(const char* name) const { return (dir / name).string(); }
};

TEST_F(TcpPeerMesh, TlsLinksVerifyTheCertificateAndRefusePlainPeers) {
  Certificates certs;
  if (!certs.ok) GTEST_SKIP() << "the openssl command could not make certificates";
  auto port = test::free_loopback_port();
  Json server_tls = {{"ca", certs.file("ca.pem")},
                     {"cert", certs.file("node.pem")},
                     {"key", certs.file("node.key")}};
  auto a = node("A", url_of(port), {{"mode", "listen"}, {"tls", server_tls}});
  auto b = node("B", url_of(port), {{"mode", "connect"}, {"tls", {{"ca", certs.file("ca.pem")}}}});
  std::string got_a, got_b;
  auto sa = subscribe(a, "sec.a", "", [&](Message m) { got_a = m.data.view(); });
  auto sb = subscribe(b, "sec.b", "", [&](Message m) { got_b = m.data.view(); });
  ASSERT_TRUE(wait_for_interest(b, "sec.a"));
  ASSERT_TRUE(wait_for_interest(a, "sec.b"));
  ASSERT_FALSE(b->publish(message("sec.a", "to a")));
  ASSERT_FALSE(a->publish(message("sec.b", "to b")));
  ASSERT_TRUE(test::run_until(io, [&] { return got_a == "to a" && got_b == "to b"; }));

  // No TLS, or a certificate for another name: no link.
  auto plain = node("P", url_of(port), {{"mode", "connect"}}, 1 << 20, false);
  auto wrong_name = node(
      "W", url_of(port),
      {{"mode", "connect"}, {"tls", {{"ca", certs.file("ca.pem")}, {"hostname", "other.example"}}}},
      1 << 20, false);
  test::settle(io, 300ms);
  EXPECT_EQ(plain.count(TransportStatus::connected), 0);
  EXPECT_EQ(wrong_name.count(TransportStatus::connected), 0);
  EXPECT_NE(plain->publish(message("sec.a", "m", "r.1")), std::error_code());
  // A still serves B.
  got_a.clear();
  ASSERT_FALSE(b->publish(message("sec.a", "again")));
  ASSERT_TRUE(test::run_until(io, [&] { return got_a == "again"; }));
}

}  // namespace
}  // namespace switchboard
