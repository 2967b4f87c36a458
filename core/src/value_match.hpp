// Scalar hashing and equality for routing, and glob matching.
//
// Numbers compare by value across JSON's integer and float kinds, so that an
// add of {a: 1} matches an act of {a: 1.0}, as in JavaScript.
#pragma once

#include <cstdint>
#include <string_view>

#include "switchboard/json.hpp"

namespace switchboard {

std::uint64_t scalar_hash(const Json& v) noexcept;
// scalar_hash of a number equal to the integer i, whatever its JSON kind.
inline std::uint64_t integer_hash(std::int64_t i) noexcept {
  return static_cast<std::uint64_t>(i) * 0x9e3779b97f4a7c15ULL ^ 0x1234567ULL;
}
bool scalar_equal(const Json& a, const Json& b) noexcept;

inline std::uint64_t hash_combine(std::uint64_t seed, std::uint64_t h) noexcept {
  return seed ^ (h + 0x9e3779b97f4a7c15ULL + (seed << 6) + (seed >> 2));
}

// Shell-style glob: '*' any run of characters, '?' one character.
bool glob_match(std::string_view pattern, std::string_view text) noexcept;

}  // namespace switchboard
