#include "envelope.hpp"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

namespace switchboard {
namespace {

bool ends_with_dollar(const std::string& key) {
  return !key.empty() && key.back() == '$';
}

bool read_int(const Json& v, int& out) {
  if (!v.is_number()) return false;
  out = v.get<int>();
  return true;
}

}  // namespace

bool split_dollar_keys(const Json& pattern, Json& travels, DollarOptions& o, std::string& why) {
  travels = Json::object();
  if (!pattern.is_object()) {
    why = "a pattern must be a JSON object, got " + std::string(pattern.type_name());
    return false;
  }
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    const std::string& key = it.key();
    if (!ends_with_dollar(key)) {
      travels[key] = *it;
      continue;
    }
    const Json& v = *it;
    auto expect = [&](bool ok, const char* what) {
      if (!ok) why = "option " + key + " must be " + what + ", got " + v.dump();
      return ok;
    };
    if (key == "timeout$") {
      if (!expect(v.is_number() && v.get<double>() > 0, "a positive number of milliseconds"))
        return false;
      // Round up: a fraction of a millisecond must not become a 0 ms timer.
      o.timeout = std::chrono::milliseconds(static_cast<long long>(std::ceil(v.get<double>())));
    } else if (key == "pubsub$") {
      if (!expect(v.is_boolean(), "a boolean")) return false;
      o.pubsub = v.get<bool>();
    } else if (key == "maxMessages$") {
      if (!expect(read_int(v, o.max_messages) && o.max_messages >= -1, "-1 or a count"))
        return false;
    } else if (key == "expectedMessages$") {
      if (!expect(read_int(v, o.expected_messages) && o.expected_messages >= 0, "a count"))
        return false;
    } else if (key == "meta$") {
      if (!expect(v.is_object(), "an object")) return false;
      o.meta = v;
    } else if (key == "delegate$") {
      if (!expect(v.is_object(), "an object")) return false;
      o.delegate = v;
    } else if (key == "context$") {
      if (!expect(v.is_object(), "an object")) return false;
      o.context = v;
    } else if (key == "trace$") {
      if (!expect(v.is_object(), "an object")) return false;
      o.trace = v;
    } else if (key == "requestId$") {
      // It becomes the last token of the reply subject.
      bool token = v.is_string() && !v.get<std::string>().empty() &&
                   v.get<std::string>().find_first_of(".*> \t\r\n") == std::string::npos;
      if (!expect(token, "a non-empty string without '.', '*', '>' or white space")) return false;
      o.request_id = v.get<std::string>();
    } else if (key == "queue$") {
      if (!expect(v.is_string() && !v.get<std::string>().empty(), "a non-empty string"))
        return false;
      o.queue = v.get<std::string>();
    }
    // Unknown `$` keys are local by convention and never travel.
  }
  return true;
}

bool split_dollar_keys(Json&& pattern, Json& travels, DollarOptions& o, std::string& why) {
  if (pattern.is_object()) {
    bool options = false;
    for (const auto& [key, value] : pattern.get_ref<const Json::object_t&>()) {
      if (ends_with_dollar(key)) {
        options = true;
        break;
      }
    }
    if (!options) {
      travels = std::move(pattern);
      return true;
    }
  }
  return split_dollar_keys(std::as_const(pattern), travels, o, why);
}

namespace {

// As Hemera prints a scalar: no nulls (false), integral numbers without a
// fraction.
bool method_value(const Json& v, std::string& out) {
  if (!v.is_primitive() || v.is_null()) return false;
  if (v.is_string()) {
    out += v.get_ref<const std::string&>();
  } else if (v.is_number_float() && std::trunc(v.get<double>()) == v.get<double>() &&
             std::fabs(v.get<double>()) < 9.0e15) {
    out += std::to_string(static_cast<long long>(v.get<double>()));
  } else if (v.is_number_integer() && !v.is_number_unsigned()) {
    out += std::to_string(v.get<std::int64_t>());
  } else {
    out += v.dump();
  }
  return true;
}

// Whether "a:..." sorts after "b:..." although key a sorts before key b:
// only when a is a prefix of b and b goes on with a byte up to ':'.
bool sorts_apart(const std::string& a, const std::string& b) {
  return b.size() > a.size() && b.compare(0, a.size(), a) == 0 &&
         static_cast<unsigned char>(b[a.size()]) <= ':';
}

}  // namespace

std::string method_of(const Json& pattern) {
  // The object's keys are sorted already, so "key:value" parts in key order
  // are sorted too, unless a key is a prefix of the next one (see
  // sorts_apart): then sort the parts as Hemera does. This runs for every
  // act; the sort and its strings were most of its cost.
  std::string out;
  const std::string* previous = nullptr;
  bool in_order = true;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    std::size_t mark = out.size();
    if (!out.empty()) out += ',';
    out += it.key();
    out += ':';
    if (!method_value(*it, out)) {
      out.resize(mark);
      continue;
    }
    if (previous && sorts_apart(*previous, it.key())) in_order = false;
    previous = &it.key();
  }
  if (in_order) return out;
  std::vector<std::string> parts;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    std::string part = it.key() + ":";
    if (method_value(*it, part)) parts.push_back(std::move(part));
  }
  std::sort(parts.begin(), parts.end());
  out.clear();
  for (const auto& p : parts) {
    if (!out.empty()) out += ',';
    out += p;
  }
  return out;
}

namespace {

// {"id", "type", "service", "method"}: what Hemera reads from "request".
Json request_member(const std::string& id, const std::string& type, const Trace& trace) {
  Json request = Json::object();
  auto& o = request.get_ref<Json::object_t&>();
  o.emplace("id", id);
  o.emplace("type", type);
  o.emplace("service", trace.service);
  o.emplace("method", trace.method);
  return request;
}

}  // namespace

// Envelopes are built member by member (emplace) rather than from
// initializer lists, which copy each value through a temporary array: this
// runs for every request and reply.
Json encode_request(RequestEnvelope r) {
  Json request = request_member(r.request_id, r.type, r.trace);
  if (r.depth > 0) request["depth"] = r.depth;
  Json j = Json::object();
  auto& o = j.get_ref<Json::object_t&>();
  o.emplace("pattern", std::move(r.pattern));
  o.emplace("meta", std::move(r.meta));
  o.emplace("delegate", std::move(r.delegate));
  o.emplace("trace", r.trace.to_json());
  o.emplace("request", std::move(request));
  return j;
}

namespace {

// Trace::from_json, moving the strings out instead of copying them.
std::string take_string(Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? std::move(it->get_ref<std::string&>()) : std::string();
}
double number_or_zero(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}
Trace take_trace(Json& j) {
  Trace t;
  if (!j.is_object()) return t;
  t.trace_id = take_string(j, "traceId");
  t.span_id = take_string(j, "spanId");
  t.parent_span_id = take_string(j, "parentSpanId");
  t.service = take_string(j, "service");
  t.method = take_string(j, "method");
  t.timestamp = number_or_zero(j, "timestamp");
  t.duration = number_or_zero(j, "duration");
  return t;
}

}  // namespace

bool decode_request(Json j, RequestEnvelope& out, std::string& why) {
  return decode_request_from(j, out, why);
}

bool decode_request_from(Json& j, RequestEnvelope& out, std::string& why) {
  if (!j.is_object()) {
    why = "envelope must be a JSON object";
    return false;
  }
  auto pattern = j.find("pattern");
  if (pattern == j.end() || !pattern->is_object()) {
    why = "envelope has no 'pattern' object";
    return false;
  }
  out.pattern = std::move(*pattern);
  if (auto it = j.find("meta"); it != j.end() && it->is_object()) out.meta = std::move(*it);
  if (auto it = j.find("delegate"); it != j.end() && it->is_object()) {
    out.delegate = std::move(*it);
  }
  if (auto it = j.find("trace"); it != j.end()) out.trace = take_trace(*it);
  if (auto it = j.find("request"); it != j.end() && it->is_object()) {
    out.request_id = take_string(*it, "id");
    out.type = string_or(*it, "type", "request") == "pubsub" ? "pubsub" : "request";
    if (auto d = it->find("depth"); d != it->end() && d->is_number_integer()) {
      out.depth = d->get<int>();
    }
  }
  return true;
}

Json encode_reply(const Json& meta, const Trace& trace, const RequestEnvelope& request,
                  const Json& result, const Json& error) {
  Json j = Json::object();
  auto& o = j.get_ref<Json::object_t&>();
  o.emplace("meta", meta);
  o.emplace("trace", trace.to_json());
  o.emplace("request", request_member(request.request_id, request.type, trace));
  o.emplace("result", result);
  o.emplace("error", error);
  return j;
}

}  // namespace switchboard
