#include "msgpack_json.hpp"

#include <msgpack.hpp>

namespace switchboard::msgpack_codec {
namespace {

// msgpack::packer's stream: appends straight to the result string.
struct StringStream {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

void pack(msgpack::packer<StringStream>& p, const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      p.pack_nil();
      return;
    case Json::value_t::boolean:
      v.get<bool>() ? p.pack_true() : p.pack_false();
      return;
    case Json::value_t::number_integer:
      p.pack_int64(v.get<std::int64_t>());
      return;
    case Json::value_t::number_unsigned:
      p.pack_uint64(v.get<std::uint64_t>());
      return;
    case Json::value_t::number_float:
      p.pack_double(v.get<double>());
      return;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      p.pack_str(static_cast<std::uint32_t>(s.size()));
      p.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
      return;
    }
    case Json::value_t::binary: {
      const auto& b = v.get_binary();
      p.pack_bin(static_cast<std::uint32_t>(b.size()));
      p.pack_bin_body(reinterpret_cast<const char*>(b.data()),
                      static_cast<std::uint32_t>(b.size()));
      return;
    }
    case Json::value_t::array:
      p.pack_array(static_cast<std::uint32_t>(v.size()));
      for (const auto& e : v) pack(p, e);
      return;
    case Json::value_t::object:
      p.pack_map(static_cast<std::uint32_t>(v.size()));
      for (auto it = v.begin(); it != v.end(); ++it) {
        p.pack_str(static_cast<std::uint32_t>(it.key().size()));
        p.pack_str_body(it.key().data(), static_cast<std::uint32_t>(it.key().size()));
        pack(p, *it);
      }
      return;
  }
}

// Turns msgpack-c's object tree into a Json; false with `error` set for what
// JSON cannot hold (non-string map keys, extension types).
bool convert(const msgpack::object& o, Json& out, std::string& error) {
  switch (o.type) {
    case msgpack::type::NIL:
      out = nullptr;
      return true;
    case msgpack::type::BOOLEAN:
      out = o.via.boolean;
      return true;
    case msgpack::type::POSITIVE_INTEGER:
      out = o.via.u64;
      return true;
    case msgpack::type::NEGATIVE_INTEGER:
      out = o.via.i64;
      return true;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      out = o.via.f64;
      return true;
    case msgpack::type::STR:
      out = std::string(o.via.str.ptr, o.via.str.size);
      return true;
    case msgpack::type::BIN: {
      const auto* p = reinterpret_cast<const std::uint8_t*>(o.via.bin.ptr);
      out = Json::binary(Json::binary_t::container_type(p, p + o.via.bin.size));
      return true;
    }
    case msgpack::type::ARRAY: {
      out = Json::array();
      auto& a = out.get_ref<Json::array_t&>();
      a.resize(o.via.array.size);
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (!convert(o.via.array.ptr[i], a[i], error)) return false;
      }
      return true;
    }
    case msgpack::type::MAP: {
      // Gathered and sorted once, as the JSON reader does: one-by-one
      // inserts into a sorted vector cost O(n^2) for keys out of order.
      Json::object_t::Container members;
      members.reserve(o.via.map.size);
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        if (kv.key.type != msgpack::type::STR) {
          error = "map key " + std::to_string(i) + " is not a string (JSON keys must be)";
          return false;
        }
        // A repeated key: the last one wins (adopt keeps the last), as JSON parsers do.
        auto& member =
            members.emplace_back(std::string(kv.key.via.str.ptr, kv.key.via.str.size), Json());
        if (!convert(kv.val, member.second, error)) return false;
      }
      out = Json::object();
      out.get_ref<Json::object_t&>() = Json::object_t::adopt(std::move(members));
      return true;
    }
    case msgpack::type::EXT:
      error = "extension type " + std::to_string(o.via.ext.type()) + " has no JSON form";
      return false;
  }
  error = "unknown msgpack type";
  return false;
}

}  // namespace

std::string encode(const Json& value) {
  std::string out;
  StringStream stream{out};
  msgpack::packer<StringStream> packer(stream);
  pack(packer, value);
  return out;
}

bool decode(std::string_view bytes, Json& out, std::string& error) {
  if (bytes.empty()) {
    error = "empty input";
    return false;
  }
  // Every element takes at least one byte, so no honest count exceeds the
  // input's size; the limits stop a 5-byte header from asking msgpack-c to
  // allocate room for four billion elements.
  const std::size_t n = bytes.size();
  msgpack::unpack_limit limit(n, n, n, n, n, kMaxDepth);
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(bytes.data(), n, offset, nullptr, nullptr, limit);
  } catch (const msgpack::insufficient_bytes&) {
    error = "truncated: input ends inside a value (" + std::to_string(n) + " bytes)";
    return false;
  } catch (const msgpack::depth_size_overflow&) {
    error = "nested deeper than " + std::to_string(kMaxDepth) + " levels";
    return false;
  } catch (const std::exception& e) {
    error = std::string("malformed: ") + e.what();
    return false;
  }
  if (offset != n) {
    error = "trailing bytes after the value at byte " + std::to_string(offset);
    return false;
  }
  Json value;
  if (!convert(handle.get(), value, error)) return false;
  out = std::move(value);
  return true;
}

bool looks_like_msgpack(std::string_view bytes) noexcept {
  if (bytes.empty()) return false;
  const auto b = static_cast<unsigned char>(bytes.front());
  return (b >= 0x80 && b <= 0x9f)    // fixmap, fixarray
         || b == 0xdc || b == 0xdd   // array 16, 32
         || b == 0xde || b == 0xdf;  // map 16, 32
}

}  // namespace switchboard::msgpack_codec
