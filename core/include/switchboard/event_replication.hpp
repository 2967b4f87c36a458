// EventReplicator: keeps event logs on several nodes in sync over any
// transport (tcp_peer, NATS, in-process, ...).
//
//   auto transport = host.create_transport(config, TransportContext{strand});
//   transport->connect();
//   EventReplicator replicator(log, transport, strand);
//   replicator.start();
//
// What it does (protocol and guarantees in docs/events.md, "Replication"):
// publishes the log's own new events to the other nodes; stores theirs
// through EventLog::ingest (duplicates dropped by id, per origin only in
// origin_sequence order); announces its per-origin heads periodically; and
// fetches, from a node that has more, what it lacks: after a gap, on joining
// late, after a restart or a partition. Every node ends with the same set of
// events; each keeps its own order and hash chain over them.
//
// Threading: `executor` must be the transport's TransportContext::executor
// (a strand, or a single-threaded io_context): every transport call and
// callback of the replicator runs there. Reads for fetch answers are done
// there too (they block on the disk for one batch). start(), stop() and
// stats() may be called from any thread. The log and the transport must
// outlive the replicator; stop() (or the destructor) detaches from both.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <system_error>

#include "switchboard/event_log.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

struct EventReplicatorOptions {
  // Subjects are <prefix>.live, .state, .fetch.<node>, .inbox.<node>; every
  // node of one replica set uses the same prefix.
  std::string subject_prefix = "switchboard.events";
  // How often the heads are announced and stalled fetches retried.
  std::chrono::milliseconds announce_interval{1000};
  // A fetch without an answer after this is sent again (to another node
  // when one has announced what is missing).
  std::chrono::milliseconds fetch_timeout{3000};
  std::size_t batch_events = 512;        // events per message at most
  std::size_t batch_bytes = 256 * 1024;  // bytes per message at most (and < max_payload)
};

struct EventReplicatorStats {
  std::uint64_t published = 0;     // own events sent live
  std::uint64_t received = 0;      // foreign events received (live and fetched)
  std::uint64_t stored = 0;        // of those, stored
  std::uint64_t duplicates = 0;    // dropped: here already
  std::uint64_t gaps = 0;          // dropped: predecessor missing (then fetched)
  std::uint64_t rejected = 0;      // malformed events
  std::uint64_t bad_messages = 0;  // messages that did not decode
  std::uint64_t fetches_sent = 0;
  std::uint64_t fetches_answered = 0;
  std::uint64_t announcements = 0;
};

class EventReplicator {
 public:
  // Throws Error (invalid_argument) when the log's origin or the prefix
  // cannot be used in subjects.
  EventReplicator(EventLog& log, std::shared_ptr<Transport> transport,
                  asio::any_io_executor executor, EventReplicatorOptions options = {});
  ~EventReplicator();  // stop()
  EventReplicator(const EventReplicator&) = delete;
  EventReplicator& operator=(const EventReplicator&) = delete;

  // Subscribes, announces and starts the timer; the transport must be
  // connected. Call it on the executor, or before anything runs the
  // executor (set-up). Returns the first subscribe error.
  std::error_code start();

  // Stops publishing, fetching and answering; unsubscribes (on the
  // executor). Idempotent, does not block.
  void stop();

  const std::string& node() const;  // the log's origin
  EventReplicatorStats stats() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace switchboard
