// The amqp transport's mapping rules, free of I/O: NATS subjects to AMQP
// routing and binding keys, Switchboard headers to AMQP header tables and
// back. See docs/amqp.md, "Mapping".
#pragma once

#include <amqp.h>

#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "switchboard/message.hpp"

namespace switchboard::amqp {

// AMQP short strings (routing keys, queue names, header names) hold at most
// 255 bytes.
inline constexpr std::size_t kMaxShortString = 255;

// A subject to publish (no wildcards) as a routing key: the same string.
// errc::invalid_argument (and `why`) for what NATS or AMQP refuses.
std::error_code routing_key_for(std::string_view subject, std::string& out, std::string& why);

// A subscription filter as a binding key for a topic exchange: `*` stays
// `*` (one word); a trailing `>` (one or more words) becomes `*.#` after a
// prefix ("a.>" -> "a.*.#": `#` alone matches zero words too, which NATS'
// `>` does not) and `#` when it is the whole filter. Tokens containing `#`
// are refused: AMQP would read them as a wildcard.
std::error_code binding_key_for(std::string_view filter, std::string& out, std::string& why);

// Headers to an AMQP table of long strings; the entries point into
// `headers` and `storage`, which must outlive the table.
struct HeaderTable {
  std::vector<amqp_table_entry_t> entries;
  amqp_table_t table() {
    return amqp_table_t{static_cast<int>(entries.size()),
                        entries.empty() ? nullptr : entries.data()};
  }
};
std::error_code to_table(const Headers& headers, HeaderTable& out, std::string& why);

// An AMQP table to headers: strings as they are, numbers, booleans and
// timestamps as their decimal text; nested tables, arrays, decimals and
// voids are skipped (returned count of skipped entries).
int from_table(const amqp_table_t& table, Headers& out);

inline std::string to_string(amqp_bytes_t b) {
  return b.len ? std::string(static_cast<const char*>(b.bytes), b.len) : std::string();
}
inline amqp_bytes_t to_bytes(std::string_view s) {
  return amqp_bytes_t{s.size(), const_cast<char*>(s.data())};
}

}  // namespace switchboard::amqp
