#include "json_reader.hpp"

#include <simdjson.h>

#include <utility>

#include "switchboard/json_parse.hpp"

namespace switchboard::json_codec {
namespace {

// simdjson's DOM to Json. Repeated keys: the last wins, as with nlohmann.
void convert(simdjson::dom::element e, Json& out) {
  using simdjson::dom::element_type;
  switch (e.type()) {
    case element_type::OBJECT: {
      // Members are gathered and sorted once (Json objects are sorted
      // vectors): inserting them one by one would cost O(n) moves per key
      // that arrives out of order, O(n^2) for a hostile object. Envelopes
      // arrive sorted (the writer puts keys down in order), which adopt()
      // sees in one pass.
      simdjson::dom::object object(e);
      Json::object_t::Container members;
      members.reserve(object.size());
      for (auto field : object) {
        auto& member = members.emplace_back(std::string(field.key), Json());
        convert(field.value, member.second);
      }
      out = Json::object();
      out.get_ref<Json::object_t&>() = Json::object_t::adopt(std::move(members));
      return;
    }
    case element_type::ARRAY: {
      simdjson::dom::array a(e);
      out = Json::array();
      auto& items = out.get_ref<Json::array_t&>();
      items.reserve(a.size());
      for (auto item : a) convert(item, items.emplace_back());
      return;
    }
    case element_type::STRING:
      out = std::string(std::string_view(e));
      return;
    case element_type::INT64:
      out = std::int64_t(e);
      return;
    case element_type::UINT64:
      out = std::uint64_t(e);
      return;
    case element_type::DOUBLE:
      out = double(e);
      return;
    case element_type::BOOL:
      out = bool(e);
      return;
    case element_type::NULL_VALUE:
      out = nullptr;
      return;
  }
}

bool fast_read(std::string_view bytes, Json& out) {
  // One parser per thread: it keeps its buffers between messages.
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(bytes.data(), bytes.size()).get(root) != simdjson::SUCCESS) return false;
  convert(root, out);
  return true;
}

}  // namespace

bool read(std::string_view text, Json& out, std::string& error) {
  // simdjson is several times faster than nlohmann's parser on envelopes;
  // whatever it refuses (integers beyond 64 bits, nesting deeper than 1024,
  // malformed text) gets nlohmann's verdict and error message: parse_error
  // and out_of_range for numbers beyond a double ("1e400"), which a fuzz run
  // found escaping the codec. Through parse_json, not Json::parse: a sender
  // can put one such number next to an object with keys in descending order,
  // which Json::parse reads in O(n^2).
  if (fast_read(text, out)) return true;
  Json value;
  if (!parse_json(text, value, error)) return false;
  out = std::move(value);  // on failure `out` is left as it was
  return true;
}

}  // namespace switchboard::json_codec
