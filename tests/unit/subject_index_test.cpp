#include "switchboard/subject.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

namespace switchboard {
namespace {

TEST(Subject, ValidatesLikeNats) {
  std::string why;
  EXPECT_FALSE(validate_subject("a.b.c", false, why));
  EXPECT_FALSE(validate_subject("a.*.>", true, why));
  EXPECT_TRUE(validate_subject("", true, why));
  EXPECT_TRUE(validate_subject("a..b", true, why));
  EXPECT_TRUE(validate_subject("a.>.b", true, why));
  EXPECT_NE(why.find("last"), std::string::npos);
  EXPECT_TRUE(validate_subject("a.*", false, why));
  EXPECT_TRUE(validate_subject("a b", true, why));
}

TEST(Subject, Wildcards) {
  EXPECT_TRUE(subject_matches("a.*.c", "a.b.c"));
  EXPECT_FALSE(subject_matches("a.*.c", "a.b.d"));
  EXPECT_FALSE(subject_matches("a.*", "a.b.c"));
  EXPECT_TRUE(subject_matches("a.>", "a.b.c"));
  EXPECT_FALSE(subject_matches("a.>", "a"));
  EXPECT_TRUE(subject_matches(">", "x"));
  EXPECT_TRUE(subject_matches("a.b", "a.b"));
  EXPECT_FALSE(subject_matches("a.b", "a.b.c"));
}

TEST(SubjectIndex, MatchesLiteralStarAndRest) {
  SubjectIndex index;
  auto exact = index.insert("orders.new", "");
  auto star = index.insert("orders.*", "");
  auto rest = index.insert("orders.>", "");
  auto other = index.insert("users.*", "");
  std::vector<SubjectIndex::Id> out;
  index.match("orders.new", out);
  std::sort(out.begin(), out.end());
  EXPECT_EQ(out, (std::vector<SubjectIndex::Id>{exact, star, rest}));
  out.clear();
  index.match("orders.new.eu", out);
  EXPECT_EQ(out, (std::vector<SubjectIndex::Id>{rest}));
  out.clear();
  index.match("users.1", out);
  EXPECT_EQ(out, (std::vector<SubjectIndex::Id>{other}));
}

TEST(SubjectIndex, QueueGroupGetsExactlyOneMemberAndRotates) {
  SubjectIndex index;
  auto plain = index.insert("jobs", "");
  auto w1 = index.insert("jobs", "workers");
  auto w2 = index.insert("jobs", "workers");
  std::map<SubjectIndex::Id, int> counts;
  for (int i = 0; i < 100; ++i) {
    std::vector<SubjectIndex::Id> out;
    index.match("jobs", out);
    ASSERT_EQ(out.size(), 2u);
    for (auto id : out) ++counts[id];
  }
  EXPECT_EQ(counts[plain], 100);
  EXPECT_EQ(counts[w1] + counts[w2], 100);
  EXPECT_EQ(counts[w1], 50);
}

TEST(SubjectIndex, OneQueueNameIsOneGroupAcrossFilters) {
  // nats-server delivers once per queue name, whatever filters matched.
  SubjectIndex index;
  index.insert("jobs.*", "workers");
  index.insert("jobs.>", "workers");
  index.insert("jobs.new", "auditors");
  for (int i = 0; i < 10; ++i) {
    std::vector<SubjectIndex::Id> out;
    index.match("jobs.new", out);
    EXPECT_EQ(out.size(), 2u);  // one worker, one auditor
  }
}

TEST(SubjectIndex, EraseRemovesAndPrunes) {
  SubjectIndex index;
  auto a = index.insert("a.b.c", "");
  auto b = index.insert("a.*.c", "q");
  EXPECT_TRUE(index.erase(a));
  EXPECT_FALSE(index.erase(a));
  std::vector<SubjectIndex::Id> out;
  index.match("a.b.c", out);
  EXPECT_EQ(out, (std::vector<SubjectIndex::Id>{b}));
  EXPECT_TRUE(index.erase(b));
  EXPECT_EQ(index.size(), 0u);
  out.clear();
  index.match("a.b.c", out);
  EXPECT_TRUE(out.empty());
}

}  // namespace
}  // namespace switchboard
