#include "payload_schema.hpp"

#include <cmath>
#include <regex>
#include <set>
#include <unordered_map>

namespace switchboard {
namespace {

const std::set<std::string> kKeywords = {"type",       "required",  "min",        "max",
                                         "minLength",  "maxLength", "enum",       "pattern",
                                         "properties", "items",     "description"};

// Schemas are checked at add time, so every expression here compiles; the
// cache keeps requests from compiling it again each time.
const std::regex& compiled(const std::string& expression) {
  thread_local std::unordered_map<std::string, std::regex> cache;
  auto it = cache.find(expression);
  if (it != cache.end()) return it->second;
  if (cache.size() > 1024) cache.clear();  // bounded: schemas are few
  return cache.emplace(expression, std::regex(expression)).first->second;
}

std::string type_of(const Json& v) {
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  return v.type_name();
}

bool has_type(const Json& v, const std::string& type) {
  if (type == "number") return v.is_number();
  if (type == "integer") {
    if (v.is_number_integer()) return true;
    if (!v.is_number_float()) return false;
    double d = v.get<double>();
    return std::fabs(d) < 9.0e15 && std::trunc(d) == d;  // no cast of huge values
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
  if (auto t = schema.find("type"); t != schema.end()) {
    static const std::set<std::string> kTypes = {"string", "number", "integer", "boolean",
                                                 "object", "array",  "null"};
    Json names = t->is_array() ? *t : Json::array({*t});
    for (const auto& name : names) {
      if (!name.is_string() || !kTypes.count(name.get<std::string>())) {
        return path + ": 'type' must be one of string, number, integer, boolean, object, " +
               "array, null (or a list of them), got " + name.dump();
      }
    }
  }
  for (const char* length : {"minLength", "maxLength"}) {
    if (auto m = schema.find(length);
        m != schema.end() && !(m->is_number_integer() && m->get<long long>() >= 0)) {
      return path + ": '" + length + "' must be a non-negative integer";
    }
  }
  for (const char* bound : {"min", "max"}) {
    if (auto m = schema.find(bound); m != schema.end() && !m->is_number()) {
      return path + ": '" + bound + "' must be a number";
    }
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
    if (!std::regex_search(v.get_ref<const std::string&>(), compiled(p->get<std::string>())))
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
