#include "ws_link.hpp"

#include <openssl/ssl.h>

#include <array>
#include <deque>

#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>

namespace switchboard::websocket {
namespace {

namespace ws = beast::websocket;

template <class T>
struct IsTls : std::false_type {};
template <class T>
struct IsTls<beast::ssl_stream<T>> : std::true_type {};

std::string ms_text(std::chrono::milliseconds d) {
  return std::to_string(d.count()) + " ms";
}

template <class NextLayer>
class LinkImpl final : public Link {
  static constexpr bool kTls = IsTls<NextLayer>::value;

 public:
  template <class... Args>
  LinkImpl(std::shared_ptr<asio::ssl::context> ssl, std::weak_ptr<LinkOwner> owner,
           const LinkLimits& limits, Args&&... args)
      : ssl_(std::move(ssl)),
        ws_(std::forward<Args>(args)...),
        owner_(std::move(owner)),
        limits_(limits),
        grace_(ws_.get_executor()),
        idle_timer_(ws_.get_executor()) {
    beast::error_code ec;
    auto& socket = beast::get_lowest_layer(ws_).socket();
    socket.set_option(tcp::no_delay(true), ec);
    auto ep = socket.remote_endpoint(ec);
    if (ec) {
      peer_ = "(unknown peer)";
    } else if (ep.address().is_v6()) {
      peer_ = "[" + ep.address().to_string() + "]:" + std::to_string(ep.port());
    } else {
      peer_ = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
  }

  void start_server() override {
    auto self = shared();
    lowest().expires_after(limits_.handshake_timeout);
    if constexpr (kTls) {
      ws_.next_layer().async_handshake(asio::ssl::stream_base::server,
                                       [self](beast::error_code ec) {
                                         if (ec)
                                           return self->finish(self->handshake_error("TLS", ec));
                                         self->read_request();
                                       });
    } else {
      read_request();
    }
  }

  void start_client(const std::string& host, const std::string& target, const std::string& token,
                    const std::string& tls_name) override {
    host_ = host;
    target_ = target;
    token_ = token;
    auto self = shared();
    lowest().expires_after(limits_.handshake_timeout);
    if constexpr (kTls) {
      // SNI and the name the certificate must carry: the host without port.
      std::string name = host_;
      if (auto colon = name.rfind(':'); colon != std::string::npos && name.back() != ']') {
        name = name.substr(0, colon);
      }
      if (!name.empty() && name.front() == '[') name = name.substr(1, name.size() - 2);
      if (!tls_name.empty()) name = tls_name;
      SSL_set_tlsext_host_name(ws_.next_layer().native_handle(), name.c_str());
      if (SSL_CTX_get_verify_mode(ssl_->native_handle()) != SSL_VERIFY_NONE) {
        ws_.next_layer().set_verify_callback(asio::ssl::host_name_verification(name));
      }
      ws_.next_layer().async_handshake(asio::ssl::stream_base::client,
                                       [self](beast::error_code ec) {
                                         if (ec)
                                           return self->finish(self->handshake_error("TLS", ec));
                                         self->upgrade();
                                       });
    } else {
      upgrade();
    }
  }

  bool send(std::string head, SharedFrame tail, bool binary) override {
    if (closing_ || finished_) return false;
    std::size_t size = head.size() + (tail ? tail->size() : 0);
    if (!queue_.empty() && queued_bytes_ + size > limits_.max_outbound) return false;
    queued_bytes_ += size;
    queue_.push_back(Entry{std::move(head), std::move(tail), binary});
    if (open_ && !writing_) do_write();
    return true;
  }

  void close(ws::close_code code, const std::string& reason) override {
    if (closing_ || finished_) return;
    closing_ = true;
    close_code_ = code;
    close_reason_ = reason;
    if (!open_) return abort(reason);
    if (writing_ || !queue_.empty()) {
      close_when_flushed_ = true;
    } else {
      start_close();
    }
  }

  void cut_off(std::string last, bool binary, ws::close_code code,
               const std::string& reason) override {
    if (finished_) return;
    if (!open_) return abort(reason);
    if (close_started_) return;
    closing_ = true;
    close_code_ = code;
    close_reason_ = reason;
    // Keep only the message being written: its buffers are in use.
    auto keep = writing_ ? 1u : 0u;
    while (queue_.size() > keep) {
      queued_bytes_ -= queue_.back().size();
      queue_.pop_back();
    }
    queued_bytes_ += last.size();
    queue_.push_back(Entry{std::move(last), nullptr, binary});
    close_when_flushed_ = true;
    arm_grace();
    if (!writing_) do_write();
  }

  void abort(const std::string& reason) override {
    if (finished_) return;
    if (close_reason_.empty()) close_reason_ = reason;
    closing_ = true;
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
    // Not from inside the caller (which may be iterating over its links).
    asio::post(ws_.get_executor(), [self = shared(), reason] { self->finish(reason); });
  }

 private:
  struct Entry {
    std::string head;
    SharedFrame tail;
    bool binary = false;
    std::size_t size() const { return head.size() + (tail ? tail->size() : 0); }
  };

  std::shared_ptr<LinkImpl> shared() {
    return std::static_pointer_cast<LinkImpl>(shared_from_this());
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(ws_); }

  std::string handshake_error(const char* what, beast::error_code ec) {
    if (ec == beast::error::timeout) {
      return std::string(what) + " handshake not finished within " +
             ms_text(limits_.handshake_timeout);
    }
    return std::string(what) + " handshake failed: " + ec.message();
  }

  void set_ws_options() {
    lowest().expires_never();
    ws::stream_base::timeout t{};
    t.handshake_timeout = limits_.handshake_timeout;
    // The idle timeout is ours (arm_idle): Beast's re-arms its timer on
    // every read, which cost a timerfd_settime and a cancelled wait per
    // message.
    t.idle_timeout = ws::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    // Pings and pongs count as life too.
    ws_.control_callback([this](ws::frame_type, beast::string_view) { got_data_ = true; });
    ws_.read_message_max(limits_.max_message);
    ws_.auto_fragment(false);
  }

  // ---- server ----

  void read_request() {
    parser_.emplace();
    parser_->header_limit(16 * 1024);
    parser_->body_limit(16 * 1024);
    http::async_read(ws_.next_layer(), buffer_, *parser_,
                     [self = shared()](beast::error_code ec, std::size_t) {
                       if (ec) {
                         if (ec == beast::error::timeout) {
                           return self->finish("no complete HTTP request within " +
                                               ms_text(self->limits_.handshake_timeout));
                         }
                         return self->finish("bad HTTP request: " + ec.message());
                       }
                       self->on_request();
                     });
  }

  void on_request() {
    HttpRequest req = parser_->release();
    parser_.reset();
    auto owner = owner_.lock();
    if (!owner) return abort("the transport is gone");
    if (auto res = owner->on_request(*this, req)) return respond(std::move(*res));
    set_ws_options();
    ws_.set_option(ws::stream_base::decorator(
        [](ws::response_type& res) { res.set(http::field::server, "switchboard-websocket"); }));
    ws_.async_accept(req, [self = shared()](beast::error_code ec) {
      if (ec) return self->finish(self->handshake_error("WebSocket", ec));
      self->opened();
    });
  }

  void respond(HttpResponse res) {
    auto r = std::make_shared<HttpResponse>(std::move(res));
    r->keep_alive(false);
    r->prepare_payload();
    std::string what = "answered HTTP " + std::to_string(r->result_int());
    http::async_write(ws_.next_layer(), *r,
                      [self = shared(), r, what](beast::error_code, std::size_t) {
                        beast::error_code ignored;
                        self->lowest().socket().shutdown(tcp::socket::shutdown_both, ignored);
                        self->lowest().close();
                        self->finish(what);
                      });
  }

  // ---- client ----

  void upgrade() {
    set_ws_options();
    ws_.set_option(ws::stream_base::decorator([token = token_](ws::request_type& req) {
      req.set(http::field::user_agent, "switchboard-websocket");
      if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    }));
    ws_.async_handshake(response_, host_, target_, [self = shared()](beast::error_code ec) {
      if (ec) {
        unsigned status = self->response_.result_int();
        if (status != 0 && status != 101) {
          self->refused_status_ = status;
          std::string body = self->response_.body().substr(0, 200);
          while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
          return self->finish("upgrade refused: HTTP " + std::to_string(status) + " " +
                              std::string(self->response_.reason()) +
                              (body.empty() ? "" : ": " + body));
        }
        return self->finish(self->handshake_error("WebSocket", ec));
      }
      self->opened();
    });
  }

  // ---- both ----

  void opened() {
    open_ = true;
    if (limits_.idle_timeout.count() > 0) arm_idle();
    auto owner = owner_.lock();
    if (!owner) return abort("the transport is gone");
    owner->on_open(*this);
    if (finished_) return;
    do_read();
    if (!writing_ && !queue_.empty()) do_write();
  }

  void do_read() {
    ws_.async_read(buffer_,
                   [self = shared()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec) return finish(read_error(ec));
    if (finished_) return;
    got_data_ = true;
    std::string bytes = beast::buffers_to_string(buffer_.data());
    buffer_.consume(buffer_.size());
    auto owner = owner_.lock();
    if (!owner) return abort("the transport is gone");
    owner->on_frame(*this, std::move(bytes), ws_.got_binary());
    if (!finished_) do_read();
  }

  std::string read_error(beast::error_code ec) {
    if (ec == ws::error::closed) {
      auto r = ws_.reason();
      std::string text = "closed by the peer (code " + std::to_string(r.code);
      if (!r.reason.empty()) text += ", " + std::string(r.reason.c_str());
      return text + ")";
    }
    if (ec == beast::error::timeout) {
      return "nothing received within the idle timeout (" + ms_text(limits_.idle_timeout) + ")";
    }
    if (ec == ws::error::message_too_big) {
      return "message larger than max_message_bytes (" + std::to_string(limits_.max_message) + ")";
    }
    return ec.message();
  }

  void do_write() {
    writing_ = true;
    Entry& e = queue_.front();
    ws_.binary(e.binary);
    std::array<asio::const_buffer, 2> buffers{
        asio::buffer(e.head), e.tail ? asio::buffer(*e.tail) : asio::const_buffer()};
    ws_.async_write(buffers,
                    [self = shared()](beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  void on_write(beast::error_code ec) {
    writing_ = false;
    queued_bytes_ -= queue_.front().size();
    queue_.pop_front();
    if (finished_) return;
    if (ec) return abort("write failed: " + ec.message());
    if (!queue_.empty()) return do_write();
    if (close_when_flushed_) start_close();
  }

  void start_close() {
    if (close_started_ || finished_) return;
    // Beast takes no close while our ping is being written; it follows it.
    if (ping_in_flight_) {
      close_after_ping_ = true;
      return;
    }
    close_started_ = true;
    std::string text = close_reason_.substr(0, 120);  // a close frame holds 123 bytes
    ws_.async_close(ws::close_reason(close_code_, text), [self = shared()](beast::error_code ec) {
      if (ec) self->abort("close failed: " + ec.message());
      // Otherwise the read loop ends with error::closed.
    });
    arm_grace();
  }

  // Every half idle timeout: silence since the last tick gets a ping, a
  // second silent tick ends the link (what Beast's keep-alive pings do).
  void arm_idle() {
    idle_timer_.expires_after(limits_.idle_timeout / 2);
    idle_timer_.async_wait([self = shared()](beast::error_code ec) {
      if (ec || self->finished_) return;
      self->on_idle_tick();
    });
  }

  void on_idle_tick() {
    if (got_data_) {
      got_data_ = false;
      pinged_ = false;
    } else if (pinged_) {
      return abort("nothing received within the idle timeout (" + ms_text(limits_.idle_timeout) +
                   ")");
    } else {
      pinged_ = true;
      if (!closing_ && !ping_in_flight_) {
        ping_in_flight_ = true;
        ws_.async_ping({}, [self = shared()](beast::error_code) {
          self->ping_in_flight_ = false;
          if (self->close_after_ping_) self->start_close();
        });
      }
    }
    arm_idle();
  }

  void arm_grace() {
    grace_.expires_after(limits_.handshake_timeout);
    grace_.async_wait([self = shared()](beast::error_code ec) {
      if (!ec) self->abort(self->close_reason_.empty() ? "close timed out" : self->close_reason_);
    });
  }

  void finish(const std::string& reason) {
    if (finished_) return;
    finished_ = true;
    closing_ = true;
    bool was_open = open_;
    open_ = false;
    grace_.cancel();
    idle_timer_.cancel();
    lowest().close();
    if (auto owner = owner_.lock()) {
      owner->on_closed(*this, close_reason_.empty() ? reason : close_reason_, was_open);
    }
  }

  std::shared_ptr<asio::ssl::context> ssl_;
  ws::stream<NextLayer> ws_;
  std::weak_ptr<LinkOwner> owner_;
  LinkLimits limits_;
  asio::steady_timer grace_;
  asio::steady_timer idle_timer_;
  bool got_data_ = false;  // since the last idle tick
  bool pinged_ = false;
  bool ping_in_flight_ = false;
  bool close_after_ping_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  ws::response_type response_;
  std::string host_, target_, token_;
  std::deque<Entry> queue_;
  bool writing_ = false;
  bool finished_ = false;
  bool close_when_flushed_ = false;
  bool close_started_ = false;
  ws::close_code close_code_ = ws::close_code::normal;
  std::string close_reason_;
};

}  // namespace

std::shared_ptr<Link> make_link(beast::tcp_stream stream, std::shared_ptr<asio::ssl::context> ssl,
                                std::weak_ptr<LinkOwner> owner, const LinkLimits& limits) {
  if (ssl) {
    auto& ctx = *ssl;
    return std::make_shared<LinkImpl<beast::ssl_stream<beast::tcp_stream>>>(
        std::move(ssl), std::move(owner), limits, std::move(stream), ctx);
  }
  return std::make_shared<LinkImpl<beast::tcp_stream>>(nullptr, std::move(owner), limits,
                                                       std::move(stream));
}

}  // namespace switchboard::websocket
