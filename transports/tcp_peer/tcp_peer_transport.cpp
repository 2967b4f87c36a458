// tcp_peer: the brokerless mesh transport. Every node is its own small
// NATS server; docs/tcp-peer.md describes the model for users.
//
// Links. A node that listens links to every other listening node (a
// "route"; full mesh, completed by gossip of listen addresses). A node that
// does not listen (mode connect, or auto when the address is taken) joins
// one listening node, its "hub"; to the hub it is a "leaf". The routing
// rule is nats-server's: a message from a route goes to local subscribers
// and leaves only, never to another route (one hop), and a message from a
// leaf or from the node itself goes to every link with matching interest,
// except the one it came from. With a full mesh of routes and leaves on
// one hub each, every node is reached once, so nothing loops or doubles.
//
// Interest. Each link is told the (filter, queue) pairs it may send us,
// with a weight (how many members stand behind a queue group): to a route,
// our own subscriptions and our leaves'; to a leaf or a hub, everything we
// know except what came from that link. The full set goes out when a link
// is made (then SYNCED), changes go out as SUB/UNSUB, and a lost link's
// interest is dropped at once. Interest from links and local
// subscriptions share one SubjectIndex (for matching).
//
// Queue groups. The node where a message enters picks one member of each
// matching queue group among its local members and its links (weighted by
// the members behind each link, rotating), and sends the message to the
// chosen link with the group's name in the frame: the receiver delivers to
// one of its members of the listed groups only. So a group gets each
// message exactly once across the mesh.
//
// Threading: everything runs on the transport's executor (the runtime's
// strand); no locks. Messages from peers are handed to handlers in place,
// on that executor; a node's own publishes to its own subscribers are
// posted to it.
#include <openssl/crypto.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>

#include "connection.hpp"
#include "frame.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"
#include "tcp_peer_settings.hpp"

namespace switchboard::tcp_peer {
namespace {

using Key = std::pair<std::string, std::string>;  // (filter, queue group)

// validate_subject(subject, false, why) for the common case, in one pass
// without building anything: a literal subject, tokens not empty, no white
// space, no wildcard token. Every message is checked on the way out and on
// the way in; what fails here goes to validate_subject for the reason.
bool plain_literal_subject(std::string_view s) {
  if (s.empty()) return false;
  std::size_t token_start = 0;
  for (std::size_t i = 0; i <= s.size(); ++i) {
    char c = i < s.size() ? s[i] : '.';
    if (c == '.') {
      std::size_t len = i - token_start;
      if (len == 0) return false;
      if (len == 1 && (s[token_start] == '*' || s[token_start] == '>')) return false;
      token_start = i + 1;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      return false;
    }
  }
  return true;
}

std::error_code check_literal_subject(std::string_view s, std::string& why) {
  if (plain_literal_subject(s)) return {};
  return validate_subject(s, false, why);
}
using std::chrono::milliseconds;

// A peer may tell us at most this many (filter, queue) pairs.
constexpr std::size_t kMaxInterestPerPeer = 1 << 20;
constexpr std::size_t kMaxString = 0xffff;

std::uint64_t random_u64() {
  static std::mt19937_64 generator{std::random_device{}()};
  std::uint64_t v = 0;
  while (v == 0) v = generator();
  return v;
}

bool same_secret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool has_white_space(std::string_view s) {
  return s.find_first_of(" \t\r\n") != std::string_view::npos;
}

bool is_unspecified(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::";
}

enum class LinkKind { route, leaf, hub };
const char* to_string(LinkKind k) {
  switch (k) {
    case LinkKind::route:
      return "route";
    case LinkKind::leaf:
      return "leaf";
    case LinkKind::hub:
      return "hub";
  }
  return "?";
}

struct LocalSub {
  std::string subject;
  std::string queue;
  MessageHandler handler;
  SubjectIndex::Id id = 0;
  bool alive = true;
};

struct Dialer;

// One connection to another node, from accept/dial to its end.
struct Peer {
  std::shared_ptr<Connection> conn;
  std::shared_ptr<Dialer> dialer;  // set when we dialed
  bool outbound = false;
  bool got_hello = false;
  bool established = false;
  bool quiet = false;     // its end is no news (duplicate, self, our own close)
  bool said_bye = false;  // it told us it is closing: a clean leave
  bool warned_frame = false;
  LinkKind kind = LinkKind::route;
  Hello remote;             // the peer's HELLO
  std::uint64_t nonce = 0;  // the dialer's nonce (ties between duplicate links)
  std::string address;      // where it listens (routes), for gossip
  std::string label;        // for logs: "name (ip:port)"
  // What the peer told us: index id and weight per (filter, queue).
  std::map<Key, std::pair<SubjectIndex::Id, std::uint32_t>> interest;
  // What we told the peer.
  std::map<Key, std::uint32_t> advertised;
};

struct Dialer {
  enum class Role { configured, gossip, hub };
  Dialer(asio::any_io_executor ex, Role r, std::vector<Address> a)
      : role(r), addresses(std::move(a)), timer(ex), resolver(ex) {}

  Role role;
  std::vector<Address> addresses;  // a hub dialer fails over through them in order
  std::size_t next = 0;
  int failures = 0;  // consecutive
  bool ever_linked = false;
  bool in_gate = false;  // publishes wait for this dialer's first outcome
  bool stopped = false;
  std::uint64_t standby_for = 0;  // another link to this node id exists
  std::uint64_t attempt = 0;      // stale completions are ignored
  std::shared_ptr<Peer> peer;     // the current attempt or link
  std::shared_ptr<tcp::socket> socket;
  asio::steady_timer timer;
  tcp::resolver resolver;

  const Address& current() const { return addresses[next % addresses.size()]; }
  std::string describe() const {
    std::string s;
    for (const auto& a : addresses) s += (s.empty() ? "" : ", ") + a.text();
    return s;
  }
};

class Node : public std::enable_shared_from_this<Node> {
 public:
  Node(const TransportConfig& config, const TransportContext& context)
      : settings_(read_settings(config)),
        instance_(config.instance),
        max_payload_(config.max_payload),
        ex_(context.executor),
        id_(random_u64()),
        gate_timer_(context.executor) {
    limits_.max_frame = settings_.max_frame_bytes;
    limits_.max_outbound = settings_.max_outbound_bytes;
    limits_.handshake_timeout = milliseconds(settings_.handshake_timeout_ms);
    limits_.heartbeat_interval = milliseconds(settings_.heartbeat_interval_ms);
    limits_.heartbeat_max_missed = settings_.heartbeat_max_missed;
    limits_.drain_timeout = milliseconds(settings_.drain_timeout_ms);
    if (settings_.tls.enabled) make_tls_context();
    log_prefix_ = "tcp_peer " + (instance_.empty() ? settings_.name : instance_) + ": ";
  }

  std::size_t max_payload() const { return max_payload_; }

  void on_status(StatusHandler handler) { status_ = std::move(handler); }

  std::error_code connect();
  std::error_code publish(Message msg);
  std::error_code subscribe(const std::string& subject, const std::string& queue,
                            MessageHandler handler, std::shared_ptr<LocalSub>& out);
  void remove_local(const std::shared_ptr<LocalSub>& sub);
  void close(std::function<void()> done);
  void terminate();

 private:
  // ---- set-up
  void make_tls_context();
  bool bind(boost::system::error_code& ec);
  std::error_code join(std::vector<Address> addresses);
  bool dial_now(const Address& a, tcp::socket& socket, std::string& why);
  void accept();

  // ---- links
  std::shared_ptr<Peer> start_peer(tcp::socket socket, const std::shared_ptr<Dialer>& dialer);
  Hello my_hello(std::uint64_t nonce) const;
  void on_frame(const std::shared_ptr<Peer>& peer, Frame& frame);
  void on_hello(const std::shared_ptr<Peer>& peer, const Hello& hello);
  void on_error_frame(const std::shared_ptr<Peer>& peer, ErrorCode code, const std::string& text);
  void establish(const std::shared_ptr<Peer>& peer);
  bool wins(const Peer& a, const Peer& b) const;
  void link_down(const std::shared_ptr<Peer>& peer, CloseCause cause, const std::string& reason);
  void on_peer_closed(const std::shared_ptr<Peer>& peer, CloseCause cause,
                      const std::string& reason);
  void on_peer_finished(const std::shared_ptr<Peer>& peer);
  void on_peers(const std::shared_ptr<Peer>& peer, const std::vector<std::string>& addresses);
  bool has_link_to(std::uint64_t node_id) const;
  bool hub_up() const;

  // ---- dialing
  std::shared_ptr<Dialer> add_dialer(Dialer::Role role, std::vector<Address> addresses);
  void dial(const std::shared_ptr<Dialer>& d);
  void dial_failed(const std::shared_ptr<Dialer>& d, const std::string& reason);
  void schedule(const std::shared_ptr<Dialer>& d, milliseconds delay);
  milliseconds backoff(int failures) const;
  void gate_done(const std::shared_ptr<Dialer>& d);
  void open_gate();
  void announce();

  // ---- interest
  void on_interest(const std::shared_ptr<Peer>& peer, const Interest& interest, bool sub);
  void set_remote_interest(const std::shared_ptr<Peer>& peer, const Key& key, std::uint32_t weight);
  std::uint32_t advertised_weight(const Peer& to, const Key& key) const;
  void update(Peer& to, const Key& key);
  void refresh(const Key& key);
  void sync_interest(Peer& to);

  // ---- messages
  void on_msg(const std::shared_ptr<Peer>& peer, MsgFrame& frame);
  std::size_t route(const Message& msg, const Peer* from, const std::vector<std::string>* queues,
                    bool local_only = false);
  bool eligible(const Peer& to, const Peer* from) const;
  std::error_code publish_now(Message& msg, bool deferred);
  void answer_no_responders(const std::string& reply_to);

  // ---- status
  void emit(TransportStatus status, std::string detail);
  void check_closed();

  struct Target {
    std::shared_ptr<LocalSub> local;  // a subscription of ours, or
    std::shared_ptr<Peer> peer;       // a link's interest
    std::string queue;
    std::uint32_t weight = 1;
  };

  static void adjust(std::map<Key, std::uint32_t>& sums, const Key& key, std::int64_t delta) {
    auto it = sums.find(key);
    std::int64_t v = (it == sums.end() ? 0 : it->second) + delta;
    if (v <= 0) {
      if (it != sums.end()) sums.erase(it);
    } else if (it == sums.end()) {
      sums.emplace(key, static_cast<std::uint32_t>(v));
    } else {
      it->second = static_cast<std::uint32_t>(v);
    }
  }
  static std::uint32_t get(const std::map<Key, std::uint32_t>& sums, const Key& key) {
    auto it = sums.find(key);
    return it == sums.end() ? 0 : it->second;
  }

  Settings settings_;
  std::string instance_;
  std::size_t max_payload_;
  asio::any_io_executor ex_;
  std::uint64_t id_;
  ConnectionLimits limits_;
  std::unique_ptr<asio::ssl::context> tls_;
  std::string log_prefix_;
  StatusHandler status_;

  bool connected_ = false;
  bool announced_ = false;  // `connected` was emitted
  bool closing_ = false;
  bool close_finished_ = false;
  bool stopped_ = false;
  std::vector<std::function<void()>> close_done_;

  std::unique_ptr<tcp::acceptor> acceptor_;
  bool listening_ = false;
  std::string listen_text_;  // where we listen, for messages
  std::string advertise_;    // what peers are told to dial
  bool leaf_ = false;        // not listening: one hub at a time

  std::vector<std::shared_ptr<Dialer>> dialers_;
  std::vector<std::shared_ptr<Peer>> peers_;  // every connection until its socket is closed

  SubjectIndex index_;
  struct RouteScratch {
    std::vector<SubjectIndex::Id> ids;
    std::vector<std::shared_ptr<LocalSub>> locals;
    std::vector<std::pair<std::shared_ptr<Peer>, std::vector<std::string>>> remotes;
    std::vector<const Target*> members;
  };
  RouteScratch scratch_;  // route()'s vectors, reused
  bool scratch_busy_ = false;
  std::unordered_map<SubjectIndex::Id, Target> targets_;
  std::map<Key, std::uint32_t> local_count_;                    // our subscriptions
  std::map<Key, std::uint32_t> nonroute_sum_;                   // weights from leaves and the hub
  std::map<Key, std::uint32_t> route_sum_;                      // weights from routes
  std::map<std::string, std::uint64_t, std::less<>> rotation_;  // per queue group

  // Publishes wait until the first peers are synced (or failed), so that an
  // act right after start finds the responders already in the mesh.
  bool gate_open_ = true;
  int gate_waiting_ = 0;
  std::deque<Message> held_;
  std::size_t held_bytes_ = 0;
  asio::steady_timer gate_timer_;
};

// ---- set-up -------------------------------------------------------------------

void Node::make_tls_context() {
  const TlsSettings& t = settings_.tls;
  tls_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls);
  tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                    asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                    asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (!t.ca.empty()) {
    tls_->load_verify_file(t.ca, ec);
    if (ec) throw OptionError("tls.ca", "cannot load CA file '" + t.ca + "': " + ec.message());
  } else {
    tls_->set_default_verify_paths(ec);
  }
  if (!t.cert.empty()) {
    tls_->use_certificate_chain_file(t.cert, ec);
    if (ec) {
      throw OptionError("tls.cert", "cannot load certificate '" + t.cert + "': " + ec.message());
    }
    tls_->use_private_key_file(t.key, asio::ssl::context::pem, ec);
    if (ec) throw OptionError("tls.key", "cannot load key '" + t.key + "': " + ec.message());
  }
  // The side that accepts: the dialing side sets its own mode per stream.
  tls_->set_verify_mode(t.verify_clients
                            ? asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert
                            : asio::ssl::verify_none);
}

std::error_code Node::connect() {
  if (closing_) return make_error_code(errc::closed);
  if (connected_) return {};
  if (settings_.mode != Mode::connect) {
    boost::system::error_code ec;
    if (!bind(ec)) {
      if (ec == asio::error::address_in_use && settings_.mode == Mode::auto_) {
        // Someone holds the address: join the mesh through it.
        Address local = settings_.listen;
        if (local.host == "0.0.0.0") local.host = "127.0.0.1";
        if (local.host == "::") local.host = "::1";
        std::vector<Address> addresses{local};
        addresses.insert(addresses.end(), settings_.peers.begin(), settings_.peers.end());
        spdlog::debug("{}{} is taken: joining the node there", log_prefix_,
                      settings_.listen.text());
        return join(std::move(addresses));
      }
      spdlog::error("{}cannot listen on tcp://{}: {}", log_prefix_, settings_.listen.text(),
                    ec.message());
      return make_error_code(errc::transport_error);
    }
    connected_ = true;
    accept();
    for (const auto& p : settings_.peers) {
      auto d = add_dialer(Dialer::Role::configured, {p});
      d->in_gate = true;
      ++gate_waiting_;
    }
    if (gate_waiting_ > 0) {
      gate_open_ = false;
      gate_timer_.expires_after(
          milliseconds(settings_.connect_timeout_ms + settings_.handshake_timeout_ms));
      gate_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (auto n = weak.lock(); n && !ec) n->open_gate();
      });
      for (auto& d : std::vector(dialers_)) dial(d);
    }
    spdlog::info("{}listening on tcp://{} (node {:016x})", log_prefix_, listen_text_, id_);
    if (gate_open_) announce();
    return {};
  }
  return join(settings_.peers);
}

bool Node::bind(boost::system::error_code& ec) {
  tcp::endpoint endpoint;
  const Address& a = settings_.listen;
  if (a.host == "0.0.0.0") {
    endpoint =
        tcp::endpoint(asio::ip::address_v4::any(), static_cast<unsigned short>(std::stoi(a.port)));
  } else {
    tcp::resolver resolver(ex_);
    auto results = resolver.resolve(a.host, a.port, tcp::resolver::passive, ec);
    if (ec) return false;
    if (results.empty()) {
      ec = asio::error::host_not_found;
      return false;
    }
    endpoint = results.begin()->endpoint();
  }
  auto acceptor = std::make_unique<tcp::acceptor>(ex_);
  acceptor->open(endpoint.protocol(), ec);
  if (ec) return false;
  acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (ec) return false;
  acceptor->bind(endpoint, ec);
  if (ec) return false;
  acceptor->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return false;
  auto port = std::to_string(acceptor->local_endpoint().port());
  acceptor_ = std::move(acceptor);
  listening_ = true;
  listen_text_ = Address{a.host, port}.text();
  if (!settings_.advertise.empty()) {
    Address adv = parse_address(settings_.advertise, "advertise");
    if (adv.port == "0") adv.port = port;
    advertise_ = adv.text();
  } else {
    advertise_ = Address{a.host, port}.text();  // 0.0.0.0: peers use the address they see
  }
  return true;
}

// Not listening: one hub at a time, in the order given.
std::error_code Node::join(std::vector<Address> addresses) {
  leaf_ = true;
  auto d = add_dialer(Dialer::Role::hub, std::move(addresses));
  std::string reasons;
  for (std::size_t i = 0; i < d->addresses.size(); ++i) {
    tcp::socket socket(ex_);
    std::string why;
    d->next = i;
    if (dial_now(d->current(), socket, why)) {
      connected_ = true;
      d->in_gate = true;
      gate_waiting_ = 1;
      gate_open_ = false;
      gate_timer_.expires_after(milliseconds(settings_.handshake_timeout_ms));
      gate_timer_.async_wait([weak = weak_from_this()](const boost::system::error_code& ec) {
        if (auto n = weak.lock(); n && !ec) n->open_gate();
      });
      d->peer = start_peer(std::move(socket), d);
      return {};
    }
    reasons += (reasons.empty() ? "" : "; ") + d->current().text() + ": " + why;
  }
  if (settings_.retry_on_failed_connect) {
    spdlog::warn("{}no peer reachable yet ({}); retrying in the background", log_prefix_, reasons);
    connected_ = true;
    d->next = 0;
    d->failures = 1;
    schedule(d, backoff(1));
    return {};
  }
  spdlog::error("{}cannot join the mesh: {}", log_prefix_, reasons);
  dialers_.clear();
  return make_error_code(errc::transport_error);
}

// A blocking connect with a timeout (connect() may block; asio's own
// blocking connect has none).
bool Node::dial_now(const Address& a, tcp::socket& socket, std::string& why) {
  boost::system::error_code ec;
  tcp::resolver resolver(ex_);
  auto results = resolver.resolve(a.host, a.port, ec);
  if (ec) {
    why = "cannot resolve: " + ec.message();
    return false;
  }
  for (const auto& r : results) {
    boost::system::error_code ignored;
    socket.close(ignored);
    socket.open(r.endpoint().protocol(), ec);
    if (ec) {
      why = ec.message();
      continue;
    }
    socket.non_blocking(true, ignored);
    int fd = socket.native_handle();
    int rc = ::connect(fd, r.endpoint().data(), static_cast<socklen_t>(r.endpoint().size()));
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int n = ::poll(&p, 1, static_cast<int>(settings_.connect_timeout_ms));
      if (n <= 0) {
        why = n == 0 ? "timed out" : std::strerror(errno);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        why = std::strerror(err);
        continue;
      }
    } else if (rc != 0) {
      why = std::strerror(errno);
      continue;
    }
    socket.non_blocking(false, ignored);
    return true;
  }
  socket.close(ec);
  if (why.empty()) why = "no address";
  return false;
}

void Node::accept() {
  if (!acceptor_ || closing_) return;
  acceptor_->async_accept(
      [weak = weak_from_this()](const boost::system::error_code& ec, tcp::socket socket) {
        auto n = weak.lock();
        if (!n || n->closing_ || ec == asio::error::operation_aborted) return;
        if (ec) {
          // Out of descriptors, most likely: wait a little instead of spinning.
          spdlog::warn("{}accept failed: {}", n->log_prefix_, ec.message());
          auto t = std::make_shared<asio::steady_timer>(n->ex_, milliseconds(100));
          t->async_wait([t, weak](const boost::system::error_code&) {
            if (auto again = weak.lock()) again->accept();
          });
          return;
        }
        n->start_peer(std::move(socket), nullptr);
        n->accept();
      });
}

// ---- links --------------------------------------------------------------------

Hello Node::my_hello(std::uint64_t nonce) const {
  Hello h;
  h.flags = listening_ ? kHelloListens : 0;
  h.node_id = id_;
  h.nonce = nonce;
  h.max_frame = static_cast<std::uint32_t>(settings_.max_frame_bytes);
  h.token = settings_.token;
  h.advertise = listening_ ? advertise_ : "";
  h.name = settings_.name;
  return h;
}

std::shared_ptr<Peer> Node::start_peer(tcp::socket socket, const std::shared_ptr<Dialer>& dialer) {
  auto peer = std::make_shared<Peer>();
  peer->outbound = dialer != nullptr;
  peer->dialer = dialer;
  peer->conn = std::make_shared<Connection>(std::move(socket), tls_.get(), peer->outbound, limits_);
  peer->label = peer->conn->remote();
  std::weak_ptr<Node> weak = weak_from_this();
  std::weak_ptr<Peer> weak_peer = peer;
  peer->conn->set_handlers(
      [weak, weak_peer](Frame& frame) {
        auto n = weak.lock();
        auto p = weak_peer.lock();
        if (n && p && !n->stopped_) n->on_frame(p, frame);
      },
      [weak, weak_peer](CloseCause cause, const std::string& reason) {
        auto n = weak.lock();
        auto p = weak_peer.lock();
        if (n && p && !n->stopped_) n->on_peer_closed(p, cause, reason);
      },
      [weak, weak_peer] {
        auto n = weak.lock();
        auto p = weak_peer.lock();
        if (n && p && !n->stopped_) n->on_peer_finished(p);
      });
  peers_.push_back(peer);
  std::string hello;
  if (peer->outbound) {
    peer->nonce = random_u64();
    encode_hello(my_hello(peer->nonce), hello);
    dialer->peer = peer;
  }
  std::string host;
  if (tls_)
    host = !settings_.tls.hostname.empty() ? settings_.tls.hostname
                                           : (dialer ? dialer->current().host : "");
  peer->conn->start(std::move(hello), host, settings_.tls.verify);
  return peer;
}

void Node::on_frame(const std::shared_ptr<Peer>& peer, Frame& frame) {
  if (frame.type == FrameType::hello) return on_hello(peer, frame.hello);
  if (frame.type == FrameType::error) return on_error_frame(peer, frame.error, frame.text);
  if (!peer->established) {
    peer->conn->fail(ErrorCode::protocol,
                     std::string(to_string(frame.type)) + " before the handshake",
                     CloseCause::protocol);
    return;
  }
  switch (frame.type) {
    case FrameType::sub:
      return on_interest(peer, frame.interest, true);
    case FrameType::unsub:
      return on_interest(peer, frame.interest, false);
    case FrameType::synced:
      if (peer->dialer && peer->dialer->in_gate) gate_done(peer->dialer);
      return;
    case FrameType::msg:
      return on_msg(peer, frame.msg);
    case FrameType::peers:
      return on_peers(peer, frame.peers);
    default:
      return;
  }
}

void Node::on_hello(const std::shared_ptr<Peer>& peer, const Hello& hello) {
  if (peer->got_hello) {
    peer->conn->fail(ErrorCode::protocol, "a second HELLO", CloseCause::protocol);
    return;
  }
  peer->got_hello = true;
  std::string who = "peer " + peer->conn->remote();
  if (hello.version != kProtocolVersion) {
    spdlog::warn("{}refused {}: protocol version {} (this node speaks {})", log_prefix_, who,
                 hello.version, kProtocolVersion);
    peer->conn->fail(ErrorCode::version,
                     "protocol version " + std::to_string(hello.version) +
                         " is not supported; this node speaks " + std::to_string(kProtocolVersion),
                     CloseCause::protocol);
    return;
  }
  if (hello.node_id == id_) {
    peer->quiet = true;
    if (peer->dialer) peer->dialer->stopped = true;
    peer->conn->fail(ErrorCode::self, "connected to itself", CloseCause::local);
    return;
  }
  if (!settings_.token.empty() && !same_secret(hello.token, settings_.token)) {
    std::string why = hello.token.empty() ? "no token" : "wrong token";
    spdlog::error("{}refused {} ({}): {}", log_prefix_, who, hello.name, why);
    emit(TransportStatus::error, "refused " + who + " (" + hello.name + "): " + why);
    peer->quiet = true;
    peer->conn->fail(ErrorCode::unauthorized, "authorization failed: " + why, CloseCause::protocol);
    return;
  }
  peer->remote = hello;
  if (!peer->outbound) {
    peer->nonce = hello.nonce;
    std::string reply;
    encode_hello(my_hello(hello.nonce), reply);
    peer->conn->send(std::move(reply));
  }
  establish(peer);
}

void Node::on_error_frame(const std::shared_ptr<Peer>& peer, ErrorCode code,
                          const std::string& text) {
  const auto& d = peer->dialer;
  std::string who = "peer " + peer->label;
  switch (code) {
    case ErrorCode::self:
      peer->quiet = true;
      if (d) d->stopped = true;
      break;
    case ErrorCode::duplicate:
      peer->quiet = true;
      if (d && peer->got_hello) d->standby_for = peer->remote.node_id;
      break;
    case ErrorCode::closing:
      peer->said_bye = true;
      break;
    case ErrorCode::unauthorized:
    case ErrorCode::version:
      spdlog::error("{}{} refused this node: {}", log_prefix_, who, text);
      emit(TransportStatus::error, who + " refused this node: " + text);
      peer->quiet = true;
      break;
    default:
      spdlog::warn("{}{} closed the link: {}: {}", log_prefix_, who, to_string(code), text);
  }
  peer->conn->abort(CloseCause::refused, std::string(to_string(code)) + ": " + text);
}

// The link whose dialer has the smaller node id wins; ties (one node
// dialing twice) go to the smaller nonce. Both ends compute the same.
bool Node::wins(const Peer& a, const Peer& b) const {
  auto key = [&](const Peer& p) { return std::pair(p.outbound ? id_ : p.remote.node_id, p.nonce); };
  return key(a) < key(b);
}

void Node::establish(const std::shared_ptr<Peer>& peer) {
  const Hello& h = peer->remote;
  bool they_listen = (h.flags & kHelloListens) != 0;
  peer->kind = listening_ && they_listen ? LinkKind::route
               : listening_              ? LinkKind::leaf
                                         : LinkKind::hub;
  peer->label = (h.name.empty() ? std::string("?") : h.name) + " (" + peer->conn->remote() + ")";
  if (peer->kind == LinkKind::route) {
    if (peer->outbound) {
      peer->address = peer->dialer->current().text();
    } else if (!h.advertise.empty()) {
      try {
        Address a = parse_address(h.advertise, "advertise");
        if (is_unspecified(a.host)) a.host = peer->conn->remote_address().to_string();
        peer->address = a.text();
      } catch (const OptionError&) {
        spdlog::debug("{}peer {} advertises a bad address '{}'", log_prefix_, peer->label,
                      h.advertise);
      }
    }
  }
  // One link per pair of nodes.
  for (auto other : std::vector(peers_)) {
    if (other == peer || !other->established || other->remote.node_id != h.node_id) continue;
    if (wins(*other, *peer)) {
      peer->quiet = true;
      if (peer->dialer) peer->dialer->standby_for = h.node_id;
      peer->conn->fail(ErrorCode::duplicate, "a link between these nodes exists already",
                       CloseCause::local);
      return;
    }
    other->quiet = true;
    if (other->dialer) other->dialer->standby_for = h.node_id;
    link_down(other, CloseCause::local, "replaced by a duplicate link");
    other->conn->fail(ErrorCode::duplicate, "replaced by another link between these nodes",
                      CloseCause::local);
  }
  peer->established = true;
  peer->conn->established();
  // Leaves come and go with every short-lived client: debug.
  spdlog::log(peer->kind == LinkKind::leaf ? spdlog::level::debug : spdlog::level::info,
              "{}linked with {} as {}", log_prefix_, peer->label, to_string(peer->kind));
  sync_interest(*peer);
  if (peer->kind == LinkKind::route && settings_.gossip) {
    std::vector<std::string> known;
    for (const auto& p : peers_) {
      if (p != peer && p->established && p->kind == LinkKind::route && !p->address.empty()) {
        known.push_back(p->address);
      }
    }
    if (!known.empty()) {
      std::string frame;
      encode_peers(known, frame);
      peer->conn->send(std::move(frame));
    }
  }
  if (const auto& d = peer->dialer) {
    bool again = d->ever_linked;
    d->ever_linked = true;
    d->failures = 0;
    d->standby_for = 0;
    if (d->role == Dialer::Role::hub) {
      if (again) {
        emit(TransportStatus::reconnected,
             "rejoined the mesh through tcp://" + d->current().text() + " (" + h.name + ")");
      } else if (gate_open_) {
        announce();  // the start gate opened without this hub (it came late)
      }
    } else if (again) {
      emit(TransportStatus::reconnected,
           "peer tcp://" + d->current().text() + " (" + h.name + ") linked again");
    }
  }
}

void Node::link_down(const std::shared_ptr<Peer>& peer, CloseCause cause,
                     const std::string& reason) {
  if (!peer->established) return;
  peer->established = false;
  std::vector<Key> keys;
  auto& sums = peer->kind == LinkKind::route ? route_sum_ : nonroute_sum_;
  for (const auto& [key, entry] : peer->interest) {
    index_.erase(entry.first);
    targets_.erase(entry.first);
    adjust(sums, key, -static_cast<std::int64_t>(entry.second));
    keys.push_back(key);
  }
  peer->interest.clear();
  peer->advertised.clear();
  for (const auto& key : keys) refresh(key);

  std::string what = "peer " + peer->label + ": " + (peer->said_bye ? "it closed" : reason);
  if (peer->quiet || closing_) {
    spdlog::debug("{}link with {} closed: {}", log_prefix_, peer->label, reason);
  } else if (cause == CloseCause::slow_consumer) {
    spdlog::warn("{}cut off slow consumer {}", log_prefix_, what);
    emit(TransportStatus::slow_consumer, what);
  } else if (peer->kind == LinkKind::hub) {
    spdlog::log(peer->said_bye ? spdlog::level::info : spdlog::level::warn, "{}lost the hub {}",
                log_prefix_, what);
    emit(TransportStatus::disconnected, what);
  } else if (peer->said_bye) {
    spdlog::log(peer->kind == LinkKind::leaf ? spdlog::level::debug : spdlog::level::info,
                "{}{} left", log_prefix_, peer->label);
  } else {
    // A crashed process looks like this too: its socket just ends.
    spdlog::warn("{}lost {}", log_prefix_, what);
    emit(TransportStatus::error, "lost " + what);
  }
  // Dialers waiting behind this link to the same node take over.
  for (auto& d : dialers_) {
    if (d->standby_for == peer->remote.node_id && d->peer != peer) {
      d->standby_for = 0;
      schedule(d, backoff(1));
    }
  }
}

void Node::on_peer_closed(const std::shared_ptr<Peer>& peer, CloseCause cause,
                          const std::string& reason) {
  bool was_linked = peer->established;
  if (was_linked) {
    link_down(peer, cause, reason);
  } else if (peer->outbound && !peer->quiet) {
    // dial_failed() below says it.
  } else if (!peer->quiet && !closing_ && !peer->got_hello) {
    spdlog::warn("{}closed connection from {} before its handshake: {}", log_prefix_,
                 peer->conn->remote(), reason);
  } else if (!peer->quiet && !closing_) {
    spdlog::warn("{}closed connection with {}: {}", log_prefix_, peer->label, reason);
    if (cause == CloseCause::slow_consumer) emit(TransportStatus::slow_consumer, reason);
  }
  const auto d = peer->dialer;
  if (!d || d->peer != peer) return;
  d->peer.reset();
  if (closing_) return;
  if (d->stopped) {
    if (d->in_gate) gate_done(d);
    std::erase(dialers_, d);
    return;
  }
  if (d->standby_for != 0) {
    if (d->in_gate) gate_done(d);
    schedule(d, milliseconds(settings_.reconnect_max_wait_ms));
    return;
  }
  if (was_linked) {
    d->failures = 0;
    schedule(d, backoff(1));
  } else {
    dial_failed(d, reason);
  }
}

void Node::on_peer_finished(const std::shared_ptr<Peer>& peer) {
  std::erase(peers_, peer);
  check_closed();
}

bool Node::has_link_to(std::uint64_t node_id) const {
  return std::any_of(peers_.begin(), peers_.end(), [&](const std::shared_ptr<Peer>& p) {
    return p->established && p->remote.node_id == node_id;
  });
}

bool Node::hub_up() const {
  return std::any_of(peers_.begin(), peers_.end(), [](const std::shared_ptr<Peer>& p) {
    return p->established && p->kind == LinkKind::hub;
  });
}

void Node::on_peers(const std::shared_ptr<Peer>& peer, const std::vector<std::string>& addresses) {
  if (!settings_.gossip || peer->kind != LinkKind::route || !listening_ || closing_) return;
  for (const auto& text : addresses) {
    Address a;
    try {
      a = parse_address(text, "peers");
    } catch (const OptionError&) {
      continue;
    }
    std::string normal = a.text();
    if (normal == advertise_ || normal == listen_text_) continue;
    bool known = std::any_of(dialers_.begin(), dialers_.end(), [&](const auto& d) {
      return std::any_of(d->addresses.begin(), d->addresses.end(),
                         [&](const Address& x) { return x.text() == normal; });
    });
    known = known || std::any_of(peers_.begin(), peers_.end(), [&](const auto& p) {
              return p->established && p->address == normal;
            });
    if (known) continue;
    spdlog::debug("{}learned peer tcp://{} from {}", log_prefix_, normal, peer->label);
    dial(add_dialer(Dialer::Role::gossip, {a}));
  }
}

// ---- dialing ------------------------------------------------------------------

std::shared_ptr<Dialer> Node::add_dialer(Dialer::Role role, std::vector<Address> addresses) {
  auto d = std::make_shared<Dialer>(ex_, role, std::move(addresses));
  dialers_.push_back(d);
  return d;
}

void Node::dial(const std::shared_ptr<Dialer>& d) {
  if (closing_ || d->stopped || d->peer) return;
  auto attempt = ++d->attempt;
  const Address& a = d->current();
  std::weak_ptr<Node> weak = weak_from_this();
  d->resolver.async_resolve(
      a.host, a.port,
      [weak, d, attempt](const boost::system::error_code& ec, tcp::resolver::results_type results) {
        auto n = weak.lock();
        if (!n || n->closing_ || attempt != d->attempt) return;
        if (ec)
          return n->dial_failed(d, "cannot resolve " + d->current().host + ": " + ec.message());
        d->socket = std::make_shared<tcp::socket>(n->ex_);
        d->timer.expires_after(milliseconds(n->settings_.connect_timeout_ms));
        d->timer.async_wait([d, attempt](const boost::system::error_code& tec) {
          boost::system::error_code ignored;
          if (!tec && attempt == d->attempt && d->socket) d->socket->close(ignored);
        });
        asio::async_connect(
            *d->socket, results,
            [weak, d, attempt](const boost::system::error_code& cec, const tcp::endpoint&) {
              auto n = weak.lock();
              if (!n || n->closing_ || attempt != d->attempt) return;
              d->timer.cancel();
              auto socket = std::move(d->socket);
              if (cec) {
                return n->dial_failed(
                    d, cec == asio::error::operation_aborted ? "connect timed out" : cec.message());
              }
              n->start_peer(std::move(*socket), d);
            });
      });
}

milliseconds Node::backoff(int failures) const {
  std::int64_t wait = settings_.reconnect_wait_ms;
  for (int i = 1; i < failures && wait < settings_.reconnect_max_wait_ms; ++i) wait *= 2;
  wait = std::min(wait, settings_.reconnect_max_wait_ms);
  if (settings_.reconnect_jitter_ms > 0) {
    wait += static_cast<std::int64_t>(
        random_u64() % static_cast<std::uint64_t>(settings_.reconnect_jitter_ms + 1));
  }
  return milliseconds(wait);
}

void Node::dial_failed(const std::shared_ptr<Dialer>& d, const std::string& reason) {
  ++d->failures;
  if (d->in_gate) gate_done(d);
  std::string where = "tcp://" + d->current().text();
  if (d->failures == 1) {
    spdlog::info("{}cannot reach peer {}: {}", log_prefix_, where, reason);
  } else {
    spdlog::debug("{}cannot reach peer {} (attempt {}): {}", log_prefix_, where, d->failures,
                  reason);
  }
  if (d->role == Dialer::Role::hub) ++d->next;  // fail over to the next peer
  bool give_up =
      settings_.reconnect_max_attempts >= 0 && d->failures > settings_.reconnect_max_attempts;
  // An address learned by gossip that never answered is forgotten.
  if (d->role == Dialer::Role::gossip && !d->ever_linked && d->failures >= 3) give_up = true;
  if (give_up) {
    d->stopped = true;
    if (d->role != Dialer::Role::gossip) {
      spdlog::warn("{}giving up on {} after {} attempts", log_prefix_, d->describe(), d->failures);
      emit(TransportStatus::error, "giving up on " + d->describe());
    }
    std::erase(dialers_, d);
    return;
  }
  schedule(d, backoff(d->failures));
}

void Node::schedule(const std::shared_ptr<Dialer>& d, milliseconds delay) {
  if (closing_ || d->stopped) return;
  auto attempt = ++d->attempt;
  d->timer.expires_after(delay);
  d->timer.async_wait([weak = weak_from_this(), d, attempt](const boost::system::error_code& ec) {
    auto n = weak.lock();
    if (ec || !n || n->closing_ || attempt != d->attempt || d->peer) return;
    if (d->standby_for != 0) {
      if (n->has_link_to(d->standby_for)) {
        n->schedule(d, milliseconds(n->settings_.reconnect_max_wait_ms));
        return;
      }
      d->standby_for = 0;
    }
    n->dial(d);
  });
}

void Node::gate_done(const std::shared_ptr<Dialer>& d) {
  if (!d->in_gate) return;
  d->in_gate = false;
  if (--gate_waiting_ <= 0) open_gate();
}

// `connected` means ready: listening, and the peers given at start have
// sent their interest (or failed), or, joining, the hub has.
void Node::announce() {
  if (announced_ || (leaf_ && !hub_up())) return;
  announced_ = true;
  std::string detail;
  if (leaf_) {
    for (const auto& p : peers_) {
      if (p->established && p->kind == LinkKind::hub) {
        detail = "joined the mesh through tcp://" + p->dialer->current().text() + " (" +
                 p->remote.name + ")";
      }
    }
  } else {
    auto linked =
        std::count_if(peers_.begin(), peers_.end(), [](const auto& p) { return p->established; });
    detail = "listening on tcp://" + listen_text_ + ", " + std::to_string(linked) + " of " +
             std::to_string(settings_.peers.size()) + " peers linked";
  }
  emit(TransportStatus::connected, detail);
}

void Node::open_gate() {
  if (gate_open_) return;
  gate_open_ = true;
  gate_timer_.cancel();
  announce();
  auto held = std::move(held_);
  held_.clear();
  held_bytes_ = 0;
  for (auto& msg : held) {
    if (closing_) break;
    publish_now(msg, true);
  }
}

// ---- interest -----------------------------------------------------------------

void Node::on_interest(const std::shared_ptr<Peer>& peer, const Interest& in, bool sub) {
  std::string why;
  if (validate_subject(in.filter, true, why) || has_white_space(in.queue)) {
    peer->conn->fail(ErrorCode::protocol,
                     "bad subscription '" + in.filter + "' queue '" + in.queue + "': " + why,
                     CloseCause::protocol);
    return;
  }
  Key key{in.filter, in.queue};
  if (sub && in.weight > 0 && !peer->interest.count(key) &&
      peer->interest.size() >= kMaxInterestPerPeer) {
    peer->conn->fail(ErrorCode::protocol, "too many subscriptions", CloseCause::protocol);
    return;
  }
  set_remote_interest(peer, key, sub ? in.weight : 0);
}

void Node::set_remote_interest(const std::shared_ptr<Peer>& peer, const Key& key,
                               std::uint32_t weight) {
  auto it = peer->interest.find(key);
  std::uint32_t old = it == peer->interest.end() ? 0 : it->second.second;
  if (weight == old) return;
  if (weight == 0) {
    index_.erase(it->second.first);
    targets_.erase(it->second.first);
    peer->interest.erase(it);
  } else if (old == 0) {
    auto id = index_.insert(key.first, "");
    targets_.emplace(id, Target{nullptr, peer, key.second, weight});
    peer->interest.emplace(key, std::pair(id, weight));
  } else {
    it->second.second = weight;
    targets_.at(it->second.first).weight = weight;
  }
  adjust(peer->kind == LinkKind::route ? route_sum_ : nonroute_sum_, key,
         static_cast<std::int64_t>(weight) - static_cast<std::int64_t>(old));
  refresh(key);
}

// To a route: our subscriptions and our leaves' (a route does not forward
// to other routes). To a leaf or the hub: everything but its own.
std::uint32_t Node::advertised_weight(const Peer& to, const Key& key) const {
  std::uint64_t w = std::uint64_t{get(local_count_, key)} + get(nonroute_sum_, key);
  if (to.kind != LinkKind::route) {
    auto own = to.interest.find(key);
    if (own != to.interest.end()) w -= std::min<std::uint64_t>(w, own->second.second);
    w += get(route_sum_, key);
  }
  return static_cast<std::uint32_t>(std::min<std::uint64_t>(w, 0xffffffffu));
}

void Node::update(Peer& to, const Key& key) {
  std::uint32_t w = advertised_weight(to, key);
  auto it = to.advertised.find(key);
  std::uint32_t old = it == to.advertised.end() ? 0 : it->second;
  if (w == old) return;
  std::string frame;
  if (w == 0) {
    to.advertised.erase(it);
    encode_unsub(key.first, key.second, frame);
  } else {
    to.advertised[key] = w;
    // A plain subscription's weight does not matter: only news of 0 <-> some.
    if (old != 0 && key.second.empty()) return;
    encode_sub(Interest{key.first, key.second, w}, frame);
  }
  to.conn->send(std::move(frame));
}

void Node::refresh(const Key& key) {
  for (const auto& p : peers_) {
    if (p->established) update(*p, key);
  }
}

void Node::sync_interest(Peer& to) {
  std::vector<const Key*> keys;
  for (const auto* sums : {&local_count_, &nonroute_sum_, &route_sum_}) {
    for (const auto& [key, w] : *sums) keys.push_back(&key);
  }
  std::sort(keys.begin(), keys.end(), [](const Key* a, const Key* b) { return *a < *b; });
  keys.erase(
      std::unique(keys.begin(), keys.end(), [](const Key* a, const Key* b) { return *a == *b; }),
      keys.end());
  for (const Key* key : keys) update(to, *key);
  std::string frame;
  encode_empty(FrameType::synced, frame);
  to.conn->send(std::move(frame));
}

// ---- messages -----------------------------------------------------------------

bool Node::eligible(const Peer& to, const Peer* from) const {
  if (&to == from || !to.established || !to.conn->usable()) return false;
  return !(from && from->kind == LinkKind::route && to.kind == LinkKind::route);
}

std::size_t Node::route(const Message& msg, const Peer* from,
                        const std::vector<std::string>* queues, bool local_only) {
  // The vectors of the node's scratch, unless a handler called from here
  // routes again: every message is routed twice, on the way out and on the
  // way in, and these were four allocations each time.
  RouteScratch own;
  RouteScratch& scratch = scratch_busy_ ? own : scratch_;
  struct Release {  // keeps the capacity, not the subscribers and peers
    RouteScratch& scratch;
    bool& busy;
    bool took;
    ~Release() {
      scratch.locals.clear();
      scratch.remotes.clear();
      if (took) busy = false;
    }
  } release{scratch, scratch_busy_, !scratch_busy_};
  scratch_busy_ = true;
  auto& ids = scratch.ids;
  auto& locals = scratch.locals;
  auto& remotes = scratch.remotes;
  auto& members = scratch.members;  // of queue groups
  ids.clear();
  locals.clear();
  remotes.clear();
  members.clear();
  index_.match(msg.subject, ids);
  auto remote = [&](const std::shared_ptr<Peer>& p) -> std::vector<std::string>& {
    for (auto& r : remotes) {
      if (r.first == p) return r.second;
    }
    return remotes.emplace_back(p, std::vector<std::string>()).second;
  };
  for (auto id : ids) {
    auto it = targets_.find(id);
    if (it == targets_.end()) continue;
    const Target& t = it->second;
    if (t.peer && (local_only || !eligible(*t.peer, from))) continue;
    if (t.local && !t.local->alive) continue;
    if (t.queue.empty()) {
      if (t.local) {
        locals.push_back(t.local);
      } else {
        remote(t.peer);
      }
    } else if (!queues || std::find(queues->begin(), queues->end(), t.queue) != queues->end()) {
      members.push_back(&t);
    }
  }
  if (!members.empty()) {
    std::stable_sort(members.begin(), members.end(),
                     [](const Target* a, const Target* b) { return a->queue < b->queue; });
    for (std::size_t i = 0; i < members.size();) {
      std::size_t j = i;
      std::uint64_t total = 0;
      while (j < members.size() && members[j]->queue == members[i]->queue) {
        total += members[j]->weight;
        ++j;
      }
      std::uint64_t pick = rotation_[members[i]->queue]++ % total;
      for (std::size_t k = i; k < j; ++k) {
        if (pick < members[k]->weight) {
          if (members[k]->local) {
            locals.push_back(members[k]->local);
          } else {
            remote(members[k]->peer).push_back(members[k]->queue);
          }
          break;
        }
        pick -= members[k]->weight;
      }
      i = j;
    }
  }
  // Forward first: a local handler may take its time.
  for (auto& [peer, group_names] : remotes) {
    std::string head;
    encode_msg_head(msg.subject, msg.reply_to, msg.headers, group_names, msg.data.size(), head);
    if (head.size() - 4 + msg.data.size() > peer->remote.max_frame) {
      if (!peer->warned_frame) {
        peer->warned_frame = true;
        spdlog::warn(
            "{}a message on {} ({} bytes) is above the frame limit of {} ({} bytes); "
            "such messages are not sent to it",
            log_prefix_, msg.subject, msg.data.size(), peer->label, peer->remote.max_frame);
      }
      continue;
    }
    peer->conn->send_msg(std::move(head), msg.data);
  }
  std::size_t count = locals.size() + remotes.size();
  if (locals.empty()) return count;
  if (from == nullptr) {
    // Our own publish: never re-enter the caller.
    asio::post(ex_, [locals, msg, prefix = log_prefix_]() mutable {
      for (auto& sub : locals) {
        if (!sub->alive) continue;
        try {
          sub->handler(msg);
        } catch (const std::exception& e) {
          spdlog::error("{}handler for {} threw: {}", prefix, sub->subject, e.what());
        }
      }
    });
  } else {
    auto self = shared_from_this();
    for (auto& sub : locals) {
      if (!sub->alive || stopped_) continue;
      try {
        sub->handler(msg);
      } catch (const std::exception& e) {
        spdlog::error("{}handler for {} threw: {}", log_prefix_, sub->subject, e.what());
      }
    }
  }
  return count;
}

void Node::on_msg(const std::shared_ptr<Peer>& peer, MsgFrame& frame) {
  if (closing_) return;
  std::string why;
  if (check_literal_subject(frame.subject, why) ||
      (!frame.reply_to.empty() && check_literal_subject(frame.reply_to, why))) {
    peer->conn->fail(ErrorCode::protocol, "bad subject: " + why, CloseCause::protocol);
    return;
  }
  Message msg;
  msg.subject = std::move(frame.subject);
  msg.reply_to = std::move(frame.reply_to);
  msg.headers = std::move(frame.headers);
  msg.data = Payload(std::string(frame.data));
  route(msg, peer.get(), &frame.queues);
}

std::error_code Node::publish(Message msg) {
  if (!connected_ || closing_) return make_error_code(errc::closed);
  if (msg.data.size() > max_payload_) return make_error_code(errc::payload_too_large);
  std::string why;
  if (auto ec = check_literal_subject(msg.subject, why)) return ec;
  if (!msg.reply_to.empty()) {
    if (auto ec = check_literal_subject(msg.reply_to, why)) return ec;
  }
  if (msg.subject.size() > kMaxString || msg.reply_to.size() > kMaxString ||
      msg.headers.size() > kMaxString) {
    return make_error_code(errc::invalid_argument);
  }
  for (const auto& [k, v] : msg.headers) {
    if (k.size() > kMaxString) return make_error_code(errc::invalid_argument);
  }
  if (msg_head_size(msg.subject, msg.reply_to, msg.headers, {}) - 4 + msg.data.size() >
      settings_.max_frame_bytes) {
    return make_error_code(errc::payload_too_large);
  }
  if (!gate_open_) {
    std::size_t size = msg.data.size() + msg.subject.size();
    if (held_bytes_ + size > settings_.max_outbound_bytes) {
      return make_error_code(errc::disconnected);
    }
    held_bytes_ += size;
    held_.push_back(std::move(msg));
    return {};
  }
  return publish_now(msg, false);
}

std::error_code Node::publish_now(Message& msg, bool deferred) {
  std::size_t receivers = route(msg, nullptr, nullptr);
  if (receivers > 0 || msg.reply_to.empty()) return {};
  if (deferred) {
    answer_no_responders(msg.reply_to);
    return {};
  }
  if (leaf_ && !hub_up()) return make_error_code(errc::disconnected);
  return make_error_code(errc::no_responders);
}

// What a NATS server sends for a request nobody listens to: an empty
// message with "Status: 503" on the reply subject (the runtime reads it).
void Node::answer_no_responders(const std::string& reply_to) {
  Message m;
  m.subject = reply_to;
  m.headers.emplace("Status", "503");
  route(m, nullptr, nullptr, true);
}

std::error_code Node::subscribe(const std::string& subject, const std::string& queue,
                                MessageHandler handler, std::shared_ptr<LocalSub>& out) {
  if (!connected_ || closing_) return make_error_code(errc::closed);
  std::string why;
  if (auto ec = validate_subject(subject, true, why)) return ec;
  if (subject.size() > kMaxString || queue.size() > kMaxString || has_white_space(queue)) {
    return make_error_code(errc::invalid_argument);
  }
  auto sub = std::make_shared<LocalSub>();
  sub->subject = subject;
  sub->queue = queue;
  sub->handler = std::move(handler);
  sub->id = index_.insert(subject, "");
  targets_.emplace(sub->id, Target{sub, nullptr, queue, 1});
  Key key{subject, queue};
  adjust(local_count_, key, 1);
  refresh(key);
  out = std::move(sub);
  return {};
}

void Node::remove_local(const std::shared_ptr<LocalSub>& sub) {
  sub->alive = false;
  auto it = targets_.find(sub->id);
  if (it == targets_.end() || it->second.local != sub) return;
  targets_.erase(it);
  index_.erase(sub->id);
  Key key{sub->subject, sub->queue};
  adjust(local_count_, key, -1);
  refresh(key);
}

// ---- close --------------------------------------------------------------------

void Node::emit(TransportStatus status, std::string detail) {
  if (!status_ || stopped_) return;
  asio::post(ex_, [h = status_, ev = StatusEvent{status, std::move(detail)}] { h(ev); });
}

void Node::close(std::function<void()> done) {
  if (close_finished_) {
    if (done) asio::post(ex_, std::move(done));
    return;
  }
  if (done) close_done_.push_back(std::move(done));
  if (closing_) {
    check_closed();
    return;
  }
  closing_ = true;
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  for (auto& d : dialers_) {
    d->stopped = true;
    d->timer.cancel();
    d->resolver.cancel();
    if (d->socket) d->socket->close(ignored);
  }
  gate_timer_.cancel();
  if (!held_.empty()) {
    spdlog::warn("{}closed before the mesh was reached: {} messages not sent", log_prefix_,
                 held_.size());
    held_.clear();
  }
  for (auto& p : std::vector(peers_)) {
    p->quiet = true;
    // After everything queued: the peer sees a clean leave, not a crash.
    if (p->established) {
      std::string bye;
      encode_error(ErrorCode::closing, "node closing", bye);
      p->conn->send(std::move(bye));
    }
    p->conn->close_gracefully(CloseCause::local, "closing");
  }
  check_closed();
}

void Node::check_closed() {
  if (!closing_ || close_finished_ || !peers_.empty() || stopped_) return;
  close_finished_ = true;
  spdlog::debug("{}closed", log_prefix_);
  asio::post(ex_, [h = status_, done = std::move(close_done_)] {
    if (h) h(StatusEvent{TransportStatus::closed, "tcp_peer closed"});
    for (const auto& d : done) d();
  });
  close_done_.clear();
}

void Node::terminate() {
  if (stopped_) return;
  closing_ = true;
  stopped_ = true;
  status_ = nullptr;
  boost::system::error_code ignored;
  if (acceptor_) acceptor_->close(ignored);
  for (auto& d : dialers_) {
    d->stopped = true;
    d->timer.cancel();
    d->resolver.cancel();
    if (d->socket) d->socket->close(ignored);
    d->peer.reset();
  }
  dialers_.clear();
  gate_timer_.cancel();
  held_.clear();
  for (auto& p : peers_) {
    p->conn->abandon();
    p->dialer.reset();
  }
  peers_.clear();
  for (auto& [id, t] : targets_) {
    if (t.local) t.local->alive = false;
  }
  targets_.clear();
}

// ---- the plugin's objects -------------------------------------------------------

class PeerSubscription final : public Subscription {
 public:
  PeerSubscription(std::weak_ptr<Node> node, std::shared_ptr<LocalSub> sub)
      : node_(std::move(node)), sub_(std::move(sub)) {}
  void unsubscribe() override {
    sub_->alive = false;
    if (auto n = node_.lock()) n->remove_local(sub_);
  }
  const std::string& subject() const override { return sub_->subject; }

 private:
  std::weak_ptr<Node> node_;
  std::shared_ptr<LocalSub> sub_;
};

class TcpPeerTransport final : public Transport {
 public:
  TcpPeerTransport(const TransportConfig& config, const TransportContext& context)
      : node_(std::make_shared<Node>(config, context)) {}
  ~TcpPeerTransport() override { node_->terminate(); }

  const std::string& type() const override {
    static const std::string name = "tcp_peer";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;
    c.queue_groups = true;
    c.headers = true;
    c.no_responders = true;
    return c;
  }
  std::size_t max_payload() const override { return node_->max_payload(); }
  std::error_code connect() override { return node_->connect(); }
  std::error_code publish(Message msg) override { return node_->publish(std::move(msg)); }
  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    std::shared_ptr<LocalSub> sub;
    if (auto ec = node_->subscribe(subject, queue_group, std::move(handler), sub)) return ec;
    out = std::make_unique<PeerSubscription>(node_, std::move(sub));
    return {};
  }
  void on_status(StatusHandler handler) override { node_->on_status(std::move(handler)); }
  void close(std::function<void()> done) override { node_->close(std::move(done)); }

 private:
  std::shared_ptr<Node> node_;
};

const TransportFactoryFor<TcpPeerTransport> factory;

}  // namespace
}  // namespace switchboard::tcp_peer

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "tcp_peer", "1.0.0",
                   switchboard::tcp_peer::factory)
