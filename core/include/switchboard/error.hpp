// Errors: a std::error_code category for hot paths, and Error, the value that
// crosses the wire (name, message, code, hops), as in Hemera.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "switchboard/json.hpp"

namespace switchboard {

enum class errc {
  ok = 0,
  timeout = 1,         // TimeoutError: no reply within timeout$
  pattern_not_found,   // PatternNotFound: no add pattern matched
  response_error,      // ResponseError: the remote handler failed
  payload_validation,  // PayloadValidationError: payload does not fit the add schema
  parse_error,         // ParseError: bytes could not be decoded
  max_recursion,       // MaxRecursionError: call depth above maxRecursion
  transport_error,     // TransportError: disconnected, no responders, ...
  no_responders,       // TransportError subtype: nobody listens on the subject
  payload_too_large,   // TransportError subtype: above the transport's max payload
  closed,              // the runtime or transport is closed
  invalid_argument,    // bad subject, pattern or option
  plugin_error,        // plugin dependency or registration failure
  disconnected,        // TransportError subtype: the connection is down right now
  not_supported,       // the transport or codec cannot do this (e.g. durable delivery)
};

const std::error_category& category() noexcept;
std::error_code make_error_code(errc e) noexcept;

// Hemera's error name for a code ("TimeoutError", "PatternNotFound", ...).
const char* error_name(errc e) noexcept;

// One service an error passed through on its way back.
struct ErrorHop {
  std::string service;
  std::string method;
  std::string app;
  double ts = 0;
};

// An error as it travels: what Hemera puts in the reply's `error` field.
// `code` is the Hemera/user code (any JSON scalar); `kind` says which
// switchboard category applies locally.
class Error : public std::runtime_error {
 public:
  Error() : std::runtime_error("") {}
  Error(errc kind, std::string message, Json code = nullptr);
  Error(std::string name, std::string message, Json code = nullptr);

  errc kind() const noexcept { return kind_; }
  std::error_code error_code() const noexcept { return make_error_code(kind_); }
  const std::string& name() const noexcept { return name_; }
  const std::string& message() const noexcept { return message_; }
  const Json& code() const noexcept { return code_; }
  const Json& details() const noexcept { return details_; }
  const std::vector<ErrorHop>& hops() const noexcept { return hops_; }

  Error& with_details(Json details);
  Error& add_hop(ErrorHop hop);
  // The cause: a ResponseError wraps the remote error it was built from.
  const Json& cause() const noexcept { return cause_; }
  Error& with_cause(Json cause);

  Json to_json() const;
  // Builds an Error from a wire `error` object; unknown names become
  // ResponseError-kinded errors that keep the remote name.
  static Error from_json(const Json& j);

 private:
  errc kind_ = errc::ok;
  std::string name_;
  std::string message_;
  Json code_;
  Json details_;
  Json cause_;
  std::vector<ErrorHop> hops_;
};

// Convenience: a handler throws one of these to answer with an error.
inline Error make_error(errc kind, std::string message, Json code = nullptr) {
  return Error(kind, std::move(message), std::move(code));
}

}  // namespace switchboard

template <>
struct std::is_error_code_enum<switchboard::errc> : std::true_type {};
