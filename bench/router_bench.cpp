// Router benchmark: PatternRouter::lookup with 10, 1,000 and 10,000 patterns.
//
// The pattern sets and lookup objects are generated here and, with
// --generate=DIR, written to DIR/router_<N>.json, so that the bloomrun side
// (bench/bloomrun/router_bench.js) runs exactly the same data. Each lookup
// carries the answer of a brute-force reference (a linear scan: most matching
// properties wins, ties to the earliest add); the generator only keeps
// lookups whose most specific match is unique, because on ties bloomrun
// (which puts later adds first) and Switchboard (earliest add) differ by
// design.
//
//   switchboard_router_bench --generate=DIR       write the data and exit
//   switchboard_router_bench --data=DIR [gbench]  benchmark DIR's data and
//                                                 write DIR/switchboard_answers_<N>.json
//   switchboard_router_bench [gbench flags]       generate in memory, benchmark
//
// scripts/bench.sh runs both sides and prints the table (docs/benchmarks.md).
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "switchboard/pattern_router.hpp"

namespace {

using switchboard::Json;
using switchboard::PatternRouter;
// Written with keys in the order a Hemera user writes them (topic, cmd, ...):
// bloomrun's bucket order depends on the act's key order.
using OrderedJson = nlohmann::ordered_json;

constexpr std::array<std::size_t, 3> kSizes = {10, 1000, 10000};
constexpr std::size_t kLookupsPerSet = 1000;
constexpr std::size_t kMissPercent = 10;
constexpr std::array<const char*, 8> kCommands = {"create", "get",    "list",  "update",
                                                  "delete", "search", "count", "export"};

// splitmix64: small, fast and the same everywhere (std distributions are not).
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool percent(std::size_t p) { return below(100) < p; }
};

struct BenchSet {
  std::size_t size = 0;
  std::vector<Json> patterns;  // pattern i has payload/id i + 1 on both sides
  std::vector<Json> lookups;
  std::vector<std::optional<std::size_t>> expect;  // 1-based pattern index
  std::size_t misses = 0;
};

// Variants of a base {topic, cmd} pattern: one or two extra routing keys.
enum class Variant { none, version, role, version_and_role };

// "svc12", "req-7": built by appending, which also keeps GCC 12's
// -Wrestrict false positive on `"literal" + std::string` away.
std::string numbered(std::string_view prefix, std::size_t n) {
  std::string s(prefix);
  s += std::to_string(n);
  return s;
}

OrderedJson make_pattern(std::size_t service, std::size_t command, Variant v) {
  OrderedJson p;
  p["topic"] = numbered("svc", service);
  p["cmd"] = kCommands[command];
  if (v == Variant::version || v == Variant::version_and_role) p["version"] = 2;
  if (v == Variant::role || v == Variant::version_and_role) p["role"] = "admin";
  return p;
}

// Payload an act carries besides its routing keys: numbers, strings, nested
// objects and arrays, none of which any pattern routes on.
void add_payload(OrderedJson& act, Rng& rng, std::size_t n) {
  act["a"] = static_cast<std::int64_t>(rng.below(1000));
  act["b"] = static_cast<double>(rng.below(100000)) / 100.0;
  act["requestId"] = numbered("req-", n);
  OrderedJson user;
  user["id"] = numbered("u", rng.below(50000));
  user["roles"] = OrderedJson::array({"reader", "writer"});
  OrderedJson data;
  data["user"] = std::move(user);
  data["items"] = OrderedJson::array({rng.below(10), rng.below(10), rng.below(10)});
  data["note"] = "payload that does not route";
  act["data"] = std::move(data);
}

// Brute force: every pattern, most routing properties wins, ties to the
// earliest. `unique` says whether the best weight had a single match.
std::optional<std::size_t> reference_lookup(const std::vector<Json>& patterns, const Json& object,
                                            bool& unique) {
  std::optional<std::size_t> best;
  std::size_t best_weight = 0;
  unique = true;
  for (std::size_t i = 0; i < patterns.size(); ++i) {
    bool match = true;
    for (auto it = patterns[i].begin(); match && it != patterns[i].end(); ++it) {
      auto o = object.find(it.key());
      match = o != object.end() && *o == *it;
    }
    if (!match) continue;
    std::size_t weight = patterns[i].size();
    if (!best || weight > best_weight) {
      best = i + 1;
      best_weight = weight;
      unique = true;
    } else if (weight == best_weight) {
      unique = false;
    }
  }
  return best;
}

// Patterns: 80% base {topic, cmd} (8 commands per service), 20% variants of
// a random base: 45% {.., version: 2}, 45% {.., role: "admin"}, 10% both.
// Lookups: 90% hits on a uniformly chosen pattern, sometimes with a decoy
// routing value no pattern uses (version: 1, role: "user"); 10% misses (a
// known topic with a command no service has).
BenchSet generate(std::size_t size, std::vector<OrderedJson>* ordered_patterns,
                  std::vector<OrderedJson>* ordered_lookups) {
  Rng rng{0x5b0a5d + size};
  BenchSet set;
  set.size = size;
  const std::size_t variants = size / 5;
  const std::size_t base = size - variants;
  const std::size_t services = (base + kCommands.size() - 1) / kCommands.size();

  std::set<std::tuple<std::size_t, std::size_t, Variant>> chosen;  // sorted by service
  for (std::size_t i = 0; i < base; ++i) {
    chosen.emplace(i / kCommands.size(), i % kCommands.size(), Variant::none);
  }
  while (chosen.size() < size) {
    std::size_t b = rng.below(base);
    std::size_t r = rng.below(100);
    Variant v = r < 45 ? Variant::version : r < 90 ? Variant::role : Variant::version_and_role;
    chosen.emplace(b / kCommands.size(), b % kCommands.size(), v);
  }
  std::vector<OrderedJson> patterns;
  for (const auto& [service, command, v] : chosen) {
    patterns.push_back(make_pattern(service, command, v));
  }
  for (const auto& p : patterns) set.patterns.push_back(Json::parse(p.dump()));

  std::vector<OrderedJson> lookups;
  while (lookups.size() < kLookupsPerSet) {
    OrderedJson act;
    if (rng.percent(kMissPercent)) {
      act["topic"] = numbered("svc", rng.below(services));
      act["cmd"] = "purge";
    } else {
      act = patterns[rng.below(patterns.size())];
      if (!act.contains("version") && rng.percent(25)) act["version"] = 1;
      if (!act.contains("role") && rng.percent(25)) act["role"] = "user";
    }
    add_payload(act, rng, lookups.size());
    Json object = Json::parse(act.dump());
    bool unique = false;
    auto expect = reference_lookup(set.patterns, object, unique);
    if (!unique) continue;  // never happens with these sets; see the file comment
    if (!expect) ++set.misses;
    set.lookups.push_back(std::move(object));
    set.expect.push_back(expect);
    lookups.push_back(std::move(act));
  }
  if (ordered_patterns) *ordered_patterns = std::move(patterns);
  if (ordered_lookups) *ordered_lookups = std::move(lookups);
  return set;
}

std::string set_path(const std::string& dir, std::size_t size) {
  return dir + "/router_" + std::to_string(size) + ".json";
}

OrderedJson answer_json(const std::optional<std::size_t>& a) {
  return a ? OrderedJson(*a) : OrderedJson(nullptr);
}

void write_set(const std::string& dir, std::size_t size) {
  std::vector<OrderedJson> patterns, lookups;
  BenchSet set = generate(size, &patterns, &lookups);
  OrderedJson out;
  out["size"] = size;
  out["misses"] = set.misses;
  out["patterns"] = patterns;
  OrderedJson ls = OrderedJson::array();
  for (std::size_t i = 0; i < lookups.size(); ++i) {
    OrderedJson l;
    l["object"] = std::move(lookups[i]);
    l["expect"] = answer_json(set.expect[i]);
    ls.push_back(std::move(l));
  }
  out["lookups"] = std::move(ls);
  std::ofstream f(set_path(dir, size));
  f << out.dump() << '\n';
  if (!f) throw std::runtime_error("cannot write " + set_path(dir, size));
}

BenchSet read_set(const std::string& dir, std::size_t size) {
  std::ifstream f(set_path(dir, size));
  if (!f) throw std::runtime_error("cannot read " + set_path(dir, size));
  Json in = Json::parse(f);
  BenchSet set;
  set.size = size;
  set.patterns = in.at("patterns").get<std::vector<Json>>();
  for (const auto& l : in.at("lookups")) {
    set.lookups.push_back(l.at("object"));
    const Json& e = l.at("expect");
    set.expect.push_back(e.is_null() ? std::nullopt
                                     : std::optional<std::size_t>(e.get<std::size_t>()));
    if (e.is_null()) ++set.misses;
  }
  return set;
}

// A router loaded with a set, and the map from its ids to 1-based indexes.
struct LoadedRouter {
  PatternRouter router;
  std::unordered_map<PatternRouter::Id, std::size_t> index_of;

  explicit LoadedRouter(const BenchSet& set) {
    for (std::size_t i = 0; i < set.patterns.size(); ++i) {
      PatternRouter::Id id;
      std::string why;
      if (auto ec = router.add(set.patterns[i], id, why)) {
        throw std::runtime_error("add failed: " + why);
      }
      index_of.emplace(id, i + 1);
    }
  }
  std::optional<std::size_t> answer(const Json& object) const {
    auto id = router.lookup(object);
    if (!id) return std::nullopt;
    return index_of.at(*id);
  }
};

std::size_t count_mismatches(const BenchSet& set, const LoadedRouter& loaded,
                             const std::string& answers_path) {
  std::size_t mismatches = 0;
  OrderedJson answers = OrderedJson::array();
  for (std::size_t i = 0; i < set.lookups.size(); ++i) {
    auto a = loaded.answer(set.lookups[i]);
    if (a != set.expect[i]) ++mismatches;
    answers.push_back(answer_json(a));
  }
  if (!answers_path.empty()) {
    std::ofstream f(answers_path);
    f << answers.dump() << '\n';
  }
  return mismatches;
}

void bm_lookup(benchmark::State& state, const BenchSet* set, const std::string& answers_path) {
  LoadedRouter loaded(*set);
  const std::size_t mismatches = count_mismatches(*set, loaded, answers_path);
  if (mismatches != 0) {
    std::fprintf(stderr, "router_lookup/%zu: %zu of %zu lookups differ from the reference\n",
                 set->size, mismatches, set->lookups.size());
  }
  const auto& lookups = set->lookups;
  for (auto _ : state) {
    for (const auto& object : lookups) {
      auto id = loaded.router.lookup(object);
      benchmark::DoNotOptimize(id);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * lookups.size()));
  state.counters["patterns"] = static_cast<double>(set->patterns.size());
  state.counters["shapes"] = static_cast<double>(loaded.router.shape_count());
  state.counters["lookups"] = static_cast<double>(lookups.size());
  state.counters["misses"] = static_cast<double>(set->misses);
  state.counters["mismatches"] = static_cast<double>(mismatches);
}

bool take_flag(std::string_view arg, std::string_view name, std::string& value) {
  if (arg.substr(0, name.size()) != name) return false;
  value = std::string(arg.substr(name.size()));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string generate_dir, data_dir;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (take_flag(arg, "--generate=", generate_dir) || take_flag(arg, "--data=", data_dir)) {
      continue;
    }
    argv[kept++] = argv[i];
  }
  argc = kept;

  try {
    if (!generate_dir.empty()) {
      for (auto size : kSizes) write_set(generate_dir, size);
      return 0;
    }
    static std::vector<BenchSet> sets;  // outlives the registered benchmarks
    for (auto size : kSizes) {
      sets.push_back(data_dir.empty() ? generate(size, nullptr, nullptr)
                                      : read_set(data_dir, size));
    }
    for (const auto& set : sets) {
      std::string answers = data_dir.empty() ? std::string()
                                             : data_dir + "/switchboard_answers_" +
                                                   std::to_string(set.size) + ".json";
      benchmark::RegisterBenchmark(("router_lookup/" + std::to_string(set.size)).c_str(), bm_lookup,
                                   &set, answers);
    }
  } catch (const std::exception& e) {
    std::cerr << "switchboard_router_bench: " << e.what() << '\n';
    return 1;
  }

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
