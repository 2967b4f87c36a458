// The event log on Kafka, what only that backend has: a new writer fences
// the old one (transactional.id), records forged or deleted on the broker
// behind the log's back are found by verify(), a batch that cannot be
// produced fails whole, reads find events by sequence across transaction
// markers, and its options. (A broker killed under a batch: the restart test
// of the behaviour suite.) A raw librdkafka client plays
// whoever else can write to the brokers.
#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>

#include <string>
#include <vector>

#include "event_log_backends.hpp"
#include "switchboard/event_log.hpp"

namespace switchboard {
namespace {

class EventLogKafkaTest : public test::EventLogBackendTest {
 protected:
  // A plain (not transactional) producer, as anyone with access to the
  // brokers could run, appending one record to the log's topic.
  // A plain client (not transactional), as anyone with access to the
  // brokers could run one; destroyed by the caller.
  rd_kafka_t* raw_client() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    std::string brokers = broker_url().substr(std::string("kafka://").size());
    EXPECT_EQ(rd_kafka_conf_set(conf, "bootstrap.servers", brokers.c_str(), err, sizeof err),
              RD_KAFKA_CONF_OK);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    EXPECT_NE(rk, nullptr) << err;
    return rk;
  }

  // Appends one record to the log's topic behind the log's back.
  void append_raw(const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& value) {
    rd_kafka_t* rk = raw_client();
    ASSERT_NE(rk, nullptr);
    rd_kafka_headers_t* hdrs = rd_kafka_headers_new(headers.size());
    for (const auto& [k, v] : headers) rd_kafka_header_add(hdrs, k.c_str(), -1, v.data(), -1);
    EXPECT_EQ(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(name_.c_str()), RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                                RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    EXPECT_EQ(rd_kafka_flush(rk, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
  }

  // Deletes the records of the log's topic before `offset` (DeleteRecords:
  // all Kafka can delete).
  void delete_records_before(std::int64_t offset) {
    rd_kafka_t* rk = raw_client();
    ASSERT_NE(rk, nullptr);
    rd_kafka_topic_partition_list_t* before = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(before, name_.c_str(), 0)->offset = offset;
    rd_kafka_DeleteRecords_t* del = rd_kafka_DeleteRecords_new(before);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteRecords(rk, &del, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, 10000);
    EXPECT_NE(ev, nullptr);
    if (ev) {
      EXPECT_EQ(rd_kafka_event_error(ev), RD_KAFKA_RESP_ERR_NO_ERROR)
          << rd_kafka_event_error_string(ev);
      rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_DeleteRecords_destroy(del);
    rd_kafka_topic_partition_list_destroy(before);
    rd_kafka_destroy(rk);
  }

  VerifyResult verify_read_only() {
    EventLogOptions ro;
    ro.read_only = true;
    return open(ro)->verify();
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, EventLogKafkaTest, ::testing::Values("kafka"),
                         [](const auto& info) { return info.param; });

TEST_P(EventLogKafkaTest, ANewWriterFencesTheOldOneAndTheChainStaysWhole) {
  auto a = open();
  a->declare("t", Json::object());
  emit(*a, "t", {{"n", 1}});
  emit(*a, "t", {{"n", 2}});
  auto b = open();  // init_transactions: a is fenced from here on
  EXPECT_EQ(b->last_sequence(), 2u);

  auto lost = emit(*a, "t", {{"n", 99}});
  EXPECT_EQ(lost.ec, errc::transport_error);
  ASSERT_TRUE(lost.r.error);
  EXPECT_NE(lost.r.error->message().find("another writer"), std::string::npos)
      << lost.r.error->message();
  auto again = emit(*a, "t", {{"n", 100}});  // fenced for good
  EXPECT_EQ(again.ec, errc::transport_error);
  EXPECT_NE(again.r.error->message().find("reopen"), std::string::npos) << again.r.error->message();

  EXPECT_EQ(emit(*b, "t", {{"n", 3}}).r.sequence, 3u);
  EXPECT_EQ(emit(*b, "t", {{"n", 4}}).r.sequence, 4u);
  std::vector<int> ns;
  std::error_code ec;
  b->read(
      1, 10, [&](const Event& e) { ns.push_back(e.payload()["n"].get<int>()); }, ec);
  EXPECT_EQ(ns, (std::vector<int>{1, 2, 3, 4}));  // nothing of a's fenced batches

  // a reopened takes over again and continues after b's events.
  a.reset();
  auto a2 = open();
  EXPECT_EQ(emit(*a2, "t", {{"n", 5}}).r.sequence, 5u);
  EXPECT_EQ(emit(*b, "t", {{"n", 101}}).ec, errc::transport_error);
  auto v = a2->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 5u);
}

TEST_P(EventLogKafkaTest, RecordsForgedOrDeletedOnTheBrokerAreFound) {
  std::string origin;
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 5; ++i) emit(*log, "t", {{"n", i}});
    origin = log->origin();
    ASSERT_TRUE(log->verify().ok);
  }
  // A forged sixth event: right topic, plausible headers, a made-up hash.
  append_raw({{"Sb-Sequence", "6"},
              {"Sb-Origin", origin},
              {"Sb-Type", "t"},
              {"Sb-Origin-Sequence", "6"},
              {"Sb-Timestamp-Us", "1700000000000000"},
              {"Sb-Prev-Hash", std::string(64, '0')},
              {"Sb-Hash", std::string(64, 'a')}},
             "{\"n\":6}");
  auto forged = verify_read_only();
  EXPECT_FALSE(forged.ok);
  EXPECT_EQ(forged.first_bad, 6u);
  EXPECT_EQ(forged.events, 5u);

  // Kafka deletes only a prefix of a partition (DeleteRecords); the events
  // before the new start are then missing.
  delete_records_before(2);
  auto deleted = verify_read_only();
  EXPECT_FALSE(deleted.ok);
  EXPECT_EQ(deleted.first_bad, 1u);
  EXPECT_NE(deleted.reason.find("missing"), std::string::npos) << deleted.reason;
}

TEST_P(EventLogKafkaTest, ARecordThatIsNotAnEventIsNamed) {
  {
    auto log = open();
    log->declare("t", Json::object());
    for (int i = 1; i <= 3; ++i) emit(*log, "t", {{"n", i}});
  }
  append_raw({}, "{\"n\":4}");  // no headers at all
  auto v = verify_read_only();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad, 4u);
  EXPECT_EQ(v.events, 3u);
  EXPECT_NE(v.reason.find("not an event"), std::string::npos) << v.reason;
}

TEST_P(EventLogKafkaTest, ReadsFromAnySequenceAcrossManyTransactions) {
  // One transaction per emit: a marker after every event, so offsets and
  // sequences drift apart and reads must find events by searching.
  auto log = open();
  log->declare("t", Json::object());
  for (int i = 1; i <= 30; ++i) emit(*log, "t", {{"n", i}});
  test::EventLogTest::emit_many(*log, 31, 12000, [](int i) {
    return std::pair{std::string("t"), Json{{"n", i}}};
  });
  EventLogOptions ro;
  ro.read_only = true;
  auto reader = open(ro);  // a store that learned nothing yet
  for (std::uint64_t from : {12000u, 17u, 5000u, 1u, 29u}) {
    std::vector<std::uint64_t> seen;
    std::error_code ec;
    reader->read(
        from, 3, [&](const Event& e) { seen.push_back(e.sequence); }, ec);
    ASSERT_FALSE(ec) << ec.message();
    std::vector<std::uint64_t> want;
    for (std::uint64_t s = from; s < from + 3 && s <= 12000; ++s) want.push_back(s);
    EXPECT_EQ(seen, want) << "from " << from;
  }
  EXPECT_EQ(reader->origin_head(log->origin()), 12000u);
}

TEST_P(EventLogKafkaTest, AnEventTooLargeForARecordFailsAndTheLogGoesOn) {
  auto log = open();
  log->declare("t", Json::object());
  emit(*log, "t", {{"n", 1}});
  auto big = emit(*log, "t", {{"blob", std::string(2 * 1024 * 1024, 'x')}});
  EXPECT_EQ(big.ec, errc::transport_error);
  ASSERT_TRUE(big.r.error);
  EXPECT_NE(big.r.error->message().find("event 2"), std::string::npos) << big.r.error->message();
  EXPECT_EQ(emit(*log, "t", {{"n", 3}}).r.sequence, 2u);  // the aborted one took nothing
  auto v = log->verify();
  EXPECT_TRUE(v.ok) << v.reason;
  EXPECT_EQ(v.events, 2u);
}

TEST_P(EventLogKafkaTest, BadOptionsAndNamesAreNamed) {
  EventLogOptions o;
  o.backend_options = {{"replicas", "three"}};
  try {
    open(o);
    FAIL() << "a bad option was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("replicas"), std::string::npos) << e.what();
  }
  name_ = "has/a/slash";
  try {
    open();
    FAIL() << "a bad topic name was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has/a/slash"), std::string::npos) << e.what();
  }
  name_ = "never_written";
  EventLogOptions ro;
  ro.read_only = true;
  try {
    open(ro);
    FAIL() << "a read-only open of a log that does not exist succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not exist"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace switchboard
