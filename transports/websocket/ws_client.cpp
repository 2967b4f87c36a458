// The client: one connection to a hub. Subscriptions are kept here and sent
// again on every (re)connection; what is published while disconnected waits
// in a bounded buffer; requests can be re-sent after a reconnection
// (request.retries).
#include <spdlog/spdlog.h>

#include <boost/beast/websocket/rfc6455.hpp>

#include "switchboard/error.hpp"
#include "ws_core.hpp"
#include "ws_protocol.hpp"

namespace switchboard::websocket {
namespace {
namespace ws = beast::websocket;
using Clock = std::chrono::steady_clock;
}  // namespace

Client::Client(CoreContext context, std::shared_ptr<asio::ssl::context> ssl, Endpoint server)
    : cx_(std::move(context)),
      ssl_(std::move(ssl)),
      server_(std::move(server)),
      binary_(cx_.settings.frames == FrameFormat::msgpack),
      timer_(cx_.executor),
      drain_timer_(cx_.executor),
      resolver_(cx_.executor) {}

std::error_code Client::connect() {
  // The TCP connection is made here, blocking (with a timeout, on a private
  // io_context), so that a wrong address fails connect() at once. The
  // upgrade needs the executor to run (the hub may be in this very thread),
  // so it runs there afterwards.
  asio::io_context io;
  tcp::resolver resolver(io);
  boost::system::error_code ec;
  auto results = resolver.resolve(server_.host, server_.port, ec);
  tcp::socket socket(io);
  if (!ec) {
    asio::steady_timer timer(io, std::chrono::milliseconds(cx_.settings.connect_timeout_ms));
    bool timed_out = false;
    ec = asio::error::would_block;
    asio::async_connect(socket, results, [&](boost::system::error_code e, const tcp::endpoint&) {
      ec = e;
      timer.cancel();
    });
    timer.async_wait([&](boost::system::error_code e) {
      if (e) return;
      timed_out = true;
      boost::system::error_code ignored;
      socket.close(ignored);
    });
    io.run();
    if (timed_out) ec = asio::error::timed_out;
  }
  if (ec) {
    if (cx_.settings.retry_on_failed_connect) {
      spdlog::warn("{}: cannot connect to {}: {}; retrying every {} ms", cx_.log_name(),
                   server_.url(), ec.message(), cx_.settings.reconnect_wait_ms);
      schedule_reconnect();
      return {};
    }
    return ec;
  }
  auto protocol = socket.local_endpoint(ec).protocol();
  if (ec) return ec;
  tcp::socket moved(cx_.executor);
  moved.assign(protocol, socket.release(), ec);
  if (ec) return ec;
  start_link(beast::tcp_stream(std::move(moved)));
  return {};
}

void Client::start_link(beast::tcp_stream stream) {
  link_ = make_link(std::move(stream), ssl_, weak_from_this(), cx_.limits());
  link_->id = ++generation_;
  if (state_ != State::closed) state_ = State::connecting;
  link_->start_client(server_.text(), server_.target, cx_.settings.token,
                      cx_.settings.tls.hostname);
}

void Client::on_open(Link& link) {
  if (&link != link_.get()) return;
  bool closing = state_ == State::closed;
  if (!closing) state_ = State::open;
  attempts_ = 0;
  warned_full_ = false;
  reported_failure_ = false;
  if (!closing) {
    bool first = !ever_open_;
    ever_open_ = true;
    spdlog::log(first ? spdlog::level::debug : spdlog::level::info, "{}: {} {}", cx_.log_name(),
                first ? "connected to" : "reconnected to", server_.url());
    cx_.status->emit(first ? TransportStatus::connected : TransportStatus::reconnected,
                     server_.url());
    // Subscriptions first, so that replies to what follows find them.
    for (const auto& [sid, sub] : subs_) {
      link.send(encode_sub(sid, sub->subject, sub->queue, binary_), binary_);
    }
    // Requests sent on an earlier connection and not answered yet.
    auto now = Clock::now();
    for (auto it = requests_.begin(); it != requests_.end();) {
      Tracked& t = it->second;
      if (t.deadline < now || (t.generation != 0 && t.retries_left <= 0)) {
        it = requests_.erase(it);
        continue;
      }
      if (t.generation != 0) {
        --t.retries_left;
        t.generation = generation_;
        spdlog::debug("{}: sending the request for {} again", cx_.log_name(), it->first);
        link.send(std::string(), t.frame, binary_);
      }
      ++it;
    }
  }
  // Then what was published while disconnected, in order.
  auto now = Clock::now();
  auto limit = std::chrono::milliseconds(cx_.settings.request_timeout_ms);
  for (auto& p : pending_) {
    if (p.request && now - p.queued > limit) continue;  // its caller has given up
    link.send(std::string(), p.frame, binary_);
  }
  for (auto& [reply, t] : requests_) {
    if (t.generation == 0) t.generation = generation_;
  }
  pending_.clear();
  pending_bytes_ = 0;
  if (closing) link.close(ws::close_code::normal, "client closing");
}

void Client::on_frame(Link& link, std::string&& bytes, bool binary) {
  if (&link != link_.get()) return;
  Frame f;
  std::string why;
  if (!decode_frame(bytes, binary, f, why)) {
    spdlog::warn("{}: malformed frame from {}: {}; reconnecting", cx_.log_name(), server_.url(),
                 why);
    return link.close(ws::close_code::bad_payload, "malformed frame: " + why);
  }
  switch (f.op) {
    case Op::msg: {
      if (!requests_.empty()) requests_.erase(f.subject);
      auto it = subs_.find(f.sid);
      if (it == subs_.end()) return;  // unsubscribed meanwhile
      auto sub = it->second;
      if (!sub->alive) return;
      Message m;
      m.subject = std::move(f.subject);
      m.reply_to = std::move(f.reply_to);
      m.headers = std::move(f.headers);
      m.data = Payload(std::move(f.data));
      sub->handler(std::move(m));
      return;
    }
    case Op::err:
      spdlog::warn("{}: {} says {}{}: {}", cx_.log_name(), server_.url(), f.code,
                   f.fatal ? " (closing)" : "", f.message);
      cx_.status->emit(TransportStatus::error, server_.url() + ": " + f.code + ": " + f.message);
      return;
    case Op::info:
      spdlog::debug("{}: server info {}", cx_.log_name(), f.info);
      return;
    case Op::ping:
      link.send(encode_simple(Op::pong, binary_), binary_);
      return;
    case Op::pong:
      return;
    case Op::sub:
    case Op::unsub:
    case Op::pub:
      spdlog::warn("{}: {} sent op '{}', which only clients send; reconnecting", cx_.log_name(),
                   server_.url(), to_string(f.op));
      return link.close(ws::close_code::protocol_error, "unexpected op");
  }
}

void Client::on_closed(Link& link, const std::string& reason, bool was_open) {
  if (&link != link_.get()) return;
  auto keep = link_;  // `link` lives until this returns
  link_.reset();
  if (state_ == State::closed) return finish_close();
  if (was_open) {
    // A server going away on purpose (code 1001) is news, not a fault.
    bool going_away = reason.rfind("closed by the peer (code 1001", 0) == 0;
    spdlog::log(going_away ? spdlog::level::info : spdlog::level::warn,
                "{}: disconnected from {}: {}", cx_.log_name(), server_.url(), reason);
    cx_.status->emit(TransportStatus::disconnected, server_.url() + ": " + reason);
  }
  unsigned status = link.refused_status();
  if (status == 401 || status == 403) {
    // A wrong token or origin does not get better by trying again.
    state_ = State::failed;
    spdlog::error("{}: {} refused the connection: {}; not reconnecting", cx_.log_name(),
                  server_.url(), reason);
    cx_.status->emit(TransportStatus::error,
                     server_.url() + " refused the connection: " + reason + "; not reconnecting");
    pending_.clear();
    pending_bytes_ = 0;
    return;
  }
  if (!was_open) return attempt_failed(reason);
  schedule_reconnect();
}

void Client::attempt_failed(const std::string& reason) {
  if (state_ == State::closed) return;
  // Once per outage in the log at warning level and as a status event.
  auto level = reported_failure_ ? spdlog::level::debug : spdlog::level::warn;
  spdlog::log(level, "{}: cannot connect to {}: {}", cx_.log_name(), server_.url(), reason);
  if (!reported_failure_) {
    cx_.status->emit(TransportStatus::error, "cannot connect to " + server_.url() + ": " + reason);
  }
  reported_failure_ = true;
  schedule_reconnect();
}

void Client::schedule_reconnect() {
  if (state_ == State::closed) return;
  int max = cx_.settings.reconnect_max_attempts;
  if (max >= 0 && attempts_ >= max) {
    state_ = State::failed;
    spdlog::error("{}: gave up on {} after {} attempt(s)", cx_.log_name(), server_.url(),
                  attempts_);
    cx_.status->emit(TransportStatus::error, "gave up on " + server_.url() + " after " +
                                                 std::to_string(attempts_) + " attempt(s)");
    pending_.clear();
    pending_bytes_ = 0;
    return;
  }
  ++attempts_;
  state_ = State::waiting;
  timer_.expires_after(std::chrono::milliseconds(cx_.settings.reconnect_wait_ms));
  timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
    if (ec) return;
    if (auto self = weak.lock()) self->attempt();
  });
}

void Client::attempt() {
  if (state_ != State::waiting) return;
  state_ = State::connecting;
  resolver_.async_resolve(
      server_.host, server_.port,
      [weak = weak_from_this()](boost::system::error_code ec, tcp::resolver::results_type results) {
        auto self = weak.lock();
        if (!self || self->state_ != State::connecting) return;
        if (ec) return self->attempt_failed("cannot resolve: " + ec.message());
        auto stream = std::make_shared<beast::tcp_stream>(self->cx_.executor);
        stream->expires_after(std::chrono::milliseconds(self->cx_.settings.connect_timeout_ms));
        stream->async_connect(results,
                              [weak, stream](boost::system::error_code ec, const tcp::endpoint&) {
                                auto self = weak.lock();
                                if (!self || self->state_ != State::connecting) return;
                                if (ec) return self->attempt_failed(ec.message());
                                stream->expires_never();
                                self->start_link(std::move(*stream));
                              });
      });
}

bool Client::send(SharedFrame frame) {
  if (link_->send(std::string(), std::move(frame), binary_)) return true;
  if (!warned_full_) {
    warned_full_ = true;
    std::string why = std::to_string(link_->queued_bytes()) +
                      " bytes are waiting to be written to " + server_.url() +
                      " (max_outbound_bytes); publishing fails until they are";
    spdlog::warn("{}: {}", cx_.log_name(), why);
    cx_.status->emit(TransportStatus::slow_consumer, why);
  }
  return false;
}

std::error_code Client::publish(const Message& msg) {
  if (state_ == State::closed) return make_error_code(errc::closed);
  if (state_ == State::failed) return make_error_code(errc::disconnected);
  auto frame = std::make_shared<const std::string>(encode_pub(msg, binary_));
  bool request = !msg.reply_to.empty();
  if (request && cx_.settings.request_retries > 0) {
    if (++tracked_since_prune_ >= 1024) prune_requests();
    Tracked t;
    t.frame = frame;
    t.retries_left = cx_.settings.request_retries;
    t.deadline = Clock::now() + std::chrono::milliseconds(cx_.settings.request_timeout_ms);
    t.generation = state_ == State::open ? generation_ : 0;
    requests_[msg.reply_to] = std::move(t);
  }
  if (state_ == State::open && link_) {
    if (!send(frame)) {
      if (request) requests_.erase(msg.reply_to);
      return make_error_code(errc::transport_error);
    }
    return {};
  }
  if (pending_bytes_ + frame->size() > cx_.settings.reconnect_buffer_bytes) {
    if (request) requests_.erase(msg.reply_to);
    return make_error_code(errc::disconnected);
  }
  pending_bytes_ += frame->size();
  pending_.push_back(Pending{std::move(frame), Clock::now(), request});
  return {};
}

void Client::prune_requests() {
  tracked_since_prune_ = 0;
  auto now = Clock::now();
  for (auto it = requests_.begin(); it != requests_.end();) {
    it = it->second.deadline < now ? requests_.erase(it) : std::next(it);
  }
}

std::uint64_t Client::subscribe(const std::string& subject, const std::string& queue,
                                std::shared_ptr<LocalSub> sub) {
  auto sid = next_sid_++;
  subs_[sid] = std::move(sub);
  if (state_ == State::open && link_)
    link_->send(encode_sub(sid, subject, queue, binary_), binary_);
  return sid;
}

void Client::unsubscribe(std::uint64_t sid) {
  auto it = subs_.find(sid);
  if (it == subs_.end()) return;
  it->second->alive = false;
  subs_.erase(it);
  if (state_ == State::open && link_) link_->send(encode_unsub(sid, binary_), binary_);
}

void Client::close(std::function<void()> done) {
  if (state_ == State::closed) {
    if (close_finished_) {
      asio::post(cx_.executor, std::move(done));
    } else {
      auto previous = std::move(close_done_);
      close_done_ = [previous, done] {
        if (previous) previous();
        if (done) done();
      };
    }
    return;
  }
  State was = state_;
  state_ = State::closed;
  close_done_ = std::move(done);
  timer_.cancel();
  resolver_.cancel();
  for (auto& [sid, sub] : subs_) sub->alive = false;
  subs_.clear();
  requests_.clear();
  auto drain = std::chrono::milliseconds(cx_.settings.drain_timeout_ms);
  if (link_ && (was == State::open || (was == State::connecting && !pending_.empty()))) {
    // Open: what is queued is written, then the close handshake. Still
    // connecting with messages waiting: on_open sends them, then closes.
    if (was == State::open) link_->close(ws::close_code::normal, "client closing");
    drain_timer_.expires_after(drain);
    drain_timer_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      auto self = weak.lock();
      if (ec || !self) return;
      if (self->link_) self->link_->abort("drain timeout");
      self->link_.reset();
      self->finish_close();
    });
    return;
  }
  if (!pending_.empty()) {
    spdlog::debug("{}: closing while disconnected; {} message(s) not sent", cx_.log_name(),
                  pending_.size());
  }
  pending_.clear();
  pending_bytes_ = 0;
  if (link_) link_->abort("client closing");
  link_.reset();
  finish_close();
}

void Client::finish_close() {
  if (close_finished_) return;
  close_finished_ = true;
  drain_timer_.cancel();
  cx_.status->emit(TransportStatus::closed, server_.url());
  if (close_done_) asio::post(cx_.executor, std::move(close_done_));
}

void Client::shutdown() {
  state_ = State::closed;
  close_finished_ = true;
  timer_.cancel();
  drain_timer_.cancel();
  resolver_.cancel();
  for (auto& [sid, sub] : subs_) sub->alive = false;
  subs_.clear();
  if (link_) link_->abort("transport destroyed");
  link_.reset();
}

}  // namespace switchboard::websocket
