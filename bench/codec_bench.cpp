// Codec benchmark: one envelope encoded and decoded per iteration, through
// the json and msgpack codec plugins exactly as the runtime loads them.
//
// Messages: a small request (Hemera's math add with meta and trace), the
// reply to it, and a request carrying a 4 KiB payload of records. Each
// benchmark also reports the encoded size. scripts/bench.sh codec prints
// the table (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <iostream>
#include <string>
#include <vector>

#include "switchboard/plugin_host.hpp"

namespace {

using switchboard::Json;

Json trace() {
  return {{"traceId", "4bf92f3577b34da6"},
          {"spanId", "00f067aa0ba902b7"},
          {"parentSpanId", "a3ce929d0e0e4736"},
          {"timestamp", 1732300000123},
          {"service", "math"},
          {"method", "a:1,b:2,cmd:add,topic:math"}};
}

Json small_request() {
  return {{"pattern", {{"topic", "math"}, {"cmd", "add"}, {"a", 1}, {"b", 2}}},
          {"meta", {{"user", "ann"}, {"tenant", 42}}},
          {"delegate", Json::object()},
          {"trace", trace()},
          {"request", {{"id", "5f2a1c9e"}, {"type", "request"}}}};
}

Json small_reply() {
  return {{"meta", {{"user", "ann"}, {"tenant", 42}}},
          {"trace", trace()},
          {"request", {{"id", "5f2a1c9e"}, {"type", "request"}}},
          {"result", 3},
          {"error", nullptr}};
}

Json large_request() {
  Json records = Json::array();
  for (int i = 0; records.dump().size() < 4096; ++i) {
    records.push_back({{"id", i},
                       {"sku", "SKU-" + std::to_string(100000 + i)},
                       {"qty", i % 7},
                       {"price", 19.99 + i},
                       {"tags", {"new", "eu"}}});
  }
  Json r = small_request();
  r["pattern"] = {{"topic", "orders"}, {"cmd", "import"}, {"records", records}};
  return r;
}

struct Codecs {
  switchboard::PluginHost host;
  std::shared_ptr<switchboard::Codec> json = host.create_codec("json");
  std::shared_ptr<switchboard::Codec> msgpack = host.create_codec("msgpack");
};

void bm_round_trip(benchmark::State& state, const switchboard::Codec* codec, Json message) {
  std::string bytes = codec->encode(message);
  Json out;
  std::string why;
  if (codec->decode(bytes, out, why) || out != message) {
    state.SkipWithError(("round trip changed the message: " + why).c_str());
    return;
  }
  for (auto _ : state) {
    std::string encoded = codec->encode(message);
    Json decoded;
    codec->decode(encoded, decoded, why);
    benchmark::DoNotOptimize(decoded);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["bytes"] = static_cast<double>(bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  static Codecs* codecs = nullptr;
  try {
    codecs = new Codecs();  // plugins stay loaded until exit
  } catch (const std::exception& e) {
    std::cerr << "switchboard_codec_bench: " << e.what() << '\n';
    return 1;
  }
  const std::vector<std::pair<std::string, Json>> messages = {
      {"small_request", small_request()},
      {"small_reply", small_reply()},
      {"large_request", large_request()},
  };
  for (const auto& [name, message] : messages) {
    for (const switchboard::Codec* codec : {codecs->json.get(), codecs->msgpack.get()}) {
      benchmark::RegisterBenchmark(("codec/" + codec->name() + "/" + name).c_str(), bm_round_trip,
                                   codec, message);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
