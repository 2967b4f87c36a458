// What a transport carries: a subject, immutable bytes shared between
// receivers (fan-out does not copy), headers and an optional reply subject.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>

namespace switchboard {

// Immutable bytes with shared ownership: one buffer serves every receiver.
class Payload {
 public:
  Payload() = default;
  explicit Payload(std::string bytes)
      : bytes_(std::make_shared<const std::string>(std::move(bytes))) {}

  std::string_view view() const noexcept { return bytes_ ? std::string_view(*bytes_) : ""; }
  const char* data() const noexcept { return view().data(); }
  std::size_t size() const noexcept { return bytes_ ? bytes_->size() : 0; }
  bool empty() const noexcept { return size() == 0; }
  // Whether two payloads share one buffer (used to prove zero-copy fan-out).
  bool shares_buffer_with(const Payload& other) const noexcept {
    return bytes_ && bytes_ == other.bytes_;
  }

 private:
  std::shared_ptr<const std::string> bytes_;
};

using Headers = std::map<std::string, std::string, std::less<>>;

struct Message {
  std::string subject;
  Payload data;
  Headers headers;
  std::string reply_to;  // empty: fire and forget
};

}  // namespace switchboard
