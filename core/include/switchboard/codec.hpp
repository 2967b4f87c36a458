// The Codec interface: turns envelopes (JSON values) into bytes and back.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <system_error>

#include "switchboard/json.hpp"

namespace switchboard {

class Codec {
 public:
  virtual ~Codec() = default;
  virtual const std::string& name() const = 0;          // "json"
  virtual const std::string& content_type() const = 0;  // "application/json"
  virtual std::string encode(const Json& value) const = 0;
  // On failure returns errc::parse_error and sets `error` to what was wrong.
  virtual std::error_code decode(std::string_view bytes, Json& out, std::string& error) const = 0;
  // Whether these bytes look like this codec's output (codec negotiation
  // without headers, e.g. for Hemera peers on NATS 1.x).
  virtual bool sniff(std::string_view bytes) const = 0;
};

class CodecFactory {
 public:
  virtual ~CodecFactory() = default;
  virtual std::unique_ptr<Codec> create(const Json& options) const = 0;
};

}  // namespace switchboard
