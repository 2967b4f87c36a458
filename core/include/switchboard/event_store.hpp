// EventStore: where an EventLog keeps its events, types, consumer cursors
// and meta data. The log does everything else (validation, ids, the hash
// chain, group commit, dispatch); a store only keeps what it is given and
// reads it back. SQLite is built in (backend "sqlite"); other stores are
// plugins of kind SWITCHBOARD_PLUGIN_EVENT_STORE exporting an
// EventStoreFactory, loaded by name "<backend>-events" (JetStream:
// "jetstream-events", Kafka: "kafka-events"). docs/events.md, "Backends".
//
// Threading: one EventStore object is used by one thread at a time (the
// log's writer thread owns one, readers share another under a lock); a
// store need not lock anything itself. Failures throw EventStoreError; the
// log catches it at its boundaries and turns it into error codes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "switchboard/event_log.hpp"
#include "switchboard/json.hpp"

namespace switchboard {

// A store failed: the message names the store and what went wrong.
struct EventStoreError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// commit() found that another writer appended to the store since this one
// read its head (the broker's optimistic-concurrency check refused the
// append). Nothing of this writer lands after the other's events; the log
// that gets it stops writing (it is fenced) until it is reopened.
struct EventStoreConflict : EventStoreError {
  using EventStoreError::EventStoreError;
};

struct EventStoreConfig {
  std::string location;           // sqlite: the file; brokers: the log's name (stream, topic)
  std::string url;                // brokers: where the broker is ("nats://...", "kafka://...")
  Json options = Json::object();  // backend-specific options (docs/events.md)
  bool read_only = false;         // no writes; the log's data must exist
};

class EventStore {
 public:
  virtual ~EventStore() = default;

  struct Head {
    std::uint64_t sequence = 0;  // newest stored sequence; 0 when empty
    EventHash hash{};            // its hash
  };
  virtual Head head() = 0;

  struct OriginHead {
    std::uint64_t origin_sequence = 0;  // highest origin_sequence of the origin; 0 when none
    std::int64_t timestamp_us = 0;      // the timestamp of that event
  };
  virtual OriginHead origin_head(const std::string& origin) = 0;
  // Per origin, the highest origin_sequence stored (replication cursors).
  virtual std::map<std::string, std::uint64_t> origin_heads() = 0;

  virtual std::optional<std::string> meta(const std::string& key) = 0;
  virtual std::map<std::string, std::string> types() = 0;  // name -> schema (JSON text)
  virtual std::optional<std::uint64_t> consumer(const std::string& name) = 0;

  // Writing: everything between begin() and commit() is one group commit.
  // commit() returns once it is durable (as far as the backend promises:
  // docs/events.md) or throws; after a throw, rollback() is called and the
  // log reads head() and origin_head() again, since a broker may have kept
  // a prefix of the batch. Throws EventStoreConflict when another writer
  // got in between.
  virtual void begin() = 0;
  virtual void insert(const Event& e) = 0;  // e.sequence == head + 1, in order
  virtual void put_meta(const std::string& key, const std::string& value) = 0;
  virtual void put_type(const std::string& name, const std::string& schema) = 0;
  virtual void put_consumer(const std::string& name, std::uint64_t position) = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;

  // Events with from <= sequence <= to, at most `max`, in sequence order;
  // `scratch` is filled and handed to fn for each. Returns how many. A
  // sequence that is missing in the store is skipped (verify() reports it).
  virtual std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max,
                           const std::function<void(const Event&)>& fn, Event& scratch) = 0;
  // Events of `origin` with origin_sequence >= from, at most `max`, in
  // origin_sequence order.
  virtual std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                                  const std::function<void(const Event&)>& fn, Event& scratch) = 0;

  // Called once by the log's close(), after the last commit (SQLite
  // checkpoints its WAL here). Must not throw.
  virtual void close() noexcept {}
};

// What an event-store plugin exports (SWITCHBOARD_PLUGIN_EVENT_STORE).
class EventStoreFactory {
 public:
  virtual ~EventStoreFactory() = default;
  // Opens (creating it when missing and not read-only) the store. Throws
  // EventStoreError, or OptionError for a bad option, naming what and where.
  virtual std::unique_ptr<EventStore> open(const EventStoreConfig& config) const = 0;
};

// The factory of a store whose constructor takes the config: what a store
// plugin exports as `const EventStoreFactoryFor<MyStore> kFactory;`.
template <typename Store>
class EventStoreFactoryFor final : public EventStoreFactory {
 public:
  std::unique_ptr<EventStore> open(const EventStoreConfig& config) const override {
    return std::make_unique<Store>(config);
  }
};

}  // namespace switchboard
