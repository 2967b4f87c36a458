#include "value_match.hpp"

#include <cmath>
#include <functional>

namespace switchboard {
namespace {

// Integral floats fold onto the integer they equal.
bool as_integer(const Json& v, std::int64_t& out) noexcept {
  if (v.is_number_integer() && !v.is_number_unsigned()) {
    out = v.get<std::int64_t>();
    return true;
  }
  if (v.is_number_unsigned()) {
    auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(INT64_MAX)) return false;
    out = static_cast<std::int64_t>(u);
    return true;
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::trunc(d) == d && std::fabs(d) < 9.2e18) {
      out = static_cast<std::int64_t>(d);
      return true;
    }
  }
  return false;
}

}  // namespace

std::uint64_t scalar_hash(const Json& v) noexcept {
  switch (v.type()) {
    case Json::value_t::string:
      return std::hash<std::string_view>()(v.get_ref<const std::string&>());
    case Json::value_t::boolean:
      return v.get<bool>() ? 0x51ULL : 0x50ULL;
    case Json::value_t::null:
      return 0x4eULL;
    default:
      break;
  }
  std::int64_t i;
  if (as_integer(v, i)) return integer_hash(i);
  if (v.is_number()) return std::hash<double>()(v.get<double>());
  return 0;
}

bool scalar_equal(const Json& a, const Json& b) noexcept {
  if (a.is_number() && b.is_number()) {
    std::int64_t x, y;
    bool xi = as_integer(a, x), yi = as_integer(b, y);
    if (xi && yi) return x == y;
    if (xi != yi) return false;
    return a.get<double>() == b.get<double>();
  }
  return a == b;
}

bool glob_match(std::string_view p, std::string_view t) noexcept {
  std::size_t pi = 0, ti = 0, star = std::string_view::npos, mark = 0;
  while (ti < t.size()) {
    if (pi < p.size() && (p[pi] == '?' || p[pi] == t[ti])) {
      ++pi;
      ++ti;
    } else if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = ti;
    } else if (star != std::string_view::npos) {
      pi = star + 1;
      ti = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace switchboard
