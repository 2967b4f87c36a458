#include "switchboard/pattern_router.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <regex>
#include <string_view>
#include <unordered_map>

#include "routing_value.hpp"
#include "switchboard/error.hpp"
#include "switchboard/subject.hpp"
#include "value_match.hpp"

namespace switchboard {
namespace {

bool is_routing_scalar(const Json& v) {
  return v.is_primitive() && !v.is_binary();
}

// One regex or glob on one key.
struct Matcher {
  std::string key;
  std::string kind;  // "$regex", "$glob" or "$subject"
  std::string expression;
  std::regex compiled;

  bool matches(const Json& value) const {
    if (!value.is_string()) return false;
    const auto& s = value.get_ref<const std::string&>();
    if (kind == "$regex") return std::regex_search(s, compiled);
    if (kind == "$subject") return subject_matches(expression, s);
    return glob_match(expression, s);
  }
  bool same_as(const Matcher& o) const {
    return key == o.key && kind == o.kind && expression == o.expression;
  }
};

using routing::ProbedValue;
using routing::StoredValue;

// The hash add(), remove() and lookup() all combine per value, so they agree.
inline std::uint64_t routing_hash(const Json& v) noexcept {
  return routing::probe(v).hash;
}

// A key some shape routes on, in the form the walk over an act's members
// compares fastest: most members differ from it in the first byte, and the
// one that does not is usually the key itself (a few word compares).
struct SlotKey {
  std::string key;
  unsigned char first = 0;
  char chars[StoredValue::kInline] = {};  // keys up to kInline bytes, zero-padded

  explicit SlotKey(std::string k) : key(std::move(k)) {
    if (!key.empty()) first = static_cast<unsigned char>(key[0]);
    if (key.size() <= StoredValue::kInline) std::memcpy(chars, key.data(), key.size());
  }

  // <0: `member` sorts before this key, 0: it is this key, >0: after it;
  // the order of std::string, by which the act's members are sorted.
  int compare(const std::string& member) const noexcept {
    // data()[0] is the terminating '\0' of an empty string, which sorts
    // first as the empty string does; a tie on it is settled below.
    const auto c = static_cast<unsigned char>(member.data()[0]);
    if (c != first) return c < first ? -1 : 1;
    if (member.size() == key.size() && key.size() <= StoredValue::kInline &&
        routing::short_equal(chars, member.data(), key.size())) {
      return 0;
    }
    // Inline rather than std::string::compare's call to memcmp: keys are
    // short and usually differ within a few bytes.
    const std::size_t n = std::min(member.size(), key.size());
    for (std::size_t i = 0; i < n; ++i) {
      const auto a = static_cast<unsigned char>(member[i]);
      const auto b = static_cast<unsigned char>(key[i]);
      if (a != b) return a < b ? -1 : 1;
    }
    return member.size() < key.size() ? -1 : member.size() > key.size() ? 1 : 0;
  }
};

constexpr std::uint64_t kHashSeed = 0x9e3779b97f4a7c15ULL;

struct Entry {
  PatternRouter::Id id = 0;
  std::uint32_t next = 0;  // the next entry with the same hash (kNone: last)
  bool live = false;
  std::vector<Matcher> matchers;
};

// All patterns that have the same exact keys and the same matcher keys.
//
// Entries sit in one flat open-addressing table keyed by the hash of their
// values; entries with equal hashes are chained in id order. Entry e's values
// are values[e * keys.size() ...], and the same again as compact records in
// stored[...] (hash and short strings inline), which is what lookups read: a
// table slot, then the entry, then its records; few dependent cache misses
// however many patterns there are.
struct Shape {
  static constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::uint32_t kRemoved = kNone - 1;  // a tombstone slot

  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t head = kNone;  // first entry of the chain, kNone empty, kRemoved tombstone
  };

  std::vector<std::string> keys;          // exact keys, sorted
  std::vector<std::string> matcher_keys;  // sorted
  std::vector<std::uint32_t> slots;       // keys[i] is Impl::slot_keys[slots[i]]
  std::uint64_t mask = 0;                 // bit slots[i] for each key (Impl::masks_valid)
  std::size_t weight = 0;                 // keys + matcher_keys: the specificity
  std::uint64_t first_id = 0;             // for stable ordering of shapes
  std::size_t count = 0;

  std::vector<Entry> entries;
  std::vector<Json> values;
  std::vector<StoredValue> stored;  // values' records, in the same places
  std::vector<std::uint32_t> free_entries;
  std::vector<Slot> table;     // size a power of two, at most half used
  std::size_t used_slots = 0;  // chains and tombstones

  const Json* values_of(std::uint32_t e) const { return values.data() + e * keys.size(); }
  const StoredValue* stored_of(std::uint32_t e) const { return stored.data() + e * keys.size(); }

  std::size_t index_of(std::uint64_t h) const {
    // Fibonacci hashing: the high bits of a multiply spread any hash.
    return static_cast<std::size_t>((h * 0x9e3779b97f4a7c15ULL) >> 32) & (table.size() - 1);
  }

  // The first entry of the chain for hash h, or kNone.
  std::uint32_t chain(std::uint64_t h) const {
    if (table.empty()) return kNone;
    for (std::size_t i = index_of(h);; i = (i + 1) & (table.size() - 1)) {
      const Slot& slot = table[i];
      if (slot.head == kNone) return kNone;
      if (slot.head != kRemoved && slot.hash == h) return slot.head;
    }
  }

  Slot* slot_of_chain(std::uint64_t h) {
    if (table.empty()) return nullptr;
    for (std::size_t i = index_of(h);; i = (i + 1) & (table.size() - 1)) {
      Slot& slot = table[i];
      if (slot.head == kNone) return nullptr;
      if (slot.head != kRemoved && slot.hash == h) return &slot;
    }
  }

  void rehash(std::size_t size) {
    std::vector<Slot> old = std::move(table);
    table.assign(size, Slot{});
    used_slots = 0;
    for (const Slot& s : old) {
      if (s.head == kNone || s.head == kRemoved) continue;
      std::size_t i = index_of(s.hash);
      while (table[i].head != kNone) i = (i + 1) & (table.size() - 1);
      table[i] = s;
      ++used_slots;
    }
  }

  void insert(PatternRouter::Id id, std::uint64_t h, std::vector<Json>&& entry_values,
              std::vector<Matcher>&& matchers) {
    std::uint32_t e;
    if (!free_entries.empty()) {
      e = free_entries.back();
      free_entries.pop_back();
    } else {
      e = static_cast<std::uint32_t>(entries.size());
      entries.emplace_back();
      values.resize(values.size() + keys.size());
      stored.resize(stored.size() + keys.size());
    }
    entries[e] = Entry{id, kNone, true, std::move(matchers)};
    for (std::size_t i = 0; i < keys.size(); ++i) {
      stored[e * keys.size() + i] = StoredValue::of(entry_values[i]);
      values[e * keys.size() + i] = std::move(entry_values[i]);
    }
    ++count;

    if (Slot* slot = slot_of_chain(h)) {  // ids only grow: append keeps id order
      std::uint32_t tail = slot->head;
      while (entries[tail].next != kNone) tail = entries[tail].next;
      entries[tail].next = e;
      return;
    }
    if ((used_slots + 1) * 2 > table.size()) rehash(std::max<std::size_t>(8, table.size() * 2));
    std::size_t i = index_of(h);
    while (table[i].head != kNone && table[i].head != kRemoved) i = (i + 1) & (table.size() - 1);
    if (table[i].head == kNone) ++used_slots;
    table[i] = Slot{h, e};
  }

  bool erase(PatternRouter::Id id) {
    std::uint32_t e = 0;
    while (e < entries.size() && !(entries[e].live && entries[e].id == id)) ++e;
    if (e == entries.size()) return false;
    std::uint64_t h = kHashSeed;
    const Json* v = values_of(e);
    for (std::size_t i = 0; i < keys.size(); ++i) h = hash_combine(h, routing_hash(v[i]));
    Slot* slot = slot_of_chain(h);
    if (slot->head == e) {
      slot->head = entries[e].next == kNone ? kRemoved : entries[e].next;
    } else {
      std::uint32_t prev = slot->head;
      while (entries[prev].next != e) prev = entries[prev].next;
      entries[prev].next = entries[e].next;
    }
    entries[e] = Entry{};
    for (std::size_t i = 0; i < keys.size(); ++i) {
      values[e * keys.size() + i] = Json();
      stored[e * keys.size() + i] = StoredValue{};
    }
    free_entries.push_back(e);
    --count;
    return true;
  }

  // Hashes the object's values for this shape's keys; false if one is
  // missing or not a scalar.
  bool hash_of(const ProbedValue* probes, std::uint64_t& h) const {
    h = kHashSeed;
    for (auto slot : slots) {
      if (probes[slot].value == nullptr) return false;
      h = hash_combine(h, probes[slot].hash);
    }
    return true;
  }

  const Entry* best_in_chain(const Json& object, const ProbedValue* probes, std::uint64_t h) const {
    for (std::uint32_t e = chain(h); e != kNone; e = entries[e].next) {  // ordered by id
      if (entry_matches(e, object, probes)) return &entries[e];
    }
    return nullptr;
  }

  // Only called after hash_of() succeeded, so every slot has a value.
  bool entry_matches(std::uint32_t e, const Json& object, const ProbedValue* probes) const {
    const std::size_t n = slots.size();
    const std::uint32_t* slot = slots.data();
    const StoredValue* stored_values = stored.data() + e * n;
    const Json* json_values = values.data() + e * n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!routing::same_value(stored_values[i], json_values[i], probes[slot[i]])) return false;
    }
    for (const auto& m : entries[e].matchers) {
      auto it = object.find(m.key);
      if (it == object.end() || !m.matches(*it)) return false;
    }
    return true;
  }
};

// The act's values for the routing keys during one lookup: on the stack for
// up to 16 routing keys (every router seen so far), on the heap beyond.
struct ProbeBuffer {
  static constexpr std::size_t kInline = 16;
  explicit ProbeBuffer(std::size_t keys) {
    if (keys > kInline) {
      heap.resize(keys);
      data = heap.data();
    }
  }
  ProbeBuffer(const ProbeBuffer&) = delete;
  ProbeBuffer& operator=(const ProbeBuffer&) = delete;

  ProbedValue inline_values[kInline];
  std::vector<ProbedValue> heap;
  ProbedValue* data = inline_values;
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
  std::vector<SlotKey> slot_keys;
  // With at most 64 slot keys, a lookup notes which it found in a bit mask,
  // and a shape missing one of its keys is skipped on its mask alone.
  bool masks_valid = true;

  void rebuild_slots() {
    std::vector<std::string> keys;
    for (const auto& s : shapes) keys.insert(keys.end(), s->keys.begin(), s->keys.end());
    std::sort(keys.begin(), keys.end());
    keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
    slot_keys.clear();
    for (auto& key : keys) slot_keys.emplace_back(std::move(key));
    for (auto& s : shapes) {
      s->slots.clear();
      for (const auto& key : s->keys) {
        s->slots.push_back(static_cast<std::uint32_t>(
            std::lower_bound(slot_keys.begin(), slot_keys.end(), key,
                             [](const SlotKey& a, const std::string& b) { return a.key < b; }) -
            slot_keys.begin()));
      }
    }
    masks_valid = slot_keys.size() <= 64;
    for (auto& s : shapes) {
      s->mask = 0;
      if (masks_valid) {
        for (auto slot : s->slots) s->mask |= std::uint64_t{1} << slot;
      }
    }
  }

  // Fills probes[i] for slot_keys[i] and returns the mask of the ones found
  // (when masks_valid). Both the object's members and slot_keys are sorted
  // by key, so one merging walk finds them all.
  std::uint64_t resolve(const Json& object, ProbedValue* probes) const {
    std::uint64_t found = 0;
    const auto& members = *object.get_ptr<const Json::object_t*>();  // visit() checked
    auto member = members.begin();
    const auto end = members.end();
    for (std::size_t i = 0; i < slot_keys.size(); ++i) {
      int c = -1;
      while (member != end && (c = slot_keys[i].compare(member->first)) < 0) ++member;
      probes[i] = c == 0 ? routing::probe(member->second) : ProbedValue{};
      if (probes[i].value != nullptr) found |= std::uint64_t{1} << (i & 63);
    }
    return found;
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

  // The most specific match (or, with insertion order, the first added):
  // visit() written out for the one answer a lookup wants. Shapes are sorted
  // by weight, so in specificity order the first weight level with a match
  // ends the search.
  std::optional<Id> best(const Json& object) const {
    if (!object.is_object()) return std::nullopt;
    ProbeBuffer buffer(slot_keys.size());
    ProbedValue* probes = buffer.data;
    const std::uint64_t present = resolve(object, probes);
    const bool by_specificity = order == Order::specificity;
    const Entry* winner = nullptr;
    std::size_t winner_weight = 0;
    for (const auto& shape_ptr : shapes) {
      const Shape& shape = *shape_ptr;
      if (winner != nullptr && by_specificity && shape.weight < winner_weight) break;
      if (masks_valid && (present & shape.mask) != shape.mask) continue;
      std::uint64_t h;
      if (!shape.hash_of(probes, h)) continue;
      const Entry* e = shape.best_in_chain(object, probes, h);
      if (e != nullptr && (winner == nullptr || e->id < winner->id)) {
        winner = e;
        winner_weight = shape.weight;
      }
    }
    return winner != nullptr ? std::optional<Id>(winner->id) : std::nullopt;
  }

  // Visits matches; for specificity order stops after the best weight level.
  template <typename F>
  void visit(const Json& object, bool all, F&& f) const {
    if (!object.is_object()) return;
    ProbeBuffer buffer(slot_keys.size());
    ProbedValue* probes = buffer.data;
    const std::uint64_t present = resolve(object, probes);
    std::size_t found_weight = 0;
    bool found = false;
    for (const auto& shape : shapes) {
      if (found && !all && order == Order::specificity && shape->weight < found_weight) break;
      if (masks_valid && (present & shape->mask) != shape->mask) continue;
      std::uint64_t h;
      if (!shape->hash_of(probes, h)) continue;
      if (all) {
        for (std::uint32_t e = shape->chain(h); e != Shape::kNone; e = shape->entries[e].next) {
          if (shape->entry_matches(e, object, probes)) f(*shape, shape->entries[e]);
        }
      } else if (const Entry* e = shape->best_in_chain(object, probes, h)) {
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
  return (it.key() == "$regex" || it.key() == "$glob" || it.key() == "$subject") && it->is_string();
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
      m.kind = it->begin().key();
      m.expression = it->begin()->get<std::string>();
      if (m.kind == "$regex") {
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
  std::uint64_t h = kHashSeed;
  for (const auto& v : values) h = hash_combine(h, routing_hash(v));
  shape.insert(id, h, std::move(values), std::move(matchers));
  impl_->owner.emplace(id, &shape);
  return {};
}

bool PatternRouter::remove(Id id) {
  auto it = impl_->owner.find(id);
  if (it == impl_->owner.end()) return false;
  Shape* shape = it->second;
  impl_->owner.erase(it);
  shape->erase(id);
  if (shape->count == 0) {
    auto& shapes = impl_->shapes;
    shapes.erase(std::find_if(shapes.begin(), shapes.end(),
                              [&](const auto& s) { return s.get() == shape; }));
    impl_->rebuild_slots();
  }
  return true;
}

std::optional<PatternRouter::Id> PatternRouter::lookup(const Json& object) const {
  return impl_->best(object);
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
    for (std::uint32_t e = 0; e < shape->entries.size(); ++e) {
      const Entry& entry = shape->entries[e];
      if (!entry.live) continue;
      const Json* values = shape->values_of(e);
      bool same = true;
      for (std::size_t i = 0; same && i < shape->keys.size(); ++i) {
        auto it = routing.find(shape->keys[i]);
        same = it != routing.end() && is_routing_scalar(*it) && scalar_equal(*it, values[i]);
      }
      for (const auto& m : entry.matchers) {
        auto it = routing.find(m.key);
        if (!same || it == routing.end() || !is_matcher(*it)) {
          same = false;
          break;
        }
        same = it->begin().key() == m.kind && it->begin()->get<std::string>() == m.expression;
      }
      if (same) ids.push_back(entry.id);
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
