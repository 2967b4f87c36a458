// Any bytes through the json codec's reader (simdjson, then nlohmann for
// what it refuses): never crashes; agrees with nlohmann's parser on what is
// valid; and what it reads, the writer writes as text that reads back to
// the same text again; and parse_json gives what Json::parse gives.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "json_reader.hpp"
#include "json_writer.hpp"
#include "switchboard/json_parse.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace jc = switchboard::json_codec;
  using switchboard::Json;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Json value;
  std::string error;
  const bool ok = jc::read(text, value, error);
  const Json reference = Json::parse(text.begin(), text.end(), nullptr, false);
  if (ok == reference.is_discarded()) std::abort();  // both accept or both refuse
  // parse_json (the reader's fallback, and the parser for text from outside)
  // gives exactly what Json::parse gives.
  Json parsed;
  std::string parse_error;
  if (switchboard::parse_json(text, parsed, parse_error) == reference.is_discarded()) std::abort();
  if (!reference.is_discarded() && (parsed != reference || parsed.dump() != reference.dump())) {
    std::abort();
  }
  if (!ok) {
    if (error.empty()) std::abort();
    return 0;
  }
  std::string once;
  jc::write(value, once);
  Json again;
  if (!jc::read(once, again, error)) std::abort();
  std::string twice;
  jc::write(again, twice);
  if (once != twice) std::abort();
  return 0;
}
