// EventLog: an event-sourced, tamper-evident log over an embedded store
// (SQLite in WAL mode), the model of HyperEmitter.
//
//   EventLogOptions options;
//   options.path = "orders.db";
//   EventLog log(io.get_executor(), options);
//   log.declare("order.created", {{"id", {{"type", "integer"}, {"required", true}}}});
//   log.on("order.created", [](const Event& e) { ... });          // live events
//   log.emit("order.created", {{"id", 7}}, [](std::error_code ec, EmitResult r) {
//     // r.sequence, r.id: the event is on disk
//   });
//
// The store is SQLite by default; EventLogOptions::backend puts it on a
// broker instead (a JetStream stream, a Kafka topic) through an event-store
// plugin, with the same API (event_store.hpp, docs/events.md "Backends").
//
// Durability: emit() completes once the event's transaction has been
// committed and fsynced (SQLite WAL, synchronous=FULL; a broker: its ack). Concurrent emits are
// group-committed by one writer thread: one transaction and one fsync per
// batch. A crash (kill -9, power loss within what the disk promises) keeps
// every acknowledged event and never leaves a partial one.
//
// Threading: the log's state for handlers and streams lives on the executor
// it was given, wrapped in a strand. emit(), declare(), read(), verify(),
// save_consumer() and close() may be called from any thread. on(), off() and
// stream() may be called from any thread too; their handlers run on the
// log's strand. emit() completions run on the token's associated executor
// (the log's strand when it has none), always posted, never inside emit().
//
// Tamper evidence: each event stores the SHA-256 of its predecessor and its
// own hash over its fields and the predecessor's hash; verify() walks the
// chain and names the first sequence that does not fit. docs/events.md has
// the exact bytes hashed. Events replicated from other logs (ingest()) join
// the local chain under local sequences, so verify() covers them too.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/error.hpp"
#include "switchboard/json.hpp"
#include "switchboard/json_parse.hpp"
#include "switchboard/prelude.hpp"

namespace switchboard {

using EventHash = std::array<std::uint8_t, 32>;  // SHA-256
std::string to_hex(const EventHash& hash);

// One event as stored.
struct Event {
  std::uint64_t sequence = 0;         // position in this log, 1, 2, 3, ... without gaps
  std::string id;                     // 32 hex chars, derived from (origin, origin_sequence)
  std::string type;                   // a declared type, e.g. "order.created"
  std::string origin;                 // node id of the emitter that created it
  std::uint64_t origin_sequence = 0;  // 1, 2, 3, ... per origin
  std::int64_t timestamp_us = 0;      // microseconds since the Unix epoch, at commit
  std::string payload_json;           // the payload as stored (a JSON object's text)
  EventHash prev_hash{};              // hash of event sequence - 1; zeros for the first
  EventHash hash{};                   // SHA-256 over the fields above, see docs/events.md

  // Parses payload_json. Replay hands out the text so that a handler which
  // does not need the payload does not pay for parsing it.
  Json payload() const { return parse_json(payload_json); }
  // {sequence, id, type, origin, origin_sequence, timestamp_us, payload,
  // prev_hash, hash} with hashes in hex: the NDJSON export line.
  Json to_json() const;
};

// What an emit completes with.
struct EmitResult {
  std::uint64_t sequence = 0;
  std::string id;
  std::optional<Error> error;  // set whenever the error_code is set (which field, ...)
};

// Where a stream starts.
struct StreamFrom {
  enum class Kind { beginning, sequence, now };
  Kind kind = Kind::now;
  std::uint64_t sequence = 0;  // with Kind::sequence: the first sequence delivered

  static StreamFrom beginning() { return {Kind::beginning, 0}; }
  static StreamFrom at(std::uint64_t sequence) { return {Kind::sequence, sequence}; }
  static StreamFrom now() { return {Kind::now, 0}; }
};

struct StreamOptions {
  StreamFrom from = StreamFrom::now();
  std::string type;  // only events of this type; empty: every type
  // A named consumer: its stored cursor (the last sequence it processed)
  // wins over `from`, and the cursor is saved as events are handled, so a
  // restart resumes after the last saved event (at-least-once: events after
  // the last saved cursor are delivered again).
  std::string consumer;
};

struct EventLogOptions {
  // Where the log is kept: "sqlite" (built in, the default) or an event-store
  // plugin's backend name, "jetstream" or "kafka" (the plugin
  // libswitchboard-<backend>-events.so). docs/events.md, "Backends".
  std::string backend = "sqlite";
  // sqlite: the file (`-wal`, `-shm` and `.lock` files sit beside it).
  // Broker backends: the log's name (JetStream: the stream; Kafka: the topic).
  std::string path;
  std::string url;  // broker backends: "nats://host:4222", "kafka://host:9092"
  Json backend_options = Json::object();  // broker backends: their own options (docs/events.md)
  std::vector<std::string> plugin_path;   // where to look for the backend's plugin first
  std::string origin;  // node id; empty: the store's own (random, made when it was created)
  std::size_t max_batch = 16384;  // events per group commit at most
  // Open without the writer: no emit, declare or save_consumer (they fail
  // with errc::not_supported); another process may write meanwhile.
  bool read_only = false;
};

// Group commit counters.
struct EventLogStats {
  std::uint64_t events = 0;   // events committed by this instance (emits)
  std::uint64_t batches = 0;  // transactions (one fsync each)
  std::uint64_t largest_batch = 0;
  std::uint64_t foreign_events = 0;  // events of other origins stored by ingest()
};

// What ingest() did with a batch of events made by other logs.
struct IngestResult {
  std::size_t stored = 0;      // appended, with new local sequences
  std::size_t duplicates = 0;  // here already (origin_sequence <= the origin's head)
  std::size_t gaps = 0;        // not stored: an earlier event of their origin is missing
  std::size_t rejected = 0;    // malformed (id does not match, payload not an object, ...)
  // Stored although the payload does not fit the local schema of its type
  // (the origin validated it against its own; see docs/events.md).
  std::size_t schema_mismatches = 0;
};

// What verify() found.
struct VerifyResult {
  bool ok = true;
  std::uint64_t events = 0;     // events checked
  std::uint64_t first_bad = 0;  // the first sequence that does not fit; 0 when ok
  std::string reason;           // why (hash mismatch, gap, broken link, ...)
  EventHash head{};             // hash of the last good event: anchor it elsewhere
};

using EventHandler = std::function<void(const Event&)>;

// A live stream; close() stops delivery. Destroying the handle does not.
class EventStream {
 public:
  virtual ~EventStream() = default;
  virtual void close() = 0;
  // The last sequence delivered (or the one before the start).
  virtual std::uint64_t position() const = 0;
};

class EventLog {
 public:
  // Opens or creates the store. Throws Error (invalid_argument) when the
  // file cannot be opened, is not an event store, or another process holds
  // it for writing. Start-up only: no exceptions afterwards.
  EventLog(asio::any_io_executor executor, EventLogOptions options);
  ~EventLog();  // close()
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  // Declares (or re-declares) an event type with the schema of its payload:
  // {field: {type: "integer", required: true, ...}} as in add patterns (see
  // docs/runtime.md, payload schemas). Stored with the next commit. Throws
  // Error (invalid_argument) for a bad schema or type name.
  void declare(const std::string& type, const Json& schema);
  std::optional<Json> schema(const std::string& type) const;
  std::vector<std::string> types() const;

  // Appends one event. Completion: void(std::error_code, EmitResult), once
  // durable. Errors: payload_validation (EmitResult::error names the field),
  // invalid_argument (undeclared type, payload not an object),
  // not_supported (read-only), closed, transport_error (the store failed).
  template <typename Token>
  auto emit(std::string type, Json payload, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, EmitResult)>(
        [this](auto handler, std::string type, Json payload) {
          using H = std::decay_t<decltype(handler)>;
          auto h = std::make_shared<H>(std::move(handler));
          auto ex = asio::get_associated_executor(*h, executor());
          // Outstanding work until it completes, so that io_context::run()
          // does not return while an emit waits for its commit.
          auto work = std::make_shared<asio::executor_work_guard<decltype(ex)>>(ex);
          start_emit(
              std::move(type), std::move(payload), [h, ex, work](std::error_code ec, EmitResult r) {
                asio::post(
                    ex, [h, ec, r = std::move(r)]() mutable { std::move (*h)(ec, std::move(r)); });
                work->reset();
              });
        },
        token, std::move(type), std::move(payload));
  }

  // Live handlers for new events of `type` ("*": every type), on the log's
  // strand, after their commit. off() removes one; returns whether it was there.
  using HandlerId = std::uint64_t;
  HandlerId on(const std::string& type, EventHandler handler);
  bool off(HandlerId id);

  // Replays stored events from `options.from` (or the consumer's cursor)
  // and then follows new ones, in sequence order, each once, on the log's
  // strand. `from = now` delivers only events committed after the call.
  std::shared_ptr<EventStream> stream(StreamOptions options, EventHandler handler);

  // Synchronous reads for tools: up to `max` events with sequence >= from,
  // in order; `fn` gets each (the Event is reused between calls). Returns
  // how many were read, or sets `ec`.
  std::size_t read(std::uint64_t from, std::size_t max, const EventHandler& fn,
                   std::error_code& ec) const;
  std::uint64_t last_sequence() const;  // the newest committed sequence; 0 for an empty log

  // Named consumers' cursors: the last sequence a consumer processed.
  std::optional<std::uint64_t> consumer_position(const std::string& name) const;
  // Stores a cursor; completion void(std::error_code) once durable.
  template <typename Token>
  auto save_consumer(std::string name, std::uint64_t position, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code)>(
        [this](auto handler, std::string name, std::uint64_t position) {
          using H = std::decay_t<decltype(handler)>;
          auto h = std::make_shared<H>(std::move(handler));
          auto ex = asio::get_associated_executor(*h, executor());
          auto work = std::make_shared<asio::executor_work_guard<decltype(ex)>>(ex);
          start_save_consumer(std::move(name), position, [h, ex, work](std::error_code ec) {
            asio::post(ex, [h, ec]() mutable { std::move (*h)(ec); });
            work->reset();
          });
        },
        token, std::move(name), position);
  }

  // ---- Replication (EventReplicator in event_replication.hpp uses these) ----

  // Stores events made by other logs (keeping their id, type, origin,
  // origin_sequence, timestamp and payload; sequence and hashes are ignored
  // and assigned here, in the local chain). Per origin, an event is stored
  // only right after its predecessor (origin_sequence = head + 1); older
  // ones are duplicates, later ones gaps: both are skipped. Malformed events
  // are rejected (logged). Foreign types need no declaration here.
  // Completion: void(std::error_code, IngestResult) once durable, on the
  // token's executor (the log's strand when it has none). Errors:
  // not_supported (read-only), closed, transport_error (the store failed;
  // nothing of the batch is stored).
  template <typename Token>
  auto ingest(std::vector<Event> events, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, IngestResult)>(
        [this](auto handler, std::vector<Event> events) {
          using H = std::decay_t<decltype(handler)>;
          auto h = std::make_shared<H>(std::move(handler));
          auto ex = asio::get_associated_executor(*h, executor());
          auto work = std::make_shared<asio::executor_work_guard<decltype(ex)>>(ex);
          start_ingest(std::move(events), [h, ex, work](std::error_code ec, IngestResult r) {
            asio::post(ex, [h, ec, r]() mutable { std::move (*h)(ec, r); });
            work->reset();
          });
        },
        token, std::move(events));
  }

  // Per origin, the highest origin_sequence stored (events 1..n of that
  // origin are all here): the replication cursors. Committed state only.
  std::map<std::string, std::uint64_t> origin_heads() const;
  std::uint64_t origin_head(const std::string& origin) const;  // 0 when none

  // Up to `max` events of `origin` with origin_sequence >= from, in
  // origin_sequence order (synchronous, like read()).
  std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                          const EventHandler& fn, std::error_code& ec) const;

  // Walks the whole chain from sequence 1 (with its own connection).
  VerifyResult verify() const;

  // Finishes queued emits (they complete), stops the writer. Later emits
  // fail with errc::closed. Blocking; idempotent.
  void close();

  const std::string& origin() const;
  const std::string& path() const;
  EventLogStats stats() const;
  asio::any_io_executor executor() const;

 private:
  using EmitDone = std::function<void(std::error_code, EmitResult)>;
  void start_emit(std::string type, Json payload, EmitDone done);
  void start_save_consumer(std::string name, std::uint64_t position,
                           std::function<void(std::error_code)> done);
  using IngestDone = std::function<void(std::error_code, IngestResult)>;
  void start_ingest(std::vector<Event> events, IngestDone done);

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace switchboard
