// Trace data that travels with every call (Hemera's `trace` field).
#pragma once

#include <string>

#include "switchboard/json.hpp"

namespace switchboard {

struct Trace {
  std::string trace_id;
  std::string span_id;
  std::string parent_span_id;  // empty for a root span
  double timestamp = 0;        // milliseconds since the epoch, when the span started
  double duration = 0;         // milliseconds, set when the caller got its reply
  std::string service;         // the topic called
  std::string method;          // sorted "key:value" list of the pattern's scalars

  Json to_json() const;
  static Trace from_json(const Json& j);
};

// A random 16-hex-digit id for spans, traces and requests.
std::string random_id();
// Milliseconds since the epoch, with sub-millisecond precision.
double now_ms();

}  // namespace switchboard
