#include "event_hash.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <random>
#include <stdexcept>

namespace switchboard {

std::string to_hex(const EventHash& hash) {
  static const char* digits = "0123456789abcdef";
  std::string out(hash.size() * 2, '0');
  for (std::size_t i = 0; i < hash.size(); ++i) {
    out[2 * i] = digits[hash[i] >> 4];
    out[2 * i + 1] = digits[hash[i] & 0xf];
  }
  return out;
}

namespace events {
namespace {

// Fetched once: an implicit fetch per digest costs more than the digest of
// a small event.
const EVP_MD* sha256_md() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) throw std::runtime_error("OpenSSL has no SHA256");
  return md;
}

struct CtxDeleter {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift));
}
void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

}  // namespace

struct EventHasher::Context {
  std::unique_ptr<EVP_MD_CTX, CtxDeleter> md{EVP_MD_CTX_new()};
};

EventHasher::EventHasher() : ctx_(std::make_unique<Context>()) {
  if (!ctx_->md) throw std::runtime_error("SHA-256: no digest context");
}
EventHasher::~EventHasher() = default;

EventHash EventHasher::sha256(std::string_view data) {
  EventHash out{};
  unsigned int len = 0;
  EVP_MD_CTX* c = ctx_->md.get();
  if (EVP_DigestInit_ex(c, sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(c, data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(c, out.data(), &len) != 1 || len != out.size()) {
    throw std::runtime_error("SHA-256 failed");
  }
  return out;
}

EventHash EventHasher::event_hash(const Event& e) {
  buf_.clear();
  buf_.append("SBEV1");
  buf_.append(reinterpret_cast<const char*>(e.prev_hash.data()), e.prev_hash.size());
  put_u64(buf_, e.sequence);
  put_str(buf_, e.id);
  put_str(buf_, e.type);
  put_str(buf_, e.origin);
  put_u64(buf_, e.origin_sequence);
  put_u64(buf_, static_cast<std::uint64_t>(e.timestamp_us));
  put_str(buf_, e.payload_json);
  return sha256(buf_);
}

void EventHasher::event_id(std::string_view origin, std::uint64_t origin_sequence,
                           std::string& out) {
  static const char* digits = "0123456789abcdef";
  buf_.assign("SBID1");
  put_str(buf_, origin);
  put_u64(buf_, origin_sequence);
  EventHash h = sha256(buf_);
  out.resize(32);  // the first 16 bytes in hex
  for (std::size_t i = 0; i < 16; ++i) {
    out[2 * i] = digits[h[i] >> 4];
    out[2 * i + 1] = digits[h[i] & 0xf];
  }
}

namespace {
EventHasher& thread_hasher() {
  thread_local EventHasher hasher;
  return hasher;
}
}  // namespace

EventHash sha256(std::string_view data) {
  return thread_hasher().sha256(data);
}

EventHash event_hash(const Event& e) {
  return thread_hasher().event_hash(e);
}

std::string event_id(std::string_view origin, std::uint64_t origin_sequence) {
  std::string out;
  thread_hasher().event_id(origin, origin_sequence, out);
  return out;
}

std::string random_origin() {
  EventHash bytes{};
  if (RAND_bytes(bytes.data(), 8) != 1) {
    std::random_device rd;
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<std::uint8_t>(rd());
  }
  return to_hex(bytes).substr(0, 16);
}

}  // namespace events
}  // namespace switchboard
