// The event-store plugin "kafka-events": an EventLog kept in a one-partition
// Kafka topic and a compacted companion topic (layout and options in
// kafka_event_format.hpp, docs/events.md "Kafka").
//
// librdkafka is used synchronously here: the EventLog calls a store from its
// writer thread (or under its read lock), so blocking is what it expects.
//
// Writing. A group commit is one Kafka transaction: the batch's events go to
// the events topic and its cursors, schemas, meta and per-origin heads to
// the meta topic, then commit_transaction waits until the brokers have all
// of it (acks=all, idempotent producer). A transaction is all or nothing, so
// a failed commit leaves no prefix behind once it is aborted.
//
// Fencing. The producer's transactional.id is one per log. A new writer's
// init_transactions bumps the id's epoch: the old writer's next commit fails
// with a fencing error (EventStoreConflict), and any transaction it had open
// is aborted before the new writer reads the head. So the newest writer
// wins, and the two never interleave in the chain.
//
// Reading. A legacy (group-less) consumer per store with
// isolation.level=read_committed reads partition 0 from an offset; aborted
// records and transaction markers are skipped by librdkafka. Markers take
// offsets, so an event's offset is found from its sequence by a search over
// offsets (locate()), helped by what earlier reads learned.
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

#include "event_record_fields.hpp"
#include "kafka_event_format.hpp"
#include "switchboard/config.hpp"
#include "switchboard/event_store.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard::kafka::events {
namespace {

using Clock = std::chrono::steady_clock;
using event_records::number_or_zero;

// Offsets closer than this to the target are read rather than searched: one
// fetch covers them.
constexpr std::int64_t kLinearWindow = 4096;

// A consumed message, read through (the batch of scan() owns it).
struct Record {
  rd_kafka_message_t* m;

  std::int64_t offset() const { return m->offset; }
  std::optional<std::string> header(const char* name) const {
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
    const void* value = nullptr;
    std::size_t size = 0;
    if (rd_kafka_header_get_last(headers, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        value == nullptr) {
      return std::nullopt;
    }
    return std::string(static_cast<const char*>(value), size);
  }
  std::string key() const {
    return m->key ? std::string(static_cast<const char*>(m->key), m->key_len) : std::string();
  }
  std::string value() const {
    return m->payload ? std::string(static_cast<const char*>(m->payload), m->len) : std::string();
  }
  bool tombstone() const { return m->payload == nullptr; }
};

bool is_fencing(rd_kafka_resp_err_t code) {
  return code == RD_KAFKA_RESP_ERR__FENCED || code == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         code == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

// librdkafka's own log lines go to spdlog at debug level: a store reports
// its failures by throwing, and a broker restart would otherwise print
// connection errors to stderr.
void log_to_spdlog(const rd_kafka_t*, int level, const char* facility, const char* text) {
  if (level <= 3) {
    spdlog::debug("kafka-events: {} {}", facility, text);
  } else {
    spdlog::trace("kafka-events: {} {}", facility, text);
  }
}

class KafkaEventStore final : public EventStore {
 public:
  explicit KafkaEventStore(const EventStoreConfig& config)
      : config_(config), options_(read_kafka_event_options(config)) {
    try {
      open();
    } catch (...) {
      destroy();
      throw;
    }
  }
  ~KafkaEventStore() override { destroy(); }

  Head head() override {
    settle_writer();
    Head h;
    auto [low, end] = watermarks(options_.topic);
    // The newest event is just before the end, behind its transaction's
    // marker; aborted records (a fenced writer's) can push it further back.
    for (std::int64_t back = 64; end > low; back *= 16) {
      std::int64_t from = std::max(low, end - back);
      std::optional<std::pair<std::uint64_t, std::int64_t>> last;
      scan(events_rkt_, from, [&](const Record& r) {
        if (r.offset() >= end) return false;
        // A record that is not an event (written behind the log's back) is
        // passed over here, so that the log still opens and verify() can
        // name it.
        if (number_or_zero(r.header(kSequenceHeader)) <= 0) return true;
        decode(r, scratch_);
        last = {scratch_.sequence, r.offset()};
        h.hash = scratch_.hash;
        return true;
      });
      if (last) {
        h.sequence = last->first;
        learn(last->first, last->second);
        return h;
      }
      if (from == low) break;
    }
    return h;
  }

  OriginHead origin_head(const std::string& origin) override {
    refresh_meta();
    auto it = meta_.find(meta_key("origin", origin));
    if (it == meta_.end()) return {};
    auto h = parse_origin_head(it->second);
    if (!h) fail("the head of origin '" + origin + "' is not '<sequence> <timestamp>'");
    return *h;
  }

  std::map<std::string, std::uint64_t> origin_heads() override {
    refresh_meta();
    std::map<std::string, std::uint64_t> out;
    for (const auto& [key, value] : meta_) {
      auto k = split_meta_key(key);
      if (!k || k->kind != "origin") continue;
      auto h = parse_origin_head(value);
      if (h && h->origin_sequence > 0) out[k->name] = h->origin_sequence;
    }
    return out;
  }

  std::optional<std::string> meta(const std::string& key) override {
    refresh_meta();
    auto it = meta_.find(meta_key("meta", key));
    if (it == meta_.end()) return std::nullopt;
    return it->second;
  }

  std::map<std::string, std::string> types() override {
    refresh_meta();
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : meta_) {
      auto k = split_meta_key(key);
      if (k && k->kind == "type") out[k->name] = value;
    }
    return out;
  }

  std::optional<std::uint64_t> consumer(const std::string& name) override {
    refresh_meta();
    auto it = meta_.find(meta_key("consumer", name));
    if (it == meta_.end()) return std::nullopt;
    try {
      return std::stoull(it->second);
    } catch (const std::exception&) {
      fail("consumer '" + name + "' has a cursor that is not a number: " + it->second);
    }
  }

  void begin() override {
    pending_events_.clear();
    pending_meta_.clear();
  }
  void insert(const Event& e) override {
    if (config_.read_only) fail("it is open read-only");
    pending_events_.push_back(e);  // Kafka headers are bytes: any type fits
  }
  void put_meta(const std::string& key, const std::string& value) override {
    pending_meta_.emplace_back(meta_key("meta", key), value);
  }
  void put_type(const std::string& name, const std::string& schema) override {
    pending_meta_.emplace_back(meta_key("type", name), schema);
  }
  void put_consumer(const std::string& name, std::uint64_t position) override {
    pending_meta_.emplace_back(meta_key("consumer", name), std::to_string(position));
  }

  void commit() override {
    if (pending_events_.empty() && pending_meta_.empty()) return;
    if (config_.read_only) fail("it is open read-only");
    settle_writer();
    delivered_ = {-1, -1};
    transaction_step(rd_kafka_begin_transaction(producer_), "begin a transaction");
    // The per-origin heads of this batch, committed with its events.
    std::map<std::string, OriginHead> heads;
    for (const Event& e : pending_events_) {
      rd_kafka_headers_t* headers = rd_kafka_headers_new(7);
      auto add = [&](const char* k, const std::string& v) {
        rd_kafka_header_add(headers, k, -1, v.data(), static_cast<ssize_t>(v.size()));
      };
      add(kSequenceHeader, std::to_string(e.sequence));
      add(kOriginHeader, e.origin);
      for (const auto& [k, v] : event_records::chain_headers(e)) add(k, v);
      produce(producer_events_rkt_, e.id, e.payload_json, headers,
              "event " + std::to_string(e.sequence));
      heads[e.origin] = {e.origin_sequence, e.timestamp_us};
    }
    for (const auto& [origin, h] : heads) {
      produce(producer_meta_rkt_, meta_key("origin", origin), origin_head_value(h), nullptr,
              "the head of origin '" + origin + "'");
    }
    for (const auto& [key, value] : pending_meta_) {
      produce(producer_meta_rkt_, key, value, nullptr, "'" + key + "'");
    }
    transaction_step(rd_kafka_commit_transaction(producer_, static_cast<int>(options_.timeout_ms)),
                     "commit");
    rd_kafka_poll(producer_, 0);  // serve queued error events
    wait_visible(options_.topic, delivered_.first);
    wait_visible(options_.meta_topic, delivered_.second);
    pending_events_.clear();
    pending_meta_.clear();
  }
  void rollback() noexcept override {
    pending_events_.clear();
    pending_meta_.clear();
  }

  std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max,
                   const std::function<void(const Event&)>& fn, Event& scratch) override {
    from = std::max<std::uint64_t>(from, 1);
    if (max == 0 || from > to) return 0;
    auto [low, end] = watermarks(options_.topic);
    if (end <= low) return 0;
    std::int64_t start = locate(from, low, end);
    if (start >= end) return 0;
    std::size_t n = 0;
    bool delivering = false, full = false;
    scan(
        events_rkt_, start,
        [&](const Record& r) {
          if (r.offset() >= end) return false;
          decode(r, scratch);
          // Records before the first wanted one are skipped; after it, every
          // record is handed out as it is, so that verify() sees a forged or
          // misplaced one where it is.
          if (!delivering && scratch.sequence < from) return true;
          if (scratch.sequence > to) return false;
          delivering = true;
          fn(scratch);
          ++n;
          next_ = {scratch.sequence + 1, r.offset() + 1};
          if (n % 1024 == 0) learn(scratch.sequence, r.offset());
          full = n == max;  // the next read is likely to go on from here
          return !full;
        },
        &full);
    return n;
  }

  std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                          const std::function<void(const Event&)>& fn, Event& scratch) override {
    if (max == 0 || origin_head(origin).origin_sequence < from) return 0;
    auto [low, end] = watermarks(options_.topic);
    if (end <= low) return 0;
    // Kafka has no index by header, so the origin's events are found by
    // reading; but an origin's events 1..n are stored in order, so the one
    // with origin_sequence `from` has a sequence of at least `from`.
    std::int64_t start = locate(std::max<std::uint64_t>(from, 1), low, end);
    std::size_t n = 0;
    if (start >= end) return 0;
    scan(events_rkt_, start, [&](const Record& r) {
      if (r.offset() >= end) return false;
      decode(r, scratch);
      if (scratch.origin == origin && scratch.origin_sequence >= from) {
        fn(scratch);
        ++n;
      }
      return n < max;
    });
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw EventStoreError("event log '" + config_.location + "' (kafka " + config_.url +
                          "): " + what);
  }

  // ---- clients ----

  rd_kafka_t* make_client(rd_kafka_type_t type,
                          const std::vector<std::pair<std::string, std::string>>& properties) {
    const bool producer = type == RD_KAFKA_PRODUCER;
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    for (const auto& [key, value] : properties) {
      if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof err) !=
          RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        fail("librdkafka property " + key + ": " + err);
      }
    }
    rd_kafka_conf_set_log_cb(conf, &log_to_spdlog);
    if (producer) {
      rd_kafka_conf_set_opaque(conf, this);
      rd_kafka_conf_set_dr_msg_cb(conf, &KafkaEventStore::on_delivery);
    }
    rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
    if (!rk) {
      rd_kafka_conf_destroy(conf);
      fail(std::string("cannot create a Kafka client: ") + err);
    }
    return rk;
  }

  void make_producer() {
    producer_ = make_client(RD_KAFKA_PRODUCER, {{"bootstrap.servers", options_.brokers},
                                                {"client.id", "switchboard-events"},
                                                {"transactional.id", options_.transactional_id},
                                                {"enable.idempotence", "true"},
                                                {"acks", "all"},
                                                {"linger.ms", "1"},
                                                // Back-to-back transactions meet the previous
                                                // one's markers (CONCURRENT_TRANSACTIONS) and
                                                // retry after this; 100 ms by default.
                                                {"retry.backoff.ms", "10"},
                                                {"queue.buffering.max.messages", "1000000"},
                                                {"transaction.timeout.ms", "60000"}});
    // A broker's first transaction creates its transaction log, and until
    // that is ready init_transactions fails with retriable errors (not
    // coordinator, coordinator loading): tried again within timeout_ms.
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    rd_kafka_error_t* error = nullptr;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      error = rd_kafka_init_transactions(producer_,
                                         static_cast<int>(std::max<std::int64_t>(left.count(), 1)));
      if (!error || !rd_kafka_error_is_retriable(error) || Clock::now() >= deadline) break;
      rd_kafka_error_destroy(error);
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (error) {
      std::string text = rd_kafka_error_string(error);
      rd_kafka_error_destroy(error);
      replace_producer();
      fail("cannot start the transactional producer '" + options_.transactional_id + "': " + text);
    }
    // The producer learns of a topic it has not produced to on its next
    // metadata scan, up to a second later; asking now spares every new
    // writer's first commit that second.
    producer_events_rkt_ = rd_kafka_topic_new(producer_, options_.topic.c_str(), nullptr);
    producer_meta_rkt_ = rd_kafka_topic_new(producer_, options_.meta_topic.c_str(), nullptr);
    for (rd_kafka_topic_t* rkt : {producer_events_rkt_, producer_meta_rkt_}) {
      const rd_kafka_metadata_t* md = nullptr;
      auto err = rd_kafka_metadata(producer_, 0, rkt, &md, static_cast<int>(options_.timeout_ms));
      if (err) {
        replace_producer();
        fail(std::string("metadata for the producer: ") + rd_kafka_err2str(err));
      }
      rd_kafka_metadata_destroy(md);
    }
  }

  void open() {
    consumer_ = make_client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", options_.brokers},
                                                {"client.id", "switchboard-events-reader"},
                                                {"isolation.level", "read_committed"},
                                                {"enable.partition.eof", "true"},
                                                {"enable.auto.commit", "false"},
                                                {"enable.auto.offset.store", "false"},
                                                {"auto.offset.reset", "earliest"},
                                                {"fetch.wait.max.ms", "5"},
                                                {"queued.min.messages", "100000"},
                                                // librdkafka 2.0 pauses fetching for this
                                                // long whenever the queue above is full
                                                // (500 ms by default), which held replay at
                                                // a third of its speed.
                                                {"fetch.error.backoff.ms", "20"},
                                                {"allow.auto.create.topics", "false"}});
    events_rkt_ = rd_kafka_topic_new(consumer_, options_.topic.c_str(), nullptr);
    meta_rkt_ = rd_kafka_topic_new(consumer_, options_.meta_topic.c_str(), nullptr);
    if (!events_rkt_ || !meta_rkt_) fail("cannot make topic handles");
    if (!config_.read_only) {
      create_topic(options_.topic, false);
      create_topic(options_.meta_topic, true);
    }
    check_topic(options_.topic);
    check_topic(options_.meta_topic);
    if (!config_.read_only) make_producer();  // fences the previous writer
    auto format = meta("format");
    if (!format) {
      if (config_.read_only) fail("the log has no format marker: it was never written");
      begin();
      put_meta("format", kFormat);
      commit();
    } else if (*format != kFormat) {
      fail("not an event log (its format marker is '" + *format + "')");
    }
  }

  void destroy() noexcept {
    stop_running();
    if (events_rkt_) rd_kafka_topic_destroy(events_rkt_);
    if (meta_rkt_) rd_kafka_topic_destroy(meta_rkt_);
    events_rkt_ = meta_rkt_ = nullptr;
    if (consumer_) rd_kafka_destroy(consumer_);
    consumer_ = nullptr;
    replace_producer();
  }

  // ---- topics ----

  void create_topic(const std::string& topic, bool compacted) {
    char err[512];
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(topic.c_str(), 1, options_.replicas, err, sizeof err);
    if (!nt) fail("topic '" + topic + "': " + err);
    auto set = [&](const char* k, const std::string& v) {
      rd_kafka_NewTopic_set_config(nt, k, v.c_str());
    };
    if (compacted) {
      set("cleanup.policy", "compact");
    } else {
      // An event log keeps every event: nothing expires.
      set("cleanup.policy", "delete");
      set("retention.ms", "-1");
      set("retention.bytes", "-1");
    }
    // acks=all waits for the in-sync replicas; with replicas, a majority of
    // them must be in sync for a write to be accepted.
    set("min.insync.replicas", std::to_string(options_.replicas / 2 + 1));
    rd_kafka_AdminOptions_t* ao =
        rd_kafka_AdminOptions_new(consumer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, static_cast<int>(options_.timeout_ms), err,
                                                sizeof err);
    rd_kafka_AdminOptions_set_request_timeout(ao, static_cast<int>(options_.timeout_ms), err,
                                              sizeof err);
    rd_kafka_queue_t* queue = rd_kafka_queue_new(consumer_);
    rd_kafka_CreateTopics(consumer_, &nt, 1, ao, queue);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(queue, static_cast<int>(options_.timeout_ms) + 1000);
    std::string problem;
    if (!ev) {
      problem = "no answer from the brokers";
    } else if (rd_kafka_event_error(ev)) {
      problem = rd_kafka_event_error_string(ev);
    } else {
      std::size_t n = 0;
      const rd_kafka_topic_result_t** results =
          rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
      auto code = n == 1 ? rd_kafka_topic_result_error(results[0]) : RD_KAFKA_RESP_ERR__FAIL;
      if (code != RD_KAFKA_RESP_ERR_NO_ERROR && code != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* text = n == 1 ? rd_kafka_topic_result_error_string(results[0]) : nullptr;
        problem = text ? text : rd_kafka_err2str(code);
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(queue);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    if (!problem.empty()) fail("cannot create topic '" + topic + "': " + problem);
  }

  // The topic must exist with one partition (a topic made by someone else,
  // or auto-created with several, is not this log's).
  void check_topic(const std::string& topic) {
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    for (;;) {
      rd_kafka_topic_t* rkt = topic == options_.topic ? events_rkt_ : meta_rkt_;
      const rd_kafka_metadata_t* md = nullptr;
      auto err = rd_kafka_metadata(consumer_, 0, rkt, &md, static_cast<int>(options_.timeout_ms));
      if (err) fail("metadata of topic '" + topic + "': " + rd_kafka_err2str(err));
      auto topic_err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
      int partitions = md->topic_cnt == 1 ? md->topics[0].partition_cnt : 0;
      rd_kafka_metadata_destroy(md);
      if (topic_err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (partitions != 1) {
          fail("topic '" + topic + "' has " + std::to_string(partitions) +
               " partitions: not an event log (it has one)");
        }
        return;
      }
      bool missing = topic_err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                     topic_err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
      if (missing && config_.read_only) {
        fail("there is no topic '" + topic + "' (the log does not exist)");
      }
      // Just created: the metadata may lag behind for a moment.
      if (Clock::now() > deadline) {
        fail("topic '" + topic + "': " + rd_kafka_err2str(topic_err));
      }
      rd_kafka_poll(consumer_, 50);
    }
  }

  std::pair<std::int64_t, std::int64_t> watermarks(const std::string& topic) {
    std::int64_t low = 0, high = 0;
    auto err = rd_kafka_query_watermark_offsets(consumer_, topic.c_str(), 0, &low, &high,
                                                static_cast<int>(options_.timeout_ms));
    if (err) fail("offsets of topic '" + topic + "': " + rd_kafka_err2str(err));
    return {low, high};
  }

  // Hands committed records of partition 0 from `offset` on to `on` until
  // it returns false or the end of the partition (the last stable offset:
  // nothing of an open transaction) is reached. The partition is stopped
  // at the end, unless `keep_running` is true when `on` returns false: then
  // it stays running just past that record (with what it has fetched
  // meanwhile), and a scan that continues from there starts at once; a
  // stream's catch-up reads in chunks, each starting where the last one
  // stopped.
  template <class On>
  void scan(rd_kafka_topic_t* rkt, std::int64_t offset, On&& on,
            const bool* keep_running = nullptr) {
    if (running_.rkt == rkt && running_.offset == offset) {
      running_ = {};  // this scan's now; kept again only if it says so
    } else {
      if (running_.rkt == rkt) stop_running();
      if (rd_kafka_consume_start(rkt, 0, offset) == -1) {
        fail(std::string("read from offset ") + std::to_string(offset) + ": " +
             rd_kafka_err2str(rd_kafka_last_error()));
      }
    }
    std::int64_t last = offset - 1;  // the offset of the last record handed to `on`
    struct Stop {
      KafkaEventStore* self;
      rd_kafka_topic_t* rkt;
      const bool* keep;
      const std::int64_t& last;
      ~Stop() {
        if (keep && *keep) {
          self->running_ = {rkt, last + 1};
        } else {
          rd_kafka_consume_stop(rkt, 0);
        }
      }
    } stop{this, rkt, keep_running, last};
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    for (;;) {
      // One message at a time: rd_kafka_consume returns as soon as one is
      // queued (a batch call would wait for a full batch or its timeout).
      rd_kafka_message_t* m = rd_kafka_consume(rkt, 0, 100);
      if (!m) {
        if (Clock::now() > deadline) {
          fail("read from offset " + std::to_string(offset) + " of topic '" +
               rd_kafka_topic_name(rkt) + "': no answer within timeout_ms");
        }
        continue;
      }
      struct Owned {
        rd_kafka_message_t* m;
        ~Owned() { rd_kafka_message_destroy(m); }
      } owned{m};
      deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
      if (m->err) {
        fail(std::string("read of topic '") + rd_kafka_topic_name(rkt) +
             "': " + rd_kafka_message_errstr(m));
      }
      last = m->offset;
      if (!on(Record{m})) return;
    }
  }

  void stop_running() noexcept {
    if (running_.rkt) rd_kafka_consume_stop(running_.rkt, 0);
    running_ = {};
  }

  void decode(const Record& r, Event& e) const {
    auto sequence = number_or_zero(r.header(kSequenceHeader));
    if (sequence <= 0) {
      fail("the record at offset " + std::to_string(r.offset()) + " of topic '" + options_.topic +
           "' is not an event of this log (no valid " + kSequenceHeader + " header)");
    }
    e.sequence = static_cast<std::uint64_t>(sequence);
    e.id = r.key();
    e.origin = r.header(kOriginHeader).value_or("");
    e.payload_json = r.value();
    event_records::read_chain_headers([&](const char* name) { return r.header(name); }, e);
  }

  // ---- from a sequence to an offset ----

  // Remembers where an event is, for later searches.
  void learn(std::uint64_t sequence, std::int64_t offset) {
    if (known_.size() > 100000) known_.clear();
    known_[sequence] = offset;
  }

  // The first committed event at or after `offset`: (sequence, its offset).
  std::optional<std::pair<std::uint64_t, std::int64_t>> first_event_at(std::int64_t offset,
                                                                       std::int64_t end) {
    std::optional<std::pair<std::uint64_t, std::int64_t>> found;
    scan(events_rkt_, offset, [&](const Record& r) {
      if (r.offset() >= end) return false;
      decode(r, scratch_);
      found = {scratch_.sequence, r.offset()};
      return false;
    });
    if (found) learn(found->first, found->second);
    return found;
  }

  // An offset from which reading finds event `sequence` (records before it
  // are skipped by the reader). Every event takes one offset and markers or
  // aborted records take more, so the event is at offset sequence - 1 or
  // later; offsets of known events bound it from both sides, and a binary
  // search over offsets narrows what is left to kLinearWindow.
  std::int64_t locate(std::uint64_t sequence, std::int64_t low, std::int64_t end) {
    if (next_.first == sequence && next_.second >= low && next_.second <= end) return next_.second;
    std::int64_t lo = std::max<std::int64_t>(low, static_cast<std::int64_t>(sequence) - 1);
    std::int64_t hi = end;
    auto after = known_.upper_bound(sequence);
    if (after != known_.end()) hi = std::min(hi, after->second);
    if (after != known_.begin()) {
      auto before = std::prev(after);
      if (before->first == sequence) return std::max(low, before->second);
      lo = std::max(lo, before->second + static_cast<std::int64_t>(sequence - before->first));
    }
    lo = std::min(lo, hi);
    while (hi - lo > kLinearWindow) {
      std::int64_t mid = lo + (hi - lo) / 2;
      auto probe = first_event_at(mid, end);
      if (probe && probe->first == sequence) return probe->second;
      if (!probe || probe->first > sequence) {
        hi = mid;
      } else {
        lo = probe->second + static_cast<std::int64_t>(sequence - probe->first);
      }
    }
    return lo;
  }

  // ---- the meta topic ----

  // Reads what was committed to the meta topic since the last call.
  void refresh_meta() {
    auto [low, end] = watermarks(options_.meta_topic);
    std::int64_t from = std::max(meta_next_, low);
    if (from >= end) return;
    scan(meta_rkt_, from, [&](const Record& r) {
      if (r.offset() >= end) return false;
      if (r.tombstone()) {
        meta_.erase(r.key());
      } else {
        meta_[r.key()] = r.value();
      }
      // Only past what was read: a marker at the end is read again next
      // time, a transaction still open is not skipped.
      meta_next_ = r.offset() + 1;
      return true;
    });
  }

  // ---- writing ----

  void produce(rd_kafka_topic_t* topic, const std::string& key, const std::string& value,
               rd_kafka_headers_t* headers, const std::string& what) {
    for (;;) {
      auto err =
          headers
              ? rd_kafka_producev(producer_, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_KEY(key.data(), key.size()),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                  RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_END)
              : rd_kafka_producev(producer_, RD_KAFKA_V_RKT(topic), RD_KAFKA_V_PARTITION(0),
                                  RD_KAFKA_V_KEY(key.data(), key.size()),
                                  RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(producer_, 10);
        continue;
      }
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the headers are librdkafka's now
      if (headers) rd_kafka_headers_destroy(headers);
      if (is_fencing(err)) fenced();
      abandon_transaction();
      fail("produce of " + what + ": " + rd_kafka_err2str(err));
    }
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<KafkaEventStore*>(opaque);
    if (m->err) return;  // the commit fails and says why
    bool events = self->options_.topic == rd_kafka_topic_name(m->rkt);
    auto& last = events ? self->delivered_.first : self->delivered_.second;
    last = std::max(last, m->offset);
  }

  // commit_transaction returns once the coordinator has decided, but the
  // markers that make the records readable (read_committed) are written to
  // the partitions after that. An emit completes only when a reader can
  // read it: until the topic's last stable offset is past `last`.
  void wait_visible(const std::string& topic, std::int64_t last) {
    if (last < 0) return;
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    while (watermarks(topic).second <= last) {
      if (Clock::now() > deadline) {
        spdlog::warn(
            "event log '{}' (kafka): committed, but offset {} of topic '{}' is not yet "
            "readable after timeout_ms",
            config_.location, last, topic);
        return;
      }
      rd_kafka_poll(producer_, 1);
    }
  }

  [[noreturn]] void fenced() {
    fenced_ = true;
    throw EventStoreConflict("event log '" + config_.location + "' (kafka " + config_.url +
                             "): another writer opened it (transactional.id '" +
                             options_.transactional_id +
                             "' was initialised again), so this one "
                             "is fenced");
  }

  // A failed transactional call: fencing is a conflict; anything else
  // aborts the transaction (or replaces the producer) so that nothing of it
  // can still land after the log has read the head again, then throws.
  void transaction_step(rd_kafka_error_t* error, const char* what) {
    if (!error) return;
    auto code = rd_kafka_error_code(error);
    std::string text = rd_kafka_error_string(error);
    bool fatal = rd_kafka_error_is_fatal(error);
    rd_kafka_error_destroy(error);
    if (fatal) {
      char why[512] = "";
      auto fatal_code = rd_kafka_fatal_error(producer_, why, sizeof why);
      if (fatal_code != RD_KAFKA_RESP_ERR_NO_ERROR) code = fatal_code;
    }
    if (is_fencing(code)) fenced();
    if (fatal) {
      replace_producer();
    } else {
      abandon_transaction();
    }
    fail(std::string(what) + " failed: " + text);
  }

  void abandon_transaction() {
    rd_kafka_error_t* error =
        rd_kafka_abort_transaction(producer_, static_cast<int>(options_.timeout_ms));
    if (!error) return;
    auto code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    if (code == RD_KAFKA_RESP_ERR__STATE) return;  // no transaction was open
    spdlog::warn("event log '{}' (kafka): abort failed ({}); a new producer settles it",
                 config_.location, rd_kafka_err2str(code));
    replace_producer();
  }

  // Drops the producer; the next commit (or head()) makes a new one, whose
  // init_transactions completes or aborts whatever the old one left open.
  void replace_producer() {
    if (producer_events_rkt_) rd_kafka_topic_destroy(producer_events_rkt_);
    if (producer_meta_rkt_) rd_kafka_topic_destroy(producer_meta_rkt_);
    producer_events_rkt_ = producer_meta_rkt_ = nullptr;
    if (producer_) rd_kafka_destroy(producer_);
    producer_ = nullptr;
  }

  // The writer's producer, made again after a failure: before reading the
  // head after a failed commit, so that the outcome of that commit is final.
  void settle_writer() {
    if (fenced_) fenced();  // making a producer again would fence the other writer
    if (!config_.read_only && !producer_) make_producer();
  }

  EventStoreConfig config_;
  KafkaEventOptions options_;
  rd_kafka_t* consumer_ = nullptr;
  rd_kafka_t* producer_ = nullptr;  // the writer's, transactional
  rd_kafka_topic_t* producer_events_rkt_ = nullptr;
  rd_kafka_topic_t* producer_meta_rkt_ = nullptr;
  bool fenced_ = false;  // another writer took over: this store writes no more
  rd_kafka_topic_t* events_rkt_ = nullptr;
  rd_kafka_topic_t* meta_rkt_ = nullptr;
  std::map<std::string, std::string> meta_;      // the meta topic, key -> latest value
  std::int64_t meta_next_ = 0;                   // where refresh_meta() goes on
  std::map<std::uint64_t, std::int64_t> known_;  // sequence -> offset, learned
  std::pair<std::uint64_t, std::int64_t> next_{0, -1};
  // A partition a read left running, and the offset it will go on from.
  struct Running {
    rd_kafka_topic_t* rkt = nullptr;
    std::int64_t offset = -1;
  } running_;
  // The last offsets this commit's records got (events topic, meta topic).
  std::pair<std::int64_t, std::int64_t> delivered_{-1,
                                                   -1};  // after the last read: (sequence, offset)
  Event scratch_;
  std::vector<Event> pending_events_;
  std::vector<std::pair<std::string, std::string>> pending_meta_;
};

const EventStoreFactoryFor<KafkaEventStore> kFactory;

}  // namespace
}  // namespace switchboard::kafka::events

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_EVENT_STORE, "kafka-events", "1.0.0",
                   switchboard::kafka::events::kFactory)
