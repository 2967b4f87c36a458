#include <algorithm>
#include <map>
#include <string>
#include <unordered_map>

#include "switchboard/error.hpp"
#include "switchboard/subject.hpp"

namespace switchboard {
namespace {

// Splits on '.' without allocating.
template <typename F>
void for_each_token(std::string_view s, F&& f) {
  std::size_t start = 0;
  while (true) {
    auto dot = s.find('.', start);
    if (dot == std::string_view::npos) {
      f(s.substr(start), true);
      return;
    }
    f(s.substr(start, dot - start), false);
    start = dot + 1;
  }
}

}  // namespace

std::error_code validate_subject(std::string_view subject, bool allow_wildcards, std::string& why) {
  if (subject.empty()) {
    why = "subject is empty";
    return make_error_code(errc::invalid_argument);
  }
  bool ok = true;
  for_each_token(subject, [&](std::string_view token, bool last) {
    if (!ok) return;
    if (token.empty()) {
      why = "subject '" + std::string(subject) + "' has an empty token";
      ok = false;
    } else if (token.find_first_of(" \t\r\n") != std::string_view::npos) {
      why = "subject '" + std::string(subject) + "' contains white space";
      ok = false;
    } else if (token == "*" || token == ">") {
      if (!allow_wildcards) {
        why = "subject '" + std::string(subject) + "' has a wildcard; publish needs a literal";
        ok = false;
      } else if (token == ">" && !last) {
        why = "subject '" + std::string(subject) + "': '>' must be the last token";
        ok = false;
      }
    }
  });
  return ok ? std::error_code() : make_error_code(errc::invalid_argument);
}

bool subject_matches(std::string_view filter, std::string_view subject) {
  while (true) {
    auto fdot = filter.find('.');
    auto ftoken = filter.substr(0, fdot);
    if (ftoken == ">") return !subject.empty();
    if (subject.empty()) return false;
    auto sdot = subject.find('.');
    auto stoken = subject.substr(0, sdot);
    if (ftoken != "*" && ftoken != stoken) return false;
    bool fend = fdot == std::string_view::npos;
    bool send = sdot == std::string_view::npos;
    if (fend || send) return fend && send;
    filter.remove_prefix(fdot + 1);
    subject.remove_prefix(sdot + 1);
  }
}

// A token trie: literal children, a '*' child, and subscriptions ending here
// or at a '>' below this node.
struct SubjectIndex::Impl {
  struct Node {
    std::unordered_map<std::string, std::unique_ptr<Node>> literal;
    std::unique_ptr<Node> star;
    std::vector<Id> here;  // subscriptions whose filter ends at this node
    std::vector<Id> rest;  // subscriptions whose filter continues with '>'
    bool empty() const { return literal.empty() && !star && here.empty() && rest.empty(); }
  };
  struct Entry {
    std::string filter;
    std::string queue;
  };

  Node root;
  std::unordered_map<Id, Entry> entries;
  std::map<std::string, std::uint64_t, std::less<>> rotation;  // per queue group
  Id next_id = 1;

  void collect(const Node& node, std::string_view subject, std::vector<Id>& out) const {
    auto dot = subject.find('.');
    auto token = subject.substr(0, dot);
    auto rest_of = dot == std::string_view::npos ? std::string_view() : subject.substr(dot + 1);
    bool last = dot == std::string_view::npos;
    // '>' at this level matches this token and everything after it.
    out.insert(out.end(), node.rest.begin(), node.rest.end());
    auto visit = [&](const Node* child) {
      if (!child) return;
      if (last) {
        out.insert(out.end(), child->here.begin(), child->here.end());
      } else {
        collect(*child, rest_of, out);
      }
    };
    auto it = node.literal.find(std::string(token));
    if (it != node.literal.end()) visit(it->second.get());
    visit(node.star.get());
  }

  // Removes `id` from the path of `filter`, pruning nodes left empty.
  static bool erase_from(Node& node, std::string_view filter, Id id) {
    auto dot = filter.find('.');
    auto token = filter.substr(0, dot);
    auto drop = [&](std::vector<Id>& v) {
      auto it = std::find(v.begin(), v.end(), id);
      if (it == v.end()) return false;
      v.erase(it);
      return true;
    };
    if (token == ">") return drop(node.rest);
    Node* child = nullptr;
    std::unordered_map<std::string, std::unique_ptr<Node>>::iterator lit;
    if (token == "*") {
      child = node.star.get();
    } else {
      lit = node.literal.find(std::string(token));
      if (lit != node.literal.end()) child = lit->second.get();
    }
    if (!child) return false;
    bool erased = dot == std::string_view::npos ? drop(child->here)
                                                : erase_from(*child, filter.substr(dot + 1), id);
    if (erased && child->empty()) {
      if (token == "*") {
        node.star.reset();
      } else {
        node.literal.erase(lit);
      }
    }
    return erased;
  }
};

SubjectIndex::SubjectIndex() : impl_(std::make_unique<Impl>()) {}
SubjectIndex::~SubjectIndex() = default;

SubjectIndex::Id SubjectIndex::insert(std::string_view filter, std::string queue_group) {
  Id id = impl_->next_id++;
  Impl::Node* node = &impl_->root;
  bool done = false;
  for_each_token(filter, [&](std::string_view token, bool last) {
    if (done) return;
    if (token == ">") {
      node->rest.push_back(id);
      done = true;
      return;
    }
    std::unique_ptr<Impl::Node>* slot;
    if (token == "*") {
      slot = &node->star;
    } else {
      slot = &node->literal[std::string(token)];
    }
    if (!*slot) *slot = std::make_unique<Impl::Node>();
    node = slot->get();
    if (last) node->here.push_back(id);
  });
  impl_->entries.emplace(id, Impl::Entry{std::string(filter), std::move(queue_group)});
  return id;
}

bool SubjectIndex::erase(Id id) {
  auto it = impl_->entries.find(id);
  if (it == impl_->entries.end()) return false;
  Impl::erase_from(impl_->root, it->second.filter, id);
  std::string queue = std::move(it->second.queue);
  impl_->entries.erase(it);
  if (!queue.empty()) {
    bool still_used = false;
    for (const auto& [other, entry] : impl_->entries)
      still_used = still_used || entry.queue == queue;
    if (!still_used) impl_->rotation.erase(queue);
  }
  return true;
}

std::size_t SubjectIndex::size() const noexcept {
  return impl_->entries.size();
}

void SubjectIndex::match(std::string_view subject, std::vector<Id>& out) {
  std::vector<Id> all;
  impl_->collect(impl_->root, subject, all);
  // Plain subscriptions all receive; each queue group gets one member. As in
  // nats-server (sublist findQSlot), a group is a queue name across every
  // filter that matches, so one message reaches one member of "workers"
  // even when members subscribed "jobs.*" and "jobs.>".
  std::sort(all.begin(), all.end());
  std::map<std::string_view, std::vector<Id>> groups;
  for (Id id : all) {
    const auto& entry = impl_->entries.at(id);
    if (entry.queue.empty()) {
      out.push_back(id);
    } else {
      groups[entry.queue].push_back(id);
    }
  }
  for (auto& [queue, members] : groups) {
    auto& turn = impl_->rotation[std::string(queue)];
    out.push_back(members[turn++ % members.size()]);
  }
}

}  // namespace switchboard
