// websocket: a hub that serves WebSocket clients (browsers, Node programs,
// other Switchboard nodes) and a client of such a hub, in one plugin. The
// protocol is in docs/websocket.md.
//
// Threading: all I/O runs on TransportContext::executor (the runtime's
// strand), so every callback runs there, and the transport's methods are
// called there too; nothing is locked but the process-wide table of hubs
// listening on port 0 (see connect()).
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "ws_core.hpp"

namespace switchboard::websocket {
namespace {

// `ws://host:0` in auto mode: the first transport of the process listens on
// a free port and the later ones, while it is open, connect to it (a port
// no other process can guess, for tests and embedded use).
struct EphemeralHubs {
  std::mutex mutex;
  std::map<std::string, std::weak_ptr<Hub>> hubs;
};
EphemeralHubs& ephemeral_hubs() {
  static EphemeralHubs table;
  return table;
}

class WsSubscription final : public Subscription {
 public:
  WsSubscription(std::function<void()> stop, std::shared_ptr<LocalSub> sub)
      : stop_(std::move(stop)), sub_(std::move(sub)) {}
  void unsubscribe() override {
    sub_->alive = false;
    if (auto stop = std::exchange(stop_, nullptr)) stop();
  }
  const std::string& subject() const override { return sub_->subject; }

 private:
  std::function<void()> stop_;
  std::shared_ptr<LocalSub> sub_;
};

std::string unspecified_to_loopback(const std::string& host) {
  if (host == "0.0.0.0" || host.empty()) return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

class WebSocketTransport final : public Transport {
 public:
  WebSocketTransport(const TransportConfig& config, const TransportContext& context)
      : status_(std::make_shared<StatusSink>(context.executor)) {
    cx_.executor = context.executor;
    cx_.settings = read_settings(config);
    cx_.instance = config.instance.empty() ? "websocket" : config.instance;
    cx_.max_payload = config.max_payload;
    cx_.status = status_;
    if (cx_.settings.mode != Mode::connect && cx_.settings.tls_server) {
      server_tls_ = make_server_tls(cx_.settings);
    }
    if (cx_.settings.server.tls) client_tls_ = make_client_tls(cx_.settings);
  }

  ~WebSocketTransport() override {
    if (hub_) hub_->shutdown();
    if (client_) client_->shutdown();
  }

  const std::string& type() const override {
    static const std::string name = "websocket";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;
    c.queue_groups = true;
    c.headers = true;
    // A hub knows at once that nobody listens; a client learns it later,
    // from the hub's Status 503 message on the reply subject.
    c.no_responders = hub_ != nullptr;
    return c;
  }
  std::size_t max_payload() const override { return cx_.max_payload; }

  std::error_code connect() override {
    if (hub_ || client_) return {};
    const Settings& s = cx_.settings;
    if (s.mode == Mode::connect) return connect_client(s.server);
    if (s.mode == Mode::auto_ && s.listen.port == "0") {
      auto& table = ephemeral_hubs();
      std::lock_guard lock(table.mutex);
      std::string key = s.listen.url() + s.listen.target;
      if (auto hub = table.hubs[key].lock(); hub && !hub->closing()) {
        Endpoint to = s.listen;
        to.host = unspecified_to_loopback(to.host);
        to.port = std::to_string(hub->port());
        return connect_client(to);
      }
      auto ec = listen();
      if (!ec) table.hubs[key] = hub_;
      return ec;
    }
    auto ec = listen();
    if (ec == std::errc::address_in_use && s.mode == Mode::auto_) {
      spdlog::debug("{}: {} is taken; connecting to it", cx_.log_name(), s.listen.url());
      Endpoint to = s.server;
      to.host = unspecified_to_loopback(to.host);
      if (to.tls && !client_tls_) client_tls_ = make_client_tls(s);
      return connect_client(to);
    }
    return ec;
  }

  std::error_code publish(Message msg) override {
    if (closed_ || (!hub_ && !client_)) return make_error_code(errc::closed);
    if (msg.data.size() > cx_.max_payload) return make_error_code(errc::payload_too_large);
    std::string why;
    if (auto ec = validate_subject(msg.subject, false, why)) return ec;
    if (!msg.reply_to.empty()) {
      if (auto ec = validate_subject(msg.reply_to, false, why)) return ec;
    }
    if (hub_) return hub_->publish(std::move(msg));
    return client_->publish(msg);
  }

  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    if (closed_ || (!hub_ && !client_)) return make_error_code(errc::closed);
    std::string why;
    if (auto ec = validate_subject(subject, true, why)) return ec;
    if (queue_group.find_first_of(" \t\r\n") != std::string::npos) {
      return make_error_code(errc::invalid_argument);
    }
    auto sub = std::make_shared<LocalSub>();
    sub->subject = subject;
    sub->queue = queue_group;
    sub->handler = std::move(handler);
    std::function<void()> stop;
    if (hub_) {
      auto id = hub_->subscribe(subject, queue_group, sub);
      stop = [weak = std::weak_ptr<Hub>(hub_), id] {
        if (auto hub = weak.lock()) hub->unsubscribe(id);
      };
    } else {
      auto sid = client_->subscribe(subject, queue_group, sub);
      stop = [weak = std::weak_ptr<Client>(client_), sid] {
        if (auto client = weak.lock()) client->unsubscribe(sid);
      };
    }
    out = std::make_unique<WsSubscription>(std::move(stop), std::move(sub));
    return {};
  }

  void on_status(StatusHandler handler) override { status_->set(std::move(handler)); }

  void close(std::function<void()> done) override {
    closed_ = true;
    if (hub_) return hub_->close(std::move(done));
    if (client_) return client_->close(std::move(done));
    asio::post(cx_.executor, std::move(done));
  }

 private:
  std::error_code listen() {
    auto hub = std::make_shared<Hub>(cx_, server_tls_);
    if (auto ec = hub->listen()) {
      if (ec != std::errc::address_in_use || cx_.settings.mode != Mode::auto_) {
        spdlog::error("{}: cannot listen on {}: {}", cx_.log_name(), cx_.settings.listen.url(),
                      ec.message());
      }
      return ec;
    }
    hub_ = std::move(hub);
    return {};
  }

  std::error_code connect_client(const Endpoint& to) {
    auto client = std::make_shared<Client>(cx_, client_tls_, to);
    if (auto ec = client->connect()) {
      spdlog::error("{}: cannot connect to {}: {}", cx_.log_name(), to.url(), ec.message());
      return ec;
    }
    client_ = std::move(client);
    return {};
  }

  CoreContext cx_;
  std::shared_ptr<StatusSink> status_;
  std::shared_ptr<asio::ssl::context> server_tls_, client_tls_;
  std::shared_ptr<Hub> hub_;
  std::shared_ptr<Client> client_;
  bool closed_ = false;
};

const TransportFactoryFor<WebSocketTransport> factory;

}  // namespace

std::shared_ptr<asio::ssl::context> make_server_tls(const Settings& s) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(s.tls.cert, ec);
  if (ec) throw OptionError("tls.cert", "cannot load '" + s.tls.cert + "': " + ec.message());
  ctx->use_private_key_file(s.tls.key, asio::ssl::context::pem, ec);
  if (ec) throw OptionError("tls.key", "cannot load '" + s.tls.key + "': " + ec.message());
  return ctx;
}

std::shared_ptr<asio::ssl::context> make_client_tls(const Settings& s) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                   asio::ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  ctx->set_default_verify_paths(ec);
  if (!s.tls.ca.empty()) {
    ctx->load_verify_file(s.tls.ca, ec);
    if (ec) throw OptionError("tls.ca", "cannot load '" + s.tls.ca + "': " + ec.message());
  }
  if (!s.tls.cert.empty() && s.mode == Mode::connect) {
    ctx->use_certificate_chain_file(s.tls.cert, ec);
    if (ec) throw OptionError("tls.cert", "cannot load '" + s.tls.cert + "': " + ec.message());
    ctx->use_private_key_file(s.tls.key, asio::ssl::context::pem, ec);
    if (ec) throw OptionError("tls.key", "cannot load '" + s.tls.key + "': " + ec.message());
  }
  ctx->set_verify_mode(s.tls.verify ? asio::ssl::verify_peer : asio::ssl::verify_none);
  return ctx;
}

}  // namespace switchboard::websocket

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "websocket", "1.0.0",
                   switchboard::websocket::factory)
