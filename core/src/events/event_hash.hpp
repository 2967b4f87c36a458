// The event log's hash chain and ids: SHA-256 (OpenSSL libcrypto) over a
// fixed byte encoding of an event's fields, documented in docs/events.md.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "switchboard/event_log.hpp"

namespace switchboard::events {

// SHA-256 of `data`; one reusable digest context per thread.
EventHash sha256(std::string_view data);

// The hash of `e` given e.prev_hash: SHA-256 over
//   "SBEV1" prev_hash u64be(sequence) str(id) str(type) str(origin)
//   u64be(origin_sequence) i64be(timestamp_us) str(payload_json)
// where str(s) = u32be(size) followed by the bytes.
EventHash event_hash(const Event& e);

// The id of the origin_sequence-th event of `origin`: the first 16 bytes of
// SHA-256("SBID1" str(origin) u64be(origin_sequence)) in hex. A copy of an
// event (replication) keeps its id, and an id names one (origin, sequence).
std::string event_id(std::string_view origin, std::uint64_t origin_sequence);

// One thread's hashing state: a digest context and an encoding buffer reused
// from event to event, so that the log's writer hashes without allocating or
// looking up thread-locals. The free functions above use one per thread.
class EventHasher {
 public:
  EventHasher();
  ~EventHasher();
  EventHasher(const EventHasher&) = delete;
  EventHasher& operator=(const EventHasher&) = delete;

  EventHash sha256(std::string_view data);
  EventHash event_hash(const Event& e);  // as events::event_hash
  // events::event_id into `out`, reusing its capacity.
  void event_id(std::string_view origin, std::uint64_t origin_sequence, std::string& out);

 private:
  struct Context;
  std::unique_ptr<Context> ctx_;
  std::string buf_;
};

// 8 random bytes in hex: a new store's origin.
std::string random_origin();

}  // namespace switchboard::events
