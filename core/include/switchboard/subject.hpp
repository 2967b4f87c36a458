// NATS subject rules and the shared subject index that gives wildcards and
// queue groups to transports without native ones, so that the semantics are
// the same on every transport.
//
// Subjects are '.'-separated tokens; in subscriptions '*' matches exactly one
// token and '>' (last token only) matches one or more remaining tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace switchboard {

// Checks a subject for publishing (no wildcards) or subscribing (wildcards
// allowed). On failure returns errc::invalid_argument and says why in `why`.
std::error_code validate_subject(std::string_view subject, bool allow_wildcards, std::string& why);

// Whether `subject` (no wildcards) matches the subscription `filter`.
bool subject_matches(std::string_view filter, std::string_view subject);

// Index of subscriptions by subject filter. Not thread-safe; the owner locks.
// match() returns each matching plain subscription, and exactly one member of
// each matching queue group (rotating through the members).
class SubjectIndex {
 public:
  using Id = std::uint64_t;

  SubjectIndex();
  ~SubjectIndex();
  SubjectIndex(const SubjectIndex&) = delete;
  SubjectIndex& operator=(const SubjectIndex&) = delete;

  // The filter must be valid (validate_subject with wildcards).
  Id insert(std::string_view filter, std::string queue_group);
  bool erase(Id id);
  std::size_t size() const noexcept;

  // Appends the ids that receive a message on `subject`.
  void match(std::string_view subject, std::vector<Id>& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace switchboard
