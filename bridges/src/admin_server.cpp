#include "switchboard/bridges/admin_server.hpp"

#include <spdlog/spdlog.h>

#include "switchboard/error.hpp"

namespace switchboard::bridges {

using asio::ip::tcp;

struct AdminServer::State : std::enable_shared_from_this<AdminServer::State> {
  State(asio::any_io_executor ex, std::function<std::string()> m)
      : acceptor(ex), metrics(std::move(m)) {}
  tcp::acceptor acceptor;
  std::function<std::string()> metrics;

  void accept() {
    auto self = shared_from_this();
    acceptor.async_accept([self](std::error_code ec, tcp::socket socket) {
      if (ec) {
        if (self->acceptor.is_open()) self->accept();
        return;
      }
      self->serve(std::make_shared<tcp::socket>(std::move(socket)));
      self->accept();
    });
  }

  void serve(std::shared_ptr<tcp::socket> socket) {
    auto buffer = std::make_shared<std::string>();
    auto self = shared_from_this();
    asio::async_read_until(
        *socket, asio::dynamic_buffer(*buffer, 8192), "\r\n\r\n",
        [self, socket, buffer](std::error_code ec, std::size_t) {
          if (ec) return;
          std::string_view request(*buffer);
          std::string status = "200 OK", type = "text/plain; version=0.0.4", body;
          auto line_end = request.find("\r\n");
          std::string_view line = request.substr(0, line_end);
          if (line.starts_with("GET /metrics ") || line.starts_with("GET /metrics?")) {
            try {
              body = self->metrics();
            } catch (const std::exception& e) {
              status = "500 Internal Server Error";
              body = std::string(e.what()) + "\n";
            }
          } else {
            status = "404 Not Found";
            type = "text/plain";
            body = "not found; try /metrics\n";
          }
          auto response =
              std::make_shared<std::string>("HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                                            "\r\nContent-Length: " + std::to_string(body.size()) +
                                            "\r\nConnection: close\r\n\r\n" + body);
          asio::async_write(*socket, asio::buffer(*response),
                            [socket, response](std::error_code, std::size_t) {
                              boost::system::error_code ignored;
                              socket->shutdown(tcp::socket::shutdown_both, ignored);
                            });
        });
  }
};

AdminServer::AdminServer(asio::any_io_executor executor, const std::string& listen,
                         std::function<std::string()> metrics)
    : state_(std::make_shared<State>(executor, std::move(metrics))) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos) {
    throw Error(errc::invalid_argument, "admin address '" + listen + "': expected host:port");
  }
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code ec;
  auto address = asio::ip::make_address(host, ec);
  unsigned long port_number = 0;
  try {
    port_number = std::stoul(port);
  } catch (const std::exception&) {
    port_number = 65536;
  }
  if (ec || port_number > 65535) {
    throw Error(errc::invalid_argument,
                "admin address '" + listen + "': expected an IP address and a port");
  }
  tcp::endpoint endpoint(address, static_cast<unsigned short>(port_number));
  auto& a = state_->acceptor;
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    throw Error(errc::transport_error, "admin address '" + listen + "': " + ec.message());
  }
  state_->accept();
}

AdminServer::~AdminServer() {
  close();
}

unsigned short AdminServer::port() const {
  boost::system::error_code ec;
  return state_->acceptor.local_endpoint(ec).port();
}

void AdminServer::close() {
  boost::system::error_code ignored;
  state_->acceptor.close(ignored);
}

}  // namespace switchboard::bridges
