// Payload schemas: the object-valued properties of an add pattern.
//
//   {topic: "math", cmd: "add", a: {type: "number", required: true}}
//
// Keywords: type ("string", "number", "integer", "boolean", "object",
// "array", "null", or a list of them), required, min, max, minLength,
// maxLength, enum, pattern (regular expression), properties (a schema per
// nested key), items (a schema for every array element). An unknown keyword
// is an error at add time, so typos do not silently disable a check.
#pragma once

#include <optional>
#include <string>

#include "switchboard/json.hpp"

namespace switchboard {

// Checks the schema part of an add pattern; returns what is wrong, if anything.
std::optional<std::string> check_schema_definition(const Json& schemas);

// Validates a request pattern against the schema part; returns the first
// violation as "a: expected number, got string".
std::optional<std::string> validate_payload(const Json& schemas, const Json& pattern);

}  // namespace switchboard
