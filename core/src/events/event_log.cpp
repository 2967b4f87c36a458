// EventLog: validation and serialization on the caller's thread, one writer
// thread that chains, stores and group-commits (one transaction per batch),
// on SQLite a syncer thread that fsyncs the WAL while the writer commits the
// next batch, completions handed back in one task per batch once durable,
// live dispatch and stream catch-up on the log's strand.
#include "switchboard/event_log.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <limits>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "../payload_schema.hpp"
#include "event_hash.hpp"
#include "event_store_open.hpp"
#include "foreign_events.hpp"
#include "sqlite_store.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard {

using StoreError = EventStoreError;

Json Event::to_json() const {
  Json payload;
  std::string parse_error;
  if (!parse_json(payload_json, payload, parse_error)) payload = payload_json;
  return Json{{"sequence", sequence},
              {"id", id},
              {"type", type},
              {"origin", origin},
              {"origin_sequence", origin_sequence},
              {"timestamp_us", timestamp_us},
              {"payload", std::move(payload)},
              {"prev_hash", to_hex(prev_hash)},
              {"hash", to_hex(hash)}};
}

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct HandlerEntry {
  std::string type;  // "*" for all
  EventHandler fn;
  std::atomic<bool> active{true};
};

void call_safely(const EventHandler& fn, const Event& e) {
  try {
    fn(e);
  } catch (const std::exception& ex) {
    spdlog::warn("event handler for '{}' (sequence {}) threw: {}", e.type, e.sequence, ex.what());
  } catch (...) {
    spdlog::warn("event handler for '{}' (sequence {}) threw", e.type, e.sequence);
  }
}

}  // namespace

struct EventLog::Impl : std::enable_shared_from_this<EventLog::Impl> {
  struct Stream;
  using StreamState = Stream;
  EventLogOptions options;
  asio::strand<asio::any_io_executor> strand;
  std::string origin;
  // Set when another writer appended to the store (a broker backend's
  // fencing): every later write fails with this message.
  std::string fenced;

  // Schemas by type; read on every emit, written by declare().
  mutable std::shared_mutex types_mutex;
  std::map<std::string, std::shared_ptr<const Json>> types;

  // ---- the writer ----
  struct EmitOp {
    std::string type;
    std::string payload;
    EmitDone done;
  };
  struct MiscOp {  // a type declaration or a consumer cursor
    enum class Kind { type, consumer } kind;
    std::string name;
    std::string schema;
    std::uint64_t position = 0;
    std::function<void(std::error_code)> done;  // may be empty
  };
  std::mutex queue_mutex;
  std::condition_variable queue_cv;
  // A vector, swapped whole with the writer's (empty) batch: the writer
  // holds the lock for a swap, not for moving thousands of ops, and both
  // vectors keep their capacity from batch to batch.
  std::vector<EmitOp> emits;
  std::vector<MiscOp> misc;
  bool stopping = false;
  bool closed = false;
  std::thread writer;
  std::shared_ptr<EventStore> write_store;  // writer thread only (and open/close)
  events::EventHasher hasher;               // writer thread only
  // SQLite: the writer commits without waiting for the disk and the syncer
  // thread makes the commits durable (SqliteStore::sync) before they are
  // published: acknowledged, dispatched, counted in `committed` and `heads`.
  // Broker stores (null here) are durable when commit() returns.
  events::SqliteStore* deferred = nullptr;
  struct Committed;
  std::thread syncer;
  std::mutex sync_mutex;
  std::condition_variable sync_cv, synced_cv;
  std::vector<Committed> to_sync;  // under sync_mutex
  std::size_t sync_pending = 0;    // under sync_mutex: queued or being published
  bool sync_stopping = false;      // under sync_mutex
  std::atomic<bool> sync_failed{false};
  std::string sync_failure;  // under sync_mutex, once sync_failed
  // The chain's head, writer thread only.
  std::uint64_t last_sequence = 0;
  EventHash last_hash{};
  std::int64_t last_ts = 0;
  std::uint64_t origin_sequence = 0;

  // ---- replication: foreign events from ingest(), same writer ----
  struct IngestOp {
    std::vector<Event> events;  // checked by start_ingest
    IngestResult result;        // rejected and schema_mismatches counted already
    IngestDone done;
  };
  std::deque<IngestOp> ingests;  // under queue_mutex
  // Per origin other than ours, the highest origin_sequence stored: writer
  // thread only. Ours is origin_sequence.
  std::map<std::string, std::uint64_t> writer_heads;
  // The committed heads (ours included) for origin_heads(), under heads_mutex.
  mutable std::mutex heads_mutex;
  std::map<std::string, std::uint64_t> heads;

  std::atomic<std::uint64_t> committed{0};  // newest durable sequence
  std::atomic<std::uint64_t> stat_events{0}, stat_batches{0}, stat_largest{0}, stat_foreign{0};

  // ---- reads ----
  mutable std::mutex read_mutex;
  std::shared_ptr<EventStore> read_store;

  // ---- dispatch (listeners mutex; delivery on the strand) ----
  std::mutex listeners_mutex;
  std::uint64_t next_handler_id = 1;
  std::map<HandlerId, std::shared_ptr<HandlerEntry>> handlers;
  std::vector<std::shared_ptr<StreamState>> streams;
  // Whether handlers or streams exist (under listeners_mutex when written):
  // without any, the writer keeps no copy of a batch's events for dispatch.
  std::atomic<bool> listening{false};
  std::uint64_t dispatched = 0;  // strand only: newest sequence handed to live listeners

  Impl(asio::any_io_executor ex, EventLogOptions opts)
      : options(std::move(opts)), strand(asio::make_strand(ex)) {}

  void writer_loop();
  void syncer_loop();
  void wait_synced();
  void publish(Committed& c, std::error_code ec, const std::string& why);
  void run_batch(std::vector<EmitOp>& batch, std::vector<MiscOp>& misc_ops,
                 std::vector<IngestOp>& ingest_ops);
  using HeadUndo = std::vector<std::pair<std::string, std::uint64_t>>;
  void append_foreign(std::vector<IngestOp>& ops, std::vector<Event>& out, HeadUndo& undo);
  void load_heads();
  void recover_after_failed_commit(std::uint64_t seq0);
  void dispatch(const std::shared_ptr<std::vector<Event>>& batch);
  void dispatch_stored(std::uint64_t upto);
  void update_listening() {  // under listeners_mutex
    listening = !handlers.empty() || !streams.empty();
  }
  void catch_up(const std::shared_ptr<StreamState>& s);
  void save_cursor(StreamState& s);
  std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max, const EventHandler& fn,
                   std::error_code& ec) const;
};

// A committed batch on its way to being acknowledged: what publish() makes
// visible once it is durable.
struct EventLog::Impl::Committed {
  // The emits, completed by publish(); freed with the buffers of their
  // payloads after their completions, off the writer thread.
  std::vector<EmitOp> emits;
  std::vector<EmitResult> results;
  std::vector<MiscOp> misc;
  std::vector<IngestOp> ingests;
  // The batch's events for handlers and streams; null: nobody listened
  // when it was written (dispatch_stored).
  std::shared_ptr<std::vector<Event>> events;
  std::uint64_t first = 0, last = 0;  // the log's head before and after the batch
  std::uint64_t own_head = 0;         // our origin_sequence after the batch
  bool own_moved = false;
  std::vector<std::pair<std::string, std::uint64_t>> foreign_heads;  // new heads
};

struct EventLog::Impl::Stream : EventStream, std::enable_shared_from_this<Stream> {
  std::weak_ptr<EventLog::Impl> log;
  StreamOptions options;
  EventHandler fn;
  std::atomic<std::uint64_t> next{1};  // the next sequence to deliver
  bool live = false;                   // strand only
  std::atomic<bool> closed{false};
  std::uint64_t saved = 0;  // strand only: the cursor last queued for saving

  void close() override {
    closed = true;
    if (auto l = log.lock()) {
      std::lock_guard lock(l->listeners_mutex);
      std::erase_if(l->streams, [this](const auto& s) { return s.get() == this; });
      l->update_listening();
    }
  }
  std::uint64_t position() const override { return next.load() - 1; }

  void deliver(const Event& e) {
    if (closed) return;
    if (e.sequence < next) return;  // already seen
    next = e.sequence + 1;
    if (options.type.empty() || options.type == e.type) call_safely(fn, e);
  }
};

void EventLog::Impl::save_cursor(StreamState& s) {
  if (s.options.consumer.empty() || options.read_only) return;
  std::uint64_t pos = s.next.load() - 1;
  if (pos <= s.saved) return;
  s.saved = pos;
  {
    std::lock_guard lock(queue_mutex);
    if (closed) return;
    misc.push_back({MiscOp::Kind::consumer, s.options.consumer, {}, pos, {}});
  }
  queue_cv.notify_one();
}

void EventLog::Impl::writer_loop() {
  std::vector<EmitOp> batch;
  std::vector<MiscOp> misc_ops;
  std::vector<IngestOp> ingest_ops;
  for (;;) {
    {
      std::unique_lock lock(queue_mutex);
      queue_cv.wait(
          lock, [this] { return stopping || !emits.empty() || !misc.empty() || !ingests.empty(); });
      if (emits.empty() && misc.empty() && ingests.empty()) return;  // stopping, drained
      batch.clear();
      if (emits.size() <= options.max_batch) {
        batch.swap(emits);
      } else {
        auto split = emits.begin() + static_cast<std::ptrdiff_t>(options.max_batch);
        batch.assign(std::make_move_iterator(emits.begin()), std::make_move_iterator(split));
        emits.erase(emits.begin(), split);
      }
      misc_ops.clear();
      misc_ops.swap(misc);
      ingest_ops.clear();
      while (!ingests.empty()) {
        ingest_ops.push_back(std::move(ingests.front()));
        ingests.pop_front();
      }
    }
    run_batch(batch, misc_ops, ingest_ops);
  }
}

void EventLog::Impl::run_batch(std::vector<EmitOp>& taken, std::vector<MiscOp>& misc_ops,
                               std::vector<IngestOp>& ingest_ops) {
  Committed c;
  c.first = last_sequence;
  c.emits.swap(taken);
  std::vector<EmitOp>& batch = c.emits;
  c.results.resize(batch.size());
  c.misc.swap(misc_ops);
  c.ingests.swap(ingest_ops);
  // Handlers and streams get a batch's events from this copy. With none
  // (read once per batch), the emits are chained through one reused event
  // and dispatch_stored() reads the batch back should a listener arrive.
  const bool keep = listening.load();
  auto events = std::make_shared<std::vector<Event>>();
  if (keep) events->reserve(batch.size());
  const std::uint64_t seq0 = last_sequence;
  const EventHash hash0 = last_hash;
  const std::int64_t ts0 = last_ts;
  const std::uint64_t oseq0 = origin_sequence;
  HeadUndo undo;  // writer_heads entries before this batch changed them
  std::error_code ec;
  std::string why;
  try {
    if (fenced.empty() && sync_failed.load()) {
      std::lock_guard lock(sync_mutex);
      fenced = sync_failure;
    }
    if (!fenced.empty()) throw StoreError(fenced);
    write_store->begin();
    try {
      // One timestamp per batch, never earlier than the previous one: the
      // log's timestamps do not go back when the clock does.
      std::int64_t ts = std::max(now_us(), last_ts);
      Event scratch;
      scratch.origin = origin;
      for (std::size_t i = 0; i < batch.size(); ++i) {
        EmitOp& op = batch[i];
        Event& e = keep ? events->emplace_back() : scratch;
        if (keep) e.origin = origin;
        e.sequence = last_sequence + 1;
        e.origin_sequence = origin_sequence + 1;
        hasher.event_id(origin, e.origin_sequence, e.id);
        // Swapped, not moved: the op keeps the previous event's buffers,
        // freed with the batch rather than one by one here.
        e.type.swap(op.type);
        e.timestamp_us = ts;
        e.payload_json.swap(op.payload);
        e.prev_hash = last_hash;
        e.hash = hasher.event_hash(e);
        write_store->insert(e);
        c.results[i].sequence = e.sequence;
        c.results[i].id = e.id;
        last_sequence = e.sequence;
        last_hash = e.hash;
        last_ts = ts;
        ++origin_sequence;
      }
      if (!c.ingests.empty()) append_foreign(c.ingests, *events, undo);
      for (const auto& m : c.misc) {
        if (m.kind == MiscOp::Kind::type) {
          write_store->put_type(m.name, m.schema);
        } else {
          write_store->put_consumer(m.name, m.position);
        }
      }
      write_store->commit();
    } catch (...) {
      write_store->rollback();
      throw;
    }
  } catch (const std::exception& ex) {
    last_sequence = seq0;
    last_hash = hash0;
    last_ts = ts0;
    origin_sequence = oseq0;
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) writer_heads[it->first] = it->second;
    ec = make_error_code(errc::transport_error);
    why = ex.what();
    if (fenced.empty() && dynamic_cast<const EventStoreConflict*>(&ex)) {
      fenced = why + "; this log no longer writes (another writer has the store): reopen it";
      why = fenced;
    }
    spdlog::error("event log '{}': commit of {} events failed: {}", options.path, batch.size(),
                  why);
    // The batches before this one are published first, so that the heads
    // read back by the recovery are all published ones.
    wait_synced();
    if (fenced.empty()) recover_after_failed_commit(seq0);
    publish(c, ec, why);
    return;
  }

  c.last = last_sequence;
  c.own_moved = origin_sequence != oseq0;
  c.own_head = origin_sequence;
  for (const auto& [o, before] : undo) {
    if (writer_heads[o] > 0) c.foreign_heads.emplace_back(o, writer_heads[o]);
  }
  if (keep) {
    c.events = std::move(events);
  } else if (!events->empty()) {
    events.reset();  // foreign events nobody listens to: dispatch_stored
  }
  if (!deferred) return publish(c, {}, {});
  {
    std::lock_guard lock(sync_mutex);
    to_sync.push_back(std::move(c));
    ++sync_pending;
  }
  sync_cv.notify_one();
}

// The syncer: one fdatasync of the WAL for every batch committed since the
// last one, then the batches are published in order.
void EventLog::Impl::syncer_loop() {
  std::vector<Committed> items;
  for (;;) {
    {
      std::unique_lock lock(sync_mutex);
      sync_cv.wait(lock, [this] { return sync_stopping || !to_sync.empty(); });
      if (to_sync.empty()) return;  // stopping, drained
      items.clear();
      items.swap(to_sync);
    }
    std::error_code ec;
    std::string why;
    if (!sync_failed.load()) {
      try {
        deferred->sync();
      } catch (const std::exception& ex) {
        // Whether the batches reached the disk is unknown, and stays unknown
        // (a later fsync may succeed without the lost pages): the log stops
        // writing.
        std::lock_guard lock(sync_mutex);
        sync_failure = std::string(ex.what()) + "; this log no longer writes: reopen it";
        sync_failed = true;
        spdlog::error("event log '{}': {}", options.path, sync_failure);
      }
    }
    if (sync_failed.load()) {
      ec = make_error_code(errc::transport_error);
      std::lock_guard lock(sync_mutex);
      why = sync_failure;
    }
    for (auto& c : items) publish(c, ec, why);
    {
      std::lock_guard lock(sync_mutex);
      sync_pending -= items.size();
    }
    synced_cv.notify_all();
  }
}

void EventLog::Impl::wait_synced() {
  if (!deferred) return;
  std::unique_lock lock(sync_mutex);
  synced_cv.wait(lock, [this] { return sync_pending == 0; });
}

// Makes a durable batch visible: the committed head and origin heads, its
// emits' completions (one task on the log's executor, each completion then
// posting to its handler's executor), the other ops' completions, and its
// events to handlers and streams. With `ec`, everything fails instead.
void EventLog::Impl::publish(Committed& c, std::error_code ec, const std::string& why) {
  if (!ec) {
    if (c.own_moved || !c.foreign_heads.empty()) {
      std::lock_guard lock(heads_mutex);
      if (c.own_moved) heads[origin] = c.own_head;
      for (const auto& [o, head] : c.foreign_heads) heads[o] = head;
    }
    committed.store(c.last);
    stat_events += c.emits.size();
    if (!c.emits.empty()) ++stat_batches;
    if (c.emits.size() > stat_largest) stat_largest = c.emits.size();
  }
  if (!c.emits.empty()) {
    if (ec) {
      for (auto& r : c.results) r.error = Error(errc::transport_error, "event store: " + why);
    }
    asio::post(strand.get_inner_executor(),
               [emits = std::move(c.emits), results = std::move(c.results), ec]() mutable {
                 for (std::size_t i = 0; i < emits.size(); ++i) {
                   emits[i].done(ec, std::move(results[i]));
                 }
               });
  }
  for (auto& m : c.misc) {
    if (m.done) m.done(ec);
  }
  for (auto& op : c.ingests) {
    if (ec) op.result.stored = 0;
    op.done(ec, op.result);
  }
  if (ec) return;
  if (c.events) {
    if (!c.events->empty()) {
      asio::post(strand, [self = shared_from_this(), events = std::move(c.events)] {
        self->dispatch(events);
      });
    }
  } else if (c.last > c.first) {
    asio::post(strand, [self = shared_from_this(), upto = c.last] { self->dispatch_stored(upto); });
  }
}

// The writer's view of the chain's head and per-origin heads, from the
// store: at open, and after a failed commit.
void EventLog::Impl::load_heads() {
  auto head = write_store->head();
  last_sequence = head.sequence;
  last_hash = head.hash;
  // Our own newest timestamp: a foreign event's (another clock) must not
  // hold back or push forward ours.
  auto own = write_store->origin_head(origin);
  last_ts = own.timestamp_us;
  origin_sequence = own.origin_sequence;
  auto all = write_store->origin_heads();
  {
    std::lock_guard lock(heads_mutex);
    heads = all;
  }
  writer_heads = std::move(all);
  writer_heads.erase(origin);
  committed = head.sequence;
}

// A broker may keep a prefix of a batch whose commit failed (a publish
// acknowledged before the connection dropped); SQLite keeps nothing. Either
// way the head is read again, and events that did land are handed to
// handlers and streams like committed ones (their emits failed: the
// at-least-once case of docs/events.md).
void EventLog::Impl::recover_after_failed_commit(std::uint64_t seq0) {
  try {
    load_heads();
  } catch (const std::exception& ex) {
    fenced = std::string("event store: cannot read its head after a failed commit: ") + ex.what() +
             "; reopen the log";
    spdlog::error("event log '{}': {}", options.path, fenced);
    return;
  }
  if (last_sequence <= seq0) return;
  auto landed = std::make_shared<std::vector<Event>>();
  Event scratch;
  try {
    write_store->read(
        seq0 + 1, last_sequence, SIZE_MAX, [&](const Event& e) { landed->push_back(e); }, scratch);
  } catch (const std::exception& ex) {
    spdlog::error("event log '{}': reading events {}..{} after a failed commit: {}", options.path,
                  seq0 + 1, last_sequence, ex.what());
  }
  if (!landed->empty()) {
    asio::post(strand, [self = shared_from_this(), landed] { self->dispatch(landed); });
  }
}

// Foreign events (replication) join the chain after this batch's emits.
// Per origin only the next origin_sequence is taken, so a store holds events
// 1..n of every origin: duplicates and gaps are skipped and counted. They keep
// the origin's timestamp, which therefore does not move last_ts.
void EventLog::Impl::append_foreign(std::vector<IngestOp>& ops, std::vector<Event>& out,
                                    HeadUndo& undo) {
  std::size_t stored = 0;
  for (auto& op : ops) {
    for (Event& in : op.events) {
      const bool ours = in.origin == origin;
      std::uint64_t* head = &origin_sequence;
      if (!ours) {
        auto [it, added] = writer_heads.try_emplace(in.origin, 0);
        if (added || std::none_of(undo.begin(), undo.end(),
                                  [&](const auto& u) { return u.first == in.origin; })) {
          undo.emplace_back(in.origin, it->second);
        }
        head = &it->second;
      }
      if (in.origin_sequence <= *head) {
        ++op.result.duplicates;
        continue;
      }
      if (in.origin_sequence != *head + 1) {
        ++op.result.gaps;
        continue;
      }
      Event& e = out.emplace_back(std::move(in));
      e.sequence = last_sequence + 1;
      e.prev_hash = last_hash;
      e.hash = hasher.event_hash(e);
      write_store->insert(e);
      last_sequence = e.sequence;
      last_hash = e.hash;
      *head = e.origin_sequence;
      ++op.result.stored;
      ++stored;
    }
  }
  stat_foreign += stored;
}

void EventLog::Impl::dispatch(const std::shared_ptr<std::vector<Event>>& batch) {
  std::vector<std::shared_ptr<HandlerEntry>> hs;
  std::vector<std::shared_ptr<StreamState>> ss;
  {
    std::lock_guard lock(listeners_mutex);
    hs.reserve(handlers.size());
    for (auto& [id, h] : handlers) hs.push_back(h);
    for (auto& s : streams) {
      if (s->live) ss.push_back(s);
    }
  }
  for (const Event& e : *batch) {
    dispatched = e.sequence;
    for (auto& h : hs) {
      if (h->active && (h->type == "*" || h->type == e.type)) call_safely(h->fn, e);
    }
    for (auto& s : ss) s->deliver(e);
  }
  for (auto& s : ss) save_cursor(*s);
}

// A batch committed while nobody listened was not kept for dispatch. A
// handler or stream that has arrived since gets it from the store, in
// order, as if it had been kept.
void EventLog::Impl::dispatch_stored(std::uint64_t upto) {
  if (upto <= dispatched) return;
  if (!listening.load()) {
    dispatched = upto;
    return;
  }
  auto stored = std::make_shared<std::vector<Event>>();
  std::error_code ec;
  read(
      dispatched + 1, upto, std::numeric_limits<std::size_t>::max(),
      [&stored](const Event& e) { stored->push_back(e); }, ec);
  if (ec) {
    spdlog::error("event log '{}': events {}..{} could not be read for dispatch", options.path,
                  dispatched + 1, upto);
  }
  dispatch(stored);
  dispatched = upto;
}

void EventLog::Impl::catch_up(const std::shared_ptr<StreamState>& s) {
  if (s->closed) return;
  std::uint64_t upto = dispatched;
  if (options.read_only) upto = UINT64_MAX;  // no live feed: everything stored now
  if (s->next > upto) {
    s->live = true;
    save_cursor(*s);
    return;
  }
  std::error_code ec;
  std::size_t n = read(
      s->next, upto, 1024, [&s](const Event& e) { s->deliver(e); }, ec);
  if (ec) {
    spdlog::error("event log '{}': stream read failed; the stream stops", options.path);
    return;
  }
  save_cursor(*s);
  if (n == 0) {
    if (options.read_only) return;
    s->live = true;
    return;
  }
  // One chunk at a time, so a long replay does not starve the strand.
  asio::post(strand, [self = shared_from_this(), s] { self->catch_up(s); });
}

std::size_t EventLog::Impl::read(std::uint64_t from, std::uint64_t to, std::size_t max,
                                 const EventHandler& fn, std::error_code& ec) const {
  ec.clear();
  // A writing log hands out durable events only: SQLite shows a committed
  // batch to readers before the syncer has made it durable.
  if (!options.read_only) to = std::min(to, committed.load());
  if (from > to) return 0;
  std::lock_guard lock(read_mutex);
  Event scratch;
  try {
    return read_store->read(from, to, max, fn, scratch);
  } catch (const StoreError& ex) {
    spdlog::error("{}", ex.what());
    ec = make_error_code(errc::transport_error);
    return 0;
  }
}

// ---- EventLog ----

EventLog::EventLog(asio::any_io_executor executor, EventLogOptions options)
    : impl_(std::make_shared<Impl>(std::move(executor), std::move(options))) {
  Impl& d = *impl_;
  if (d.options.path.empty()) throw Error(errc::invalid_argument, "event store: no path given");
  if (d.options.max_batch == 0) d.options.max_batch = 1;
  try {
    if (!d.options.read_only) {
      d.write_store = events::open_event_store(d.options, /*read_only=*/false,
                                               /*deferred_sync=*/true);
      d.deferred = dynamic_cast<events::SqliteStore*>(d.write_store.get());
      auto own = d.write_store->meta("origin");
      if (!own) {
        own = events::random_origin();
        d.write_store->begin();
        d.write_store->put_meta("origin", *own);
        d.write_store->commit();
      }
      d.origin = d.options.origin.empty() ? *own : d.options.origin;
      d.load_heads();
      d.dispatched = d.last_sequence;
      if (d.deferred) d.deferred->sync();  // the store's creation and origin
      for (auto& [name, text] : d.write_store->types()) {
        d.types[name] = std::make_shared<const Json>(parse_json(text));
      }
    }
    d.read_store = events::open_event_store(d.options, /*read_only=*/true);
    if (d.options.read_only) {
      d.origin =
          d.options.origin.empty() ? d.read_store->meta("origin").value_or("") : d.options.origin;
      for (auto& [name, text] : d.read_store->types()) {
        d.types[name] = std::make_shared<const Json>(parse_json(text));
      }
      d.committed = d.read_store->head().sequence;
      d.dispatched = d.committed;
    }
  } catch (const StoreError& ex) {
    throw Error(errc::invalid_argument, ex.what());
  } catch (const Json::exception& ex) {
    throw Error(errc::invalid_argument,
                "event store '" + d.options.path + "': a stored schema is not JSON: " + ex.what());
  }
  if (!d.options.read_only) {
    d.writer = std::thread([&d] { d.writer_loop(); });
    if (d.deferred) d.syncer = std::thread([&d] { d.syncer_loop(); });
  }
}

EventLog::~EventLog() {
  close();
}

void EventLog::close() {
  Impl& d = *impl_;
  {
    std::lock_guard lock(d.queue_mutex);
    if (d.closed) return;
    d.closed = true;
    d.stopping = true;
  }
  d.queue_cv.notify_one();
  if (d.writer.joinable()) d.writer.join();
  {
    std::lock_guard lock(d.sync_mutex);
    d.sync_stopping = true;
  }
  d.sync_cv.notify_one();
  if (d.syncer.joinable()) d.syncer.join();
  if (d.write_store) d.write_store->close();
  d.write_store.reset();
}

void EventLog::declare(const std::string& type, const Json& schema) {
  Impl& d = *impl_;
  if (type.empty() || type == "*") {
    throw Error(errc::invalid_argument, "event type must be a non-empty name other than '*'");
  }
  if (!schema.is_object()) {
    throw Error(errc::invalid_argument,
                "event type '" + type + "': the schema must be an object of fields");
  }
  if (auto err = check_schema_definition(schema)) {
    throw Error(errc::invalid_argument, "event type '" + type + "': " + *err);
  }
  if (d.options.read_only) {
    throw Error(errc::not_supported, "event store '" + d.options.path + "' is open read-only");
  }
  {
    std::unique_lock lock(d.types_mutex);
    d.types[type] = std::make_shared<const Json>(schema);
  }
  {
    std::lock_guard lock(d.queue_mutex);
    if (d.closed) throw Error(errc::closed, "the event log is closed");
    d.misc.push_back({Impl::MiscOp::Kind::type, type, schema.dump(), 0, {}});
  }
  d.queue_cv.notify_one();
}

std::optional<Json> EventLog::schema(const std::string& type) const {
  std::shared_lock lock(impl_->types_mutex);
  auto it = impl_->types.find(type);
  if (it == impl_->types.end()) return std::nullopt;
  return *it->second;
}

std::vector<std::string> EventLog::types() const {
  std::shared_lock lock(impl_->types_mutex);
  std::vector<std::string> out;
  for (auto& [name, s] : impl_->types) out.push_back(name);
  return out;
}

void EventLog::start_emit(std::string type, Json payload, EmitDone done) {
  Impl& d = *impl_;
  auto fail = [&](errc kind, std::string message) {
    EmitResult r;
    r.error = Error(kind, std::move(message));
    done(make_error_code(kind), std::move(r));
  };
  if (d.options.read_only) {
    return fail(errc::not_supported, "event store '" + d.options.path + "' is open read-only");
  }
  std::shared_ptr<const Json> schema;
  {
    std::shared_lock lock(d.types_mutex);
    auto it = d.types.find(type);
    if (it != d.types.end()) schema = it->second;
  }
  if (!schema) return fail(errc::invalid_argument, "event type '" + type + "' is not declared");
  if (!payload.is_object()) {
    return fail(
        errc::invalid_argument,
        "event '" + type + "': the payload must be a JSON object, got " + payload.type_name());
  }
  if (auto err = validate_payload(*schema, payload)) {
    return fail(errc::payload_validation, "event '" + type + "': " + *err);
  }
  std::string text;
  try {
    text = payload.dump();
  } catch (const Json::exception& ex) {  // invalid UTF-8 in a string
    return fail(errc::payload_validation, "event '" + type + "': " + ex.what());
  }
  {
    std::lock_guard lock(d.queue_mutex);
    if (d.closed) {
      // Not under the lock: done posts, but keep the lock short anyway.
    } else {
      d.emits.push_back({std::move(type), std::move(text), std::move(done)});
      d.queue_cv.notify_one();
      return;
    }
  }
  fail(errc::closed, "the event log is closed");
}

void EventLog::start_save_consumer(std::string name, std::uint64_t position,
                                   std::function<void(std::error_code)> done) {
  Impl& d = *impl_;
  if (d.options.read_only) return done(make_error_code(errc::not_supported));
  if (name.empty()) return done(make_error_code(errc::invalid_argument));
  {
    std::lock_guard lock(d.queue_mutex);
    if (!d.closed) {
      d.misc.push_back(
          {Impl::MiscOp::Kind::consumer, std::move(name), {}, position, std::move(done)});
      d.queue_cv.notify_one();
      return;
    }
  }
  done(make_error_code(errc::closed));
}

EventLog::HandlerId EventLog::on(const std::string& type, EventHandler handler) {
  auto entry = std::make_shared<HandlerEntry>();
  entry->type = type.empty() ? "*" : type;
  entry->fn = std::move(handler);
  std::lock_guard lock(impl_->listeners_mutex);
  HandlerId id = impl_->next_handler_id++;
  impl_->handlers.emplace(id, std::move(entry));
  impl_->update_listening();
  return id;
}

bool EventLog::off(HandlerId id) {
  std::lock_guard lock(impl_->listeners_mutex);
  auto it = impl_->handlers.find(id);
  if (it == impl_->handlers.end()) return false;
  it->second->active = false;
  impl_->handlers.erase(it);
  impl_->update_listening();
  return true;
}

std::shared_ptr<EventStream> EventLog::stream(StreamOptions options, EventHandler handler) {
  Impl& d = *impl_;
  auto s = std::make_shared<Impl::Stream>();
  s->log = impl_;
  s->fn = std::move(handler);
  std::uint64_t next = 1;
  switch (options.from.kind) {
    case StreamFrom::Kind::beginning:
      next = 1;
      break;
    case StreamFrom::Kind::sequence:
      next = std::max<std::uint64_t>(options.from.sequence, 1);
      break;
    case StreamFrom::Kind::now:
      next = last_sequence() + 1;
      break;
  }
  if (!options.consumer.empty()) {
    if (auto pos = consumer_position(options.consumer)) {
      next = *pos + 1;
      s->saved = *pos;
    }
  }
  s->next = next;
  s->options = std::move(options);
  {
    std::lock_guard lock(d.listeners_mutex);
    d.streams.push_back(s);
    d.update_listening();
  }
  asio::post(d.strand, [self = impl_, s] { self->catch_up(s); });
  return s;
}

void EventLog::start_ingest(std::vector<Event> events, IngestDone done) {
  Impl& d = *impl_;
  if (d.options.read_only) return done(make_error_code(errc::not_supported), {});
  Impl::IngestOp op;
  op.events.reserve(events.size());
  for (Event& e : events) {
    std::shared_ptr<const Json> schema;
    {
      std::shared_lock lock(d.types_mutex);
      auto it = d.types.find(e.type);
      if (it != d.types.end()) schema = it->second;
    }
    switch (events::check_foreign(e, schema.get())) {
      case events::ForeignCheck::ok:
        break;
      case events::ForeignCheck::schema_mismatch:
        ++op.result.schema_mismatches;
        break;
      case events::ForeignCheck::malformed:
        ++op.result.rejected;
        continue;
    }
    op.events.push_back(std::move(e));
  }
  op.done = std::move(done);
  {
    std::lock_guard lock(d.queue_mutex);
    if (!d.closed) {
      d.ingests.push_back(std::move(op));
      d.queue_cv.notify_one();
      return;
    }
  }
  op.done(make_error_code(errc::closed), op.result);
}

std::map<std::string, std::uint64_t> EventLog::origin_heads() const {
  if (!impl_->options.read_only) {
    std::lock_guard lock(impl_->heads_mutex);
    return impl_->heads;
  }
  std::lock_guard lock(impl_->read_mutex);
  try {
    return impl_->read_store->origin_heads();
  } catch (const StoreError& ex) {
    spdlog::error("{}", ex.what());
    return {};
  }
}

std::uint64_t EventLog::origin_head(const std::string& origin) const {
  if (!impl_->options.read_only) {
    std::lock_guard lock(impl_->heads_mutex);
    auto it = impl_->heads.find(origin);
    return it == impl_->heads.end() ? 0 : it->second;
  }
  auto all = origin_heads();
  auto it = all.find(origin);
  return it == all.end() ? 0 : it->second;
}

std::size_t EventLog::read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                                  const EventHandler& fn, std::error_code& ec) const {
  ec.clear();
  std::lock_guard lock(impl_->read_mutex);
  Event scratch;
  try {
    if (impl_->options.read_only)
      return impl_->read_store->read_origin(origin, from, max, fn, scratch);
    // Durable events only (see Impl::read): an origin's newest events are
    // its last in the log, so the ones past `committed` are a tail.
    const std::uint64_t durable = impl_->committed.load();
    std::size_t n = 0;
    impl_->read_store->read_origin(
        origin, from, max,
        [&](const Event& e) {
          if (e.sequence > durable) return;
          ++n;
          fn(e);
        },
        scratch);
    return n;
  } catch (const StoreError& ex) {
    spdlog::error("{}", ex.what());
    ec = make_error_code(errc::transport_error);
    return 0;
  }
}

std::size_t EventLog::read(std::uint64_t from, std::size_t max, const EventHandler& fn,
                           std::error_code& ec) const {
  return impl_->read(from, UINT64_MAX, max, fn, ec);
}

std::uint64_t EventLog::last_sequence() const {
  if (!impl_->options.read_only) return impl_->committed.load();
  std::lock_guard lock(impl_->read_mutex);
  try {
    return impl_->read_store->head().sequence;
  } catch (const StoreError&) {
    return 0;
  }
}

std::optional<std::uint64_t> EventLog::consumer_position(const std::string& name) const {
  std::lock_guard lock(impl_->read_mutex);
  try {
    return impl_->read_store->consumer(name);
  } catch (const StoreError& ex) {
    spdlog::error("{}", ex.what());
    return std::nullopt;
  }
}

VerifyResult EventLog::verify() const {
  VerifyResult r;
  std::shared_ptr<EventStore> store;
  try {
    store = events::open_event_store(impl_->options, /*read_only=*/true);
  } catch (const std::exception& ex) {
    r.ok = false;
    r.first_bad = 1;
    r.reason = ex.what();
    return r;
  }
  EventHash prev{};
  std::uint64_t expect = 1;
  Event scratch;
  auto bad = [&](std::uint64_t seq, std::string why) {
    if (!r.ok) return;
    r.ok = false;
    r.first_bad = seq;
    r.reason = std::move(why);
  };
  try {
    for (;;) {
      std::size_t n = store->read(
          expect, UINT64_MAX, 65536,
          [&](const Event& e) {
            if (!r.ok) return;
            if (e.sequence != expect) {
              return bad(expect, "event " + std::to_string(expect) + " is missing (next is " +
                                     std::to_string(e.sequence) + ")");
            }
            if (e.prev_hash != prev) {
              return bad(e.sequence, "its prev_hash is not the hash of event " +
                                         std::to_string(e.sequence - 1));
            }
            if (events::event_hash(e) != e.hash) {
              return bad(e.sequence, "its hash does not match its contents");
            }
            if (events::event_id(e.origin, e.origin_sequence) != e.id) {
              return bad(e.sequence, "its id does not match its origin and origin_sequence");
            }
            prev = e.hash;
            r.head = e.hash;
            ++r.events;
            ++expect;
          },
          scratch);
      if (n == 0 || !r.ok) break;
    }
  } catch (const StoreError& ex) {
    bad(expect, ex.what());
  }
  return r;
}

const std::string& EventLog::origin() const {
  return impl_->origin;
}
const std::string& EventLog::path() const {
  return impl_->options.path;
}
EventLogStats EventLog::stats() const {
  return {impl_->stat_events.load(), impl_->stat_batches.load(), impl_->stat_largest.load(),
          impl_->stat_foreign.load()};
}
asio::any_io_executor EventLog::executor() const {
  return impl_->strand;
}

}  // namespace switchboard
