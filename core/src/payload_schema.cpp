#include "payload_schema.hpp"

#include <regex>
#include <set>

namespace switchboard {
namespace {

const std::set<std::string> kKeywords = {"type",       "required",  "min",        "max",
                                         "minLength",  "maxLength", "enum",       "pattern",
                                         "properties", "items",     "description"};

std::string type_of(const Json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

bool has_type(const Json& v, const std::string& type) {
  if (type == "number") return v.is_number();
  if (type == "integer") {
    return v.is_number_integer() ||
           (v.is_number_float() && v.get<double>() == static_cast<long long>(v.get<double>()));
  }
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "null") return v.is_null();
  return false;
}

std::optional<std::string> check_one(const std::string& path, const Json& schema) {
  if (!schema.is_object()) return path + ": a schema must be an object";
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    if (!kKeywords.count(it.key())) {
      return path + ": unknown schema keyword '" + it.key() + "'";
    }
  }
  if (auto t = schema.find("type"); t != schema.end() && !t->is_string() && !t->is_array()) {
    return path + ": 'type' must be a string or a list";
  }
  if (auto p = schema.find("pattern"); p != schema.end()) {
    if (!p->is_string()) return path + ": 'pattern' must be a string";
    try {
      std::regex re(p->get<std::string>());
    } catch (const std::regex_error& e) {
      return path + ": bad 'pattern': " + e.what();
    }
  }
  if (auto props = schema.find("properties"); props != schema.end()) {
    if (!props->is_object()) return path + ": 'properties' must be an object";
    for (auto it = props->begin(); it != props->end(); ++it) {
      if (auto err = check_one(path + "." + it.key(), *it)) return err;
    }
  }
  if (auto items = schema.find("items"); items != schema.end()) {
    if (auto err = check_one(path + "[]", *items)) return err;
  }
  return std::nullopt;
}

std::optional<std::string> validate_one(const std::string& path, const Json& schema,
                                        const Json* value) {
  if (!value) {
    if (schema.value("required", false)) return path + ": is required";
    return std::nullopt;
  }
  const Json& v = *value;
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    if (t->is_string()) {
      ok = has_type(v, t->get<std::string>());
    } else {
      for (const auto& one : *t)
        ok = ok || (one.is_string() && has_type(v, one.get<std::string>()));
    }
    if (!ok) return path + ": expected " + t->dump() + ", got " + type_of(v);
  }
  if (v.is_number()) {
    if (auto m = schema.find("min");
        m != schema.end() && m->is_number() && v.get<double>() < m->get<double>())
      return path + ": must be at least " + m->dump();
    if (auto m = schema.find("max");
        m != schema.end() && m->is_number() && v.get<double>() > m->get<double>())
      return path + ": must be at most " + m->dump();
  }
  if (v.is_string() || v.is_array()) {
    auto size = v.is_string() ? v.get_ref<const std::string&>().size() : v.size();
    if (auto m = schema.find("minLength");
        m != schema.end() && m->is_number() && size < m->get<std::size_t>())
      return path + ": length must be at least " + m->dump();
    if (auto m = schema.find("maxLength");
        m != schema.end() && m->is_number() && size > m->get<std::size_t>())
      return path + ": length must be at most " + m->dump();
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    for (const auto& allowed : *e) found = found || allowed == v;
    if (!found) return path + ": must be one of " + e->dump();
  }
  if (auto p = schema.find("pattern"); p != schema.end() && v.is_string()) {
    if (!std::regex_search(v.get_ref<const std::string&>(), std::regex(p->get<std::string>())))
      return path + ": does not match " + p->dump();
  }
  if (auto props = schema.find("properties"); props != schema.end() && v.is_object()) {
    for (auto it = props->begin(); it != props->end(); ++it) {
      auto child = v.find(it.key());
      if (auto err = validate_one(path + "." + it.key(), *it, child == v.end() ? nullptr : &*child))
        return err;
    }
  }
  if (auto items = schema.find("items"); items != schema.end() && v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (auto err = validate_one(path + "[" + std::to_string(i) + "]", *items, &v[i])) return err;
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_schema_definition(const Json& schemas) {
  for (auto it = schemas.begin(); it != schemas.end(); ++it) {
    if (auto err = check_one(it.key(), *it)) return err;
  }
  return std::nullopt;
}

std::optional<std::string> validate_payload(const Json& schemas, const Json& pattern) {
  for (auto it = schemas.begin(); it != schemas.end(); ++it) {
    auto v = pattern.find(it.key());
    if (auto err = validate_one(it.key(), *it, v == pattern.end() ? nullptr : &*v)) return err;
  }
  return std::nullopt;
}

}  // namespace switchboard
