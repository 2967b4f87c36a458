// `make demo`: the main job on the embedded default, no broker needed.
// A runtime loads the math plugin (a shared library, found on the plugin
// path), calls it, fans a pubsub$ message out to two subscribers, and shows
// what an error looks like when it comes back.
#include <cstdio>
#include <string>

#include "switchboard/app.hpp"

using namespace switchboard;

namespace {

void print_result(const char* label, std::error_code ec, const Response& r) {
  if (ec) {
    std::string code = r.error->code().is_null() ? "" : " (code " + r.error->code().dump() + ")";
    std::printf("  %-24s -> %s: %s%s\n", label, r.error->name().c_str(), r.error->message().c_str(),
                code.c_str());
  } else {
    std::printf("  %-24s -> %s   [trace %s, %.2f ms]\n", label, r.result.dump().c_str(),
                r.trace.trace_id.c_str(), r.trace.duration);
  }
}

}  // namespace

int main(int argc, char** argv) {
  asio::io_context io;
  Config config = argc > 1 ? load_config_file(argv[1]) : config_from_url("inproc://demo", {"math"});
  config.log.level = "warn";
  App app(io, std::move(config));
  app.start();
  Runtime& rt = app.runtime();
  std::printf("switchboard demo: transport %s, plugins:",
              app.config().runtime_transport().url.c_str());
  for (const auto& p : rt.plugins()) std::printf(" %s %s", p->name().c_str(), p->version().c_str());
  std::printf("\n\nrequest/reply through the math plugin:\n");

  // Two more services on the same bus subscribe with pubsub$: every one of
  // them gets every message (no queue group).
  int deliveries = 0;
  std::vector<std::unique_ptr<App>> subscribers;
  for (const char* who : {"audit", "metrics"}) {
    Config c = config_from_url(app.config().runtime_transport().url, {});
    c.log.level = "warn";
    subscribers.push_back(std::make_unique<App>(io, std::move(c)));
    subscribers.back()->start();
    subscribers.back()->runtime().add(
        {{"topic", "news"}, {"pubsub$", true}}, [who, &deliveries, &rt](Call& c) -> Json {
          std::printf("  %-8s got %s\n", who, c.pattern()["headline"].dump().c_str());
          if (++deliveries == 2) rt.close([] { std::printf("\nclosed cleanly\n"); });
          return nullptr;
        });
  }

  struct Step {
    const char* label;
    Json pattern;
  };
  const std::vector<Step> steps{
      {"add 1 + 2", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}}},
      {"sub 10 - 4", {{"topic", "math"}, {"cmd", "sub"}, {"a", 10}, {"b", 4}}},
      {"mul 6 * 7", {{"topic", "math"}, {"cmd", "mul"}, {"a", 6}, {"b", 7}}},
      {"div 1 / 8", {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 8}}},
      {"div 1 / 0 (an error)", {{"topic", "math"}, {"cmd", "div"}, {"a", 1}, {"b", 0}}},
      {"add 1 + \"x\" (invalid)", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", "x"}}},
      {"pow 2 ^ 8 (no handler)", {{"topic", "math"}, {"cmd", "pow"}, {"a", 2}, {"b", 8}}},
  };
  // Run the steps one after another, then the fan-out, then close.
  std::function<void(std::size_t)> next = [&](std::size_t i) {
    if (i < steps.size()) {
      rt.act(steps[i].pattern, [&, i](std::error_code ec, Response r) {
        print_result(steps[i].label, ec, r);
        next(i + 1);
      });
      return;
    }
    std::printf("\npubsub fan-out on topic news:\n");
    rt.act({{"topic", "news"}, {"pubsub$", true}, {"headline", "switchboard is up"}},
           [](std::error_code, Response) {});
  };
  next(0);
  io.run_for(std::chrono::seconds(10));
  for (auto& s : subscribers) s->runtime().close([] {});
  io.run_for(std::chrono::seconds(2));
  if (deliveries != 2) std::printf("fan-out reached %d of 2 subscribers\n", deliveries);
  return deliveries == 2 ? 0 : 1;
}
