#include "switchboard/pattern_router.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <regex>
#include <unordered_map>

#include "switchboard/error.hpp"
#include "value_match.hpp"

namespace switchboard {
namespace {

bool is_routing_scalar(const Json& v) {
  return v.is_primitive() && !v.is_binary();
}

// One regex or glob on one key.
struct Matcher {
  std::string key;
  bool is_regex = false;
  std::string expression;
  std::regex compiled;

  bool matches(const Json& value) const {
    if (!value.is_string()) return false;
    const auto& s = value.get_ref<const std::string&>();
    return is_regex ? std::regex_search(s, compiled) : glob_match(expression, s);
  }
  bool same_as(const Matcher& o) const {
    return key == o.key && is_regex == o.is_regex && expression == o.expression;
  }
};

// What a lookup found in the object for one key that some shape routes on:
// the value (null when absent or not a routing scalar) and its hash. Resolved
// once per lookup for the union of the shapes' keys, instead of once per shape.
struct Probe {
  const Json* value = nullptr;
  std::uint64_t hash = 0;
};

struct Entry {
  PatternRouter::Id id;
  std::vector<Json> values;  // in the shape's key order
  std::vector<Matcher> matchers;
};

// All patterns that have the same exact keys and the same matcher keys.
struct Shape {
  std::vector<std::string> keys;          // exact keys, sorted
  std::vector<std::string> matcher_keys;  // sorted
  std::vector<std::size_t> slots;         // keys[i] is Impl::slot_keys[slots[i]]
  std::size_t weight = 0;                 // keys + matcher_keys: the specificity
  std::uint64_t first_id = 0;             // for stable ordering of shapes
  std::unordered_map<std::uint64_t, std::vector<Entry>> buckets;
  std::size_t count = 0;

  // Hashes the object's values for this shape's keys; false if one is
  // missing or not a scalar.
  bool hash_of(const Probe* probes, std::uint64_t& h) const {
    h = 0x9e3779b97f4a7c15ULL;
    for (auto slot : slots) {
      if (probes[slot].value == nullptr) return false;
      h = hash_combine(h, probes[slot].hash);
    }
    return true;
  }

  const Entry* best_in_bucket(const Json& object, const Probe* probes, std::uint64_t h) const {
    auto b = buckets.find(h);
    if (b == buckets.end()) return nullptr;
    for (const auto& entry : b->second) {  // ordered by id
      if (entry_matches(entry, object, probes)) return &entry;
    }
    return nullptr;
  }

  // Only called after hash_of() succeeded, so every slot has a value.
  bool entry_matches(const Entry& entry, const Json& object, const Probe* probes) const {
    for (std::size_t i = 0; i < slots.size(); ++i) {
      if (!scalar_equal(entry.values[i], *probes[slots[i]].value)) return false;
    }
    for (const auto& m : entry.matchers) {
      auto it = object.find(m.key);
      if (it == object.end() || !m.matches(*it)) return false;
    }
    return true;
  }
};

}  // namespace

struct PatternRouter::Impl {
  Order order;
  Id next_id = 1;
  // Kept sorted by weight descending, then by first_id: a lookup can stop at
  // the first weight level that has a match.
  std::vector<std::unique_ptr<Shape>> shapes;
  std::unordered_map<Id, Shape*> owner;
  // The union of the shapes' exact keys, sorted; rebuilt when a shape comes
  // or goes (rare: only a new set of keys makes a shape).
  std::vector<std::string> slot_keys;

  void rebuild_slots() {
    slot_keys.clear();
    for (const auto& s : shapes) slot_keys.insert(slot_keys.end(), s->keys.begin(), s->keys.end());
    std::sort(slot_keys.begin(), slot_keys.end());
    slot_keys.erase(std::unique(slot_keys.begin(), slot_keys.end()), slot_keys.end());
    for (auto& s : shapes) {
      s->slots.clear();
      for (const auto& key : s->keys) {
        s->slots.push_back(static_cast<std::size_t>(
            std::lower_bound(slot_keys.begin(), slot_keys.end(), key) - slot_keys.begin()));
      }
    }
  }

  // Fills probes[i] for slot_keys[i]. A small object is walked once beside
  // the sorted slot keys (both in key order); a large one is searched per key.
  void resolve(const Json& object, Probe* probes) const {
    const auto& members = object.get_ref<const Json::object_t&>();
    const std::size_t n = slot_keys.size();
    auto take = [&](std::size_t i, const Json& v) {
      if (is_routing_scalar(v)) probes[i] = Probe{&v, scalar_hash(v)};
    };
    if (members.size() <= 4 * n) {
      auto it = members.begin();
      std::size_t i = 0;
      while (it != members.end() && i < n) {
        int c = it->first.compare(slot_keys[i]);
        if (c < 0) {
          ++it;
        } else if (c > 0) {
          ++i;
        } else {
          take(i, it->second);
          ++it;
          ++i;
        }
      }
    } else {
      for (std::size_t i = 0; i < n; ++i) {
        auto it = members.find(slot_keys[i]);
        if (it != members.end()) take(i, it->second);
      }
    }
  }

  Shape& shape_for(std::vector<std::string> keys, std::vector<std::string> matcher_keys, Id id) {
    for (auto& s : shapes) {
      if (s->keys == keys && s->matcher_keys == matcher_keys) return *s;
    }
    auto shape = std::make_unique<Shape>();
    shape->keys = std::move(keys);
    shape->matcher_keys = std::move(matcher_keys);
    shape->weight = shape->keys.size() + shape->matcher_keys.size();
    shape->first_id = id;
    auto pos = std::find_if(shapes.begin(), shapes.end(),
                            [&](const auto& s) { return s->weight < shape->weight; });
    Shape& created = **shapes.insert(pos, std::move(shape));
    rebuild_slots();
    return created;
  }

  // Visits matches; for specificity order stops after the best weight level.
  template <typename F>
  void visit(const Json& object, bool all, F&& f) const {
    if (!object.is_object()) return;
    constexpr std::size_t kInlineProbes = 16;
    std::array<Probe, kInlineProbes> inline_probes{};
    std::vector<Probe> heap_probes;
    Probe* probes = inline_probes.data();
    if (slot_keys.size() > kInlineProbes) {
      heap_probes.resize(slot_keys.size());
      probes = heap_probes.data();
    }
    resolve(object, probes);
    std::size_t found_weight = 0;
    bool found = false;
    for (const auto& shape : shapes) {
      if (found && !all && order == Order::specificity && shape->weight < found_weight) break;
      std::uint64_t h;
      if (!shape->hash_of(probes, h)) continue;
      if (all) {
        auto b = shape->buckets.find(h);
        if (b == shape->buckets.end()) continue;
        for (const auto& entry : b->second) {
          if (shape->entry_matches(entry, object, probes)) f(*shape, entry);
        }
      } else if (const Entry* e = shape->best_in_bucket(object, probes, h)) {
        found = true;
        found_weight = shape->weight;
        f(*shape, *e);
      }
    }
  }
};

PatternRouter::PatternRouter(Order order) : impl_(std::make_unique<Impl>()) {
  impl_->order = order;
}
PatternRouter::~PatternRouter() = default;

bool PatternRouter::is_matcher(const Json& value) {
  if (!value.is_object() || value.size() != 1) return false;
  auto it = value.begin();
  return (it.key() == "$regex" || it.key() == "$glob") && it->is_string();
}

Json PatternRouter::routing_part(const Json& pattern) {
  Json out = Json::object();
  if (!pattern.is_object()) return out;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    if (is_routing_scalar(*it) || is_matcher(*it)) out[it.key()] = *it;
  }
  return out;
}

Json PatternRouter::schema_part(const Json& pattern) {
  Json out = Json::object();
  if (!pattern.is_object()) return out;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    if (it->is_object() && !is_matcher(*it)) out[it.key()] = *it;
  }
  return out;
}

std::error_code PatternRouter::add(const Json& pattern, Id& id, std::string& why) {
  if (!pattern.is_object()) {
    why = "a pattern must be a JSON object, got " + std::string(pattern.type_name());
    return make_error_code(errc::invalid_argument);
  }
  std::vector<std::pair<std::string, Json>> exact;
  std::vector<Matcher> matchers;
  for (auto it = pattern.begin(); it != pattern.end(); ++it) {
    if (is_routing_scalar(*it)) {
      exact.emplace_back(it.key(), *it);
    } else if (is_matcher(*it)) {
      Matcher m;
      m.key = it.key();
      m.is_regex = it->begin().key() == "$regex";
      m.expression = it->begin()->get<std::string>();
      if (m.is_regex) {
        try {
          m.compiled = std::regex(m.expression, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& e) {
          why = "pattern key '" + m.key + "': bad regular expression '" + m.expression +
                "': " + e.what();
          return make_error_code(errc::invalid_argument);
        }
      }
      matchers.push_back(std::move(m));
    } else if (it->is_array()) {
      why = "pattern key '" + it.key() + "': arrays cannot route; use a scalar or a matcher";
      return make_error_code(errc::invalid_argument);
    }
    // Other objects are payload schemas, not routing.
  }
  // nlohmann objects iterate in key order, so both lists are sorted.
  std::vector<std::string> keys, matcher_keys;
  std::vector<Json> values;
  for (auto& [k, v] : exact) {
    keys.push_back(k);
    values.push_back(std::move(v));
  }
  for (const auto& m : matchers) matcher_keys.push_back(m.key);

  id = impl_->next_id++;
  Shape& shape = impl_->shape_for(std::move(keys), std::move(matcher_keys), id);
  std::uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (const auto& v : values) h = hash_combine(h, scalar_hash(v));
  shape.buckets[h].push_back(Entry{id, std::move(values), std::move(matchers)});
  ++shape.count;
  impl_->owner.emplace(id, &shape);
  return {};
}

bool PatternRouter::remove(Id id) {
  auto it = impl_->owner.find(id);
  if (it == impl_->owner.end()) return false;
  Shape* shape = it->second;
  impl_->owner.erase(it);
  for (auto b = shape->buckets.begin(); b != shape->buckets.end(); ++b) {
    auto& entries = b->second;
    auto e =
        std::find_if(entries.begin(), entries.end(), [&](const Entry& x) { return x.id == id; });
    if (e == entries.end()) continue;
    entries.erase(e);
    if (entries.empty()) shape->buckets.erase(b);
    break;
  }
  if (--shape->count == 0) {
    auto& shapes = impl_->shapes;
    shapes.erase(std::find_if(shapes.begin(), shapes.end(),
                              [&](const auto& s) { return s.get() == shape; }));
    impl_->rebuild_slots();
  }
  return true;
}

std::optional<PatternRouter::Id> PatternRouter::lookup(const Json& object) const {
  std::optional<Id> best;
  std::size_t best_weight = 0;
  impl_->visit(object, false, [&](const Shape& shape, const Entry& entry) {
    bool better;
    if (!best) {
      better = true;
    } else if (impl_->order == Order::insertion) {
      better = entry.id < *best;
    } else {
      better = shape.weight > best_weight || (shape.weight == best_weight && entry.id < *best);
    }
    if (better) {
      best = entry.id;
      best_weight = shape.weight;
    }
  });
  return best;
}

std::vector<PatternRouter::Id> PatternRouter::list(const Json& object) const {
  std::vector<std::pair<std::size_t, Id>> found;
  impl_->visit(object, true, [&](const Shape& shape, const Entry& entry) {
    found.emplace_back(shape.weight, entry.id);
  });
  std::sort(found.begin(), found.end(), [&](const auto& a, const auto& b) {
    if (impl_->order == Order::specificity && a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  });
  std::vector<Id> ids;
  for (auto& f : found) ids.push_back(f.second);
  return ids;
}

std::vector<PatternRouter::Id> PatternRouter::find_exact(const Json& pattern) const {
  std::vector<Id> ids;
  if (!pattern.is_object()) return ids;
  Json routing = routing_part(pattern);
  for (const auto& shape : impl_->shapes) {
    if (shape->weight != routing.size()) continue;
    for (const auto& [h, entries] : shape->buckets) {
      for (const auto& entry : entries) {
        bool same = true;
        for (std::size_t i = 0; same && i < shape->keys.size(); ++i) {
          auto it = routing.find(shape->keys[i]);
          same =
              it != routing.end() && is_routing_scalar(*it) && scalar_equal(*it, entry.values[i]);
        }
        for (const auto& m : entry.matchers) {
          auto it = routing.find(m.key);
          if (!same || it == routing.end() || !is_matcher(*it)) {
            same = false;
            break;
          }
          same = (it->begin().key() == "$regex") == m.is_regex &&
                 it->begin()->get<std::string>() == m.expression;
        }
        if (same) ids.push_back(entry.id);
      }
    }
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::size_t PatternRouter::size() const noexcept {
  return impl_->owner.size();
}
std::size_t PatternRouter::shape_count() const noexcept {
  return impl_->shapes.size();
}

}  // namespace switchboard
