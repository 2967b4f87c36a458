// OptionReader: typed reads of a plugin's options (the JSON object under
// `options:` in config) with errors that name the key path, and a check that
// no unknown key was given. Every transport plugin reads its options with it,
// so that they all fail the same way: OptionError("reconnect.wait_ms",
// "expected an integer, got \"soon\"").
#pragma once

#include <cstdint>
#include <initializer_list>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "switchboard/config.hpp"
#include "switchboard/json.hpp"

namespace switchboard {

class OptionReader {
 public:
  // `prefix` is prepended to keys in errors ("jetstream.streams[0]."),
  // `owner` names who reads them ("the nats transport").
  OptionReader(const Json& object, std::string prefix, std::string owner)
      : object_(object), prefix_(std::move(prefix)), owner_(std::move(owner)) {}

  // Reads a bool, an integer or a string; false when the key is absent or
  // null (out keeps its default).
  template <typename T>
  bool read(const char* key, T& out) {
    const Json* v = find(key);
    if (v == nullptr) return false;
    try {
      if constexpr (std::is_same_v<T, bool>) {
        if (!v->is_boolean()) throw std::invalid_argument("expected true or false");
      } else if constexpr (std::is_integral_v<T>) {
        if (!v->is_number_integer()) throw std::invalid_argument("expected an integer");
      } else {
        if (!v->is_string()) throw std::invalid_argument("expected a string");
      }
      out = v->get<T>();
    } catch (const std::exception& e) {
      throw OptionError(prefix_ + key, std::string(e.what()) + ", got " + v->dump());
    }
    return true;
  }

  // An integer that must be above 0 when given.
  template <typename T>
  void read_positive(const char* key, T& out) {
    if (read(key, out) && out <= 0) {
      throw OptionError(prefix_ + key, "must be above 0, got " + std::to_string(out));
    }
  }

  // A size in bytes (or a count) above 0.
  void read_size(const char* key, std::size_t& out) {
    std::int64_t v = 0;
    if (!read(key, v)) return;
    if (v <= 0) throw OptionError(prefix_ + key, "must be above 0, got " + std::to_string(v));
    out = static_cast<std::size_t>(v);
  }

  // One of a fixed set of names, mapped to its value: {{"auto", Mode::auto_},
  // ...}. An unknown name is an error that lists the accepted ones.
  template <typename T>
  void read_choice(const char* key, T& out,
                   std::initializer_list<std::pair<const char*, T>> choices) {
    std::string name;
    if (!read(key, name)) return;
    std::string accepted;
    for (const auto& [text, value] : choices) {
      if (name == text) {
        out = value;
        return;
      }
      accepted += (accepted.empty() ? "" : ", ") + std::string(text);
    }
    throw OptionError(prefix_ + key, "expected one of " + accepted + ", got '" + name + "'");
  }

  // The value of a key read by hand (lists, several accepted types), or
  // null when absent; either way the key counts as known.
  const Json* find(const char* key) {
    seen_.insert(key);
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return nullptr;
    return &*it;
  }

  // A nested mapping, or null when absent.
  const Json* section(const char* key) {
    const Json* s = find(key);
    if (s && !s->is_object()) {
      throw OptionError(prefix_ + key, "expected a mapping, got " + s->dump());
    }
    return s;
  }

  void mark_seen(const char* key) { seen_.insert(key); }

  // Throws for the first key that no read, find or section asked for.
  void reject_unknown() const {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      if (!seen_.count(it.key())) {
        throw OptionError(prefix_ + it.key(), "unknown option for " + owner_);
      }
    }
  }

  const std::string& prefix() const noexcept { return prefix_; }

 private:
  const Json& object_;
  std::string prefix_;
  std::string owner_;
  std::set<std::string> seen_;
};

}  // namespace switchboard
