#include "amqp_mapping.hpp"

#include "switchboard/error.hpp"
#include "switchboard/subject.hpp"

namespace switchboard::amqp {

std::error_code routing_key_for(std::string_view subject, std::string& out, std::string& why) {
  if (auto ec = validate_subject(subject, false, why)) return ec;
  if (subject.size() > kMaxShortString) {
    why = "an AMQP routing key holds at most 255 bytes, '" + std::string(subject.substr(0, 40)) +
          "...' has " + std::to_string(subject.size());
    return make_error_code(errc::invalid_argument);
  }
  out.assign(subject);
  return {};
}

std::error_code binding_key_for(std::string_view filter, std::string& out, std::string& why) {
  if (auto ec = validate_subject(filter, true, why)) return ec;
  if (filter.find('#') != std::string_view::npos) {
    why = "'#' is a wildcard in AMQP binding keys; '" + std::string(filter) +
          "' cannot be subscribed to on the amqp transport";
    return make_error_code(errc::invalid_argument);
  }
  if (filter == ">") {
    out = "#";
  } else if (filter.ends_with(".>")) {
    out.assign(filter.substr(0, filter.size() - 1));
    out += "*.#";
  } else {
    out.assign(filter);
  }
  if (out.size() > kMaxShortString) {
    why = "an AMQP binding key holds at most 255 bytes";
    return make_error_code(errc::invalid_argument);
  }
  return {};
}

std::error_code to_table(const Headers& headers, HeaderTable& out, std::string& why) {
  out.entries.clear();
  out.entries.reserve(headers.size());
  for (const auto& [key, value] : headers) {
    if (key.empty() || key.size() > 128) {
      why = "an AMQP header name holds 1 to 128 bytes, got '" + key.substr(0, 40) + "'";
      return make_error_code(errc::invalid_argument);
    }
    amqp_table_entry_t e{};
    e.key = to_bytes(key);
    e.value.kind = AMQP_FIELD_KIND_UTF8;
    e.value.value.bytes = to_bytes(value);
    out.entries.push_back(e);
  }
  return {};
}

namespace {
template <typename T>
std::string number(T v) {
  return std::to_string(v);
}
}  // namespace

int from_table(const amqp_table_t& table, Headers& out) {
  int skipped = 0;
  for (int i = 0; i < table.num_entries; ++i) {
    const auto& e = table.entries[i];
    std::string key = to_string(e.key);
    const auto& v = e.value.value;
    switch (e.value.kind) {
      case AMQP_FIELD_KIND_UTF8:
      case AMQP_FIELD_KIND_BYTES:
        out.insert_or_assign(key, to_string(v.bytes));
        break;
      case AMQP_FIELD_KIND_BOOLEAN:
        out.insert_or_assign(key, v.boolean ? "true" : "false");
        break;
      case AMQP_FIELD_KIND_I8:
        out.insert_or_assign(key, number(v.i8));
        break;
      case AMQP_FIELD_KIND_U8:
        out.insert_or_assign(key, number(v.u8));
        break;
      case AMQP_FIELD_KIND_I16:
        out.insert_or_assign(key, number(v.i16));
        break;
      case AMQP_FIELD_KIND_U16:
        out.insert_or_assign(key, number(v.u16));
        break;
      case AMQP_FIELD_KIND_I32:
        out.insert_or_assign(key, number(v.i32));
        break;
      case AMQP_FIELD_KIND_U32:
        out.insert_or_assign(key, number(v.u32));
        break;
      case AMQP_FIELD_KIND_I64:
        out.insert_or_assign(key, number(v.i64));
        break;
      case AMQP_FIELD_KIND_U64:
      case AMQP_FIELD_KIND_TIMESTAMP:
        out.insert_or_assign(key, number(v.u64));
        break;
      case AMQP_FIELD_KIND_F32:
        out.insert_or_assign(key, number(v.f32));
        break;
      case AMQP_FIELD_KIND_F64:
        out.insert_or_assign(key, number(v.f64));
        break;
      default:
        ++skipped;  // table, array, decimal, void: no string form a user expects
        break;
    }
  }
  return skipped;
}

}  // namespace switchboard::amqp
