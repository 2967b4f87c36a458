// SortedVectorMap as switchboard::Json's object type: the order, lookups and
// edits of std::map, whatever order members arrive in.
#include "switchboard/sorted_vector_map.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "switchboard/json.hpp"

namespace switchboard {
namespace {

using Map = SortedVectorMap<std::string, int>;

std::vector<std::string> keys_of(const Map& m) {
  std::vector<std::string> keys;
  for (const auto& [k, v] : m) keys.push_back(k);
  return keys;
}

TEST(SortedVectorMap, KeepsKeysSortedWhateverTheInsertOrder) {
  Map m;
  for (const char* k : {"topic", "cmd", "a", "zeta", "", "b", "cmd"}) m[k] += 1;
  EXPECT_EQ(keys_of(m), (std::vector<std::string>{"", "a", "b", "cmd", "topic", "zeta"}));
  EXPECT_EQ(m.at("cmd"), 2);
  EXPECT_EQ(m.size(), 6u);
}

TEST(SortedVectorMap, BehavesAsStdMapUnderRandomEdits) {
  std::mt19937 rng(7);
  Map m;
  std::map<std::string, int> reference;
  for (int step = 0; step < 5000; ++step) {
    std::string key = "k" + std::to_string(rng() % 200);
    switch (rng() % 4) {
      case 0:
        m[key] = step;
        reference[key] = step;
        break;
      case 1:
        EXPECT_EQ(m.emplace(key, step).second, reference.emplace(key, step).second);
        break;
      case 2:
        EXPECT_EQ(m.erase(key), reference.erase(key));
        break;
      case 3:
        EXPECT_EQ(m.count(key), reference.count(key));
        break;
    }
  }
  ASSERT_EQ(m.size(), reference.size());
  auto it = m.begin();
  for (const auto& [k, v] : reference) {
    EXPECT_EQ(it->first, k);
    EXPECT_EQ(it->second, v);
    ++it;
  }
}

TEST(SortedVectorMap, FindsByAnyStringForm) {
  Map m{{"b", 2}, {"a", 1}, {"b", 3}};  // the first of repeated keys stays, as in std::map
  EXPECT_EQ(m.find(std::string_view("a"))->second, 1);
  EXPECT_EQ(m.find("b")->second, 2);
  EXPECT_EQ(m.find(std::string("c")), m.end());
  EXPECT_THROW(m.at("c"), std::out_of_range);
}

TEST(SortedVectorMap, AdoptSortsAndKeepsTheLastOfRepeatedKeys) {
  Map::Container members{{"z", 1}, {"a", 2}, {"m", 3}, {"a", 4}, {"z", 5}};
  Map m = Map::adopt(std::move(members));
  EXPECT_EQ(keys_of(m), (std::vector<std::string>{"a", "m", "z"}));
  EXPECT_EQ(m.at("a"), 4);
  EXPECT_EQ(m.at("z"), 5);
}

TEST(SortedVectorMap, EraseByIteratorAndRange) {
  Map m{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}};
  auto next = m.erase(m.find("b"));
  EXPECT_EQ(next->first, "c");
  m.erase(m.find("c"), m.end());
  EXPECT_EQ(keys_of(m), (std::vector<std::string>{"a"}));
}

TEST(SortedVectorMap, JsonDumpsAndComparesAsWithStdMap) {
  // Key order is what canonical dumps (event hashes) and `method` rely on.
  Json j = Json::parse(R"({"topic":"math","cmd":"add","b":2,"a":1,"nested":{"y":1,"x":[1,2]}})");
  EXPECT_EQ(j.dump(), R"({"a":1,"b":2,"cmd":"add","nested":{"x":[1,2],"y":1},"topic":"math"})");
  Json same = {
      {"a", 1}, {"nested", {{"x", {1, 2}}, {"y", 1}}}, {"b", 2}, {"topic", "math"}, {"cmd", "add"}};
  EXPECT_EQ(j, same);
  same["b"] = 3;
  EXPECT_NE(j, same);
  EXPECT_LT(j, same);
  EXPECT_EQ(std::hash<Json>{}(j), std::hash<Json>{}(Json::parse(j.dump())));
  j.erase("nested");
  EXPECT_FALSE(j.contains("nested"));
  EXPECT_EQ(j.dump(), R"({"a":1,"b":2,"cmd":"add","topic":"math"})");
}

}  // namespace
}  // namespace switchboard
