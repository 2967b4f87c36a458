#include "event_record_fields.hpp"

namespace switchboard::event_records {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string hex_encode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::optional<EventHash> hash_from_hex(std::string_view hex) {
  auto bytes = hex_decode(hex);
  EventHash h{};
  if (!bytes || bytes->size() != h.size()) return std::nullopt;
  for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<std::uint8_t>((*bytes)[i]);
  return h;
}

bool valid_header_value(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

std::vector<std::pair<const char*, std::string>> chain_headers(const Event& e) {
  return {{kTypeHeader, e.type},
          {kOriginSequenceHeader, std::to_string(e.origin_sequence)},
          {kTimestampHeader, std::to_string(e.timestamp_us)},
          {kPrevHashHeader, to_hex(e.prev_hash)},
          {kHashHeader, to_hex(e.hash)}};
}

std::int64_t number_or_zero(const std::optional<std::string>& text) {
  if (!text) return 0;
  try {
    return std::stoll(*text);
  } catch (const std::exception&) {
    return 0;
  }
}

void read_chain_headers(const HeaderLookup& header, Event& e) {
  e.type = header(kTypeHeader).value_or("");
  e.origin_sequence = static_cast<std::uint64_t>(number_or_zero(header(kOriginSequenceHeader)));
  e.timestamp_us = number_or_zero(header(kTimestampHeader));
  e.prev_hash = hash_from_hex(header(kPrevHashHeader).value_or("")).value_or(EventHash{});
  e.hash = hash_from_hex(header(kHashHeader).value_or("")).value_or(EventHash{});
}

}  // namespace switchboard::event_records
