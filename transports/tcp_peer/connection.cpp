#include "connection.hpp"

#include <array>
#include <cstring>

namespace switchboard::tcp_peer {

const char* to_string(CloseCause cause) noexcept {
  switch (cause) {
    case CloseCause::eof:
      return "closed by the peer";
    case CloseCause::io_error:
      return "I/O error";
    case CloseCause::protocol:
      return "protocol error";
    case CloseCause::heartbeat:
      return "heartbeat timeout";
    case CloseCause::slow_consumer:
      return "slow consumer";
    case CloseCause::handshake_timeout:
      return "handshake timeout";
    case CloseCause::refused:
      return "refused by the peer";
    case CloseCause::tls:
      return "TLS handshake failed";
    case CloseCause::local:
      return "closed";
  }
  return "?";
}

Connection::Connection(tcp::socket socket, asio::ssl::context* tls, bool outbound,
                       const ConnectionLimits& limits)
    : socket_(std::move(socket)),
      outbound_(outbound),
      limits_(limits),
      handshake_timer_(socket_.get_executor()),
      heartbeat_timer_(socket_.get_executor()),
      close_timer_(socket_.get_executor()) {
  boost::system::error_code ec;
  auto endpoint = socket_.remote_endpoint(ec);
  if (!ec) {
    auto address = endpoint.address();
    remote_ = (address.is_v6() ? "[" + address.to_string() + "]" : address.to_string()) + ":" +
              std::to_string(endpoint.port());
  } else {
    remote_ = "(unknown address)";
  }
  socket_.set_option(tcp::no_delay(true), ec);
  // write_now() tries the socket directly and must not block.
  socket_.non_blocking(true, ec);
  if (tls) tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket_, *tls);
}

Connection::~Connection() = default;

asio::ip::address Connection::remote_address() const {
  boost::system::error_code ec;
  auto endpoint = socket_.remote_endpoint(ec);
  return ec ? asio::ip::address() : endpoint.address();
}

void Connection::set_handlers(FrameHandler on_frame, ClosedHandler on_closed,
                              FinishedHandler on_finished) {
  on_frame_ = std::move(on_frame);
  on_closed_ = std::move(on_closed);
  on_finished_ = std::move(on_finished);
}

template <typename Buffers, typename Handler>
void Connection::async_write_to(const Buffers& buffers, Handler&& handler) {
  if (tls_) {
    asio::async_write(*tls_, buffers, std::forward<Handler>(handler));
  } else {
    asio::async_write(socket_, buffers, std::forward<Handler>(handler));
  }
}

template <typename Buffer, typename Handler>
void Connection::async_read_from(const Buffer& buffer, Handler&& handler) {
  if (tls_) {
    tls_->async_read_some(buffer, std::forward<Handler>(handler));
  } else {
    socket_.async_read_some(buffer, std::forward<Handler>(handler));
  }
}

void Connection::start(std::string first, const std::string& tls_hostname, bool tls_verify) {
  handshake_timer_.expires_after(limits_.handshake_timeout);
  handshake_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->handshaken_ || self->state_ == State::closed) return;
    self->fail(ErrorCode::timeout,
               "handshake not finished within " +
                   std::to_string(self->limits_.handshake_timeout.count()) + " ms",
               CloseCause::handshake_timeout);
  });
  if (!first.empty()) enqueue(Out{std::move(first), {}});
  if (!tls_) {
    begin();
    return;
  }
  if (outbound_) {
    if (tls_verify) {
      tls_->set_verify_mode(asio::ssl::verify_peer);
      if (!tls_hostname.empty()) {
        // SNI, and the name the certificate must carry.
        SSL_set_tlsext_host_name(tls_->native_handle(), tls_hostname.c_str());
        tls_->set_verify_callback(asio::ssl::host_name_verification(tls_hostname));
      }
    } else {
      tls_->set_verify_mode(asio::ssl::verify_none);
    }
  }
  tls_->async_handshake(outbound_ ? asio::ssl::stream_base::client : asio::ssl::stream_base::server,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          if (self->state_ == State::closed) return;
                          if (ec) {
                            self->abort(CloseCause::tls, "TLS handshake failed: " + ec.message());
                            return;
                          }
                          self->begin();
                        });
}

void Connection::begin() {
  if (state_ == State::closed) return;
  ready_ = true;
  if (!out_.empty() && !writing_) do_write();
  do_read();
}

void Connection::established() {
  handshaken_ = true;
  handshake_timer_.cancel();
  arm_heartbeat();
}

void Connection::arm_heartbeat() {
  heartbeat_timer_.expires_after(limits_.heartbeat_interval);
  heartbeat_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::open) return;
    if (self->missed_ >= self->limits_.heartbeat_max_missed) {
      auto silent = self->limits_.heartbeat_interval.count() * self->missed_;
      self->abort(CloseCause::heartbeat, "no heartbeat answer for " + std::to_string(silent) +
                                             " ms (" + std::to_string(self->missed_) +
                                             " pings missed)");
      return;
    }
    ++self->missed_;
    std::string ping;
    encode_empty(FrameType::ping, ping);
    self->send(std::move(ping));
    self->arm_heartbeat();
  });
}

void Connection::do_read() {
  std::size_t have = in_end_ - in_begin_;
  if (have == 0) in_begin_ = in_end_ = 0;
  std::size_t room = std::max<std::size_t>(16384, in_needed_ > have ? in_needed_ - have : 0);
  if (in_.size() - in_end_ < room) {
    if (in_begin_ > 0) {
      std::memmove(in_.data(), in_.data() + in_begin_, have);
      in_begin_ = 0;
      in_end_ = have;
    }
    if (in_.size() - in_end_ < room) in_.resize(in_end_ + std::max<std::size_t>(room, 65536));
  }
  async_read_from(asio::buffer(in_.data() + in_end_, in_.size() - in_end_),
                  [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                    self->on_read(ec, n);
                  });
}

void Connection::on_read(const boost::system::error_code& ec, std::size_t n) {
  if (state_ == State::closed) return;
  if (ec) {
    if (state_ == State::closing) {
      finish();
    } else if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated) {
      abort(CloseCause::eof, "the peer closed the connection");
    } else {
      abort(CloseCause::io_error, ec.message());
    }
    return;
  }
  missed_ = 0;
  if (discard_ || state_ == State::closing) {
    in_begin_ = in_end_ = in_needed_ = 0;
    do_read();
    return;
  }
  in_end_ += n;
  wrote_this_turn_ = false;        // a new turn: the next frame may go out directly
  auto self = shared_from_this();  // a handler may drop the last other reference
  bool delivered = false;
  while (state_ == State::open && in_end_ > in_begin_) {
    std::string_view bytes(in_.data() + in_begin_, in_end_ - in_begin_);
    // Before the handshake only a HELLO (or an ERROR) may come: a client
    // that is not yet a peer cannot make us buffer a whole max_frame.
    std::size_t limit = handshaken_ ? limits_.max_frame
                                    : std::min<std::size_t>(limits_.max_frame, kMaxHandshakeFrame);
    DecodeResult r = decode_frame(bytes, limit, frame_);
    if (r.status == DecodeStatus::incomplete) {
      in_needed_ = r.needed;
      break;
    }
    if (r.status == DecodeStatus::error) {
      fail(ErrorCode::protocol, "malformed frame: " + r.error, CloseCause::protocol);
      break;
    }
    in_begin_ += r.consumed;
    in_needed_ = 0;
    if (frame_.type == FrameType::ping) {
      std::string pong;
      encode_empty(FrameType::pong, pong);
      send(std::move(pong));
    } else if (frame_.type == FrameType::pong) {
      // Any bytes count as life (missed_ is reset above).
    } else if (on_frame_) {
      delivered = true;
      on_frame_(frame_);
    }
  }
  if (state_ == State::closed) return;
  // The next read starts with a recv that, in a request/reply exchange,
  // finds nothing yet (Asio reads speculatively before waiting). When the
  // frames were answered here already (a reply went out), it delays no one;
  // else it is queued behind what they started (an act's completion).
  if (!delivered || wrote_this_turn_) return do_read();
  asio::post(socket_.get_executor(), [self] {
    if (self->state_ != State::closed) self->do_read();
  });
}

void Connection::send(std::string frame) {
  if (state_ != State::open) return;
  enqueue(Out{std::move(frame), {}});
}

bool Connection::send_msg(std::string head, const Payload& data) {
  if (state_ != State::open) return false;
  std::size_t size = head.size() + data.size();
  if (queued_ + size > limits_.max_outbound) {
    abort(CloseCause::slow_consumer, "outbound queue of " + std::to_string(queued_) +
                                         " bytes would go above the limit of " +
                                         std::to_string(limits_.max_outbound) + " bytes");
    return false;
  }
  enqueue(Out{std::move(head), data});
  return true;
}

void Connection::enqueue(Out out) {
  // Idle (nothing queued, nothing being written) and no direct write yet in
  // this turn (since the last read): send it now, from here. Going through
  // async_write costs a posted completion and a trip through the reactor
  // before the next handler runs, and an act is one small frame. Busy:
  // frames queue, and one posted flush sends them in one gather write (a
  // read of many requests answers them with one syscall, not one each).
  bool idle = out_.empty() && !writing_;
  if (idle && !wrote_this_turn_ && ready_ && !tls_ && state_ != State::closed) {
    wrote_this_turn_ = true;
    if (write_now(out)) return;
  }
  queued_ += out.head.size() + out.data.size();
  out_.push_back(std::move(out));
  // Before the TLS handshake is done, frames wait for begin().
  if (!ready_ || writing_) return;
  if (front_written_ > 0 || !wrote_this_turn_) return do_write();
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->flush_posted_ = false;
    self->wrote_this_turn_ = false;
    if (self->ready_ && !self->writing_ && !self->out_.empty()) self->do_write();
  });
}

// Writes what the socket takes without waiting; true when all of it went.
// A remainder stays queued (front_written_ says how much went) for do_write.
bool Connection::write_now(Out& out) {
  std::array<asio::const_buffer, 2> buffers{asio::buffer(out.head),
                                            asio::const_buffer(out.data.data(), out.data.size())};
  boost::system::error_code ec;
  std::size_t n = socket_.write_some(buffers, ec);
  std::size_t size = out.head.size() + out.data.size();
  if (!ec && n == size) return true;
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
    // The read side sees the same failure and reports it; keep the frame
    // queued so that the write path reports it the usual way.
    n = 0;
  }
  front_written_ = ec ? 0 : n;
  return false;
}

void Connection::do_write() {
  if (out_.empty() || writing_ || state_ == State::closed) return;
  buffers_.clear();
  writing_count_ = 0;
  std::size_t bytes = 0;
  for (const auto& o : out_) {
    if (writing_count_ > 0 && (writing_count_ >= 64 || bytes >= 256 * 1024)) break;
    std::size_t skip = writing_count_ == 0 ? front_written_ : 0;
    if (skip < o.head.size()) {
      buffers_.push_back(asio::buffer(o.head) + skip);
      skip = 0;
    } else {
      skip -= o.head.size();
    }
    if (skip < o.data.size()) {
      buffers_.push_back(asio::const_buffer(o.data.data(), o.data.size()) + skip);
    }
    bytes += o.head.size() + o.data.size();
    ++writing_count_;
  }
  writing_ = true;
  async_write_to(buffers_, [self = shared_from_this()](const boost::system::error_code& ec,
                                                       std::size_t) { self->on_write(ec); });
}

void Connection::on_write(const boost::system::error_code& ec) {
  writing_ = false;
  if (state_ == State::closed) {
    out_.clear();
    queued_ = 0;
    front_written_ = 0;
    return;
  }
  for (std::size_t i = 0; i < writing_count_ && !out_.empty(); ++i) {
    queued_ -= out_.front().head.size() + out_.front().data.size();
    out_.pop_front();
  }
  writing_count_ = 0;
  front_written_ = 0;
  if (ec) {
    if (state_ == State::open) {
      abort(CloseCause::io_error, "write failed: " + ec.message());
    } else {
      finish();
    }
    return;
  }
  if (!out_.empty()) {
    do_write();
  } else if (state_ == State::closing) {
    maybe_shutdown();
  }
}

void Connection::maybe_shutdown() {
  if (shut_down_ || writing_ || !out_.empty()) return;
  shut_down_ = true;
  // TCP half-close: the peer reads everything, sees the end and closes its
  // side, which ends our read. (No TLS close_notify: the peer treats the
  // truncation as the end.)
  boost::system::error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void Connection::fail(ErrorCode code, const std::string& reason, CloseCause cause) {
  if (state_ != State::open) return;
  std::string frame;
  encode_error(code, reason, frame);
  enqueue(Out{std::move(frame), {}});
  discard_ = true;
  // A peer that sent garbage gets a short while to read the reason.
  limits_.drain_timeout = std::min(limits_.drain_timeout, std::chrono::milliseconds(1000));
  close_gracefully(cause, reason);
}

void Connection::close_gracefully(CloseCause cause, const std::string& reason) {
  if (state_ != State::open) return;
  state_ = State::closing;
  report(cause, reason);
  heartbeat_timer_.cancel();
  handshake_timer_.cancel();
  close_timer_.expires_after(limits_.drain_timeout);
  close_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->finish();
  });
  if (!ready_) {
    finish();  // still in the TLS handshake: nothing of ours was sent
    return;
  }
  if (!writing_ && !out_.empty()) do_write();
  maybe_shutdown();
}

void Connection::abort(CloseCause cause, const std::string& reason) {
  if (state_ == State::closed) return;
  report(cause, reason);
  finish();
}

void Connection::abandon() {
  on_frame_ = nullptr;
  on_closed_ = nullptr;
  on_finished_ = nullptr;
  reported_ = true;
  finish();
}

void Connection::report(CloseCause cause, const std::string& reason) {
  if (reported_) return;
  reported_ = true;
  if (on_closed_) {
    asio::post(socket_.get_executor(),
               [handler = on_closed_, cause, reason] { handler(cause, reason); });
  }
}

void Connection::finish() {
  if (state_ == State::closed) return;
  state_ = State::closed;
  boost::system::error_code ignored;
  handshake_timer_.cancel();
  heartbeat_timer_.cancel();
  close_timer_.cancel();
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (!writing_) {  // else the buffers stay until the aborted write completes
    out_.clear();
    queued_ = 0;
    front_written_ = 0;
  }
  on_frame_ = nullptr;
  if (on_finished_) {
    asio::post(socket_.get_executor(), [handler = std::move(on_finished_)] { handler(); });
  }
  on_finished_ = nullptr;
}

}  // namespace switchboard::tcp_peer
