// Opens the store an EventLog's options name: SQLite built in, any other
// backend through its event-store plugin ("<backend>-events").
#pragma once

#include <memory>

#include "switchboard/event_log.hpp"
#include "switchboard/event_store.hpp"

namespace switchboard::events {

// Throws EventStoreError (the store cannot be opened) or Error (no such
// backend, the plugin refused, a bad option), naming the backend and log.
std::shared_ptr<EventStore> open_event_store(const EventLogOptions& options, bool read_only);

}  // namespace switchboard::events
