#include "switchboard/pattern_router.hpp"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace switchboard
