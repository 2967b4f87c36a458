#include "switchboard/json_parse.hpp"

#include <cstddef>
#include <utility>
#include <vector>

namespace switchboard {
namespace {

// nlohmann's json_sax_dom_parser, but an object's members are gathered in a
// vector and sorted once at its end instead of inserted one by one.
class TreeBuilder {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  explicit TreeBuilder(bool throw_errors) : throw_errors_(throw_errors) {}

  bool null() { return put(Json(nullptr)); }
  bool boolean(bool value) { return put(Json(value)); }
  bool number_integer(number_integer_t value) { return put(Json(value)); }
  bool number_unsigned(number_unsigned_t value) { return put(Json(value)); }
  bool number_float(number_float_t value, const string_t& /*text*/) { return put(Json(value)); }
  bool string(string_t& value) { return put(Json(std::move(value))); }
  bool binary(binary_t& value) { return put(Json(std::move(value))); }  // not in JSON text

  bool start_object(std::size_t /*size*/) {
    frames_.emplace_back().object = true;
    return true;
  }
  bool key(string_t& key) {
    frames_.back().members.emplace_back(std::move(key), Json());
    return true;
  }
  bool end_object() {
    Json object(Json::value_t::object);
    object.get_ref<Json::object_t&>() = Json::object_t::adopt(std::move(frames_.back().members));
    frames_.pop_back();
    return put(std::move(object));
  }

  bool start_array(std::size_t /*size*/) {
    frames_.emplace_back();
    return true;
  }
  bool end_array() {
    Json array(Json::value_t::array);
    array.get_ref<Json::array_t&>() = std::move(frames_.back().items);
    frames_.pop_back();
    return put(std::move(array));
  }

  // Exception is the concrete type (parse_error, out_of_range), which is
  // thrown as it is, as Json::parse does.
  template <class Exception>
  bool parse_error(std::size_t /*position*/, const std::string& /*token*/, const Exception& e) {
    if (throw_errors_) throw e;
    error_ = e.what();
    return false;
  }

  Json release() { return std::move(root_); }
  std::string& error() { return error_; }

 private:
  // An object or array being read: its members or items so far. A member's
  // key comes before its value, so the value goes into the last member.
  struct Frame {
    bool object = false;
    Json::object_t::Container members;
    Json::array_t items;
  };

  bool put(Json&& value) {
    if (frames_.empty()) {
      root_ = std::move(value);
    } else if (Frame& f = frames_.back(); f.object) {
      f.members.back().second = std::move(value);
    } else {
      f.items.push_back(std::move(value));
    }
    return true;
  }

  bool throw_errors_;
  std::vector<Frame> frames_;
  Json root_;
  std::string error_;
};

}  // namespace

Json parse_json(std::string_view text) {
  TreeBuilder builder(/*throw_errors=*/true);
  Json::sax_parse(text, &builder);
  return builder.release();
}

bool parse_json(std::string_view text, Json& out, std::string& error) {
  TreeBuilder builder(/*throw_errors=*/false);
  if (!Json::sax_parse(text, &builder)) {
    out = Json(Json::value_t::discarded);
    error = std::move(builder.error());
    return false;
  }
  out = builder.release();
  return true;
}

}  // namespace switchboard
