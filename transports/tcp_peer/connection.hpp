// One tcp_peer connection: a TCP socket (optionally TLS), frames in and out,
// a bounded write queue, the handshake timer and heartbeats. It knows
// nothing of subjects or interest; the node (tcp_peer_transport.cpp) gets
// its frames and its end.
//
// Threading: everything runs on the executor the socket was made with (the
// transport's); the node calls it from there only.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "frame.hpp"
#include "switchboard/message.hpp"
#include "switchboard/prelude.hpp"

#include <boost/asio/ssl.hpp>

namespace switchboard::tcp_peer {

using tcp = asio::ip::tcp;

// Why a connection ended.
enum class CloseCause {
  eof,                // the peer closed it
  io_error,           // reset, broken pipe, ...
  protocol,           // the peer sent a malformed or unexpected frame
  heartbeat,          // the peer stopped answering
  slow_consumer,      // our queue to the peer went above its limit
  handshake_timeout,  // the peer did not finish the handshake in time
  refused,            // the peer sent an error frame
  tls,                // the TLS handshake failed
  local,              // we closed it (close(), duplicate link, ...)
};
const char* to_string(CloseCause cause) noexcept;

struct ConnectionLimits {
  std::size_t max_frame = 0;     // largest frame accepted from the peer
  std::size_t max_outbound = 0;  // bytes queued to the peer before it is cut off
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds heartbeat_interval{5000};
  int heartbeat_max_missed = 3;
  std::chrono::milliseconds drain_timeout{5000};  // graceful close, at most
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  // A frame from the peer (never PING or PONG, handled here). MSG data
  // points into the read buffer: valid during the call only.
  using FrameHandler = std::function<void(Frame&)>;
  // Called once (posted to the executor) when the connection stops being
  // usable: after that, nothing more is delivered and nothing is sent.
  using ClosedHandler = std::function<void(CloseCause, const std::string& reason)>;
  // Called once when the socket is closed (after a graceful close: flushed).
  using FinishedHandler = std::function<void()>;

  // `tls` null: plain TCP. `outbound`: we dialed (TLS client side).
  Connection(tcp::socket socket, asio::ssl::context* tls, bool outbound,
             const ConnectionLimits& limits);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void set_handlers(FrameHandler on_frame, ClosedHandler on_closed, FinishedHandler on_finished);

  // TLS handshake (when TLS; `tls_hostname` checked on the outbound side
  // when not empty), then sends `first` (the dialer's HELLO) and reads.
  // The handshake timer runs from here until established().
  void start(std::string first, const std::string& tls_hostname, bool tls_verify);

  // The handshake is done: stop its timer, start heartbeats.
  void established();

  // Queues a control frame (not counted against the limit for cutting off).
  void send(std::string frame);
  // Queues a MSG (head, then the shared data). Cuts the connection off as a
  // slow consumer, and returns false, when the queue would go above the
  // limit.
  bool send_msg(std::string head, const Payload& data);

  // Sends an error frame, stops reading frames, closes after the flush.
  void fail(ErrorCode code, const std::string& reason, CloseCause cause);
  // Flushes what is queued, shuts down sending, waits (bounded) for the
  // peer to close; reports `cause` / `reason` as the end.
  void close_gracefully(CloseCause cause, const std::string& reason);
  // Closes now; queued frames are lost.
  void abort(CloseCause cause, const std::string& reason);
  // Closes now, reporting nothing (the owner is going away).
  void abandon();

  bool usable() const noexcept { return state_ == State::open; }
  bool finished() const noexcept { return state_ == State::closed; }
  std::size_t queued_bytes() const noexcept { return queued_; }
  const std::string& remote() const noexcept { return remote_; }  // "ip:port"
  asio::ip::address remote_address() const;

 private:
  enum class State { open, closing, closed };
  struct Out {
    std::string head;
    Payload data;
  };

  void begin();
  void do_read();
  void on_read(const boost::system::error_code& ec, std::size_t n);
  void enqueue(Out out);
  bool write_now(Out& out);
  void do_write();
  void on_write(const boost::system::error_code& ec);
  void arm_heartbeat();
  void maybe_shutdown();
  void report(CloseCause cause, const std::string& reason);
  void finish();

  template <typename Buffers, typename Handler>
  void async_write_to(const Buffers& buffers, Handler&& handler);
  template <typename Buffer, typename Handler>
  void async_read_from(const Buffer& buffer, Handler&& handler);

  tcp::socket socket_;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  bool outbound_;
  ConnectionLimits limits_;
  std::string remote_;
  State state_ = State::open;
  bool reported_ = false;
  bool discard_ = false;  // after a protocol error: bytes are read and dropped
  bool shut_down_ = false;
  bool ready_ = false;  // TLS handshake done (or no TLS): frames may go out

  std::vector<char> in_;
  std::size_t in_begin_ = 0, in_end_ = 0, in_needed_ = 0;
  Frame frame_;

  std::deque<Out> out_;
  std::size_t queued_ = 0;
  std::size_t front_written_ = 0;  // bytes of out_.front() already sent by write_now()
  bool writing_ = false;
  bool wrote_this_turn_ = false;  // a direct write since the last read; later frames queue
  bool flush_posted_ = false;
  std::size_t writing_count_ = 0;
  std::vector<asio::const_buffer> buffers_;

  asio::steady_timer handshake_timer_;
  asio::steady_timer heartbeat_timer_;
  asio::steady_timer close_timer_;
  int missed_ = 0;
  bool handshaken_ = false;

  FrameHandler on_frame_;
  ClosedHandler on_closed_;
  FinishedHandler on_finished_;
};

}  // namespace switchboard::tcp_peer
