// Opens the store an EventLog's options name: SQLite built in, any other
// backend through its event-store plugin ("<backend>-events").
#pragma once

#include <memory>

#include "switchboard/event_log.hpp"
#include "switchboard/event_store.hpp"

namespace switchboard::events {

// Throws EventStoreError (the store cannot be opened) or Error (no such
// backend, the plugin refused, a bad option), naming the backend and log.
// deferred_sync: the SQLite store in SqliteStore::Sync::deferred (the log's
// writer syncs through SqliteStore::sync()); broker backends ignore it.
std::shared_ptr<EventStore> open_event_store(const EventLogOptions& options, bool read_only,
                                             bool deferred_sync = false);

}  // namespace switchboard::events
