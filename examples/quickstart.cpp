// The README's example: a service and a caller in one process, on the
// embedded in-process transport. Build: part of `make build`.
#include <iostream>

#include "switchboard/app.hpp"

using namespace switchboard;

int main() {
  asio::io_context io;
  App app(io, config_from_url("inproc://quickstart", {}));
  app.start();
  Runtime& rt = app.runtime();

  // A service: scalar properties route; `a` and `b` are a payload schema.
  rt.add({{"topic", "math"},
          {"cmd", "add"},
          {"a", {{"type", "integer"}, {"required", true}}},
          {"b", {{"type", "integer"}, {"required", true}}}},
         [](Call& call) -> Json {
           return call.pattern()["a"].get<long>() + call.pattern()["b"].get<long>();
         });

  // A caller: the most specific handler answers; the completion gets the
  // error_code and the Response (result, or error name/message/code).
  rt.act({{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}, {"timeout$", 500}},
         [&](std::error_code ec, Response r) {
           if (ec) {
             std::cerr << r.error->name() << ": " << r.error->message() << "\n";
           } else {
             std::cout << "1 + 2 = " << r.result << "\n";
           }
           rt.close([] {});
         });
  io.run();
}
