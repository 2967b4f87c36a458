// Helpers of the bridge crash and restart tests: a feeder that stores
// numbered messages on a source broker with a bounded window (and tries a
// message again until the broker confirmed it, so that every id really is
// at the source), and a tally of the ids a durable reader saw at the
// destination (how many distinct, how many copies).
#pragma once

#include <gtest/gtest.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "switchboard/transport.hpp"

namespace switchboard::test {

// The payload of message `i`: "<prefix><i>" padded with '.' to `size` bytes.
inline std::string stream_payload(const std::string& prefix, int i, std::size_t size = 100) {
  std::string s = prefix + std::to_string(i) + "|";
  if (s.size() < size) s.append(size - s.size(), '.');
  return s;
}

// Which of `n` ids arrived, and how often.
class Tally {
 public:
  Tally(std::string prefix, int n)
      : prefix_(std::move(prefix)), seen_(static_cast<std::size_t>(n)) {}

  // Counts one message; anything that is not one of ours is counted apart.
  void add(std::string_view payload) {
    ++received_;
    if (!payload.starts_with(prefix_)) {
      ++foreign_;
      return;
    }
    auto digits = payload.substr(prefix_.size());
    int i = -1;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), i);
    if (ec != std::errc() || i < 0 || static_cast<std::size_t>(i) >= seen_.size()) {
      ++foreign_;
      return;
    }
    if (seen_[static_cast<std::size_t>(i)]++ == 0) ++distinct_;
  }

  std::size_t distinct() const { return distinct_; }
  std::size_t received() const { return received_; }
  std::size_t foreign() const { return foreign_; }
  // Copies beyond the first of each id.
  std::size_t duplicates() const { return received_ - foreign_ - distinct_; }
  bool complete() const { return distinct_ == seen_.size(); }
  // The first few ids that never arrived, for the failure message.
  std::string missing(std::size_t limit = 20) const {
    std::string out;
    std::size_t count = 0;
    for (std::size_t i = 0; i < seen_.size(); ++i) {
      if (seen_[i] != 0) continue;
      if (count++ < limit) out += (out.empty() ? "" : ", ") + std::to_string(i);
    }
    return std::to_string(count) + " missing" + (out.empty() ? "" : ": " + out);
  }

 private:
  std::string prefix_;
  std::vector<std::uint32_t> seen_;
  std::size_t distinct_ = 0, received_ = 0, foreign_ = 0;
};

// Stores messages 0..n-1 on `transport` with publish_durable, at most
// `window` unconfirmed at a time. pump() is called from the transport's
// executor (each completion calls it again); a refused message is sent
// again (counted in retried), so that the source has every id.
class Feeder : public std::enable_shared_from_this<Feeder> {
 public:
  Feeder(Transport& transport, std::string prefix, int n,
         std::function<std::string(int)> subject_of, std::size_t window = 256)
      : transport_(transport),
        prefix_(std::move(prefix)),
        n_(n),
        subject_of_(std::move(subject_of)),
        window_(window) {}

  // Sends until `limit` messages were handed out (n by default).
  void pump(int limit = -1) {
    if (limit >= 0) limit_ = limit;
    int until = limit_ < 0 ? n_ : std::min(limit_, n_);
    while (outstanding_ < window_ && (!again_.empty() || next_ < until)) {
      int i;
      if (!again_.empty()) {
        i = again_.back();
        again_.pop_back();
      } else {
        i = next_++;
      }
      send(i);
    }
  }

  int confirmed() const { return confirmed_; }
  int retried() const { return retried_; }
  bool done() const { return confirmed_ == n_; }

 private:
  void send(int i) {
    ++outstanding_;
    Message m;
    m.subject = subject_of_(i);
    m.data = Payload(stream_payload(prefix_, i));
    m.headers["id"] = std::to_string(i);
    auto self = shared_from_this();
    transport_.publish_durable(std::move(m), {},
                               [self, i](std::error_code ec, const DurableReceipt&) {
                                 --self->outstanding_;
                                 if (ec) {
                                   ++self->retried_;
                                   self->again_.push_back(i);
                                 } else {
                                   ++self->confirmed_;
                                 }
                                 self->pump();
                               });
  }

  Transport& transport_;
  std::string prefix_;
  int n_;
  std::function<std::string(int)> subject_of_;
  std::size_t window_;
  std::size_t outstanding_ = 0;
  int next_ = 0, limit_ = -1, confirmed_ = 0, retried_ = 0;
  std::vector<int> again_;
};

}  // namespace switchboard::test
