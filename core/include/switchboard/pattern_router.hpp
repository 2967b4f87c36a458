// PatternRouter: the index of add-patterns, answering "which pattern is the
// most specific match for this object".
//
// A pattern's routing properties are its scalar values (string, number,
// boolean, null) and matchers ({"$regex": "..."}, {"$glob": "..."} or
// {"$subject": "a.*"}, NATS subject rules, used for wildcard topics; all
// match string values). Other object values are payload schemas and do not
// route. A pattern matches an object when every routing property matches;
// the winner is the match with the most routing properties, ties going to
// the one added first (or, with insertion order, simply the first added).
//
// Patterns are grouped by their set of keys ("shape"); each shape hashes the
// values of its exact keys. A lookup costs one hash probe per shape, so it
// does not grow with the number of patterns, only with the number of shapes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/json.hpp"

namespace switchboard {

class PatternRouter {
 public:
  using Id = std::uint64_t;
  enum class Order { specificity, insertion };

  explicit PatternRouter(Order order = Order::specificity);
  ~PatternRouter();
  PatternRouter(const PatternRouter&) = delete;
  PatternRouter& operator=(const PatternRouter&) = delete;

  // Adds a pattern; ids increase with each add. Fails with
  // errc::invalid_argument (and `why`) for non-object patterns, arrays as
  // values and bad regular expressions.
  std::error_code add(const Json& pattern, Id& id, std::string& why);
  bool remove(Id id);

  // The most specific pattern matching `object`, if any.
  std::optional<Id> lookup(const Json& object) const;
  // Every pattern whose routing properties equal `pattern`'s exactly.
  std::vector<Id> find_exact(const Json& pattern) const;
  // Every pattern matching `object`, most specific first.
  std::vector<Id> list(const Json& object) const;

  std::size_t size() const noexcept;
  std::size_t shape_count() const noexcept;

  // The routing part of a pattern (scalars and matchers) and its schema part
  // (the other object values), split the way add() sees them.
  static Json routing_part(const Json& pattern);
  static Json schema_part(const Json& pattern);
  static bool is_matcher(const Json& value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Helpers to write matchers in C++: {"topic": "math", "cmd": regex("^a")}.
inline Json regex(std::string expression) {
  return Json{{"$regex", std::move(expression)}};
}
inline Json glob(std::string expression) {
  return Json{{"$glob", std::move(expression)}};
}

}  // namespace switchboard
