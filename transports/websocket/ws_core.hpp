// The two roles of a websocket transport: the Hub (listens, routes between
// its own subscriptions and its clients') and the Client (one connection to
// a hub, reconnecting). Both run on the transport's executor and are not
// thread-safe; the transport calls them from that executor.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"
#include "ws_link.hpp"
#include "ws_settings.hpp"

namespace switchboard::websocket {

// Status events to whatever handler the transport has now, posted to the
// executor (never called from inside a transport method).
class StatusSink {
 public:
  explicit StatusSink(asio::any_io_executor executor) : executor_(std::move(executor)) {}
  void set(StatusHandler handler) { handler_ = std::move(handler); }
  void emit(TransportStatus status, std::string detail) {
    if (handler_)
      asio::post(executor_, [h = handler_, ev = StatusEvent{status, std::move(detail)}] { h(ev); });
  }

 private:
  asio::any_io_executor executor_;
  StatusHandler handler_;
};

// One subscription of this node's runtime.
struct LocalSub {
  std::string subject;
  std::string queue;
  MessageHandler handler;
  bool alive = true;
};

// What both roles share.
struct CoreContext {
  asio::any_io_executor executor;
  Settings settings;
  std::string instance;
  std::size_t max_payload = 0;
  std::shared_ptr<StatusSink> status;
  LinkLimits limits() const;
  std::string log_name() const { return "websocket[" + instance + "]"; }
};

class Hub final : public LinkOwner, public std::enable_shared_from_this<Hub> {
 public:
  Hub(CoreContext context, std::shared_ptr<asio::ssl::context> ssl);

  // Binds and listens on settings.listen; starts accepting.
  std::error_code listen();
  unsigned short port() const { return port_; }
  std::string url() const;
  bool closing() const { return closing_.load(); }

  // Routes a message of this node; errc::no_responders when reply_to is
  // set and nobody (here or on a client) subscribes.
  std::error_code publish(Message msg);
  std::uint64_t subscribe(const std::string& subject, const std::string& queue,
                          std::shared_ptr<LocalSub> sub);
  void unsubscribe(std::uint64_t id);
  void close(std::function<void()> done);
  void shutdown();  // now, for the destructor

  std::optional<HttpResponse> on_request(Link& link, const HttpRequest& req) override;
  void on_open(Link& link) override;
  void on_frame(Link& link, std::string&& bytes, bool binary) override;
  void on_closed(Link& link, const std::string& reason, bool was_open) override;

 private:
  struct Session {
    std::shared_ptr<Link> link;
    bool open = false;
    struct Sub {
      SubjectIndex::Id id;
      std::string subject;
    };
    std::unordered_map<std::uint64_t, Sub> subs;  // by sid
  };
  struct Route {
    std::shared_ptr<LocalSub> local;  // null: a client's
    std::uint64_t link_id = 0;
    std::uint64_t sid = 0;
  };

  void do_accept();
  // `from_client`: a client's pub (local subscribers run here and now);
  // else this node's own publish (they are posted).
  std::size_t route(const Message& msg, bool from_client);
  void no_responders(Session& session, const std::string& reply_to);
  void refuse(Link& link, std::uint64_t sid, const std::string& code, const std::string& message);
  void protocol_error(Link& link, const std::string& message, beast::websocket::close_code code);
  void slow_consumer(Link& link);
  void finish_close();
  std::size_t open_sessions() const;

  CoreContext cx_;
  std::shared_ptr<asio::ssl::context> ssl_;
  tcp::acceptor acceptor_;
  asio::steady_timer drain_timer_;
  unsigned short port_ = 0;
  std::atomic<bool> closing_{false};
  bool close_finished_ = false;
  std::function<void()> close_done_;
  std::uint64_t next_link_id_ = 1;
  std::unordered_map<std::uint64_t, Session> sessions_;  // by link id
  std::unordered_map<SubjectIndex::Id, Route> routes_;
  std::unordered_map<SubjectIndex::Id, std::shared_ptr<LocalSub>> locals_;
  SubjectIndex index_;
  std::vector<SubjectIndex::Id> ids_;
};

class Client final : public LinkOwner, public std::enable_shared_from_this<Client> {
 public:
  Client(CoreContext context, std::shared_ptr<asio::ssl::context> ssl, Endpoint server);

  // Connects the TCP socket (blocking, up to connect_timeout_ms), then runs
  // the upgrade on the executor. Errors name the endpoint.
  std::error_code connect();
  std::error_code publish(const Message& msg);
  std::uint64_t subscribe(const std::string& subject, const std::string& queue,
                          std::shared_ptr<LocalSub> sub);
  void unsubscribe(std::uint64_t sid);
  void close(std::function<void()> done);
  void shutdown();

  std::optional<HttpResponse> on_request(Link&, const HttpRequest&) override {
    return std::nullopt;
  }
  void on_open(Link& link) override;
  void on_frame(Link& link, std::string&& bytes, bool binary) override;
  void on_closed(Link& link, const std::string& reason, bool was_open) override;

 private:
  enum class State { idle, connecting, open, waiting, failed, closed };
  struct Pending {
    SharedFrame frame;
    std::chrono::steady_clock::time_point queued;
    bool request = false;
  };
  struct Tracked {
    SharedFrame frame;
    int retries_left = 0;
    std::chrono::steady_clock::time_point deadline;
    std::uint64_t generation = 0;  // the link it was last sent on; 0: not sent yet
  };

  void start_link(beast::tcp_stream stream);
  void schedule_reconnect();
  void attempt();
  void attempt_failed(const std::string& reason);
  bool send(SharedFrame frame);
  void prune_requests();
  void finish_close();

  CoreContext cx_;
  std::shared_ptr<asio::ssl::context> ssl_;
  Endpoint server_;
  bool binary_;
  State state_ = State::idle;
  std::shared_ptr<Link> link_;
  std::uint64_t generation_ = 0;
  bool ever_open_ = false;
  int attempts_ = 0;
  asio::steady_timer timer_;
  asio::steady_timer drain_timer_;
  tcp::resolver resolver_;
  std::map<std::uint64_t, std::shared_ptr<LocalSub>> subs_;  // by sid, in order
  std::uint64_t next_sid_ = 1;
  std::deque<Pending> pending_;
  std::size_t pending_bytes_ = 0;
  std::unordered_map<std::string, Tracked> requests_;  // by reply subject
  std::size_t tracked_since_prune_ = 0;
  bool warned_full_ = false;
  bool reported_failure_ = false;
  std::function<void()> close_done_;
  bool close_finished_ = false;
};

std::shared_ptr<asio::ssl::context> make_server_tls(const Settings& settings);
std::shared_ptr<asio::ssl::context> make_client_tls(const Settings& settings);

}  // namespace switchboard::websocket
