// The router's forms of routing values: how a lookup holds what it found in
// the act (ProbedValue) and how the index holds a pattern's values
// (StoredValue), with the hash and equality they share.
//
// Routing values are mostly short strings ("math", "create", "svc12"), so
// the hot path is written for them: a string's hash is taken once per
// lookup, short pattern strings sit inside the index's own records (no
// pointer to follow), and they compare with a few word loads instead of a
// call to memcmp. Everything else (numbers, booleans, null, long strings)
// goes through scalar_hash and scalar_equal.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "switchboard/json.hpp"
#include "value_match.hpp"

namespace switchboard::routing {

inline std::uint64_t load64(const char* p) noexcept {
  std::uint64_t w;
  std::memcpy(&w, p, 8);
  return w;
}
inline std::uint64_t load32(const char* p) noexcept {
  std::uint32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// A hash of short strings, inline and a few times cheaper than std::hash's
// out-of-line Murmur for them. The tail is read with overlapping word loads
// (never past the string's end) instead of byte by byte.
inline std::uint64_t string_hash(const char* p, std::size_t n) noexcept {
  constexpr std::uint64_t kMul = 0x9fb21c651e98df25ULL;
  std::uint64_t h = 0x243f6a8885a308d3ULL ^ (n * kMul);
  auto mix = [&](std::uint64_t w) {
    h = (h ^ w) * kMul;
    h ^= h >> 29;
  };
  if (n >= 8) {
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) mix(load64(p + i));
    if (i < n) mix(load64(p + n - 8));
  } else if (n >= 4) {
    mix(load32(p) | (load32(p + n - 4) << 32));
  } else if (n > 0) {
    mix(std::uint64_t(static_cast<unsigned char>(p[0])) |
        std::uint64_t(static_cast<unsigned char>(p[n / 2])) << 8 |
        std::uint64_t(static_cast<unsigned char>(p[n - 1])) << 16);
  }
  return h;
}

// Integers, signed or not, that fit an int64: the common routing numbers.
inline bool integer_of(const Json& v, std::int64_t& out) noexcept {
  if (const auto* i = v.get_ptr<const Json::number_integer_t*>()) {
    out = *i;
    return true;
  }
  if (const auto* u = v.get_ptr<const Json::number_unsigned_t*>()) {
    if (*u > static_cast<std::uint64_t>(INT64_MAX)) return false;
    out = static_cast<std::int64_t>(*u);
    return true;
  }
  return false;
}

// What a lookup found in the act for one routing key. Resolved once per
// lookup for the union of the shapes' keys. No member initializers: a
// lookup keeps an array of these on its stack and fills what it uses.
struct ProbedValue {
  const Json* value;   // null: absent, or not a routing scalar
  const char* chars;   // string values: their bytes (else null)
  std::size_t size;    // string values: their length
  std::uint64_t hash;  // routing hash (scalar_hash's for everything but strings)
};

// Inlined into the lookup's walk: it runs for every routing key an act has.
[[gnu::always_inline]] inline ProbedValue probe(const Json& v) noexcept {
  if (const auto* s = v.get_ptr<const std::string*>()) {
    return ProbedValue{&v, s->data(), s->size(), string_hash(s->data(), s->size())};
  }
  std::int64_t i;
  if (integer_of(v, i)) return ProbedValue{&v, nullptr, 0, integer_hash(i)};
  if (v.is_primitive() && !v.is_binary()) return ProbedValue{&v, nullptr, 0, scalar_hash(v)};
  return ProbedValue{nullptr, nullptr, 0, 0};
}

// A pattern's value for one key as the index keeps it. 32 bytes: a table
// entry's values are a few adjacent records.
struct StoredValue {
  static constexpr std::size_t kInline = 19;  // strings up to this long are kept here
  enum class Kind : std::uint8_t { other, string, integer };

  std::uint64_t hash = 0;
  std::uint32_t size = 0;  // strings: their length
  Kind kind = Kind::other;
  char chars[kInline] = {};  // strings up to kInline bytes, zero-padded; integers

  static StoredValue of(const Json& v) noexcept {
    StoredValue s;
    ProbedValue p = probe(v);
    s.hash = p.hash;
    std::int64_t i;
    if (p.chars != nullptr) {
      s.kind = Kind::string;
      s.size = static_cast<std::uint32_t>(p.size);
      if (p.size <= kInline) std::memcpy(s.chars, p.chars, p.size);
    } else if (integer_of(v, i)) {
      s.kind = Kind::integer;
      std::memcpy(s.chars, &i, sizeof i);
    }
    return s;
  }
  std::int64_t integer() const noexcept {
    std::int64_t i;
    std::memcpy(&i, chars, sizeof i);
    return i;
  }
};
static_assert(sizeof(StoredValue) == 32);

// a[0, kInline) is readable (zero-padded); b has exactly n bytes, n <= kInline.
inline bool short_equal(const char* a, const char* b, std::size_t n) noexcept {
  if (n >= 8) {
    if (load64(a) != load64(b)) return false;
    if (n > 16 && load64(a + 8) != load64(b + 8)) return false;
    return load64(a + n - 8) == load64(b + n - 8);
  }
  if (n >= 4) return load32(a) == load32(b) && load32(a + n - 4) == load32(b + n - 4);
  for (std::size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// Does the act's value equal the pattern's (`stored`, whose Json form is
// `json`)? Equal values have equal hashes, so the hash settles most misses.
[[gnu::always_inline]] inline bool same_value(const StoredValue& stored, const Json& json,
                                              const ProbedValue& p) noexcept {
  if (stored.hash != p.hash) return false;
  switch (stored.kind) {
    case StoredValue::Kind::string:
      if (p.chars == nullptr || p.size != stored.size) return false;
      if (p.size <= StoredValue::kInline) return short_equal(stored.chars, p.chars, p.size);
      return *json.get_ptr<const std::string*>() == std::string_view(p.chars, p.size);
    case StoredValue::Kind::integer: {
      std::int64_t i;
      if (integer_of(*p.value, i)) return i == stored.integer();
      break;
    }
    case StoredValue::Kind::other:
      break;
  }
  return p.chars == nullptr && scalar_equal(json, *p.value);
}

}  // namespace switchboard::routing
