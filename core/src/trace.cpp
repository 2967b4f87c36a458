#include "switchboard/trace.hpp"

#include <chrono>
#include <cstdio>
#include <random>

namespace switchboard {

Json Trace::to_json() const {
  // Built member by member: an initializer list copies every value through
  // a temporary array, and this runs twice per act.
  Json j = Json::object();
  auto& o = j.get_ref<Json::object_t&>();
  o.emplace("traceId", trace_id);
  o.emplace("spanId", span_id);
  o.emplace("timestamp", timestamp);
  o.emplace("service", service);
  o.emplace("method", method);
  if (!parent_span_id.empty()) o.emplace("parentSpanId", parent_span_id);
  if (duration > 0) o.emplace("duration", duration);
  return j;
}

Trace Trace::from_json(const Json& j) {
  Trace t;
  if (!j.is_object()) return t;
  auto text = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  auto number = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  t.trace_id = text("traceId");
  t.span_id = text("spanId");
  t.parent_span_id = text("parentSpanId");
  t.service = text("service");
  t.method = text("method");
  t.timestamp = number("timestamp");
  t.duration = number("duration");
  return t;
}

std::string random_id() {
  // One generator per thread: ids are not secrets, only unique.
  thread_local std::mt19937_64 engine{std::random_device{}()};
  // By hand rather than snprintf: three of these per act.
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t v = engine();
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) id[static_cast<std::size_t>(i)] = kHex[v & 0xf];
  return id;
}

double now_ms() {
  using namespace std::chrono;
  return duration<double, std::milli>(system_clock::now().time_since_epoch()).count();
}

}  // namespace switchboard
