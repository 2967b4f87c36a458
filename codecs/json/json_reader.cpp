#include "json_reader.hpp"

#include <simdjson.h>

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
  // whatever it refuses gets nlohmann's verdict and error message.
  if (fast_read(text, out)) return true;
  try {
    out = Json::parse(text.begin(), text.end());
    return true;
  } catch (const Json::exception& e) {
    // parse_error, and out_of_range for numbers beyond a double ("1e400"),
    // which a fuzz run found escaping the codec.
    error = e.what();
    return false;
  }
}

}  // namespace switchboard::json_codec
