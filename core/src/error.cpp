#include "switchboard/error.hpp"

#include <string_view>

namespace switchboard {
namespace {

class SwitchboardCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "switchboard"; }
  std::string message(int ev) const override {
    switch (static_cast<errc>(ev)) {
      case errc::ok:
        return "success";
      case errc::timeout:
        return "timed out waiting for a reply";
      case errc::pattern_not_found:
        return "no action found for this pattern";
      case errc::response_error:
        return "the remote handler failed";
      case errc::payload_validation:
        return "payload does not fit the pattern's schema";
      case errc::parse_error:
        return "message could not be decoded";
      case errc::max_recursion:
        return "maximum recursion depth exceeded";
      case errc::transport_error:
        return "transport error";
      case errc::no_responders:
        return "no responders on the subject";
      case errc::payload_too_large:
        return "payload larger than the transport's maximum";
      case errc::closed:
        return "closed";
      case errc::invalid_argument:
        return "invalid argument";
      case errc::disconnected:
        return "transport disconnected";
      case errc::not_supported:
        return "not supported by this transport or codec";
      case errc::plugin_error:
        return "plugin error";
    }
    return "unknown switchboard error";
  }
};

struct NameEntry {
  errc kind;
  const char* name;
};

constexpr NameEntry kNames[] = {
    {errc::timeout, "TimeoutError"},
    {errc::pattern_not_found, "PatternNotFound"},
    {errc::response_error, "ResponseError"},
    {errc::payload_validation, "PayloadValidationError"},
    {errc::parse_error, "ParseError"},
    {errc::max_recursion, "MaxRecursionError"},
    {errc::transport_error, "TransportError"},
    {errc::no_responders, "TransportError"},
    {errc::payload_too_large, "TransportError"},
    {errc::closed, "TransportError"},
    {errc::invalid_argument, "ValidationError"},
    {errc::plugin_error, "PluginError"},
    {errc::disconnected, "TransportError"},
    {errc::not_supported, "TransportError"},
};

errc kind_for_name(std::string_view name) {
  for (const auto& entry : kNames) {
    if (name == entry.name) return entry.kind;
  }
  return errc::response_error;
}

}  // namespace

const std::error_category& category() noexcept {
  static const SwitchboardCategory instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), category()};
}

const char* error_name(errc e) noexcept {
  for (const auto& entry : kNames) {
    if (entry.kind == e) return entry.name;
  }
  return "Error";
}

Error::Error(errc kind, std::string message, Json code)
    : std::runtime_error(message),
      kind_(kind),
      name_(error_name(kind)),
      message_(std::move(message)),
      code_(std::move(code)) {}

Error::Error(std::string name, std::string message, Json code)
    : std::runtime_error(message),
      kind_(kind_for_name(name)),
      name_(std::move(name)),
      message_(std::move(message)),
      code_(std::move(code)) {}

Error& Error::with_details(Json details) {
  details_ = std::move(details);
  return *this;
}

Error& Error::add_hop(ErrorHop hop) {
  hops_.push_back(std::move(hop));
  return *this;
}

Error& Error::with_cause(Json cause) {
  cause_ = std::move(cause);
  return *this;
}

Json Error::to_json() const {
  Json j = {{"name", name_}, {"message", message_}};
  if (!code_.is_null()) j["code"] = code_;
  if (!details_.is_null()) j["details"] = details_;
  if (!cause_.is_null()) j["cause"] = cause_;
  if (!hops_.empty()) {
    Json hops = Json::array();
    for (const auto& hop : hops_) {
      hops.push_back(
          {{"service", hop.service}, {"method", hop.method}, {"app", hop.app}, {"ts", hop.ts}});
    }
    j["hops"] = std::move(hops);
  }
  return j;
}

Error Error::from_json(const Json& j) {
  if (!j.is_object())
    return Error(errc::response_error, j.is_string() ? j.get<std::string>() : j.dump());
  auto text = [&](const char* key, const char* fallback) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
  };
  Error e(text("name", "Error"), text("message", ""), j.value("code", Json()));
  if (auto it = j.find("details"); it != j.end()) e.details_ = *it;
  if (auto it = j.find("cause"); it != j.end()) e.cause_ = *it;
  if (auto it = j.find("hops"); it != j.end() && it->is_array()) {
    for (const auto& h : *it) {
      if (!h.is_object()) continue;
      e.hops_.push_back({string_or(h, "service"), string_or(h, "method"), string_or(h, "app"),
                         number_or(h, "ts")});
    }
  }
  return e;
}

}  // namespace switchboard
