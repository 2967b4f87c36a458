#include "ws_protocol.hpp"

#include <array>
#include <cstring>

#include "json_reader.hpp"
#include "msgpack_json.hpp"
#include "switchboard/json.hpp"

namespace switchboard::websocket {
namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// ---- MessagePack writing (only what frames need) ----

void put_be(std::string& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void mp_map(std::string& out, std::size_t n) {
  if (n < 16) {
    out.push_back(static_cast<char>(0x80 | n));
  } else {
    out.push_back(static_cast<char>(0xde));
    put_be(out, n, 2);
  }
}

void mp_str(std::string& out, std::string_view s) {
  auto n = s.size();
  if (n < 32) {
    out.push_back(static_cast<char>(0xa0 | n));
  } else if (n < 0x100) {
    out.push_back(static_cast<char>(0xd9));
    put_be(out, n, 1);
  } else if (n < 0x10000) {
    out.push_back(static_cast<char>(0xda));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xdb));
    put_be(out, n, 4);
  }
  out.append(s);
}

void mp_bin(std::string& out, std::string_view s) {
  auto n = s.size();
  if (n < 0x100) {
    out.push_back(static_cast<char>(0xc4));
    put_be(out, n, 1);
  } else if (n < 0x10000) {
    out.push_back(static_cast<char>(0xc5));
    put_be(out, n, 2);
  } else {
    out.push_back(static_cast<char>(0xc6));
    put_be(out, n, 4);
  }
  out.append(s);
}

void mp_uint(std::string& out, std::uint64_t v) {
  if (v < 128) {
    out.push_back(static_cast<char>(v));
  } else if (v < 0x100) {
    out.push_back(static_cast<char>(0xcc));
    put_be(out, v, 1);
  } else if (v < 0x10000) {
    out.push_back(static_cast<char>(0xcd));
    put_be(out, v, 2);
  } else if (v < 0x100000000ULL) {
    out.push_back(static_cast<char>(0xce));
    put_be(out, v, 4);
  } else {
    out.push_back(static_cast<char>(0xcf));
    put_be(out, v, 8);
  }
}

void mp_bool(std::string& out, bool b) {
  out.push_back(static_cast<char>(b ? 0xc3 : 0xc2));
}

// ---- JSON writing ----

void json_key(std::string& out, const char* key) {
  if (out.size() > 1) out.push_back(',');
  out.push_back('"');
  out.append(key);
  out.append("\":");
}

// A text value: a JSON string when it is UTF-8, else refused by the caller.
void json_text(std::string& out, const char* key, std::string_view s) {
  json_key(out, key);
  append_json_string(out, s);
}

// The payload in a text frame: `data` as a string when that is valid UTF-8
// and not much longer than base64 would be, else `data_b64`.
void json_data(std::string& out, std::string_view data) {
  if (valid_utf8(data)) {
    std::size_t escaped = 0;
    for (unsigned char c : data) escaped += c < 0x20 ? 5 : (c == '"' || c == '\\') ? 1 : 0;
    if (escaped <= data.size() / 3 + 16) return json_text(out, "data", data);
  }
  json_key(out, "data_b64");
  out.push_back('"');
  out.append(base64_encode(data));
  out.push_back('"');
}

void json_headers(std::string& out, const Headers& headers) {
  json_key(out, "headers");
  out.push_back('{');
  bool first = true;
  for (const auto& [k, v] : headers) {
    if (!first) out.push_back(',');
    first = false;
    append_json_string(out, valid_utf8(k) ? std::string_view(k) : std::string_view("?"));
    out.push_back(':');
    append_json_string(out, valid_utf8(v) ? std::string_view(v) : std::string_view("?"));
  }
  out.push_back('}');
}

// Appends the fields a pub and a msg share; returns their number.
unsigned message_fields(std::string& out, const Message& msg, bool binary) {
  unsigned n = 0;
  if (binary) {
    mp_str(out, "subject");
    mp_str(out, msg.subject);
    ++n;
    if (!msg.reply_to.empty()) {
      mp_str(out, "reply_to");
      mp_str(out, msg.reply_to);
      ++n;
    }
    if (!msg.headers.empty()) {
      mp_str(out, "headers");
      mp_map(out, msg.headers.size());
      for (const auto& [k, v] : msg.headers) {
        mp_str(out, k);
        mp_str(out, v);
      }
      ++n;
    }
    mp_str(out, "data");
    mp_bin(out, msg.data.view());
    return n + 1;
  }
  json_text(out, "subject", msg.subject);
  if (!msg.reply_to.empty()) json_text(out, "reply_to", msg.reply_to);
  if (!msg.headers.empty()) json_headers(out, msg.headers);
  json_data(out, msg.data.view());
  return 0;
}

// ---- Reading (both formats go through Json) ----

bool fail(std::string& why, std::string text) {
  why = std::move(text);
  return false;
}

bool read_string(const Json& j, const char* key, bool required, std::string& out, std::string& why,
                 const char* op) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (required) return fail(why, std::string(op) + ": '" + key + "' is missing");
    return true;
  }
  if (!it->is_string()) return fail(why, std::string(op) + ": '" + key + "' must be a string");
  out = it->get<std::string>();
  return true;
}

bool read_sid(const Json& j, bool required, std::uint64_t& out, std::string& why, const char* op) {
  auto it = j.find("sid");
  if (it == j.end() || it->is_null()) {
    if (required) return fail(why, std::string(op) + ": 'sid' is missing");
    return true;
  }
  if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() > 0)) {
    out = it->get<std::uint64_t>();
    if (out > 0) return true;
  }
  return fail(why, std::string(op) + ": 'sid' must be a positive integer");
}

bool read_headers(const Json& j, Headers& out, std::string& why, const char* op) {
  auto it = j.find("headers");
  if (it == j.end() || it->is_null()) return true;
  if (!it->is_object()) return fail(why, std::string(op) + ": 'headers' must be an object");
  for (auto h = it->begin(); h != it->end(); ++h) {
    if (!h->is_string()) {
      return fail(why, std::string(op) + ": header '" + h.key() + "' must be a string");
    }
    out.emplace(h.key(), h->get<std::string>());
  }
  return true;
}

bool read_data(const Json& j, bool binary, std::string& out, std::string& why, const char* op) {
  auto b64 = j.find("data_b64");
  auto it = j.find("data");
  bool has_data = it != j.end() && !it->is_null();
  if (b64 != j.end() && !b64->is_null()) {
    if (has_data) return fail(why, std::string(op) + ": give 'data' or 'data_b64', not both");
    if (!b64->is_string() || !base64_decode(b64->get_ref<const std::string&>(), out)) {
      return fail(why, std::string(op) + ": 'data_b64' is not base64");
    }
    return true;
  }
  if (!has_data) return true;
  if (it->is_string()) {
    out = it->get<std::string>();
  } else if (it->is_binary()) {
    const auto& bin = it->get_binary();
    out.assign(reinterpret_cast<const char*>(bin.data()), bin.size());
  } else {
    // Any other value is the payload in the frame's own format.
    out = binary ? msgpack_codec::encode(*it) : it->dump();
  }
  return true;
}

// ---- The fast path for MessagePack pub and msg frames ----
//
// Every act crosses the hub as a pub and comes back as a msg; going through
// a Json tree (msgpack_codec::decode, then the lookups below) cost about
// 10k instructions a frame. This reads the map straight into the Frame. It
// takes only the plain shape the encoders here write (string keys, the
// known fields with their usual types, nothing left over) and returns
// false for anything else, which then goes the general way below, with its
// checks and error messages.
class MpReader {
 public:
  explicit MpReader(std::string_view b) : b_(b) {}
  bool done() const { return pos_ == b_.size(); }

  bool map(std::size_t& n) {
    if (pos_ >= b_.size()) return false;
    auto c = byte();
    if ((c & 0xf0) == 0x80) {
      n = c & 0x0f;
      return true;
    }
    if (c == 0xde) return be(2, n);
    return false;
  }
  bool str(std::string_view& s) {
    if (pos_ >= b_.size()) return false;
    auto c = byte();
    std::size_t n = 0;
    if ((c & 0xe0) == 0xa0) {
      n = c & 0x1f;
    } else if (c == 0xd9 || c == 0xda || c == 0xdb) {
      if (!be(c == 0xd9 ? 1 : c == 0xda ? 2 : 4, n)) return false;
    } else {
      return false;
    }
    return take(n, s);
  }
  // A str or a bin.
  bool bytes(std::string_view& s) {
    if (pos_ >= b_.size()) return false;
    auto c = static_cast<unsigned char>(b_[pos_]);
    if (c != 0xc4 && c != 0xc5 && c != 0xc6) return str(s);
    ++pos_;
    std::size_t n = 0;
    return be(c == 0xc4 ? 1 : c == 0xc5 ? 2 : 4, n) && take(n, s);
  }
  bool positive(std::uint64_t& v) {
    if (pos_ >= b_.size()) return false;
    auto c = byte();
    std::size_t n = 0;
    if (c < 0x80) {
      v = c;
    } else if (c >= 0xcc && c <= 0xcf) {
      if (!be(std::size_t{1} << (c - 0xcc), n)) return false;
      v = n;
    } else {
      return false;
    }
    return v > 0;
  }

 private:
  unsigned char byte() { return static_cast<unsigned char>(b_[pos_++]); }
  bool be(std::size_t size, std::size_t& v) {
    if (b_.size() - pos_ < size) return false;
    v = 0;
    for (std::size_t i = 0; i < size; ++i) v = (v << 8) | byte();
    return true;
  }
  bool take(std::size_t n, std::string_view& s) {
    if (b_.size() - pos_ < n) return false;
    s = b_.substr(pos_, n);
    pos_ += n;
    return true;
  }

  std::string_view b_;
  std::size_t pos_ = 0;
};

bool fast_decode_binary(std::string_view bytes, Frame& out) {
  MpReader in(bytes);
  std::size_t fields = 0;
  if (!in.map(fields)) return false;
  bool has_op = false, has_sid = false, has_subject = false;
  for (std::size_t i = 0; i < fields; ++i) {
    std::string_view key, text;
    if (!in.str(key)) return false;
    if (key == "op") {
      if (!in.str(text)) return false;
      if (text == "pub") {
        out.op = Op::pub;
      } else if (text == "msg") {
        out.op = Op::msg;
      } else {
        return false;
      }
      has_op = true;
    } else if (key == "sid") {
      if (!in.positive(out.sid)) return false;
      has_sid = true;
    } else if (key == "subject") {
      if (!in.str(text)) return false;
      out.subject.assign(text);
      has_subject = true;
    } else if (key == "reply_to") {
      if (!in.str(text)) return false;
      out.reply_to.assign(text);
    } else if (key == "headers") {
      std::size_t n = 0;
      if (!in.map(n)) return false;
      out.headers.clear();
      for (std::size_t h = 0; h < n; ++h) {
        std::string_view name, value;
        if (!in.str(name) || !in.str(value)) return false;
        out.headers.insert_or_assign(std::string(name), std::string(value));
      }
    } else if (key == "data") {
      if (!in.bytes(text)) return false;
      out.data.assign(text);
    } else {
      return false;
    }
  }
  if (!in.done() || !has_op || !has_subject) return false;
  return out.op == Op::pub ? !has_sid : has_sid;
}

bool parse_op(const std::string& name, Op& op) {
  static constexpr std::array<Op, 8> kOps{Op::info, Op::sub,  Op::unsub, Op::pub,
                                          Op::msg,  Op::ping, Op::pong,  Op::err};
  for (Op o : kOps) {
    if (name == to_string(o)) {
      op = o;
      return true;
    }
  }
  return false;
}

}  // namespace

const char* to_string(Op op) noexcept {
  switch (op) {
    case Op::info:
      return "info";
    case Op::sub:
      return "sub";
    case Op::unsub:
      return "unsub";
    case Op::pub:
      return "pub";
    case Op::msg:
      return "msg";
    case Op::ping:
      return "ping";
    case Op::pong:
      return "pong";
    case Op::err:
      return "err";
  }
  return "?";
}

bool valid_utf8(std::string_view s) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    // Overlong forms, surrogates and values above U+10FFFF are not UTF-8.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  std::size_t run = 0;  // start of the bytes not copied yet
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        out.append("\\u00");
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(static_cast<unsigned char>(in[i])) << 16) |
                      (std::uint32_t(static_cast<unsigned char>(in[i + 1])) << 8) |
                      static_cast<unsigned char>(in[i + 2]);
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(kB64[(v >> 6) & 63]);
    out.push_back(kB64[v & 63]);
  }
  if (i < in.size()) {
    std::uint32_t v = std::uint32_t(static_cast<unsigned char>(in[i])) << 16;
    if (i + 1 < in.size()) v |= std::uint32_t(static_cast<unsigned char>(in[i + 1])) << 8;
    out.push_back(kB64[(v >> 18) & 63]);
    out.push_back(kB64[(v >> 12) & 63]);
    out.push_back(i + 1 < in.size() ? kB64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool base64_decode(std::string_view in, std::string& out) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (in.size() % 4 != 0) return false;
  out.clear();
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int v[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + k];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        v[k] = 0;
        ++pad;
      } else if (pad > 0 || (v[k] = value(c)) < 0) {
        return false;
      }
    }
    std::uint32_t n = (std::uint32_t(v[0]) << 18) | (std::uint32_t(v[1]) << 12) |
                      (std::uint32_t(v[2]) << 6) | std::uint32_t(v[3]);
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return true;
}

bool decode_frame(std::string_view bytes, bool binary, Frame& out, std::string& why) {
  if (binary) {
    Frame fast;
    if (fast_decode_binary(bytes, fast)) {
      out = std::move(fast);
      return true;
    }
  }
  Json j;
  if (binary) {
    std::string error;
    if (!msgpack_codec::decode(bytes, j, error)) return fail(why, "not MessagePack: " + error);
  } else {
    // The json codec's reader: simdjson, and objects built in one sort
    // (inserting a browser's keys one by one could cost O(n^2)).
    std::string text;
    if (!json_codec::read(bytes, j, text)) {
      // "[json.exception.parse_error.101] parse error at line 1, ...": keep the part after "] ".
      if (auto p = text.find("] "); p != std::string::npos) text = text.substr(p + 2);
      return fail(why, "not JSON: " + text);
    }
  }
  if (!j.is_object()) return fail(why, "a frame must be an object");
  std::string op_name;
  if (!read_string(j, "op", true, op_name, why, "frame")) return false;
  if (!parse_op(op_name, out.op)) return fail(why, "unknown op '" + op_name + "'");
  const char* op = to_string(out.op);
  switch (out.op) {
    case Op::sub:
      return read_sid(j, true, out.sid, why, op) &&
             read_string(j, "subject", true, out.subject, why, op) &&
             read_string(j, "queue", false, out.queue, why, op);
    case Op::unsub:
      return read_sid(j, true, out.sid, why, op);
    case Op::pub:
      return read_string(j, "subject", true, out.subject, why, op) &&
             read_string(j, "reply_to", false, out.reply_to, why, op) &&
             read_headers(j, out.headers, why, op) && read_data(j, binary, out.data, why, op);
    case Op::msg:
      return read_sid(j, true, out.sid, why, op) &&
             read_string(j, "subject", true, out.subject, why, op) &&
             read_string(j, "reply_to", false, out.reply_to, why, op) &&
             read_headers(j, out.headers, why, op) && read_data(j, binary, out.data, why, op);
    case Op::err: {
      if (!read_string(j, "message", false, out.message, why, op) ||
          !read_string(j, "code", false, out.code, why, op) ||
          !read_sid(j, false, out.sid, why, op)) {
        return false;
      }
      auto f = j.find("fatal");
      out.fatal = f != j.end() && f->is_boolean() && f->get<bool>();
      return true;
    }
    case Op::info: {
      auto m = j.find("max_payload");
      if (m != j.end() && m->is_number_unsigned()) out.max_payload = m->get<std::uint64_t>();
      out.info = j.dump();
      return true;
    }
    case Op::ping:
    case Op::pong:
      return true;
  }
  return true;
}

std::string encode_pub(const Message& msg, bool binary) {
  std::string out;
  out.reserve(msg.data.size() + msg.subject.size() + msg.reply_to.size() + 64);
  if (binary) {
    std::string rest;
    rest.reserve(msg.data.size() + msg.subject.size() + msg.reply_to.size() + 48);
    unsigned n = message_fields(rest, msg, true);
    mp_map(out, n + 1);
    mp_str(out, "op");
    mp_str(out, "pub");
    out.append(rest);
    return out;
  }
  out.append("{\"op\":\"pub\"");
  message_fields(out, msg, false);
  out.push_back('}');
  return out;
}

std::string encode_sub(std::uint64_t sid, const std::string& subject, const std::string& queue,
                       bool binary) {
  std::string out;
  if (binary) {
    mp_map(out, queue.empty() ? 3 : 4);
    mp_str(out, "op");
    mp_str(out, "sub");
    mp_str(out, "sid");
    mp_uint(out, sid);
    mp_str(out, "subject");
    mp_str(out, subject);
    if (!queue.empty()) {
      mp_str(out, "queue");
      mp_str(out, queue);
    }
    return out;
  }
  out = "{\"op\":\"sub\",\"sid\":" + std::to_string(sid);
  json_text(out, "subject", subject);
  if (!queue.empty()) json_text(out, "queue", queue);
  out.push_back('}');
  return out;
}

std::string encode_unsub(std::uint64_t sid, bool binary) {
  std::string out;
  if (binary) {
    mp_map(out, 2);
    mp_str(out, "op");
    mp_str(out, "unsub");
    mp_str(out, "sid");
    mp_uint(out, sid);
    return out;
  }
  return "{\"op\":\"unsub\",\"sid\":" + std::to_string(sid) + "}";
}

std::string encode_simple(Op op, bool binary) {
  std::string out;
  if (binary) {
    mp_map(out, 1);
    mp_str(out, "op");
    mp_str(out, to_string(op));
    return out;
  }
  return std::string("{\"op\":\"") + to_string(op) + "\"}";
}

std::string encode_err(const std::string& code, const std::string& message, bool fatal,
                       std::uint64_t sid, bool binary) {
  std::string safe = valid_utf8(message) ? message : std::string("(message is not UTF-8)");
  std::string out;
  if (binary) {
    mp_map(out, sid ? 5 : 4);
    mp_str(out, "op");
    mp_str(out, "err");
    mp_str(out, "code");
    mp_str(out, code);
    mp_str(out, "message");
    mp_str(out, safe);
    mp_str(out, "fatal");
    mp_bool(out, fatal);
    if (sid) {
      mp_str(out, "sid");
      mp_uint(out, sid);
    }
    return out;
  }
  out = "{\"op\":\"err\"";
  json_text(out, "code", code);
  json_text(out, "message", safe);
  json_key(out, "fatal");
  out.append(fatal ? "true" : "false");
  if (sid) {
    json_key(out, "sid");
    out.append(std::to_string(sid));
  }
  out.push_back('}');
  return out;
}

std::string encode_info(const std::string& node, std::size_t max_payload, std::size_t max_message) {
  Json j = {{"op", "info"},   {"proto", kProtocolVersion},  {"server", "switchboard"},
            {"node", node},   {"max_payload", max_payload}, {"max_message", max_message},
            {"headers", true}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

MsgTail encode_msg_tail(const Message& msg, bool binary) {
  MsgTail tail;
  tail.bytes.reserve(msg.data.size() + msg.subject.size() + msg.reply_to.size() + 48);
  if (binary) {
    tail.fields = message_fields(tail.bytes, msg, true);
    return tail;
  }
  // The head ends with the sid's value; the tail goes on with ",".
  tail.bytes.append("{x");  // placeholder, so that json_key writes the first comma
  message_fields(tail.bytes, msg, false);
  tail.bytes.erase(0, 2);
  tail.bytes.push_back('}');
  return tail;
}

std::string encode_msg_head(std::uint64_t sid, const MsgTail& tail, bool binary) {
  std::string out;
  if (binary) {
    mp_map(out, tail.fields + 2);
    mp_str(out, "op");
    mp_str(out, "msg");
    mp_str(out, "sid");
    mp_uint(out, sid);
    return out;
  }
  return "{\"op\":\"msg\",\"sid\":" + std::to_string(sid);
}

}  // namespace switchboard::websocket
