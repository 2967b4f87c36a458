// kafka: the Kafka transport on librdkafka. This file is where librdkafka
// meets the runtime's executor.
//
// Threads. librdkafka serves its callbacks (delivery reports, rebalances,
// errors) from whichever thread calls rd_kafka_poll / rd_kafka_consumer_poll.
// The producer's queue (delivery reports and errors, nothing that blocks) is
// polled on TransportContext::executor whenever librdkafka says it has
// something (Shared::poll_producer); a thread of ours only watches for the
// brokers coming back. Each subscription is a consumer of its own (a Kafka
// consumer has one group), polled from a thread of its own that only
// converts and posts to the executor; nothing of the runtime runs there.
// Why not poll consumers on the executor too? A rebalance must look up
// committed offsets and offsets by time before it assigns (the start
// policies), and librdkafka has only blocking calls for that in 2.0; on a
// thread of ours they block nobody, on the executor they would stall every
// handler for a round trip.
//
// Delivery. A plain subscription without a queue group is a consumer group
// of its own ("switchboard-<random>") that never commits and starts at the
// time subscribe() was called (offsets by time), so it sees what was
// published after it subscribed, as on NATS. A queue group is the consumer
// group of that name: it resumes from the group's committed offsets, or
// starts at subscribe time, and stores a message's offset once the handler
// has run (committed by librdkafka's auto commit, on revoke and on close).
// A durable subscription commits only what was acknowledged (see
// DurableState).
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "kafka_settings.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/trace.hpp"
#include "switchboard/transport.hpp"

namespace switchboard::kafka {
namespace {

using Clock = std::chrono::steady_clock;

std::int64_t wall_ms(std::chrono::system_clock::time_point t = std::chrono::system_clock::now()) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

struct PendingPublish;

// A durable publish's delivery report, on its way to the executor.
struct DeliveryReport {
  std::unique_ptr<PendingPublish> publish;
  std::error_code ec;
  DurableReceipt receipt;
};

// State shared with the polling threads and with handlers queued on the
// executor; outlives the transport object when a thread still runs.
struct Shared : std::enable_shared_from_this<Shared> {
  asio::any_io_executor executor;
  std::string endpoint;
  std::mutex mutex;
  StatusHandler status;
  bool dead = false;  // under `mutex`: the transport is gone, post nothing
  std::atomic<bool> down{false};

  template <typename Handler>
  void post(Handler&& handler) {
    std::lock_guard lock(mutex);
    if (!dead) asio::post(executor, std::forward<Handler>(handler));
  }
  void emit(TransportStatus s, std::string detail) {
    std::lock_guard lock(mutex);
    if (!status || dead) return;
    asio::post(executor, [h = status, ev = StatusEvent{s, std::move(detail)}] { h(ev); });
  }

  // Delivery reports reach the executor in batches: one rd_kafka_poll
  // serves every report of a produce response (hundreds under load), and
  // one handler posted when the first of them comes runs all that came by
  // then. A post per report woke the executor and took the strand's lock
  // once per message (about 14% of a bridge's CPU at 256 B).
  void report(DeliveryReport r);
  void run_reports();
  std::mutex reports_mutex;
  std::vector<DeliveryReport> reports;  // under reports_mutex

  // The producer's queue (delivery reports, errors) is served on the
  // executor: librdkafka calls on_producer_queue from its broker thread when
  // the queue stops being empty, and poll_producer (posted once per wake-up)
  // runs rd_kafka_poll(0) there, so the reports' completions run without
  // another post, and librdkafka frees its messages on the thread that
  // allocated them. A polling thread of our own instead cost a thread
  // wake-up per batch and freed every message's memory across threads.
  void schedule_poll();
  void poll_producer();
  std::atomic<bool> poll_scheduled{false};
  std::mutex producer_mutex;       // held while polling; the destructor takes it
  rd_kafka_t* producer = nullptr;  // under producer_mutex; null once it is destroyed

  // librdkafka's error callback, for any of the transport's clients.
  void on_client_error(rd_kafka_t* rk, int err, const char* reason) {
    auto code = static_cast<rd_kafka_resp_err_t>(err);
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
      if (!down.exchange(true)) {
        spdlog::warn("kafka: lost every broker of {}: {}", endpoint, reason);
        emit(TransportStatus::disconnected, "lost the brokers " + endpoint);
      }
    } else if (code == RD_KAFKA_RESP_ERR__FATAL) {
      char why[512];
      rd_kafka_fatal_error(rk, why, sizeof why);
      spdlog::error("kafka: fatal error on {}: {}", rd_kafka_name(rk), why);
      emit(TransportStatus::error, why);
    } else if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION || code == RD_KAFKA_RESP_ERR__SSL) {
      spdlog::error("kafka: {}: {}", endpoint, reason);
      emit(TransportStatus::error, reason);
    } else {
      // Transient (a broker connection closed, a retry): librdkafka retries.
      spdlog::debug("kafka: {}: {}", rd_kafka_name(rk), reason);
    }
  }
};

void on_log(const rd_kafka_t* rk, int level, const char* facility, const char* text) {
  if (level <= 3) {
    spdlog::error("kafka: {} {}: {}", rd_kafka_name(rk), facility, text);
  } else if (level == 4) {
    spdlog::warn("kafka: {} {}: {}", rd_kafka_name(rk), facility, text);
  } else {
    spdlog::debug("kafka: {} {}: {}", rd_kafka_name(rk), facility, text);
  }
}

errc to_errc(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return errc::ok;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
      return errc::timeout;
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
    case RD_KAFKA_RESP_ERR__DESTROY:
      return errc::closed;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return errc::payload_too_large;
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
      return errc::invalid_argument;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
      return errc::disconnected;
    default:
      return errc::transport_error;
  }
}

// ---- producing ---------------------------------------------------------------

// The opaque of a durable publish, until its delivery report.
struct PendingPublish {
  DurablePublishHandler done;
  std::string subject;
  // The bytes librdkafka was handed without a copy: it reads them until the
  // message is gone, which is before this is.
  Payload payload;
};

// Set while poll_producer polls on this thread: it runs the reports itself.
thread_local const Shared* polling_inline = nullptr;

void Shared::report(DeliveryReport r) {
  bool first = false;
  {
    std::lock_guard lock(reports_mutex);
    first = reports.empty();
    reports.push_back(std::move(r));
  }
  // Later reports join the batch the first one's handler will run. Reports
  // served elsewhere (close()'s flush, on a thread of its own) are posted.
  if (first && polling_inline != this) post([self = shared_from_this()] { self->run_reports(); });
}

void Shared::schedule_poll() {
  if (!poll_scheduled.exchange(true)) post([self = shared_from_this()] { self->poll_producer(); });
}

void Shared::poll_producer() {
  // Cleared first: what librdkafka queues from now on schedules another.
  poll_scheduled = false;
  {
    std::lock_guard lock(producer_mutex);
    if (producer) {
      polling_inline = this;
      rd_kafka_poll(producer, 0);
      polling_inline = nullptr;
    }
  }
  run_reports();
}

// librdkafka's broker thread, when the producer's queue stops being empty:
// no librdkafka calls here, only a post.
void on_producer_queue(rd_kafka_t*, void* opaque) {
  static_cast<Shared*>(opaque)->schedule_poll();
}

void Shared::run_reports() {
  std::vector<DeliveryReport> batch;
  {
    std::lock_guard lock(reports_mutex);
    batch.swap(reports);
  }
  for (auto& r : batch) {
    if (!r.publish->done) continue;
    try {
      r.publish->done(r.ec, r.receipt);
    } catch (const std::exception& e) {
      spdlog::error("kafka: a durable publish completion for '{}' threw: {}", r.publish->subject,
                    e.what());
    }
  }
}

// Runs inside rd_kafka_poll / rd_kafka_flush: on the executor
// (Shared::poll_producer), or on close()'s thread: only hands the report
// over.
void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* m, void* opaque) {
  auto* shared = static_cast<Shared*>(opaque);
  std::unique_ptr<PendingPublish> p(static_cast<PendingPublish*>(m->_private));
  const char* topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
  if (m->err) {
    spdlog::warn("kafka: {}publish to topic '{}' failed: {}", p ? "durable " : "", topic,
                 rd_kafka_err2str(m->err));
  }
  if (!p) return;
  DeliveryReport r{std::move(p), make_error_code(to_errc(m->err)), {}};
  r.receipt.target = topic;
  r.receipt.sequence = m->err || m->offset < 0 ? 0 : static_cast<std::uint64_t>(m->offset);
  shared->report(std::move(r));
}

void on_producer_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  static_cast<Shared*>(opaque)->on_client_error(rk, err, reason);
}

// ---- consuming ---------------------------------------------------------------

using TopicPartition = std::pair<std::string, std::int32_t>;

// A durable subscription's bookkeeping for one assigned partition. Offsets
// up to `high` were handed out; those still in `in_flight` are not
// acknowledged. The committed offset is the first one not acknowledged.
struct PartitionState {
  struct InFlight {
    std::uint32_t deliveries = 1;
    Clock::time_point deadline;  // redelivered after it (ack_wait, or a nak's delay)
    bool redeliver = false;      // waiting for the seek to bring it back
  };
  std::map<std::int64_t, InFlight> in_flight;
  std::int64_t high = -1;
  std::int64_t committed = -1;
  // The first message fetched while the window was full, not handed out
  // (nor any after it, so that no later offset is committed past it); the
  // partition is sought back to it when the window opens. -1: none held.
  std::int64_t held_from = -1;
  // The high watermark as last asked of the broker (-1: not yet): the cached
  // one only moves with fetches, and a paused partition is not fetched.
  std::int64_t queried_high = -1;
};

class KafkaDelivery;

struct Consumer : std::enable_shared_from_this<Consumer> {
  enum Kind { fanout, queue, durable };

  std::shared_ptr<Shared> shared;
  Kind kind = fanout;
  std::string filter;  // subject filter, checked on every message
  std::string topics;  // one topic, or a "^" regex
  std::string group;
  std::int64_t start_ms = 0;  // start time of partitions without a committed offset
  DurableSubscribe options;   // durable only
  MessageHandler handler;
  DurableHandler durable_handler;
  rd_kafka_t* rk = nullptr;

  std::atomic<bool> alive{true};  // handlers still wanted
  std::atomic<bool> stop{false};  // the polling thread should close
  std::mutex finish_mutex;
  std::condition_variable finish_cv;
  bool finished = false;
  bool joined = false;  // the group gave this member its (maybe no) partitions

  // Durable state and the client's lifetime for acks from any thread.
  std::mutex mutex;
  bool rk_closed = false;
  std::uint64_t generation = 0;  // bumped on every assignment: stale acks do nothing
  std::map<TopicPartition, PartitionState> parts;
  std::size_t in_flight_total = 0;
  bool paused = false;
  Clock::time_point watermarks_asked{};  // polling thread only

  ~Consumer() {
    if (rk) rd_kafka_destroy(rk);
  }

  void run();
  void rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  void start_offsets(rd_kafka_topic_partition_list_t* partitions);
  void on_message(const rd_kafka_message_t* m);
  void service_durable();
  void ask_watermarks();
  void store(const TopicPartition& tp, std::int64_t offset);
  void settle(const TopicPartition& tp, std::int64_t offset, std::uint64_t gen, bool ack,
              std::chrono::milliseconds delay);
  void commit_locked(const TopicPartition& tp, PartitionState& ps);
  bool lag(std::uint64_t& out);

  bool wait_finished(std::chrono::milliseconds limit) {
    std::unique_lock lock(finish_mutex);
    return finish_cv.wait_for(lock, limit, [&] { return finished; });
  }
  bool wait_joined(std::chrono::milliseconds limit) {
    std::unique_lock lock(finish_mutex);
    return finish_cv.wait_for(lock, limit, [&] { return joined || finished; });
  }
};

void on_rebalance(rd_kafka_t*, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                  void* opaque) {
  static_cast<Consumer*>(opaque)->rebalance(err, parts);
}

void on_consumer_error(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  static_cast<Consumer*>(opaque)->shared->on_client_error(rk, err, reason);
}

Message to_message(const rd_kafka_message_t* m) {
  Message msg;
  msg.data = Payload(std::string(static_cast<const char*>(m->payload), m->len));
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    std::size_t size = 0;
    for (std::size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      std::string v = value ? std::string(static_cast<const char*>(value), size) : std::string();
      if (std::string_view(name) == kSubjectHeader) {
        msg.subject = std::move(v);
      } else if (std::string_view(name) == kReplyToHeader) {
        msg.reply_to = std::move(v);
      } else if (value) {
        msg.headers[name] = std::move(v);
      }
    }
  }
  // From a producer that is not switchboard: the topic is the subject.
  if (msg.subject.empty()) msg.subject = rd_kafka_topic_name(m->rkt);
  return msg;
}

// One message of a durable subscription. ack() commits once every earlier
// offset of its partition is acknowledged too; nak() and ack_wait seek the
// partition back to it (offsets acknowledged meanwhile are skipped).
class KafkaDelivery final : public DurableDelivery {
 public:
  KafkaDelivery(Message m, std::weak_ptr<Consumer> consumer, TopicPartition tp, std::int64_t offset,
                std::uint32_t count, std::uint64_t gen)
      : message_(std::move(m)),
        consumer_(std::move(consumer)),
        tp_(std::move(tp)),
        offset_(offset),
        count_(count),
        generation_(gen) {}
  const Message& message() const override { return message_; }
  std::uint64_t sequence() const override { return static_cast<std::uint64_t>(offset_); }
  std::uint32_t delivery_count() const override { return count_; }
  // An offset is unique only within its partition.
  std::string source_id() const override {
    return tp_.first + ":" + std::to_string(tp_.second) + ":" + std::to_string(offset_);
  }
  void ack() override { settle(true, std::chrono::milliseconds(0)); }
  void nak(std::chrono::milliseconds delay) override { settle(false, delay); }

 private:
  void settle(bool ack, std::chrono::milliseconds delay) {
    if (settled_.exchange(true)) return;
    if (auto c = consumer_.lock()) c->settle(tp_, offset_, generation_, ack, delay);
  }
  Message message_;
  std::weak_ptr<Consumer> consumer_;
  TopicPartition tp_;
  std::int64_t offset_;
  std::uint32_t count_;
  std::uint64_t generation_;
  std::atomic<bool> settled_{false};
};

void Consumer::run() {
  while (!stop) {
    if (kind == durable) service_durable();
    rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      on_message(m);
    } else if (m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
               m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // A topic not created yet; it is picked up once it is.
      spdlog::debug("kafka: subscription to '{}': {}", filter, rd_kafka_message_errstr(m));
    } else {
      spdlog::warn("kafka: subscription to '{}': {}", filter, rd_kafka_message_errstr(m));
      if (m->err != RD_KAFKA_RESP_ERR__TRANSPORT) {
        shared->emit(TransportStatus::error,
                     "subscription to '" + filter + "': " + rd_kafka_message_errstr(m));
      }
    }
    rd_kafka_message_destroy(m);
  }
  {
    std::lock_guard lock(mutex);
    rk_closed = true;
  }
  // Commits what the auto commit still holds (queue groups, durable subscriptions) and leaves the
  // group, so that the other members get its partitions at once.
  if (auto err = rd_kafka_consumer_close(rk)) {
    spdlog::debug("kafka: closing the consumer of '{}': {}", filter, rd_kafka_err2str(err));
  }
  {
    std::lock_guard lock(finish_mutex);
    finished = true;
  }
  finish_cv.notify_all();
}

void Consumer::rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions) {
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    start_offsets(partitions);
    {
      std::lock_guard lock(mutex);
      ++generation;
      for (int i = 0; i < partitions->cnt; ++i) {
        const auto& p = partitions->elems[i];
        PartitionState ps;
        ps.committed = p.offset;
        ps.high = p.offset >= 0 ? p.offset - 1 : -1;
        parts[{p.topic, p.partition}] = std::move(ps);
      }
      in_flight_total = 0;
      paused = false;
    }
    rd_kafka_assign(rk, partitions);
    // librdkafka keeps a partition's pause across a rebalance: one paused
    // for a full window before it was revoked would stay paused when it
    // comes back to this member, and the group would stall (found by the
    // bridge crash test, a session timeout while the window was full).
    rd_kafka_resume_partitions(rk, partitions);
    {
      std::lock_guard lock(finish_mutex);
      joined = true;
    }
    finish_cv.notify_all();
  } else {
    {
      std::lock_guard lock(mutex);
      ++generation;
      parts.clear();  // un-acknowledged messages go to the next owner
      in_flight_total = 0;
      paused = false;
    }
    rd_kafka_assign(rk, nullptr);
  }
}

// Errors of a lookup that go away by themselves: a topic created a moment
// ago has no settled partition leaders yet ("not leader for partition",
// "leader not available", "offset not available"). A broker that cannot
// be reached is not one of them: the lookup has waited for it already.
bool transient(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
    case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
      return true;
    default:
      return false;
  }
}

// Runs lookup(timeout_ms) until it succeeds, fails for good, or `deadline`
// passes, pausing between tries. Giving up on a transient error would
// start a partition at the logical end, which is resolved only when
// fetching begins, so whatever was produced in between would be skipped.
template <typename Lookup>
rd_kafka_resp_err_t retrying(Clock::time_point deadline, Lookup lookup) {
  constexpr auto kPause = std::chrono::milliseconds(100);
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    const rd_kafka_resp_err_t err =
        lookup(static_cast<int>(std::max<std::int64_t>(left.count(), 1)));
    if (!transient(err) || left <= kPause) return err;
    std::this_thread::sleep_for(kPause);
  }
}

// Where each newly assigned partition starts: at the group's committed
// offset if it has one, else by the start policy. "At a time" resolves to
// the first offset at or after it, or the end of the partition (read
// before the lookup, so that nothing produced in between is skipped).
void Consumer::start_offsets(rd_kafka_topic_partition_list_t* partitions) {
  constexpr int kTimeoutMs = 5000;
  // One budget for every retried lookup of this assignment, however many
  // partitions it has: the rebalance callback waits for them.
  const auto retry_deadline = Clock::now() + std::chrono::milliseconds(kTimeoutMs);
  if (kind != fanout) {
    if (auto err = rd_kafka_committed(rk, partitions, kTimeoutMs)) {
      spdlog::warn("kafka: '{}': committed offsets of group '{}' unknown: {}", filter, group,
                   rd_kafka_err2str(err));
    }
  }
  std::int64_t at = start_ms;
  bool by_time = true;
  std::int64_t fixed = RD_KAFKA_OFFSET_END;
  if (kind == durable) {
    switch (options.start) {
      case DurableStart::earliest:
        by_time = false;
        fixed = RD_KAFKA_OFFSET_BEGINNING;
        break;
      case DurableStart::latest:
        break;  // from subscribe time
      case DurableStart::sequence:
        by_time = false;
        fixed = static_cast<std::int64_t>(options.start_sequence);
        break;
      case DurableStart::time:
        at = wall_ms(options.start_time);
        break;
    }
  }
  rd_kafka_topic_partition_list_t* lookup = rd_kafka_topic_partition_list_new(partitions->cnt);
  std::vector<std::int64_t> ends;
  for (int i = 0; i < partitions->cnt; ++i) {
    auto& p = partitions->elems[i];
    if (p.offset >= 0) continue;  // committed
    if (!by_time) {
      p.offset = fixed;
      continue;
    }
    std::int64_t low = 0, high = RD_KAFKA_OFFSET_END;
    if (auto err = retrying(retry_deadline, [&](int timeout_ms) {
          return rd_kafka_query_watermark_offsets(rk, p.topic, p.partition, &low, &high,
                                                  timeout_ms);
        })) {
      spdlog::warn("kafka: '{}': the end of {} [{}] unknown ({}); starting where fetching does",
                   filter, p.topic, p.partition, rd_kafka_err2str(err));
      high = RD_KAFKA_OFFSET_END;
    }
    p.offset = high;
    rd_kafka_topic_partition_list_add(lookup, p.topic, p.partition)->offset = at;
  }
  if (lookup->cnt > 0) {
    // A partition's own error counts as the lookup's: a transient one is
    // retried with the rest. The request is rebuilt each time, since a
    // lookup writes its answers over the times asked.
    auto err = retrying(retry_deadline, [&](int timeout_ms) {
      for (int i = 0; i < lookup->cnt; ++i) {
        lookup->elems[i].offset = at;
        lookup->elems[i].err = RD_KAFKA_RESP_ERR_NO_ERROR;
      }
      if (auto whole = rd_kafka_offsets_for_times(rk, lookup, timeout_ms)) return whole;
      for (int i = 0; i < lookup->cnt; ++i) {
        if (transient(lookup->elems[i].err)) return lookup->elems[i].err;
      }
      return RD_KAFKA_RESP_ERR_NO_ERROR;
    });
    if (err) {
      spdlog::warn("kafka: '{}': offsets by time unknown ({}); starting at the end", filter,
                   rd_kafka_err2str(err));
    } else {
      for (int i = 0; i < lookup->cnt; ++i) {
        const auto& found = lookup->elems[i];
        if (found.err || found.offset < 0) continue;  // nothing at or after: the end
        rd_kafka_topic_partition_list_find(partitions, found.topic, found.partition)->offset =
            found.offset;
      }
    }
  }
  rd_kafka_topic_partition_list_destroy(lookup);
}

void Consumer::on_message(const rd_kafka_message_t* m) {
  Message msg = to_message(m);
  TopicPartition tp{rd_kafka_topic_name(m->rkt), m->partition};
  bool wanted = subject_matches(filter, msg.subject);
  auto self = shared_from_this();
  if (kind == fanout) {
    if (!wanted) return;
    shared->post([self, msg = std::move(msg)]() mutable {
      if (!self->alive) return;
      try {
        self->handler(std::move(msg));
      } catch (const std::exception& e) {
        spdlog::error("kafka: the handler for '{}' threw: {}", self->filter, e.what());
      }
    });
  } else if (kind == queue) {
    if (!wanted) return store(tp, m->offset + 1);
    shared->post([self, msg = std::move(msg), tp, next = m->offset + 1]() mutable {
      if (self->alive) {
        try {
          self->handler(std::move(msg));
        } catch (const std::exception& e) {
          spdlog::error("kafka: the handler for '{}' threw: {}", self->filter, e.what());
        }
      }
      self->store(tp, next);
    });
  } else {
    std::uint32_t count = 1;
    std::uint64_t gen = 0;
    {
      std::lock_guard lock(mutex);
      auto it = parts.find(tp);
      if (it == parts.end()) return;  // not ours any more
      auto& ps = it->second;
      gen = generation;
      auto now = Clock::now();
      if (m->offset <= ps.high) {
        auto f = ps.in_flight.find(m->offset);
        // Acknowledged already, or handed out and not due: not again.
        if (f == ps.in_flight.end() || !f->second.redeliver) return;
        f->second.redeliver = false;
        f->second.deadline = now + options.ack_wait;
        count = ++f->second.deliveries;
      } else {
        // librdkafka hands out what it fetched ahead until the pause takes
        // effect: the window (max_in_flight) is kept here, not by the pause.
        if (ps.held_from >= 0 ||
            in_flight_total >= std::max<std::size_t>(options.max_in_flight, 1)) {
          if (ps.held_from < 0 || m->offset < ps.held_from) ps.held_from = m->offset;
          return;
        }
        ps.high = m->offset;
        if (!wanted) {
          commit_locked(tp, ps);
          return;
        }
        ps.in_flight[m->offset] = PartitionState::InFlight{1, now + options.ack_wait, false};
        ++in_flight_total;
      }
    }
    auto delivery =
        std::make_shared<KafkaDelivery>(std::move(msg), self, tp, m->offset, count, gen);
    shared->post([self, delivery] {
      if (!self->alive) return;  // redelivered to whoever reads the group next
      try {
        self->durable_handler(delivery);
      } catch (const std::exception& e) {
        spdlog::error("kafka: the durable handler for '{}' threw: {} (redelivered after ack_wait)",
                      self->filter, e.what());
      }
    });
  }
}

// Plain queue groups: the handler ran, so the offset may be committed.
void Consumer::store(const TopicPartition& tp, std::int64_t offset) {
  std::lock_guard lock(mutex);
  if (rk_closed) return;
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = offset;
  rd_kafka_offsets_store(rk, list);  // fails only for a partition no longer ours
  rd_kafka_topic_partition_list_destroy(list);
}

void Consumer::settle(const TopicPartition& tp, std::int64_t offset, std::uint64_t gen, bool ack,
                      std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex);
  if (rk_closed || gen != generation) return;  // the partition moved: redelivered there
  auto it = parts.find(tp);
  if (it == parts.end()) return;
  auto& ps = it->second;
  auto f = ps.in_flight.find(offset);
  if (f == ps.in_flight.end()) return;
  if (!ack) {
    f->second.deadline = Clock::now() + delay;  // service_durable seeks back then
    return;
  }
  ps.in_flight.erase(f);
  --in_flight_total;
  commit_locked(tp, ps);
}

void Consumer::commit_locked(const TopicPartition& tp, PartitionState& ps) {
  std::int64_t next = ps.in_flight.empty() ? ps.high + 1 : ps.in_flight.begin()->first;
  if (next <= ps.committed) return;
  ps.committed = next;
  // Stored; the auto commit sends it (at most auto.commit.interval.ms later).
  auto* list = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(list, tp.first.c_str(), tp.second)->offset = next;
  if (auto err = rd_kafka_offsets_store(rk, list)) {
    spdlog::warn("kafka: storing offset {}[{}]@{} for group '{}' failed: {}", tp.first, tp.second,
                 next, group, rd_kafka_err2str(err));
  }
  rd_kafka_topic_partition_list_destroy(list);
}

// Messages stored and not yet handed out, over the assigned partitions:
// the high watermark (as of the last fetch: librdkafka's cached figure, no
// request) minus the next offset to deliver. False while nothing is known.
bool Consumer::lag(std::uint64_t& out) {
  std::lock_guard lock(mutex);
  if (rk_closed || !rk || parts.empty()) return false;
  std::uint64_t total = 0;
  bool known = false;
  for (const auto& [tp, ps] : parts) {
    std::int64_t low = 0, high = -1;
    if (rd_kafka_get_watermark_offsets(rk, tp.first.c_str(), tp.second, &low, &high) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      high = -1;
    }
    high = std::max(high, ps.queried_high);
    if (high < 0) continue;
    known = true;
    std::int64_t next = std::max(ps.high + 1, low);
    if (high > next) total += static_cast<std::uint64_t>(high - next);
  }
  if (known) out = total;
  return known;
}

// On the polling thread, between polls: messages past their deadline are
// due again (the partition is sought back to the first of them), and the
// partitions pause while max_in_flight messages wait for their ack (until
// half of them are settled).
void Consumer::service_durable() {
  ask_watermarks();
  rd_kafka_topic_partition_list_t* seek = nullptr;
  bool pause = false, resume = false;
  {
    std::lock_guard lock(mutex);
    auto now = Clock::now();
    for (auto& [tp, ps] : parts) {
      std::int64_t first = -1;
      for (auto& [offset, f] : ps.in_flight) {
        if (f.redeliver || f.deadline > now) continue;
        f.redeliver = true;
        if (first < 0) first = offset;
      }
      if (first >= 0) {
        if (!seek) seek = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(seek, tp.first.c_str(), tp.second)->offset = first;
        ps.held_from = -1;  // read again from `first`, which is before it
      }
    }
    // Resume at half the window, not at one below it: a pause drops what
    // librdkafka had fetched ahead, so toggling at every ack re-fetched the
    // same messages one or two at a time (about 175 messages/s through a
    // bridge with a full backlog, against thousands with this gap).
    const std::size_t window = std::max<std::size_t>(options.max_in_flight, 1);
    if (!paused && in_flight_total >= window) {
      paused = pause = true;
    } else if (paused && in_flight_total <= window / 2) {
      paused = false;
      resume = true;
    }
    // Reading on: what was held back while the window was full is read
    // again (the consumer's position is already past it).
    if (!paused) {
      for (auto& [tp, ps] : parts) {
        if (ps.held_from < 0) continue;
        if (!seek) seek = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(seek, tp.first.c_str(), tp.second)->offset = ps.held_from;
        ps.held_from = -1;
      }
    }
  }
  if (seek) {
    if (auto* err = rd_kafka_seek_partitions(rk, seek, 5000)) {
      spdlog::warn("kafka: redelivery on '{}': seek failed: {}", filter,
                   rd_kafka_error_string(err));
      rd_kafka_error_destroy(err);
    }
    rd_kafka_topic_partition_list_destroy(seek);
  }
  if (pause || resume) {
    rd_kafka_topic_partition_list_t* assigned = nullptr;
    if (rd_kafka_assignment(rk, &assigned) == RD_KAFKA_RESP_ERR_NO_ERROR && assigned) {
      if (pause) rd_kafka_pause_partitions(rk, assigned);
      if (resume) rd_kafka_resume_partitions(rk, assigned);
      rd_kafka_topic_partition_list_destroy(assigned);
    }
  }
}

// Once a second while paused: the high watermark of every assigned
// partition, asked of the broker (a round trip each, on this thread, which
// has nothing to fetch meanwhile), for lag(). Without it a partition paused
// before its first fetch had no figure at all, and a paused one kept the
// figure of its last fetch while producers went on.
void Consumer::ask_watermarks() {
  auto now = Clock::now();
  if (now - watermarks_asked < std::chrono::seconds(1)) return;
  watermarks_asked = now;
  std::vector<TopicPartition> assigned;
  {
    std::lock_guard lock(mutex);
    if (!paused) return;
    for (const auto& [tp, ps] : parts) assigned.push_back(tp);
  }
  for (const auto& tp : assigned) {
    std::int64_t low = 0, high = -1;
    if (rd_kafka_query_watermark_offsets(rk, tp.first.c_str(), tp.second, &low, &high, 500) !=
        RD_KAFKA_RESP_ERR_NO_ERROR) {
      continue;
    }
    std::lock_guard lock(mutex);
    if (auto it = parts.find(tp); it != parts.end()) it->second.queried_high = high;
  }
}

class KafkaSubscription final : public Subscription {
 public:
  KafkaSubscription(std::shared_ptr<Consumer> c, std::string subject)
      : consumer_(std::move(c)), subject_(std::move(subject)) {}
  // Does not wait: the polling thread leaves the group by itself.
  void unsubscribe() override {
    consumer_->alive = false;
    consumer_->stop = true;
  }
  const std::string& subject() const override { return subject_; }
  Consumer& consumer() const { return *consumer_; }

 private:
  std::shared_ptr<Consumer> consumer_;
  std::string subject_;
};

// ---- the transport -------------------------------------------------------------

class KafkaTransport final : public Transport {
 public:
  KafkaTransport(const TransportConfig& config, const TransportContext& context)
      : settings_(read_settings(config)),
        instance_(config.instance),
        max_payload_(config.max_payload),
        shared_(std::make_shared<Shared>()) {
    shared_->executor = context.executor;
    shared_->endpoint = settings_.brokers;
  }

  ~KafkaTransport() override {
    if (closer_.joinable()) closer_.join();
    stop_consumers(std::chrono::milliseconds(settings_.flush_timeout_ms));
    {
      std::lock_guard lock(shared_->mutex);
      shared_->dead = true;
    }
    stop_watching_ = true;
    if (watcher_.joinable()) watcher_.join();
    {
      std::lock_guard lock(shared_->producer_mutex);  // waits for a poll on the executor
      shared_->producer = nullptr;
    }
    if (producer_) {
      // Not flushed (close() does that): what is still queued is dropped,
      // and durable publishes still waiting get no completion.
      rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
      rd_kafka_poll(producer_, 0);
      rd_kafka_destroy(producer_);
      // Reports a handler posted before `dead` could still pick up: none.
      std::vector<DeliveryReport> dropped;
      std::lock_guard lock(shared_->reports_mutex);
      dropped.swap(shared_->reports);
    }
  }

  const std::string& type() const override {
    static const std::string name = "kafka";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;     // regex topic subscriptions, checked per message
    c.queue_groups = true;  // consumer groups
    c.headers = true;
    c.durable_acks = true;
    c.native_request = false;
    c.no_responders = false;  // nothing tells whether a topic is read
    return c;
  }
  std::size_t max_payload() const override { return max_payload_; }

  // Creates the producer and waits (connect_timeout_ms) for the brokers'
  // metadata, so that a wrong address fails here.
  std::error_code connect() override {
    if (producer_) return {};
    std::map<std::string, std::string> own = {
        {"bootstrap.servers", settings_.brokers},
        {"client.id", settings_.client_id},
        {"enable.idempotence", settings_.idempotence ? "true" : "false"},
        {"acks", settings_.acks},
        {"linger.ms", std::to_string(settings_.linger_ms)},
        {"message.timeout.ms", std::to_string(settings_.delivery_timeout_ms)},
        // Room for the largest payload plus headers.
        {"message.max.bytes",
         std::to_string(std::clamp<std::size_t>(max_payload_ + 65536, 1000000, 1000000000))},
        // Keyless messages spread over the partitions one by one (so a
        // queue group shares them), not in 10 ms runs.
        {"sticky.partitioning.linger.ms", "0"},
        {"socket.nagle.disable", "true"},
    };
    for (const auto& [k, v] : settings_.producer) own[k] = v;
    rd_kafka_conf_t* conf = make_conf(own, settings_.librdkafka, "librdkafka.");
    rd_kafka_conf_set_opaque(conf, shared_.get());
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_producer_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    char err[512];
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!producer_) {
      rd_kafka_conf_destroy(conf);
      spdlog::error("kafka: cannot create a producer for {}: {}", settings_.brokers, err);
      return make_error_code(errc::transport_error);
    }
    const rd_kafka_metadata_t* md = nullptr;
    auto merr = rd_kafka_metadata(producer_, 0, nullptr, &md,
                                  static_cast<int>(settings_.connect_timeout_ms));
    if (merr) {
      spdlog::error("kafka: cannot connect to {}: {}", settings_.brokers, rd_kafka_err2str(merr));
      rd_kafka_destroy(producer_);
      producer_ = nullptr;
      return make_error_code(errc::transport_error);
    }
    std::string seen = md->orig_broker_name;
    rd_kafka_metadata_destroy(md);
    {
      std::lock_guard lock(shared_->producer_mutex);
      shared_->producer = producer_;
    }
    rd_kafka_queue_t* queue = rd_kafka_queue_get_main(producer_);
    rd_kafka_queue_cb_event_enable(queue, on_producer_queue, shared_.get());
    rd_kafka_queue_destroy(queue);  // the handle; the setting stays with the queue
    shared_->schedule_poll();       // whatever came before the event was enabled
    watcher_ = std::thread([this] { watch_producer(); });
    shared_->emit(TransportStatus::connected, seen);
    return {};
  }

  std::error_code publish(Message msg) override {
    if (!producer_ || closing_) return make_error_code(errc::closed);
    if (msg.data.size() > max_payload_) return make_error_code(errc::payload_too_large);
    std::string why, topic;
    if (auto ec = validate_subject(msg.subject, false, why)) return ec;
    if (auto ec = topic_for(settings_, msg.subject, topic, why)) {
      spdlog::warn("kafka: publish to '{}': {}", msg.subject, why);
      return ec;
    }
    return produce(topic, msg, "", nullptr);
  }

  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    if (!producer_ || closing_) return make_error_code(errc::closed);
    std::string why;
    if (auto ec = validate_subject(subject, true, why)) return ec;
    auto c = std::make_shared<Consumer>();
    c->kind = queue_group.empty() ? Consumer::fanout : Consumer::queue;
    c->group = queue_group.empty() ? "switchboard-" + random_id() : queue_group;
    c->handler = std::move(handler);
    if (auto ec = start_consumer(c, subject)) return ec;
    out = std::make_unique<KafkaSubscription>(std::move(c), subject);
    return {};
  }

  void on_status(StatusHandler handler) override {
    std::lock_guard lock(shared_->mutex);
    shared_->status = std::move(handler);
  }

  // Produced like publish() (to options.target when set, else the topic
  // of the subject), with options.message_id in the switchboard-msg-id
  // header; `done` runs on the executor with the delivery report: the
  // topic and the partition offset, or timeout (not stored within
  // delivery_timeout_ms), payload_too_large, invalid_argument (the topic
  // cannot be written), closed (purged by close).
  void publish_durable(Message msg, const DurablePublish& options,
                       DurablePublishHandler done) override {
    auto fail = [&](std::error_code ec) {
      asio::post(shared_->executor, [done = std::move(done), ec] {
        if (done) done(ec, DurableReceipt{});
      });
    };
    if (!producer_ || closing_) return fail(make_error_code(errc::closed));
    if (msg.data.size() > max_payload_) return fail(make_error_code(errc::payload_too_large));
    std::string why, topic = options.target;
    if (auto ec = validate_subject(msg.subject, false, why)) return fail(ec);
    if (topic.empty()) {
      if (auto ec = topic_for(settings_, msg.subject, topic, why)) {
        spdlog::warn("kafka: durable publish to '{}': {}", msg.subject, why);
        return fail(ec);
      }
    }
    auto* pending = new PendingPublish{std::move(done), msg.subject, msg.data};
    if (auto ec = produce(topic, msg, options.message_id, pending)) {
      done = std::move(pending->done);
      delete pending;
      return fail(ec);
    }
  }

  // A consumer in group options.durable (default: "switchboard-durable-" +
  // the subject) on the topic(s) of options.subject, or options.target.
  std::error_code subscribe_durable(const DurableSubscribe& options, DurableHandler handler,
                                    std::unique_ptr<Subscription>& out) override {
    if (!producer_ || closing_) return make_error_code(errc::closed);
    std::string why;
    std::string subject = options.subject.empty() ? ">" : options.subject;
    if (auto ec = validate_subject(subject, true, why)) {
      spdlog::warn("kafka: durable subscription to '{}': {}", subject, why);
      return ec;
    }
    if (options.subject.empty() && options.target.empty()) {
      spdlog::warn("kafka: a durable subscription needs a subject or a target topic");
      return make_error_code(errc::invalid_argument);
    }
    if (options.durable.empty()) {
      spdlog::warn("kafka: durable subscription to '{}' needs a durable (group) name", subject);
      return make_error_code(errc::invalid_argument);
    }
    auto c = std::make_shared<Consumer>();
    c->kind = Consumer::durable;
    c->group = options.durable;
    c->options = options;
    c->durable_handler = std::move(handler);
    if (auto ec = start_consumer(c, subject, options.target)) return ec;
    out = std::make_unique<KafkaSubscription>(std::move(c), subject);
    return {};
  }

  std::error_code durable_lag(const Subscription& subscription, std::uint64_t& out) override {
    auto* own = dynamic_cast<const KafkaSubscription*>(&subscription);
    if (!own || own->consumer().kind != Consumer::durable) {
      return make_error_code(errc::not_supported);
    }
    return own->consumer().lag(out) ? std::error_code() : make_error_code(errc::timeout);
  }

  // Flushes the producer (at most flush_timeout_ms; what is left then is
  // purged and its durable publishes fail with errc::closed), then closes
  // every consumer (commit, leave the group), then calls done on the
  // executor. The waiting happens on a thread of its own.
  void close(std::function<void()> done) override {
    if (closing_ || !producer_) {
      closing_ = true;
      asio::post(shared_->executor, std::move(done));
      return;
    }
    closing_ = true;
    auto consumers = consumers_;
    closer_ = std::thread([this, consumers, shared = shared_, done = std::move(done)]() mutable {
      auto limit = std::chrono::milliseconds(settings_.flush_timeout_ms);
      if (rd_kafka_flush(producer_, static_cast<int>(limit.count())) !=
          RD_KAFKA_RESP_ERR_NO_ERROR) {
        spdlog::warn("kafka: {} message(s) not delivered within flush_timeout_ms ({} ms) at close",
                     rd_kafka_outq_len(producer_), limit.count());
        rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(producer_, 1000);  // serves the purged messages' reports
      }
      for (auto& c : consumers) c->stop = true;
      for (auto& c : consumers) c->wait_finished(limit);
      shared->emit(TransportStatus::closed, shared->endpoint);
      shared->post(std::move(done));
    });
  }

 private:
  std::error_code produce(const std::string& topic, const Message& msg,
                          const std::string& message_id, PendingPublish* pending) {
    rd_kafka_headers_t* headers = rd_kafka_headers_new(msg.headers.size() + 3);
    rd_kafka_header_add(headers, kSubjectHeader, -1, msg.subject.data(),
                        static_cast<ssize_t>(msg.subject.size()));
    if (!msg.reply_to.empty()) {
      rd_kafka_header_add(headers, kReplyToHeader, -1, msg.reply_to.data(),
                          static_cast<ssize_t>(msg.reply_to.size()));
    }
    if (!message_id.empty()) {
      rd_kafka_header_add(headers, kMessageIdHeader, -1, message_id.data(),
                          static_cast<ssize_t>(message_id.size()));
    }
    for (const auto& [k, v] : msg.headers) {
      rd_kafka_header_add(headers, k.c_str(), -1, v.data(), static_cast<ssize_t>(v.size()));
    }
    std::string key = key_for(settings_.key, msg);
    // A durable publish keeps its payload (PendingPublish::payload) until
    // the delivery report, so librdkafka need not copy it; publish() keeps
    // nothing, so it must.
    const int flags = pending ? 0 : RD_KAFKA_MSG_F_COPY;
    auto err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_VALUE(const_cast<char*>(msg.data.data()), msg.data.size()),
        RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()), RD_KAFKA_V_MSGFLAGS(flags),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(pending), RD_KAFKA_V_END);
    if (!err) return {};
    rd_kafka_headers_destroy(headers);  // not taken on failure
    spdlog::warn("kafka: publish of '{}' to topic '{}' refused: {}", msg.subject, topic,
                 rd_kafka_err2str(err));
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return make_error_code(errc::transport_error);
    return make_error_code(to_errc(err));
  }

  std::error_code start_consumer(const std::shared_ptr<Consumer>& c, const std::string& subject,
                                 const std::string& topic = "") {
    std::string why;
    c->shared = shared_;
    c->filter = subject;
    c->start_ms = wall_ms();
    c->topics = topic;
    if (c->topics.empty()) {
      if (auto ec = topics_for(settings_, subject, c->topics, why)) {
        spdlog::warn("kafka: subscribe to '{}': {}", subject, why);
        return ec;
      }
    }
    if (c->topics.front() != '^') ensure_topic(c->topics);
    std::map<std::string, std::string> own = {
        {"bootstrap.servers", settings_.brokers},
        {"client.id", settings_.client_id},
        {"group.id", c->group},
        // Queue groups store what their handlers finished, durable
        // subscriptions what was acknowledged, and librdkafka's auto commit
        // sends it (every auto.commit.interval.ms, on revoke and on close);
        // a fan-out subscriber's group of its own commits nothing. One
        // OffsetCommit per ack instead queued thousands of requests ahead
        // of the heartbeats on a busy broker: sessions timed out and the
        // group stalled in rebalances (found by the bridge crash test).
        {"enable.auto.commit", c->kind == Consumer::fanout ? "false" : "true"},
        {"auto.commit.interval.ms", "1000"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "latest"},
        {"session.timeout.ms", std::to_string(settings_.session_timeout_ms)},
        // A group rebalances when its members learn of a join, at their
        // next heartbeat.
        {"heartbeat.interval.ms", std::to_string(settings_.heartbeat_ms)},
        {"allow.auto.create.topics", "true"},
        {"socket.nagle.disable", "true"},
    };
    // New topics matching a wildcard, and a subscribed topic created after
    // the subscription, are found by the periodic metadata refresh.
    own["topic.metadata.refresh.interval.ms"] = std::to_string(settings_.metadata_refresh_ms);
    for (const auto& [k, v] : settings_.consumer) own[k] = v;
    rd_kafka_conf_t* conf = make_conf(own, settings_.librdkafka, "librdkafka.");
    rd_kafka_conf_set_opaque(conf, c.get());
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_error_cb(conf, on_consumer_error);
    rd_kafka_conf_set_log_cb(conf, on_log);
    char err[512];
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!c->rk) {
      rd_kafka_conf_destroy(conf);
      spdlog::error("kafka: cannot create a consumer for '{}': {}", subject, err);
      return make_error_code(errc::transport_error);
    }
    rd_kafka_poll_set_consumer(c->rk);
    auto* list = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(list, c->topics.c_str(), RD_KAFKA_PARTITION_UA);
    auto serr = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (serr) {
      spdlog::error("kafka: subscribe to '{}' (topic {}) failed: {}", subject, c->topics,
                    rd_kafka_err2str(serr));
      return make_error_code(errc::transport_error);
    }
    spdlog::debug("kafka: '{}' reads {} in group '{}'", subject, c->topics, c->group);
    // Detached: the thread holds the consumer until it has left its group.
    std::thread([c] { c->run(); }).detach();
    std::erase_if(consumers_, [](const std::shared_ptr<Consumer>& x) { return x->stop.load(); });
    consumers_.push_back(c);
    // A queue group member returns once the group has taken it in (its
    // share of the partitions is known), so that work published next is
    // split with it. A fan-out subscriber needs no wait: it starts at the
    // time it subscribed, whenever its partitions come.
    if (c->kind == Consumer::queue && settings_.group_join_wait_ms > 0 &&
        !c->wait_joined(std::chrono::milliseconds(settings_.group_join_wait_ms))) {
      spdlog::debug("kafka: '{}' not in group '{}' after {} ms (group_join_wait_ms); going on",
                    subject, c->group, settings_.group_join_wait_ms);
    }
    return {};
  }

  // Creates a topic about to be read (broker defaults for partitions and
  // replicas) unless this transport did so already: a consumer group only
  // gets partitions of topics that exist when it forms, and a topic made
  // later by the first producer would be seen only at the next metadata
  // refresh. Best effort: where the client may not create topics, the
  // broker's auto-creation or an operator's topic is used.
  void ensure_topic(const std::string& topic) {
    if (!created_.insert(topic).second) return;
    char err[512];
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(topic.c_str(), -1, -1, err, sizeof err);
    if (!nt) {
      spdlog::debug("kafka: topic '{}' not created: {}", topic, err);
      return;
    }
    rd_kafka_queue_t* q = rd_kafka_queue_new(producer_);
    rd_kafka_AdminOptions_t* o =
        rd_kafka_AdminOptions_new(producer_, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(o, static_cast<int>(settings_.connect_timeout_ms),
                                                err, sizeof err);
    rd_kafka_CreateTopics(producer_, &nt, 1, o, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(settings_.connect_timeout_ms));
    if (!ev) {
      spdlog::debug("kafka: creating topic '{}': no answer", topic);
    } else if (const auto* result = rd_kafka_event_CreateTopics_result(ev)) {
      std::size_t n = 0;
      const rd_kafka_topic_result_t** topics = rd_kafka_CreateTopics_result_topics(result, &n);
      for (std::size_t i = 0; i < n; ++i) {
        auto e = rd_kafka_topic_result_error(topics[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
          spdlog::debug("kafka: topic '{}' not created: {}", topic,
                        rd_kafka_topic_result_error_string(topics[i]));
        }
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
  }

  void stop_consumers(std::chrono::milliseconds limit) {
    for (auto& c : consumers_) {
      c->alive = false;
      c->stop = true;
    }
    auto deadline = Clock::now() + limit;
    for (auto& c : consumers_) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      c->wait_finished(std::max(left, std::chrono::milliseconds(0)));
    }
    consumers_.clear();
  }

  // While the brokers are down, asks for metadata once a second to tell
  // when they are back. Also makes sure the producer's queue is served
  // should a wake-up from librdkafka ever be missed (a cheap check).
  void watch_producer() {
    auto next_probe = Clock::now();
    rd_kafka_queue_t* queue = rd_kafka_queue_get_main(producer_);
    while (!stop_watching_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (rd_kafka_queue_length(queue) > 0) shared_->schedule_poll();
      if (shared_->down && Clock::now() >= next_probe) {
        next_probe = Clock::now() + std::chrono::seconds(1);
        const rd_kafka_metadata_t* md = nullptr;
        if (rd_kafka_metadata(producer_, 0, nullptr, &md, 500) == RD_KAFKA_RESP_ERR_NO_ERROR) {
          rd_kafka_metadata_destroy(md);
          shared_->down = false;
          spdlog::info("kafka: brokers {} reachable again", settings_.brokers);
          shared_->emit(TransportStatus::reconnected, settings_.brokers);
        }
      }
    }
    rd_kafka_queue_destroy(queue);
  }

  KafkaSettings settings_;
  std::string instance_;
  std::size_t max_payload_;
  std::shared_ptr<Shared> shared_;
  rd_kafka_t* producer_ = nullptr;
  std::thread watcher_;
  std::atomic<bool> stop_watching_{false};
  std::thread closer_;
  std::atomic<bool> closing_{false};
  std::vector<std::shared_ptr<Consumer>> consumers_;  // executor only
  std::set<std::string> created_;                     // topics ensure_topic made
};

const TransportFactoryFor<KafkaTransport> factory;

}  // namespace
}  // namespace switchboard::kafka

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "kafka", "1.0.0", switchboard::kafka::factory)
