// SortedVectorMap: the object type of switchboard::Json. A std::map's
// interface and order (members sorted by key, so dumps, hashes and iteration
// are the same as with std::map), stored as one contiguous vector of
// (key, value) pairs instead of one heap node per member.
//
// Why: the router reads a few routing keys out of every act object, and with
// std::map each member is a separate allocation (a cache miss per tree node
// on the way to a key). Here a whole small object is a few adjacent cache
// lines, and a key is found by binary search over them.
//
// What differs from std::map:
// - inserting or erasing a member moves the members after it, so references,
//   pointers and iterators into the object are invalidated by any insert or
//   erase (as with nlohmann::ordered_map, which basic_json supports);
// - inserting out of key order costs O(size) moves; members arriving in
//   ascending key order are appended. `adopt()` builds an object from
//   unsorted members in O(n log n), for readers of large objects: the
//   codecs, and parse_json (json_parse.hpp), which replaces Json::parse for
//   text from outside (Json::parse inserts one by one: O(n^2)).
#pragma once

#include <algorithm>
#include <compare>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace switchboard {

template <class Key, class T, class IgnoredLess = std::less<>,
          class IgnoredAllocator = std::allocator<std::pair<const Key, T>>>
class SortedVectorMap {
 public:
  using key_type = Key;
  using mapped_type = T;
  // Not pair<const Key, T> as in std::map: a const key cannot be moved, and
  // members are moved whenever one is inserted before them. Changing a key
  // through an iterator breaks the order; nothing here does.
  using value_type = std::pair<Key, T>;
  // Transparent: members are found by anything that converts to a
  // std::string_view (const char*, std::string_view, std::string).
  using key_compare = std::less<>;
  using Container = std::vector<value_type>;
  using iterator = typename Container::iterator;
  using const_iterator = typename Container::const_iterator;
  using reverse_iterator = typename Container::reverse_iterator;
  using const_reverse_iterator = typename Container::const_reverse_iterator;
  using size_type = typename Container::size_type;
  using difference_type = typename Container::difference_type;
  using reference = value_type&;
  using const_reference = const value_type&;
  using allocator_type = typename Container::allocator_type;

  SortedVectorMap() noexcept = default;
  explicit SortedVectorMap(const allocator_type&) noexcept {}
  template <class It>
  SortedVectorMap(It first, It last, const allocator_type& = allocator_type()) {
    insert(first, last);
  }
  SortedVectorMap(std::initializer_list<value_type> init,
                  const allocator_type& = allocator_type()) {
    insert(init.begin(), init.end());
  }

  // Builds the map from members in any order in O(n log n); of repeated
  // keys the last wins (as assigning them one by one would).
  static SortedVectorMap adopt(Container&& members) {
    auto by_key = [](const auto& a, const auto& b) { return view(a.first) < view(b.first); };
    // Members that arrive in order (most do: writers put keys down sorted)
    // cost one pass.
    if (!std::is_sorted(members.begin(), members.end(), by_key)) {
      std::stable_sort(members.begin(), members.end(), by_key);
    }
    SortedVectorMap m;
    m.items_ = std::move(members);
    auto last = m.items_.begin();  // the last of each run of equal keys
    for (auto it = m.items_.begin(); it != m.items_.end(); ++it) {
      if (it + 1 != m.items_.end() && view(it->first) == view((it + 1)->first)) continue;
      if (last != it) *last = std::move(*it);
      ++last;
    }
    m.items_.erase(last, m.items_.end());
    return m;
  }

  iterator begin() noexcept { return items_.begin(); }
  iterator end() noexcept { return items_.end(); }
  const_iterator begin() const noexcept { return items_.begin(); }
  const_iterator end() const noexcept { return items_.end(); }
  const_iterator cbegin() const noexcept { return items_.cbegin(); }
  const_iterator cend() const noexcept { return items_.cend(); }
  reverse_iterator rbegin() noexcept { return items_.rbegin(); }
  reverse_iterator rend() noexcept { return items_.rend(); }
  const_reverse_iterator rbegin() const noexcept { return items_.rbegin(); }
  const_reverse_iterator rend() const noexcept { return items_.rend(); }

  bool empty() const noexcept { return items_.empty(); }
  size_type size() const noexcept { return items_.size(); }
  size_type max_size() const noexcept { return items_.max_size(); }
  void clear() noexcept { items_.clear(); }
  void reserve(size_type n) { items_.reserve(n); }
  void swap(SortedVectorMap& other) noexcept { items_.swap(other.items_); }

  template <class K>
  iterator find(const K& key) {
    auto it = lower_bound(view(key));
    return it != items_.end() && view(it->first) == view(key) ? it : items_.end();
  }
  template <class K>
  const_iterator find(const K& key) const {
    return const_cast<SortedVectorMap*>(this)->find(key);
  }
  template <class K>
  size_type count(const K& key) const {
    return find(key) != end() ? 1 : 0;
  }
  template <class K>
  bool contains(const K& key) const {
    return find(key) != end();
  }

  template <class K>
  T& at(const K& key) {
    auto it = find(key);
    if (it == end()) throw std::out_of_range("key not found");
    return it->second;
  }
  template <class K>
  const T& at(const K& key) const {
    return const_cast<SortedVectorMap*>(this)->at(key);
  }

  T& operator[](const Key& key) { return try_emplace(key).first->second; }
  T& operator[](Key&& key) { return try_emplace(std::move(key)).first->second; }
  template <class K, std::enable_if_t<!std::is_convertible_v<K, const Key&>, int> = 0>
  T& operator[](K&& key) {
    return try_emplace(std::forward<K>(key)).first->second;
  }

  // Inserts (key, T(args...)) unless the key is there; never overwrites.
  template <class K, class... Args>
  std::pair<iterator, bool> try_emplace(K&& key, Args&&... args) {
    auto it = lower_bound(view(key));
    if (it != items_.end() && view(it->first) == view(key)) return {it, false};
    return {insert_at(it, value_type(std::piecewise_construct,
                                     std::forward_as_tuple(std::forward<K>(key)),
                                     std::forward_as_tuple(std::forward<Args>(args)...))),
            true};
  }
  template <class K, class V>
  std::pair<iterator, bool> emplace(K&& key, V&& value) {
    return try_emplace(std::forward<K>(key), std::forward<V>(value));
  }
  std::pair<iterator, bool> emplace(value_type&& member) {
    return try_emplace(std::move(member.first), std::move(member.second));
  }
  std::pair<iterator, bool> insert(const value_type& member) {
    return try_emplace(member.first, member.second);
  }
  std::pair<iterator, bool> insert(value_type&& member) { return emplace(std::move(member)); }
  template <class It>
  void insert(It first, It last) {
    for (; first != last; ++first) try_emplace(first->first, first->second);
  }

  template <class K, std::enable_if_t<!std::is_convertible_v<K, const_iterator>, int> = 0>
  size_type erase(const K& key) {
    auto it = find(key);
    if (it == end()) return 0;
    erase(it);
    return 1;
  }
  iterator erase(iterator pos) { return erase(pos, std::next(pos)); }
  iterator erase(const_iterator pos) { return erase(to_mutable(pos), std::next(to_mutable(pos))); }
  iterator erase(iterator first, iterator last) { return items_.erase(first, last); }
  iterator erase(const_iterator first, const_iterator last) {
    return erase(to_mutable(first), to_mutable(last));
  }

  friend bool operator==(const SortedVectorMap& a, const SortedVectorMap& b) {
    return a.items_ == b.items_;
  }
  friend bool operator!=(const SortedVectorMap& a, const SortedVectorMap& b) { return !(a == b); }
  friend bool operator<(const SortedVectorMap& a, const SortedVectorMap& b) {
    return a.items_ < b.items_;
  }
#if defined(__cpp_lib_three_way_comparison)
  // basic_json orders objects with <=> in C++20.
  friend auto operator<=>(const SortedVectorMap& a, const SortedVectorMap& b) {
    return a.items_ <=> b.items_;
  }
#endif

 private:
  template <class K>
  static std::string_view view(const K& key) noexcept {
    return std::string_view(key);
  }

  iterator lower_bound(std::string_view key) {
    return std::lower_bound(
        items_.begin(), items_.end(), key,
        [](const value_type& m, std::string_view k) { return view(m.first) < k; });
  }

  iterator to_mutable(const_iterator it) {
    return items_.begin() + (it - items_.cbegin());
  }

  // Puts an already built member at `pos`: built first, so that the shift
  // is only noexcept moves.
  iterator insert_at(iterator pos, value_type&& member) {
    static_assert(std::is_nothrow_move_constructible_v<value_type> &&
                      std::is_nothrow_move_assignable_v<value_type>,
                  "members are shifted with noexcept moves");
    return items_.insert(pos, std::move(member));
  }

  Container items_;
};

}  // namespace switchboard
