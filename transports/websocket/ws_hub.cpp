// The hub: accepts WebSocket clients, answers GET /health, checks Origin and
// token, and routes every message (its own and its clients') through one
// SubjectIndex, so queue groups span the hub and its clients.
#include <spdlog/spdlog.h>

#include <boost/beast/http.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

#include "switchboard/error.hpp"
#include "ws_core.hpp"
#include "ws_protocol.hpp"

namespace switchboard::websocket {
namespace {

namespace ws = beast::websocket;

// Compares without stopping at the first difference (tokens).
bool same_secret(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  }
  return diff == 0;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_digit(s[i + 1]) >= 0 && hex_digit(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::string query_param(std::string_view target, std::string_view name) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  auto query = target.substr(q + 1);
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (part.substr(0, eq) == name) {
      return eq == std::string_view::npos ? std::string() : percent_decode(part.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

HttpResponse text_response(const HttpRequest& req, http::status status, std::string body,
                           const char* type = "text/plain; charset=utf-8") {
  HttpResponse res{status, req.version()};
  res.set(http::field::server, "switchboard-websocket");
  res.set(http::field::content_type, type);
  res.set(http::field::cache_control, "no-store");
  res.body() = std::move(body);
  return res;
}

}  // namespace

LinkLimits CoreContext::limits() const {
  LinkLimits l;
  l.max_message = settings.max_message_bytes;
  l.max_outbound = settings.max_outbound_bytes;
  l.handshake_timeout = std::chrono::milliseconds(settings.handshake_timeout_ms);
  l.idle_timeout = std::chrono::milliseconds(settings.idle_timeout_ms);
  return l;
}

Hub::Hub(CoreContext context, std::shared_ptr<asio::ssl::context> ssl)
    : cx_(std::move(context)),
      ssl_(std::move(ssl)),
      acceptor_(cx_.executor),
      drain_timer_(cx_.executor) {}

std::string Hub::url() const {
  Endpoint e = cx_.settings.listen;
  e.port = std::to_string(port_);
  return e.url();
}

std::error_code Hub::listen() {
  const Endpoint& where = cx_.settings.listen;
  boost::system::error_code ec;
  tcp::resolver resolver(cx_.executor);
  auto results = resolver.resolve(where.host, where.port,
                                  tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec) return ec;
  for (const auto& entry : results) {
    ec.clear();
    acceptor_.open(entry.endpoint().protocol(), ec);
    if (ec) continue;
    acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    acceptor_.bind(entry.endpoint(), ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) break;
    boost::system::error_code ignored;
    acceptor_.close(ignored);
  }
  if (ec) return ec;
  port_ = acceptor_.local_endpoint(ec).port();
  if (ec) return ec;
  spdlog::info("{}: listening on {}", cx_.log_name(), url());
  cx_.status->emit(TransportStatus::connected, "listening on " + url());
  do_accept();
  return {};
}

void Hub::do_accept() {
  acceptor_.async_accept(
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (ec) {
          if (ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
          spdlog::warn("{}: accept failed: {}", self->cx_.log_name(), ec.message());
          // Out of descriptors and the like: try again a little later.
          auto timer = std::make_shared<asio::steady_timer>(self->cx_.executor);
          timer->expires_after(std::chrono::milliseconds(100));
          timer->async_wait([self, timer](boost::system::error_code) {
            if (!self->closing_) self->do_accept();
          });
          return;
        }
        if (self->close_finished_) return;
        auto link = make_link(beast::tcp_stream(std::move(socket)), self->ssl_,
                              self->weak_from_this(), self->cx_.limits());
        link->id = self->next_link_id_++;
        self->sessions_[link->id].link = link;
        link->start_server();
        self->do_accept();
      });
}

std::size_t Hub::open_sessions() const {
  std::size_t n = 0;
  for (const auto& [id, s] : sessions_) n += s.open ? 1 : 0;
  return n;
}

std::optional<HttpResponse> Hub::on_request(Link& link, const HttpRequest& req) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  const auto& s = cx_.settings;
  if (path == "/health" && (req.method() == http::verb::get || req.method() == http::verb::head)) {
    bool healthy = !closing_;
    Json body = {{"status", healthy ? "ok" : "closing"},
                 {"connections", open_sessions()},
                 {"subscriptions", routes_.size()}};
    return text_response(req, healthy ? http::status::ok : http::status::service_unavailable,
                         body.dump() + "\n", "application/json");
  }
  if (!ws::is_upgrade(req)) {
    auto res = text_response(req, http::status::upgrade_required,
                             "expected a WebSocket upgrade (or GET /health)\n");
    res.set(http::field::upgrade, "websocket");
    return res;
  }
  if (closing_) {
    return text_response(req, http::status::service_unavailable, "the server is closing\n");
  }
  if (open_sessions() >= s.max_connections) {
    spdlog::warn("{}: refused {}: {} connections already (max_connections)", cx_.log_name(),
                 link.peer(), s.max_connections);
    return text_response(req, http::status::service_unavailable, "too many connections\n");
  }
  if (!s.allowed_origins.empty()) {
    auto it = req.find(http::field::origin);
    if (it != req.end()) {
      std::string origin(it->value());
      bool allowed = std::find(s.allowed_origins.begin(), s.allowed_origins.end(), origin) !=
                     s.allowed_origins.end();
      if (!allowed) {
        spdlog::warn("{}: refused {}: origin '{}' is not in allowed_origins", cx_.log_name(),
                     link.peer(), origin);
        return text_response(req, http::status::forbidden, "origin not allowed\n");
      }
    }
  }
  if (!s.token.empty()) {
    std::string given;
    if (auto it = req.find(http::field::authorization); it != req.end()) {
      std::string_view value(it->value().data(), it->value().size());
      if (value.size() > 7 &&
          (value.substr(0, 7) == "Bearer " || value.substr(0, 7) == "bearer ")) {
        given = std::string(value.substr(7));
      }
    } else {
      given = query_param(target, "token");
    }
    if (!same_secret(given, s.token)) {
      spdlog::warn("{}: refused {}: {} token", cx_.log_name(), link.peer(),
                   given.empty() ? "no" : "wrong");
      auto res = text_response(req, http::status::unauthorized, "bad or missing token\n");
      res.set(http::field::www_authenticate, "Bearer");
      return res;
    }
  }
  return std::nullopt;
}

void Hub::on_open(Link& link) {
  auto it = sessions_.find(link.id);
  if (it == sessions_.end()) return link.abort("unknown session");
  it->second.open = true;
  spdlog::debug("{}: {} connected", cx_.log_name(), link.peer());
  link.send(encode_info(cx_.instance, cx_.max_payload, cx_.settings.max_message_bytes), false);
}

void Hub::refuse(Link& link, std::uint64_t sid, const std::string& code,
                 const std::string& message) {
  spdlog::debug("{}: {}: {}", cx_.log_name(), link.peer(), message);
  if (!link.send(encode_err(code, message, false, sid, link.peer_binary), link.peer_binary)) {
    if (!link.closing()) slow_consumer(link);
  }
}

void Hub::protocol_error(Link& link, const std::string& message, ws::close_code code) {
  spdlog::warn("{}: closing the connection of {}: {}", cx_.log_name(), link.peer(), message);
  link.cut_off(encode_err("bad_frame", message, true, 0, link.peer_binary), link.peer_binary, code,
               message);
}

void Hub::slow_consumer(Link& link) {
  std::string why = "slow consumer: " + std::to_string(link.queued_bytes()) +
                    " bytes waiting to be written, max_outbound_bytes is " +
                    std::to_string(cx_.settings.max_outbound_bytes);
  spdlog::warn("{}: cutting off {}: {}", cx_.log_name(), link.peer(), why);
  cx_.status->emit(TransportStatus::slow_consumer, link.peer() + ": " + why);
  link.cut_off(encode_err("slow_consumer", why, true, 0, link.peer_binary), link.peer_binary,
               ws::close_code::policy_error, "slow consumer");
}

void Hub::on_frame(Link& link, std::string&& bytes, bool binary) {
  auto sit = sessions_.find(link.id);
  if (sit == sessions_.end() || link.closing()) return;
  Session& session = sit->second;
  link.peer_binary = binary;
  Frame f;
  std::string why;
  if (!decode_frame(bytes, binary, f, why)) {
    return protocol_error(link, "malformed frame: " + why, ws::close_code::bad_payload);
  }
  switch (f.op) {
    case Op::sub: {
      if (validate_subject(f.subject, true, why)) {
        return refuse(link, f.sid, "bad_subject", "sub: '" + f.subject + "': " + why);
      }
      if (f.queue.find_first_of(" \t\r\n") != std::string::npos) {
        return refuse(link, f.sid, "bad_queue", "sub: a queue group has no white space");
      }
      if (session.subs.count(f.sid)) {
        return refuse(link, f.sid, "bad_sid", "sub: sid " + std::to_string(f.sid) + " is in use");
      }
      auto id = index_.insert(f.subject, f.queue);
      routes_[id] = Route{nullptr, link.id, f.sid};
      session.subs[f.sid] = Session::Sub{id, f.subject};
      return;
    }
    case Op::unsub: {
      auto it = session.subs.find(f.sid);
      if (it == session.subs.end()) return;
      index_.erase(it->second.id);
      routes_.erase(it->second.id);
      session.subs.erase(it);
      return;
    }
    case Op::pub: {
      if (validate_subject(f.subject, false, why)) {
        return refuse(link, 0, "bad_subject", "pub: '" + f.subject + "': " + why);
      }
      if (!f.reply_to.empty() && validate_subject(f.reply_to, false, why)) {
        return refuse(link, 0, "bad_subject", "pub: reply_to '" + f.reply_to + "': " + why);
      }
      if (f.data.size() > cx_.max_payload) {
        return refuse(link, 0, "payload_too_large",
                      "pub: payload of " + std::to_string(f.data.size()) +
                          " bytes is larger than the maximum of " +
                          std::to_string(cx_.max_payload));
      }
      Message m;
      m.subject = std::move(f.subject);
      m.reply_to = std::move(f.reply_to);
      m.headers = std::move(f.headers);
      m.data = Payload(std::move(f.data));
      if (route(m, true) == 0 && !m.reply_to.empty()) {
        // route() may have cut off this very link; look the session up again.
        auto again = sessions_.find(link.id);
        if (again != sessions_.end() && !link.closing()) no_responders(again->second, m.reply_to);
      }
      return;
    }
    case Op::ping:
      if (!link.send(encode_simple(Op::pong, binary), binary)) slow_consumer(link);
      return;
    case Op::pong:
      return;
    case Op::info:
    case Op::msg:
    case Op::err:
      return protocol_error(link,
                            std::string("op '") + to_string(f.op) + "' is sent by servers only",
                            ws::close_code::policy_error);
  }
}

std::size_t Hub::route(const Message& msg, bool from_client) {
  ids_.clear();
  index_.match(msg.subject, ids_);
  if (ids_.empty()) return 0;
  std::vector<SubjectIndex::Id> ids;
  ids.swap(ids_);
  // Encoded once per format, shared by every client of that format.
  SharedFrame tails[2];
  unsigned fields[2] = {0, 0};
  std::vector<std::shared_ptr<LocalSub>> locals;
  for (auto id : ids) {
    auto rit = routes_.find(id);
    if (rit == routes_.end()) continue;
    const Route& r = rit->second;
    if (r.local) {
      if (from_client) {
        locals.push_back(r.local);
      } else {
        // Our own publish: never re-enter the caller.
        asio::post(cx_.executor, [sub = r.local, m = msg]() mutable {
          if (sub->alive) sub->handler(std::move(m));
        });
      }
      continue;
    }
    auto sit = sessions_.find(r.link_id);
    if (sit == sessions_.end() || !sit->second.open) continue;
    Link& link = *sit->second.link;
    if (link.closing()) continue;
    int b = link.peer_binary ? 1 : 0;
    if (!tails[b]) {
      MsgTail tail = encode_msg_tail(msg, b == 1);
      fields[b] = tail.fields;
      tails[b] = std::make_shared<const std::string>(std::move(tail.bytes));
    }
    MsgTail shape;
    shape.fields = fields[b];
    if (!link.send(encode_msg_head(r.sid, shape, b == 1), tails[b], b == 1)) slow_consumer(link);
  }
  // A client's message reaches this node's subscribers from here, after
  // the forwarding (a handler may take its time), without the extra trip
  // through the executor a post costs on every act.
  for (auto& sub : locals) {
    if (!sub->alive || closing_) continue;
    try {
      sub->handler(msg);
    } catch (const std::exception& e) {
      spdlog::error("{}: handler for {} threw: {}", cx_.log_name(), sub->subject, e.what());
    }
  }
  std::size_t n = ids.size();
  ids.clear();
  ids_.swap(ids);
  return n;
}

void Hub::no_responders(Session& session, const std::string& reply_to) {
  Link& link = *session.link;
  Message m;
  m.subject = reply_to;
  m.headers.emplace("Status", "503");  // as NATS says it; the runtime reads it
  MsgTail tail = encode_msg_tail(m, link.peer_binary);
  auto shared = std::make_shared<const std::string>(tail.bytes);
  for (const auto& [sid, sub] : session.subs) {
    if (!subject_matches(sub.subject, reply_to)) continue;
    if (!link.send(encode_msg_head(sid, tail, link.peer_binary), shared, link.peer_binary)) {
      return slow_consumer(link);
    }
  }
}

std::error_code Hub::publish(Message msg) {
  if (route(msg, false) == 0 && !msg.reply_to.empty()) return make_error_code(errc::no_responders);
  return {};
}

std::uint64_t Hub::subscribe(const std::string& subject, const std::string& queue,
                             std::shared_ptr<LocalSub> sub) {
  auto id = index_.insert(subject, queue);
  routes_[id] = Route{sub, 0, 0};
  locals_[id] = std::move(sub);
  return id;
}

void Hub::unsubscribe(std::uint64_t id) {
  auto it = locals_.find(id);
  if (it == locals_.end()) return;
  it->second->alive = false;
  index_.erase(id);
  routes_.erase(id);
  locals_.erase(it);
}

void Hub::on_closed(Link& link, const std::string& reason, bool was_open) {
  auto it = sessions_.find(link.id);
  if (it == sessions_.end()) return;
  for (const auto& [sid, sub] : it->second.subs) {
    index_.erase(sub.id);
    routes_.erase(sub.id);
  }
  sessions_.erase(it);
  if (was_open) {
    if (closing_) {
      spdlog::debug("{}: {} disconnected: {}", cx_.log_name(), link.peer(), reason);
    } else {
      spdlog::info("{}: {} disconnected: {}", cx_.log_name(), link.peer(), reason);
    }
  } else if (reason.rfind("answered HTTP", 0) == 0) {
    spdlog::debug("{}: {}: {}", cx_.log_name(), link.peer(), reason);
  } else {
    spdlog::warn("{}: dropped {} before the WebSocket handshake: {}", cx_.log_name(), link.peer(),
                 reason);
  }
  if (closing_ && !close_finished_ && open_sessions() == 0) finish_close();
}

void Hub::close(std::function<void()> done) {
  if (closing_) {
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
  closing_ = true;
  close_done_ = std::move(done);
  // The acceptor stays open while the clients drain, so that GET /health
  // answers 503 (and upgrades are refused) instead of connections failing.
  for (auto& [id, sub] : locals_) {
    sub->alive = false;
    index_.erase(id);
    routes_.erase(id);
  }
  locals_.clear();
  if (open_sessions() == 0) return finish_close();
  // Each client gets what was routed to it, then the close handshake.
  std::vector<std::shared_ptr<Link>> links;
  for (auto& [id, s] : sessions_) {
    if (s.open) links.push_back(s.link);
  }
  for (auto& link : links) {
    link->close(ws::close_code::going_away, "server closing");
  }
  drain_timer_.expires_after(std::chrono::milliseconds(cx_.settings.drain_timeout_ms));
  drain_timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec) return;
    std::vector<std::shared_ptr<Link>> rest;
    for (auto& [id, s] : self->sessions_) rest.push_back(s.link);
    if (!rest.empty()) {
      spdlog::warn("{}: {} connection(s) not closed within drain_timeout_ms; dropping them",
                   self->cx_.log_name(), rest.size());
    }
    for (auto& link : rest) link->abort("drain timeout");
    self->sessions_.clear();
    self->finish_close();
  });
}

void Hub::finish_close() {
  if (close_finished_) return;
  close_finished_ = true;
  drain_timer_.cancel();
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  // Connections accepted while draining (health checks) go too.
  std::vector<std::shared_ptr<Link>> rest;
  for (auto& [id, s] : sessions_) rest.push_back(s.link);
  for (auto& link : rest) link->abort("server closed");
  spdlog::debug("{}: closed {}", cx_.log_name(), url());
  cx_.status->emit(TransportStatus::closed, url());
  if (close_done_) asio::post(cx_.executor, std::move(close_done_));
}

void Hub::shutdown() {
  closing_ = true;
  close_finished_ = true;
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  drain_timer_.cancel();
  for (auto& [id, sub] : locals_) sub->alive = false;
  locals_.clear();
  for (auto& [id, s] : sessions_) s.link->abort("transport destroyed");
  sessions_.clear();
}

}  // namespace switchboard::websocket
