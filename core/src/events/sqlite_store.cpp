#include "sqlite_store.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace switchboard::events {
namespace {

constexpr const char* kFormat = "switchboard-events";
constexpr const char* kVersion = "1";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
  seq INTEGER PRIMARY KEY,
  id TEXT NOT NULL,
  type TEXT NOT NULL,
  origin TEXT NOT NULL,
  origin_seq INTEGER NOT NULL,
  ts INTEGER NOT NULL,
  payload TEXT NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL,
  UNIQUE(origin, origin_seq));
CREATE TABLE IF NOT EXISTS types(name TEXT PRIMARY KEY, schema TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS consumers(name TEXT PRIMARY KEY, position INTEGER NOT NULL);
)sql";

void copy_hash(sqlite3_stmt* s, int col, EventHash& out) {
  out.fill(0);
  const void* p = sqlite3_column_blob(s, col);
  int n = sqlite3_column_bytes(s, col);
  if (p) std::memcpy(out.data(), p, std::min<std::size_t>(static_cast<std::size_t>(n), out.size()));
}

void assign_text(sqlite3_stmt* s, int col, std::string& out) {
  const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(s, col));
  out.assign(p ? p : "", static_cast<std::size_t>(sqlite3_column_bytes(s, col)));
}

}  // namespace

// Other processes may not write the store while this one does: the writer
// holds an exclusive flock on `<path>.lock` (released by the kernel when the
// process dies, kill -9 included).
class WriterLock {
 public:
  explicit WriterLock(const std::string& path) {
    std::string lock_path = path + ".lock";
    fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw StoreError("event store '" + path + "': cannot open " + lock_path + ": " +
                       std::generic_category().message(errno));
    }
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw StoreError("event store '" + path + "' is open for writing in another process");
    }
  }
  ~WriterLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  int fd_ = -1;
};

Statement::Statement(sqlite3* db, const char* sql) : db_(db) {
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
    throw StoreError(std::string("prepare: ") + sqlite3_errmsg(db));
  }
}

Statement::~Statement() {
  sqlite3_finalize(stmt_);
}

Statement& Statement::operator=(Statement&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

SqliteStore::SqliteStore(const std::string& path, Mode mode, Sync sync) : path_(path), sync_(sync) {
  if (mode == Mode::read_write) lock_ = std::make_unique<WriterLock>(path);
  int flags =
      mode == Mode::read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;  // one thread at a time, by contract
  if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("cannot open event store '" + path + "': " + why);
  }
  try {
    sqlite3_busy_timeout(db_, 5000);
    if (mode == Mode::read_write) {
      // WAL + FULL: a commit is durable when COMMIT returns (the WAL is
      // fsynced); a torn tail of the WAL fails its checksum and is dropped on
      // recovery. A larger checkpoint interval keeps the extra fsyncs of
      // checkpoints rare. Deferred: NORMAL still syncs the WAL before a
      // checkpoint copies it and the database after; sync() does the rest.
      exec("PRAGMA journal_mode=WAL");
      exec(sync_ == Sync::deferred ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
      // Deferred: no checkpoint inside a COMMIT; the checkpointer does them.
      exec(sync_ == Sync::deferred ? "PRAGMA wal_autocheckpoint=0"
                                   : "PRAGMA wal_autocheckpoint=8192");
      exec("PRAGMA journal_size_limit=67108864");
      exec("PRAGMA cache_size=-16384");
      exec(kSchema);
      auto format = meta("format");
      if (!format) {
        begin();
        put_meta("format", kFormat);
        put_meta("version", kVersion);
        commit();
      } else if (*format != kFormat) {
        fail("not an event store (meta.format is '" + *format + "')");
      }
    } else {
      auto format = meta("format");
      if (!format || *format != kFormat) fail("not an event store");
    }
    read_ = Statement(db_,
                      "SELECT seq, id, type, origin, origin_seq, ts, payload, prev_hash, hash "
                      "FROM events WHERE seq >= ? AND seq <= ? ORDER BY seq LIMIT ?");
    read_origin_ = Statement(db_,
                             "SELECT seq, id, type, origin, origin_seq, ts, payload, prev_hash, "
                             "hash FROM events WHERE origin = ? AND origin_seq >= ? "
                             "ORDER BY origin_seq LIMIT ?");
    if (mode == Mode::read_write) {
      insert_ = Statement(db_,
                          "INSERT INTO events(seq, id, type, origin, origin_seq, ts, payload, "
                          "prev_hash, hash) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)");
      // OR ROLLBACK: a conflict on UNIQUE(origin, origin_seq) still fails
      // the insert (and the batch, which the log rolls back anyway), without
      // the statement journal that undoing part of a multi-row statement
      // would need.
      std::string rows =
          "INSERT OR ROLLBACK INTO events(seq, id, type, origin, origin_seq, ts, payload, "
          "prev_hash, hash) VALUES(?,?,?,?,?,?,?,?,?)";
      for (std::size_t i = 1; i < kRowsPerInsert; ++i) rows.append(",(?,?,?,?,?,?,?,?,?)");
      insert_rows_ = Statement(db_, rows.c_str());
      pending_.reserve(kRowsPerInsert);
      put_consumer_ = Statement(db_,
                                "INSERT INTO consumers(name, position) VALUES(?, ?) "
                                "ON CONFLICT(name) DO UPDATE SET position = excluded.position");
      if (sync_ == Sync::deferred) {
        if (sqlite3_open_v2(path.c_str(), &checkpoint_db_,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr) != SQLITE_OK) {
          std::string why = checkpoint_db_ ? sqlite3_errmsg(checkpoint_db_) : "out of memory";
          sqlite3_close(checkpoint_db_);
          checkpoint_db_ = nullptr;
          fail("cannot open a checkpoint connection: " + why);
        }
        // NORMAL: a checkpoint syncs the WAL before copying it and the
        // database file after, so the WAL may then be reused.
        sqlite3_exec(checkpoint_db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
        checkpointer_ = std::thread([this] { checkpoint_loop(); });
      }
    }
  } catch (...) {
    insert_ = Statement();
    insert_rows_ = Statement();
    read_ = Statement();
    read_origin_ = Statement();
    put_consumer_ = Statement();
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
}

SqliteStore::~SqliteStore() {
  stop_checkpointer();
  if (wal_fd_ >= 0) ::close(wal_fd_);
  insert_ = Statement();
  insert_rows_ = Statement();
  read_ = Statement();
  read_origin_ = Statement();
  put_consumer_ = Statement();
  sqlite3_close(db_);
}

void SqliteStore::fail(const std::string& what) const {
  throw StoreError("event store '" + path_ + "': " + what);
}

void SqliteStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string why = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    fail(why);
  }
}

SqliteStore::Head SqliteStore::head() {
  Statement s(db_, "SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1");
  Head h;
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW) {
    h.sequence = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
    copy_hash(s.get(), 1, h.hash);
  } else if (rc != SQLITE_DONE) {
    fail(sqlite3_errmsg(db_));
  }
  return h;
}

EventStore::OriginHead SqliteStore::origin_head(const std::string& origin) {
  Statement s(
      db_, "SELECT origin_seq, ts FROM events WHERE origin = ? ORDER BY origin_seq DESC LIMIT 1");
  sqlite3_bind_text(s.get(), 1, origin.data(), static_cast<int>(origin.size()), SQLITE_STATIC);
  OriginHead h;
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return h;
  if (rc != SQLITE_ROW) fail(sqlite3_errmsg(db_));
  h.origin_sequence = static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
  h.timestamp_us = sqlite3_column_int64(s.get(), 1);
  return h;
}

std::map<std::string, std::uint64_t> SqliteStore::origin_heads() {
  Statement s(db_, "SELECT origin, MAX(origin_seq) FROM events GROUP BY origin");
  std::map<std::string, std::uint64_t> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    std::string origin;
    assign_text(s.get(), 0, origin);
    out.emplace(std::move(origin), static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 1)));
  }
  if (rc != SQLITE_DONE) fail(sqlite3_errmsg(db_));
  return out;
}

std::optional<std::string> SqliteStore::meta(const std::string& key) {
  Statement s(db_, "SELECT value FROM meta WHERE key = ?");
  sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail(sqlite3_errmsg(db_));
  std::string out;
  assign_text(s.get(), 0, out);
  return out;
}

std::map<std::string, std::string> SqliteStore::types() {
  Statement s(db_, "SELECT name, schema FROM types");
  std::map<std::string, std::string> out;
  int rc;
  while ((rc = sqlite3_step(s.get())) == SQLITE_ROW) {
    std::string name, schema;
    assign_text(s.get(), 0, name);
    assign_text(s.get(), 1, schema);
    out.emplace(std::move(name), std::move(schema));
  }
  if (rc != SQLITE_DONE) fail(sqlite3_errmsg(db_));
  return out;
}

std::optional<std::uint64_t> SqliteStore::consumer(const std::string& name) {
  Statement s(db_, "SELECT position FROM consumers WHERE name = ?");
  sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) fail(sqlite3_errmsg(db_));
  return static_cast<std::uint64_t>(sqlite3_column_int64(s.get(), 0));
}

void SqliteStore::close() noexcept {
  stop_checkpointer();
  try {
    if (lock_) exec("PRAGMA wal_checkpoint(TRUNCATE)");
  } catch (const StoreError&) {
  }
}

// PASSIVE: copies the frames no reader still needs and never waits for the
// writer. A failure (busy, I/O) is left to the next round; the WAL grows
// meanwhile, and an I/O error shows in the writer's sync() too.
void SqliteStore::checkpoint_loop() {
  std::unique_lock lock(checkpoint_mutex_);
  while (!checkpoint_stop_) {
    checkpoint_cv_.wait_for(lock, std::chrono::milliseconds(200));
    if (checkpoint_stop_) break;
    lock.unlock();
    sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
  }
}

void SqliteStore::stop_checkpointer() noexcept {
  {
    std::lock_guard lock(checkpoint_mutex_);
    checkpoint_stop_ = true;
  }
  checkpoint_cv_.notify_one();
  if (checkpointer_.joinable()) checkpointer_.join();
  sqlite3_close(checkpoint_db_);
  checkpoint_db_ = nullptr;
}

void SqliteStore::sync() {
  if (sync_ != Sync::deferred) return;
  const std::string wal = path_ + "-wal";
  auto error = [&](const char* what) {
    fail(std::string(what) + " " + wal + ": " + std::generic_category().message(errno));
  };
  // SQLite deletes the WAL only when the last connection closes (ours is
  // open), but check: an fdatasync of a replaced file would prove nothing.
  struct stat now {};
  if (::stat(wal.c_str(), &now) != 0) error("cannot stat");
  if (wal_fd_ < 0 || static_cast<unsigned long>(now.st_ino) != wal_inode_) {
    if (wal_fd_ >= 0) ::close(wal_fd_);
    wal_fd_ = ::open(wal.c_str(), O_RDONLY | O_CLOEXEC);
    if (wal_fd_ < 0) error("cannot open");
    struct stat opened {};
    if (::fstat(wal_fd_, &opened) != 0) error("cannot stat");
    wal_inode_ = static_cast<unsigned long>(opened.st_ino);
    // The file's directory entry, once, so that a new WAL survives a crash.
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) error("cannot open the directory of");
    int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) error("cannot fsync the directory of");
  }
  if (::fdatasync(wal_fd_) != 0) error("fdatasync of");
}

void SqliteStore::begin() {
  pending_.clear();
  arena_.clear();
  exec("BEGIN IMMEDIATE");
}

void SqliteStore::commit() {
  flush_inserts();
  exec("COMMIT");
}

void SqliteStore::rollback() noexcept {
  pending_.clear();
  arena_.clear();
  sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

void SqliteStore::insert(const Event& e) {
  PendingRow& row = pending_.emplace_back();
  row.sequence = e.sequence;
  row.origin_sequence = e.origin_sequence;
  row.timestamp_us = e.timestamp_us;
  row.prev_hash = e.prev_hash;
  row.hash = e.hash;
  const std::string* texts[4] = {&e.id, &e.type, &e.origin, &e.payload_json};
  for (int i = 0; i < 4; ++i) {
    row.at[i] = arena_.size();
    row.size[i] = texts[i]->size();
    arena_.append(*texts[i]);
  }
  if (pending_.size() == kRowsPerInsert) flush_inserts();
}

// Binds the pending rows (from arena_, which no longer grows meanwhile) to
// the multi-row statement when there are kRowsPerInsert of them, else one by
// one to the single-row one.
void SqliteStore::flush_inserts() {
  if (pending_.empty()) return;
  const bool full = pending_.size() == kRowsPerInsert;
  sqlite3_stmt* s = full ? insert_rows_.get() : insert_.get();
  auto step = [&](std::uint64_t first, std::uint64_t last) {
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc != SQLITE_DONE) {
      fail("insert of events " + std::to_string(first) + ".." + std::to_string(last) + ": " +
           sqlite3_errmsg(db_));
    }
  };
  int p = 1;
  for (const PendingRow& row : pending_) {
    sqlite3_bind_int64(s, p, static_cast<sqlite3_int64>(row.sequence));
    for (int i = 0; i < 3; ++i) {
      sqlite3_bind_text(s, p + 1 + i, arena_.data() + row.at[i], static_cast<int>(row.size[i]),
                        SQLITE_STATIC);
    }
    sqlite3_bind_int64(s, p + 4, static_cast<sqlite3_int64>(row.origin_sequence));
    sqlite3_bind_int64(s, p + 5, row.timestamp_us);
    sqlite3_bind_text(s, p + 6, arena_.data() + row.at[3], static_cast<int>(row.size[3]),
                      SQLITE_STATIC);
    sqlite3_bind_blob(s, p + 7, row.prev_hash.data(), static_cast<int>(row.prev_hash.size()),
                      SQLITE_STATIC);
    sqlite3_bind_blob(s, p + 8, row.hash.data(), static_cast<int>(row.hash.size()), SQLITE_STATIC);
    if (full) {
      p += 9;
    } else {
      step(row.sequence, row.sequence);
    }
  }
  if (full) step(pending_.front().sequence, pending_.back().sequence);
  pending_.clear();
  arena_.clear();
}

void SqliteStore::put_meta(const std::string& key, const std::string& value) {
  flush_inserts();
  Statement s(db_,
              "INSERT INTO meta(key, value) VALUES(?, ?) "
              "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  sqlite3_bind_text(s.get(), 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
  sqlite3_bind_text(s.get(), 2, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  if (sqlite3_step(s.get()) != SQLITE_DONE) fail(sqlite3_errmsg(db_));
}

void SqliteStore::put_type(const std::string& name, const std::string& schema) {
  flush_inserts();
  Statement s(db_,
              "INSERT INTO types(name, schema) VALUES(?, ?) "
              "ON CONFLICT(name) DO UPDATE SET schema = excluded.schema");
  sqlite3_bind_text(s.get(), 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  sqlite3_bind_text(s.get(), 2, schema.data(), static_cast<int>(schema.size()), SQLITE_STATIC);
  if (sqlite3_step(s.get()) != SQLITE_DONE) fail(sqlite3_errmsg(db_));
}

void SqliteStore::put_consumer(const std::string& name, std::uint64_t position) {
  flush_inserts();
  sqlite3_stmt* s = put_consumer_.get();
  sqlite3_bind_text(s, 1, name.data(), static_cast<int>(name.size()), SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(position));
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  if (rc != SQLITE_DONE) fail(sqlite3_errmsg(db_));
}

std::size_t SqliteStore::read(std::uint64_t from, std::uint64_t to, std::size_t max,
                              const std::function<void(const Event&)>& fn, Event& e) {
  sqlite3_stmt* s = read_.get();
  auto clamp = [](std::uint64_t v) {
    return static_cast<sqlite3_int64>(std::min<std::uint64_t>(v, INT64_MAX));
  };
  sqlite3_bind_int64(s, 1, clamp(from));
  sqlite3_bind_int64(s, 2, clamp(to));
  sqlite3_bind_int64(s, 3, clamp(max));
  return step_events(s, fn, e);
}

std::size_t SqliteStore::read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                                     const std::function<void(const Event&)>& fn, Event& e) {
  sqlite3_stmt* s = read_origin_.get();
  sqlite3_bind_text(s, 1, origin.data(), static_cast<int>(origin.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(s, 2, static_cast<sqlite3_int64>(std::min<std::uint64_t>(from, INT64_MAX)));
  sqlite3_bind_int64(s, 3, static_cast<sqlite3_int64>(std::min<std::uint64_t>(max, INT64_MAX)));
  return step_events(s, fn, e);
}

std::size_t SqliteStore::step_events(sqlite3_stmt* s, const std::function<void(const Event&)>& fn,
                                     Event& e) {
  std::size_t n = 0;
  int rc;
  // Reset even when fn throws, so the read snapshot is released.
  struct Reset {
    sqlite3_stmt* s;
    ~Reset() { sqlite3_reset(s); }
  } reset{s};
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
    e.sequence = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    assign_text(s, 1, e.id);
    assign_text(s, 2, e.type);
    assign_text(s, 3, e.origin);
    e.origin_sequence = static_cast<std::uint64_t>(sqlite3_column_int64(s, 4));
    e.timestamp_us = sqlite3_column_int64(s, 5);
    assign_text(s, 6, e.payload_json);
    copy_hash(s, 7, e.prev_hash);
    copy_hash(s, 8, e.hash);
    ++n;
    fn(e);
  }
  if (rc != SQLITE_DONE) fail(sqlite3_errmsg(db_));
  return n;
}

}  // namespace switchboard::events
