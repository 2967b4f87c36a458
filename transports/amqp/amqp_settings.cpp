#include "amqp_settings.hpp"

#include <amqp.h>

#include <vector>

#include "amqp_mapping.hpp"
#include "switchboard/config.hpp"
#include "switchboard/option_reader.hpp"

namespace switchboard::amqp {
namespace {

// The transport's options, read with the shared OptionReader.
struct Reader : OptionReader {
  Reader(const Json& object, std::string prefix)
      : OptionReader(object, std::move(prefix), "the amqp transport") {}
};

void parse_url(const std::string& url, AmqpSettings& s) {
  if (url.rfind("amqp://", 0) != 0 && url.rfind("amqps://", 0) != 0) {
    throw OptionError("url", "'" + url + "' is not an amqp:// or amqps:// URL");
  }
  std::vector<char> buf(url.begin(), url.end());
  buf.push_back('\0');
  amqp_connection_info info{};
  if (amqp_parse_url(buf.data(), &info) != AMQP_STATUS_OK) {
    throw OptionError("url", "'" + url +
                                 "' is not a valid AMQP URL "
                                 "(amqp://user:password@host:port/vhost)");
  }
  s.host = info.host;
  s.port = info.port;
  s.user = info.user;
  s.password = info.password;
  s.vhost = info.vhost && *info.vhost ? info.vhost : "/";
  s.tls = info.ssl != 0;
}

}  // namespace

AmqpSettings read_settings(const TransportConfig& config) {
  AmqpSettings s;
  if (!config.url.empty()) parse_url(config.url, s);
  Reader top(config.options, "");
  top.read("user", s.user);
  top.read("password", s.password);
  top.read("vhost", s.vhost);
  top.read("exchange", s.exchange);
  top.read("name", s.name);
  top.read("heartbeat_s", s.heartbeat_s);
  top.read("connect_timeout_ms", s.connect_timeout_ms);
  top.read("rpc_timeout_ms", s.rpc_timeout_ms);
  top.read("frame_max", s.frame_max);
  top.read("publish_timeout_ms", s.publish_timeout_ms);
  std::int64_t max_pending = static_cast<std::int64_t>(s.max_pending_bytes);
  top.read("max_pending_bytes", max_pending);
  if (const Json* tls = top.section("tls")) {
    Reader r(*tls, "tls.");
    s.tls = true;
    r.read("ca", s.tls_ca);
    r.read("cert", s.tls_cert);
    r.read("key", s.tls_key);
    r.read("verify_peer", s.tls_verify_peer);
    r.read("verify_hostname", s.tls_verify_hostname);
    r.reject_unknown();
  }
  if (const Json* rc = top.section("reconnect")) {
    Reader r(*rc, "reconnect.");
    r.read("max_attempts", s.reconnect_max_attempts);
    r.read("wait_ms", s.reconnect_wait_ms);
    r.reject_unknown();
  }
  if (const Json* groups = top.section("queue_groups")) {
    Reader r(*groups, "queue_groups.");
    r.read("prefix", s.group_prefix);
    r.read("durable", s.group_durable);
    r.read("auto_delete", s.group_auto_delete);
    r.reject_unknown();
  }
  top.reject_unknown();

  if (s.exchange.empty() || s.exchange.size() > kMaxShortString) {
    throw OptionError("exchange", "expected an exchange name of 1 to 255 bytes");
  }
  if (s.exchange.rfind("amq.", 0) == 0) {
    throw OptionError("exchange", "'" + s.exchange +
                                      "' is reserved by the broker (amq.*); "
                                      "name an exchange of your own");
  }
  if (s.heartbeat_s < 0 || s.heartbeat_s > 65535) {
    throw OptionError("heartbeat_s", "expected 0 (none) to 65535 seconds");
  }
  if (s.connect_timeout_ms <= 0) throw OptionError("connect_timeout_ms", "must be positive");
  if (s.rpc_timeout_ms <= 0) throw OptionError("rpc_timeout_ms", "must be positive");
  if (s.publish_timeout_ms <= 0) throw OptionError("publish_timeout_ms", "must be positive");
  if (s.frame_max < 4096) throw OptionError("frame_max", "must be at least 4096 bytes");
  if (s.reconnect_max_attempts < -1) {
    throw OptionError("reconnect.max_attempts", "expected -1 (forever) or more");
  }
  if (s.reconnect_wait_ms < 0) throw OptionError("reconnect.wait_ms", "must not be negative");
  if (max_pending <= 0) throw OptionError("max_pending_bytes", "must be positive");
  s.max_pending_bytes = static_cast<std::size_t>(max_pending);
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    throw OptionError("tls.cert", "a client certificate needs both tls.cert and tls.key");
  }
  if (s.group_prefix.size() > 200) throw OptionError("queue_groups.prefix", "at most 200 bytes");
  s.endpoint = std::string(s.tls ? "amqps://" : "amqp://") + s.host + ":" + std::to_string(s.port) +
               (s.vhost == "/" ? "/" : "/" + s.vhost);
  return s;
}

}  // namespace switchboard::amqp
