// A minimal HTTP endpoint for operators: GET /metrics answers Prometheus
// text from a callback; anything else is 404. One request per connection
// (Connection: close), requests above 8 KiB are refused. Runs on the
// executor it is given; the callback runs there too.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "switchboard/prelude.hpp"

namespace switchboard::bridges {

class AdminServer {
 public:
  // Listens on `listen` ("127.0.0.1:9100", "[::1]:9100", ":9100" for every
  // address; port 0 picks one). Throws Error (invalid_argument or
  // transport_error) when the address is bad or cannot be bound.
  AdminServer(asio::any_io_executor executor, const std::string& listen,
              std::function<std::string()> metrics);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  unsigned short port() const;
  void close();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace switchboard::bridges
