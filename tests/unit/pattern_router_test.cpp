#include "switchboard/pattern_router.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace switchboard {
namespace {

PatternRouter::Id add(PatternRouter& r, const Json& p) {
  PatternRouter::Id id = 0;
  std::string why;
  EXPECT_FALSE(r.add(p, id, why)) << why;
  return id;
}

TEST(PatternRouter, MostSpecificMatchWins) {
  PatternRouter r;
  auto general = add(r, {{"topic", "math"}});
  auto add_cmd = add(r, {{"topic", "math"}, {"cmd", "add"}});
  auto add_int = add(r, {{"topic", "math"}, {"cmd", "add"}, {"type", "int"}});
  EXPECT_EQ(r.lookup({{"topic", "math"}, {"cmd", "add"}, {"a", 1}}), add_cmd);
  EXPECT_EQ(r.lookup({{"topic", "math"}, {"cmd", "add"}, {"type", "int"}}), add_int);
  EXPECT_EQ(r.lookup({{"topic", "math"}, {"cmd", "sub"}}), general);
  EXPECT_EQ(r.lookup({{"topic", "other"}}), std::nullopt);
}

TEST(PatternRouter, TiesGoToTheEarlierAdd) {
  PatternRouter r;
  auto first = add(r, {{"topic", "a"}, {"x", 1}});
  add(r, {{"topic", "a"}, {"y", 2}});
  EXPECT_EQ(r.lookup({{"topic", "a"}, {"x", 1}, {"y", 2}}), first);
}

TEST(PatternRouter, InsertionOrderTakesTheFirstMatchRegardlessOfSpecificity) {
  PatternRouter r(PatternRouter::Order::insertion);
  auto general = add(r, {{"topic", "math"}});
  add(r, {{"topic", "math"}, {"cmd", "add"}});
  EXPECT_EQ(r.lookup({{"topic", "math"}, {"cmd", "add"}}), general);
}

TEST(PatternRouter, NumbersCompareByValueAcrossIntegerAndFloat) {
  PatternRouter r;
  auto id = add(r, {{"topic", "t"}, {"v", 1}});
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", 1.0}}), id);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", 1.5}}), std::nullopt);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", "1"}}), std::nullopt);
}

TEST(PatternRouter, NumbersOfEveryJsonKindRouteByValue) {
  // Parsed "2" is unsigned, -2 signed, 2.0 a float: all the same routing value.
  PatternRouter r;
  auto two = add(r, Json::parse(R"({"topic": "t", "v": 2})"));
  auto minus = add(r, {{"topic", "t"}, {"v", -2}});
  auto big = add(r, {{"topic", "t"}, {"v", std::uint64_t{18446744073709551615ULL}}});
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", std::int64_t{2}}}), two);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", 2.0}}), two);
  EXPECT_EQ(r.lookup(Json::parse(R"({"topic": "t", "v": -2.0})")), minus);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", std::uint64_t{18446744073709551615ULL}}}), big);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", 3}}), std::nullopt);
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"v", true}}), std::nullopt);
}

TEST(PatternRouter, StringsOfEveryLengthCompareExactly) {
  // Short strings are kept inline in the index and compared word by word;
  // long ones are not: both must match exactly and only exactly.
  PatternRouter r;
  std::vector<std::pair<std::string, PatternRouter::Id>> added;
  for (std::size_t n = 0; n <= 40; ++n) {
    std::string value(n, 'x');
    if (n > 0) value.back() = 'y';
    added.emplace_back(value, add(r, {{"topic", "t"}, {"name", value}}));
  }
  for (const auto& [value, id] : added) {
    EXPECT_EQ(r.lookup({{"topic", "t"}, {"name", value}}), id) << value.size();
    if (!value.empty()) {
      EXPECT_EQ(r.lookup({{"topic", "t"}, {"name", value + "y"}}), std::nullopt) << value;
      std::string changed = value;
      changed[changed.size() / 2] ^= 1;
      EXPECT_EQ(r.lookup({{"topic", "t"}, {"name", changed}}), std::nullopt) << changed;
    }
  }
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"name", std::string(41, 'x')}}), std::nullopt);
}

TEST(PatternRouter, RoutingKeysAreFoundAmongAnyOtherKeys) {
  // The act's members are walked in key order against the router's keys:
  // keys sharing a first byte, an empty key, long keys and keys sorting
  // before and after every routing key.
  PatternRouter r;
  auto id = add(r, {{"", "empty"},
                    {"role", "admin"},
                    {"a_routing_key_longer_than_twenty_bytes", 1},
                    {"topic", "t"}});
  Json act = {{"", "empty"},
              {"0", 0},
              {"a", 1},
              {"a_routing_key_longer_than_twenty_bytes", 1},
              {"a_routing_key_longer_than_twenty_bytez", 2},
              {"r", "x"},
              {"requestId", "r1"},
              {"role", "admin"},
              {"roles", "x"},
              {"topic", "t"},
              {"zzz", 3}};
  EXPECT_EQ(r.lookup(act), id);
  act.erase("");
  EXPECT_EQ(r.lookup(act), std::nullopt);
  act[""] = "empty";
  act["role"] = "user";
  EXPECT_EQ(r.lookup(act), std::nullopt);
}

TEST(PatternRouter, RegexAndGlobMatchersRouteAndCountAsSpecificity) {
  PatternRouter r;
  auto any_user = add(r, {{"topic", "users"}, {"cmd", glob("get*")}});
  auto by_id = add(r, {{"topic", "users"}, {"cmd", regex("^get[A-Z]")}, {"by", "id"}});
  EXPECT_EQ(r.lookup({{"topic", "users"}, {"cmd", "getAll"}}), any_user);
  EXPECT_EQ(r.lookup({{"topic", "users"}, {"cmd", "getOne"}, {"by", "id"}}), by_id);
  EXPECT_EQ(r.lookup({{"topic", "users"}, {"cmd", "get"}, {"by", "id"}}), any_user);
  EXPECT_EQ(r.lookup({{"topic", "users"}, {"cmd", "put"}}), std::nullopt);
  EXPECT_EQ(r.lookup({{"topic", "users"}, {"cmd", 7}}), std::nullopt);
}

TEST(PatternRouter, ObjectValuesAreSchemasAndDoNotRoute) {
  PatternRouter r;
  auto id = add(r, {{"topic", "t"}, {"a", {{"type", "number"}}}});
  EXPECT_EQ(r.lookup({{"topic", "t"}}), id);
  EXPECT_EQ(PatternRouter::schema_part({{"topic", "t"}, {"a", {{"type", "number"}}}}).size(), 1u);
}

TEST(PatternRouter, RejectsBadPatterns) {
  PatternRouter r;
  PatternRouter::Id id;
  std::string why;
  EXPECT_TRUE(r.add(Json::array(), id, why));
  EXPECT_NE(why.find("object"), std::string::npos);
  EXPECT_TRUE(r.add({{"topic", "t"}, {"list", {1, 2}}}, id, why));
  EXPECT_NE(why.find("list"), std::string::npos);
  EXPECT_TRUE(r.add({{"topic", "t"}, {"cmd", regex("([")}}, id, why));
  EXPECT_NE(why.find("regular expression"), std::string::npos);
  EXPECT_EQ(r.size(), 0u);
}

TEST(PatternRouter, RemoveAndFindExact) {
  PatternRouter r;
  auto a = add(r, {{"topic", "t"}, {"cmd", "a"}});
  auto b = add(r, {{"topic", "t"}, {"cmd", "a"}});
  add(r, {{"topic", "t"}});
  EXPECT_EQ(r.find_exact({{"topic", "t"}, {"cmd", "a"}}), (std::vector<PatternRouter::Id>{a, b}));
  EXPECT_TRUE(r.remove(a));
  EXPECT_FALSE(r.remove(a));
  EXPECT_EQ(r.lookup({{"topic", "t"}, {"cmd", "a"}}), b);
  EXPECT_TRUE(r.remove(b));
  EXPECT_EQ(r.size(), 1u);
  EXPECT_EQ(r.shape_count(), 1u);
}

TEST(PatternRouter, ListReturnsEveryMatchMostSpecificFirst) {
  PatternRouter r;
  auto general = add(r, {{"topic", "t"}});
  auto specific = add(r, {{"topic", "t"}, {"cmd", "x"}});
  EXPECT_EQ(r.list({{"topic", "t"}, {"cmd", "x"}}),
            (std::vector<PatternRouter::Id>{specific, general}));
}

TEST(PatternRouter, LookupCostDoesNotDependOnPatternCount) {
  // Ten thousand patterns of two shapes: the index has two shapes, and every
  // lookup finds its exact pattern.
  PatternRouter r;
  std::vector<PatternRouter::Id> ids;
  for (int i = 0; i < 5000; ++i) {
    ids.push_back(add(r, {{"topic", "svc" + std::to_string(i)}, {"cmd", "get"}}));
    ids.push_back(add(r, {{"topic", "svc" + std::to_string(i)}, {"cmd", "get"}, {"v", 2}}));
  }
  EXPECT_EQ(r.shape_count(), 2u);
  EXPECT_EQ(r.lookup({{"topic", "svc4321"}, {"cmd", "get"}, {"v", 2}}), ids[4321 * 2 + 1]);
  EXPECT_EQ(r.lookup({{"topic", "svc4321"}, {"cmd", "get"}, {"v", 3}}), ids[4321 * 2]);
}

// Random patterns, adds and removes, checked against a linear scan: most
// routing properties wins, ties to the earlier add (or, in insertion order,
// the first added match). Covers shapes coming and going, which changes the
// keys every pattern shares (the router indexes by those when there are any).
struct ReferencePattern {
  PatternRouter::Id id;
  Json exact;   // key -> scalar
  bool glob_a;  // also {"name": {"$glob": "a*"}}
};

bool reference_matches(const ReferencePattern& p, const Json& object) {
  for (auto it = p.exact.begin(); it != p.exact.end(); ++it) {
    auto found = object.find(it.key());
    if (found == object.end() || *found != *it) return false;
  }
  if (p.glob_a) {
    auto name = object.find("name");
    if (name == object.end() || !name->is_string() ||
        name->get_ref<const std::string&>().rfind('a', 0) != 0) {
      return false;
    }
  }
  return true;
}

std::optional<PatternRouter::Id> reference_lookup(const std::vector<ReferencePattern>& live,
                                                  const Json& object, bool by_specificity) {
  std::optional<PatternRouter::Id> best;
  std::size_t best_weight = 0;
  for (const auto& p : live) {  // in id order
    if (!reference_matches(p, object)) continue;
    std::size_t weight = p.exact.size() + (p.glob_a ? 1 : 0);
    if (!best || (by_specificity && weight > best_weight)) {
      best = p.id;
      best_weight = weight;
    }
  }
  return best;
}

void random_adds_removes_and_lookups(PatternRouter::Order order, std::uint64_t seed) {
  const std::vector<std::string> keys = {"topic", "cmd", "v", "role", "x"};
  const std::vector<Json> values = {"a", "ab", "b", 1, 2, true};
  std::uint64_t state = seed;
  auto next = [&](std::size_t n) {  // splitmix64
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return static_cast<std::size_t>((z ^ (z >> 31)) % n);
  };
  // Most patterns share topic and cmd; some phases add patterns without
  // them, so that the shared keys change.
  auto random_pattern = [&](bool shared_keys) {
    ReferencePattern p{0, Json::object(), next(8) == 0};
    for (const auto& key : keys) {
      bool shared = key == "topic" || key == "cmd";
      if ((shared && shared_keys) || next(3) == 0) p.exact[key] = values[next(values.size())];
    }
    return p;
  };
  auto random_object = [&] {
    Json o = {{"payload", {{"nested", 1}}}};
    for (const auto& key : keys) {
      if (next(6) != 0) o[key] = values[next(values.size())];
    }
    if (next(2) == 0) o["name"] = next(2) == 0 ? "abc" : "xyz";
    if (next(10) == 0) o["cmd"] = Json::array({1});  // not a scalar: routes nowhere
    return o;
  };

  PatternRouter router(order);
  std::vector<ReferencePattern> live;
  for (int round = 0; round < 400; ++round) {
    const bool shared_keys = (round / 100) % 2 == 0;
    if (live.empty() || next(3) != 0) {
      ReferencePattern p = random_pattern(shared_keys);
      Json pattern = p.exact;
      if (p.glob_a) pattern["name"] = glob("a*");
      p.id = add(router, pattern);
      live.push_back(std::move(p));
    } else {
      std::size_t i = next(live.size());
      ASSERT_TRUE(router.remove(live[i].id));
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    for (int l = 0; l < 20; ++l) {
      Json object = random_object();
      ASSERT_EQ(router.lookup(object),
                reference_lookup(live, object, order == PatternRouter::Order::specificity))
          << "round " << round << ", object " << object.dump();
    }
  }
}

TEST(PatternRouter, AgreesWithALinearScanThroughAddsAndRemoves) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    random_adds_removes_and_lookups(PatternRouter::Order::specificity, seed);
  }
}

TEST(PatternRouter, AgreesWithALinearScanInInsertionOrder) {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    random_adds_removes_and_lookups(PatternRouter::Order::insertion, seed);
  }
}

}  // namespace
}  // namespace switchboard
