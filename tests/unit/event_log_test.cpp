// The event log on SQLite, what only its file has: tampering with the
// file, edits through the sqlite3 library, the one-writer flock, a file
// that is not a store. The behaviour suite that every backend runs (SQLite,
// JetStream, Kafka) is tests/integration/event_log_backend_test.cpp.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <fstream>
#include <set>
#include <sstream>

#include "support/event_log_fixture.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

using test::EventLogTest;

TEST_F(EventLogTest, TamperingWithTheFileIsFoundAtItsSequence) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 10; ++i) emit(*log, "t", {{"marker", "value-" + std::to_string(i) + "!"}});
    ASSERT_TRUE(log->verify().ok);
  }
  // The last connection closed: SQLite checkpointed the WAL into the file.
  // Change one byte of event 7's payload in the raw file.
  std::string bytes;
  {
    std::ifstream in(path_, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
  }
  auto at = bytes.find("value-7!");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 6] = '8';
  {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto log = open();
  auto v = log->verify();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 7u);
  EXPECT_EQ(v.events, 6u);
  EXPECT_NE(v.reason.find("hash does not match"), std::string::npos) << v.reason;
}

TEST_F(EventLogTest, EditsThroughSqliteAreFound) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 10; ++i) emit(*log, "t", {{"n", i}});
  }
  auto sql = [&](const char* statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, statement, nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  };
  // A removed event: a gap.
  sql("DELETE FROM events WHERE seq = 9");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_FALSE(v.ok);
    EXPECT_EQ(v.first_bad, 9u);
    EXPECT_NE(v.reason.find("missing"), std::string::npos) << v.reason;
  }
  // A payload rewritten with its hash recomputed by the forger would still
  // break the next event's link; a plain rewrite breaks its own hash.
  sql("UPDATE events SET payload = '{\"n\":300}' WHERE seq = 3");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_EQ(v.first_bad, 3u);
  }
  sql("UPDATE events SET hash = prev_hash WHERE seq = 2");
  {
    auto log = open();
    auto v = log->verify();
    EXPECT_EQ(v.first_bad, 2u);
  }
}

TEST_F(EventLogTest, OneWriterPerStoreAndReadersBeside) {
  auto log = open();
  log->declare("t", Json::object());
  emit(*log, "t", {{"n", 1}});
  EXPECT_THROW(open(), Error);

  EventLogOptions ro;
  ro.read_only = true;
  auto reader = open(ro);
  EXPECT_EQ(reader->last_sequence(), 1u);
  EXPECT_EQ(reader->origin(), log->origin());
  auto e = emit(*reader, "t", {{"n", 2}});
  EXPECT_EQ(e.ec, errc::not_supported);
  EXPECT_TRUE(reader->verify().ok);
}

TEST_F(EventLogTest, NotAnEventStoreIsRefused) {
  {
    std::ofstream out(path_);
    out << "this is not a database, just some text that is long enough to look like a header";
  }
  EXPECT_THROW(open(), Error);
}

}  // namespace
}  // namespace switchboard
