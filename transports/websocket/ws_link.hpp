// One WebSocket connection (a Link), plain or TLS, accepted by the hub or
// opened by a client: the upgrade, the read loop, and a bounded write queue.
// Everything runs on the executor of the socket (the transport's executor),
// one handler at a time; a Link is not thread-safe.
//
// The owner (hub or client) gets the events through LinkOwner, held weakly:
// a Link outliving its owner closes itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "switchboard/prelude.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/websocket/rfc6455.hpp>

namespace switchboard::websocket {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct LinkLimits {
  std::size_t max_message = 1024 * 1024;        // read limit of one WebSocket message
  std::size_t max_outbound = 16 * 1024 * 1024;  // bytes queued for writing
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds idle_timeout{60000};  // 0: none
};

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

class Link;

class LinkOwner {
 public:
  virtual ~LinkOwner() = default;
  // Server side: the HTTP request arrived. A response refuses the upgrade
  // (or answers /health) and ends the link; nullopt accepts the upgrade.
  virtual std::optional<HttpResponse> on_request(Link& link, const HttpRequest& req) = 0;
  // The WebSocket handshake completed: frames may flow.
  virtual void on_open(Link& link) = 0;
  // One WebSocket message.
  virtual void on_frame(Link& link, std::string&& bytes, bool binary) = 0;
  // The link ended, once; `was_open`: after on_open.
  virtual void on_closed(Link& link, const std::string& reason, bool was_open) = 0;
};

using SharedFrame = std::shared_ptr<const std::string>;

class Link : public std::enable_shared_from_this<Link> {
 public:
  virtual ~Link() = default;

  // Server: (TLS handshake,) HTTP request with the handshake timeout, then
  // the upgrade or the owner's response.
  virtual void start_server() = 0;
  // Client, over a connected TCP stream: (TLS handshake,) upgrade request
  // to `host` (host:port, the Host header) and `target`, with `token` as a
  // bearer token; TLS checks the certificate against `tls_name` (default:
  // the host without port).
  virtual void start_client(const std::string& host, const std::string& target,
                            const std::string& token, const std::string& tls_name) = 0;

  // Queues one message (head + shared tail, either may be empty). Returns
  // false, dropping it, when the link is closing or the queue would pass
  // max_outbound (at least one message is always accepted).
  virtual bool send(std::string head, SharedFrame tail, bool binary) = 0;
  bool send(std::string frame, bool binary) { return send(std::move(frame), nullptr, binary); }

  // Graceful: writes what is queued, then the close handshake. The socket is
  // closed after the handshake timeout whatever the peer does.
  virtual void close(beast::websocket::close_code code, const std::string& reason) = 0;
  // For a peer that broke the rules or reads too slowly: drops what is queued
  // (but the message being written), writes `last`, then closes as above.
  virtual void cut_off(std::string last, bool binary, beast::websocket::close_code code,
                       const std::string& reason) = 0;
  // Closes the socket now.
  virtual void abort(const std::string& reason) = 0;

  const std::string& peer() const { return peer_; }
  std::size_t queued_bytes() const { return queued_bytes_; }
  bool is_open() const { return open_; }
  bool closing() const { return closing_; }
  // Client: the HTTP status of a refused upgrade (401, 403, ...), else 0.
  unsigned refused_status() const { return refused_status_; }

  std::uint64_t id = 0;      // the owner's number for it
  bool peer_binary = false;  // server: the format of the peer's latest frame

 protected:
  std::string peer_;
  std::size_t queued_bytes_ = 0;
  bool open_ = false;
  bool closing_ = false;
  unsigned refused_status_ = 0;
};

// `ssl`: null for plain ws://. The stream's executor runs everything.
std::shared_ptr<Link> make_link(beast::tcp_stream stream, std::shared_ptr<asio::ssl::context> ssl,
                                std::weak_ptr<LinkOwner> owner, const LinkLimits& limits);

}  // namespace switchboard::websocket
