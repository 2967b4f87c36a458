// The event log's embedded store: one SQLite file in WAL mode with
// synchronous=FULL, so that a COMMIT returns after the WAL is fsynced. Tables
// (docs/events.md): meta, events, types, consumers.
//
// Sync::deferred splits the two: synchronous=NORMAL, so that COMMIT writes
// the WAL without waiting for the disk, and sync() fdatasyncs the WAL, making
// every transaction committed before the call durable. The event log's
// writer commits the next batch while another thread syncs the previous one
// and acknowledges it only then. Checkpoints (copying the WAL into the
// database file) then run on a thread and connection of the store's own,
// PASSIVE every 200 ms, instead of inside the writer's COMMIT.
//
// One SqliteStore is one connection; it is not shared between threads
// without a lock. Failures throw StoreError (caught at the EventLog's
// boundaries and turned into error codes). Opened for writing, it holds an
// exclusive flock on `<path>.lock`: one writing process per file.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "switchboard/event_store.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace switchboard::events {

using StoreError = EventStoreError;

class WriterLock;

class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, const char* sql);
  ~Statement();
  Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteStore final : public EventStore {
 public:
  enum class Mode { read_write, read_only };
  enum class Sync { on_commit, deferred };
  SqliteStore(const std::string& path, Mode mode, Sync sync = Sync::on_commit);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  Head head() override;
  OriginHead origin_head(const std::string& origin) override;
  std::map<std::string, std::uint64_t> origin_heads() override;
  std::optional<std::string> meta(const std::string& key) override;
  std::map<std::string, std::string> types() override;
  std::optional<std::uint64_t> consumer(const std::string& name) override;

  // Writing (read_write only): one transaction per group commit.
  void begin() override;
  void commit() override;  // returns after the fsync
  void rollback() noexcept override;
  // Buffered: rows go to SQLite kRowsPerInsert at a time (and the rest at
  // commit()), so an error may surface at a later insert() or at commit().
  void insert(const Event& e) override;
  void put_meta(const std::string& key, const std::string& value) override;
  void put_type(const std::string& name, const std::string& schema) override;
  void put_consumer(const std::string& name, std::uint64_t position) override;

  std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max,
                   const std::function<void(const Event&)>& fn, Event& scratch) override;
  std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                          const std::function<void(const Event&)>& fn, Event& scratch) override;

  // Checkpoints the WAL into the main file, so that a closed store is one
  // file (unless a reader holds a snapshot; then the WAL stays).
  void close() noexcept override;

  // Sync::deferred: makes every transaction committed so far durable (an
  // fdatasync of the WAL file). The one call another thread may make while
  // the connection's thread writes: it touches the file, not the connection.
  void sync();

  void exec(const char* sql);

 private:
  [[noreturn]] void fail(const std::string& what) const;
  std::unique_ptr<WriterLock> lock_;
  sqlite3* db_ = nullptr;
  std::string path_;
  Sync sync_ = Sync::on_commit;
  // Sync::deferred: the checkpointer's connection and thread.
  void checkpoint_loop();
  void stop_checkpointer() noexcept;
  sqlite3* checkpoint_db_ = nullptr;
  std::thread checkpointer_;
  std::mutex checkpoint_mutex_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_stop_ = false;
  int wal_fd_ = -1;  // sync(): the WAL file, opened at the first sync
  unsigned long wal_inode_ = 0;
  std::size_t step_events(sqlite3_stmt* s, const std::function<void(const Event&)>& fn, Event& e);
  Statement insert_, read_, read_origin_, put_consumer_;

  // insert()'s buffer: one multi-row INSERT per kRowsPerInsert events, as a
  // statement's fixed cost (step, halt, reset, cursors) was about a fifth of
  // an event's insert. The rows' text is copied into arena_ (the caller
  // reuses its Event) and bound from there.
  static constexpr std::size_t kRowsPerInsert = 32;
  struct PendingRow {
    std::uint64_t sequence, origin_sequence;
    std::int64_t timestamp_us;
    std::size_t at[4], size[4];  // id, type, origin, payload in arena_
    EventHash prev_hash, hash;
  };
  void flush_inserts();
  Statement insert_rows_;  // kRowsPerInsert rows
  std::vector<PendingRow> pending_;
  std::string arena_;
};

}  // namespace switchboard::events
