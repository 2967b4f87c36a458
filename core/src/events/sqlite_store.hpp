// The event log's embedded store: one SQLite file in WAL mode with
// synchronous=FULL, so that a COMMIT returns after the WAL is fsynced. Tables
// (docs/events.md): meta, events, types, consumers.
//
// One SqliteStore is one connection; it is not shared between threads
// without a lock. Failures throw StoreError (caught at the EventLog's
// boundaries and turned into error codes).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

#include "switchboard/event_log.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace switchboard::events {

struct StoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

class SqliteStore {
 public:
  enum class Mode { read_write, read_only };
  SqliteStore(const std::string& path, Mode mode);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  struct Head {
    std::uint64_t sequence = 0;
    EventHash hash{};
    std::int64_t timestamp_us = 0;
  };
  Head head();
  std::uint64_t max_origin_sequence(const std::string& origin);
  // Per origin, the highest origin_seq (replication cursors).
  std::map<std::string, std::uint64_t> origin_heads();
  // The timestamp of origin's newest event; 0 when it has none.
  std::int64_t origin_last_timestamp(const std::string& origin);
  std::optional<std::string> meta(const std::string& key);
  std::map<std::string, std::string> types();
  std::optional<std::uint64_t> consumer(const std::string& name);

  // Writing (read_write only): one transaction per group commit.
  void begin();
  void commit();  // returns after the fsync
  void rollback() noexcept;
  void insert(const Event& e);
  void put_meta(const std::string& key, const std::string& value);
  void put_type(const std::string& name, const std::string& schema);
  void put_consumer(const std::string& name, std::uint64_t position);

  // Events with from <= sequence <= to, at most `max`, in order; `scratch`
  // is filled and handed to fn for each. Returns how many.
  std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max,
                   const std::function<void(const Event&)>& fn, Event& scratch);

  // Events of `origin` with origin_seq >= from, at most `max`, in
  // origin_seq order.
  std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                          const std::function<void(const Event&)>& fn, Event& scratch);

  void exec(const char* sql);

 private:
  [[noreturn]] void fail(const std::string& what) const;
  sqlite3* db_ = nullptr;
  std::string path_;
  std::size_t step_events(sqlite3_stmt* s, const std::function<void(const Event&)>& fn, Event& e);
  Statement insert_, read_, read_origin_, put_consumer_;
};

}  // namespace switchboard::events
