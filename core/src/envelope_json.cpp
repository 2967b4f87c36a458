#include "envelope_json.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>

namespace switchboard {
namespace {

// Bytes the json codec writes as they are: printable ASCII but '"' and
// '\\'. A string with any other byte (escapes, UTF-8 checks) goes through
// the codec.
constexpr auto kPlain = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = c != '"' && c != '\\';
  return t;
}();

bool plain(const std::string& s) {
  for (unsigned char c : s) {
    if (!kPlain[c]) return false;
  }
  return true;
}

class Writer {
 public:
  Writer(const Codec& codec, std::size_t reserve) : codec_(codec) { out_.reserve(reserve); }

  // `key` is a literal in order; members come in the Json map's key order.
  template <std::size_t N>
  void key(const char (&k)[N]) {
    if (!first_) out_ += ',';
    first_ = false;
    out_ += '"';
    out_.append(k, N - 1);
    out_.append("\":", 2);
  }
  void open() {
    out_ += '{';
    first_ = true;
  }
  void close() {
    out_ += '}';
    first_ = false;
  }
  void string(const std::string& s) {
    if (plain(s)) {
      out_ += '"';
      out_ += s;
      out_ += '"';
    } else {
      out_ += codec_.encode(Json(s));
    }
  }
  void value(const Json& v) {
    // The common small cases without a call into the codec.
    if (v.is_null()) {
      out_ += "null";
    } else if (v.is_object() && v.empty()) {
      out_ += "{}";
    } else if (v.type() == Json::value_t::number_integer) {
      number(v.get<std::int64_t>());
    } else {
      out_ += codec_.encode(v);
    }
  }
  void number(std::int64_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out_.append(buf, end);
  }
  // As the json codec writes a double: null when not finite, ".0" on an
  // integral value so that a float stays a float.
  void number(double v) {
    if (!std::isfinite(v)) {
      out_ += "null";
      return;
    }
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, end);
    if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e'; }) == end) out_ += ".0";
  }
  std::string take() { return std::move(out_); }

 private:
  const Codec& codec_;
  std::string out_;
  bool first_ = true;
};

// Trace::to_json's members, in key order.
void trace_member(Writer& w, const Trace& t) {
  w.key("trace");
  w.open();
  if (t.duration > 0) {
    w.key("duration");
    w.number(t.duration);
  }
  w.key("method");
  w.string(t.method);
  if (!t.parent_span_id.empty()) {
    w.key("parentSpanId");
    w.string(t.parent_span_id);
  }
  w.key("service");
  w.string(t.service);
  w.key("spanId");
  w.string(t.span_id);
  w.key("timestamp");
  w.number(t.timestamp);
  w.key("traceId");
  w.string(t.trace_id);
  w.close();
}

// encode_request's and encode_reply's "request" member, in key order.
void request_member(Writer& w, const std::string& id, const std::string& type, const Trace& trace,
                    int depth) {
  w.key("request");
  w.open();
  if (depth > 0) {
    w.key("depth");
    w.number(static_cast<std::int64_t>(depth));
  }
  w.key("id");
  w.string(id);
  w.key("method");
  w.string(trace.method);
  w.key("service");
  w.string(trace.service);
  w.key("type");
  w.string(type);
  w.close();
}

}  // namespace

bool writes_json_envelopes(const Codec& codec) {
  return codec.name() == "json";
}

std::string write_json_request(const Json& pattern, const Json& meta, const Json& delegate,
                               const Trace& trace, const std::string& request_id,
                               const std::string& type, int depth, const Codec& codec) {
  Writer w(codec, 384);
  w.open();
  w.key("delegate");
  w.value(delegate);
  w.key("meta");
  w.value(meta);
  w.key("pattern");
  w.value(pattern);
  request_member(w, request_id, type, trace, depth);
  trace_member(w, trace);
  w.close();
  return w.take();
}

std::string write_json_request(const RequestEnvelope& r, const Codec& codec) {
  return write_json_request(r.pattern, r.meta, r.delegate, r.trace, r.request_id, r.type, r.depth,
                            codec);
}

std::string write_json_reply(const Json& meta, const Trace& trace, const RequestEnvelope& request,
                             const Json& result, const Json& error, const Codec& codec) {
  Writer w(codec, 320);
  w.open();
  w.key("error");
  w.value(error);
  w.key("meta");
  w.value(meta);
  // encode_reply's request member never carries the depth.
  request_member(w, request.request_id, request.type, trace, 0);
  w.key("result");
  w.value(result);
  trace_member(w, trace);
  w.close();
  return w.take();
}

}  // namespace switchboard
