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
