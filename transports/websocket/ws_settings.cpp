#include "ws_settings.hpp"

#include <set>

#include "switchboard/config.hpp"
#include "switchboard/option_reader.hpp"

namespace switchboard::websocket {
namespace {

// The transport's options, read with the shared OptionReader.
struct Reader : OptionReader {
  Reader(const Json& object, std::string prefix)
      : OptionReader(object, std::move(prefix), "the websocket transport") {}
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string percent_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex_value(s[i + 1]) >= 0 && hex_value(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2])));
      i += 2;
    } else if (s[i] == '+') {
      out.push_back(' ');
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::string Endpoint::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port;
  return host + ":" + port;
}

std::string Endpoint::url() const {
  return (tls ? "wss://" : "ws://") + text();
}

Endpoint parse_endpoint(const std::string& text, const std::string& key) {
  Endpoint e;
  std::string rest = text;
  if (rest.rfind("ws://", 0) == 0) {
    rest = rest.substr(5);
  } else if (rest.rfind("wss://", 0) == 0) {
    rest = rest.substr(6);
    e.tls = true;
  } else if (rest.find("://") != std::string::npos) {
    throw OptionError(key, "'" + text + "' is not a ws:// or wss:// URL");
  }
  auto slash = rest.find_first_of("/?");
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) {
    e.target = rest.substr(slash);
    if (e.target.front() == '?') e.target.insert(e.target.begin(), '/');
  }
  if (auto q = e.target.find('?'); q != std::string::npos) {
    std::string_view query(e.target);
    query.remove_prefix(q + 1);
    while (!query.empty()) {
      auto amp = query.find('&');
      auto part = query.substr(0, amp);
      auto eq = part.find('=');
      auto name = part.substr(0, eq);
      if (name == "token") {
        e.token = percent_decode(eq == std::string_view::npos ? "" : part.substr(eq + 1));
      } else if (!name.empty()) {
        throw OptionError(key, "'" + text + "': unknown query parameter '" + std::string(name) +
                                   "' (only token)");
      }
      if (amp == std::string_view::npos) break;
      query.remove_prefix(amp + 1);
    }
  }
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string::npos) throw OptionError(key, "'" + text + "': expected [ipv6]:port");
    e.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        throw OptionError(key, "'" + text + "': expected [ipv6]:port");
      }
      e.port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    if (colon != std::string::npos) {
      e.host = authority.substr(0, colon);
      e.port = authority.substr(colon + 1);
      if (e.host.find(':') != std::string::npos) {
        throw OptionError(key, "'" + text + "': put an IPv6 address in brackets ([::1]:8080)");
      }
    } else {
      e.host = authority;
    }
  }
  if (e.host.empty()) throw OptionError(key, "'" + text + "': no host");
  if (e.host.find('@') != std::string::npos) {
    throw OptionError(key, "'" + text + "': user info is not supported; use token");
  }
  if (e.port.empty()) e.port = e.tls ? "443" : "80";
  if (e.port.size() > 5 || e.port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(e.port) > 65535) {
    throw OptionError(key, "'" + text + "': bad port '" + e.port + "'");
  }
  return e;
}

Settings read_settings(const TransportConfig& config) {
  Settings s;
  Reader top(config.options, "");
  s.mode = Mode::auto_;
  top.read_choice("mode", s.mode,
                  {{"auto", Mode::auto_}, {"listen", Mode::listen}, {"connect", Mode::connect}});

  std::string listen;
  top.read("listen", listen);
  bool has_url = !config.url.empty();
  if (has_url) s.server = parse_endpoint(config.url, "url");
  if (s.mode == Mode::connect) {
    if (!listen.empty()) throw OptionError("listen", "mode connect does not listen");
    if (!has_url) throw OptionError("url", "mode connect needs the url of the server");
  } else if (!listen.empty()) {
    s.listen = parse_endpoint(listen, "listen");
    if (!has_url) s.server = s.listen;
  } else if (has_url) {
    s.listen = s.server;
  } else {
    throw OptionError("url", "give the address to listen on (url or listen), or mode: connect");
  }
  if (s.mode != Mode::connect && !s.listen.token.empty()) s.token = s.listen.token;
  if (!s.server.token.empty()) s.token = s.server.token;

  std::string token;
  if (top.read("token", token)) {
    if (!s.token.empty() && token != s.token) {
      throw OptionError("token", "differs from the token in the url");
    }
    s.token = token;
  }
  if (s.token.size() > 4096) throw OptionError("token", "longer than 4096 bytes");

  if (const Json* origins = top.find("allowed_origins")) {
    if (!origins->is_array()) {
      throw OptionError("allowed_origins", "expected a list of origins, got " + origins->dump());
    }
    for (const auto& o : *origins) {
      if (!o.is_string() || o.get<std::string>().empty()) {
        throw OptionError("allowed_origins",
                          "expected origins like \"https://app.example.com\", got " + o.dump());
      }
      s.allowed_origins.push_back(o.get<std::string>());
    }
  }
  std::string frames = "msgpack";
  top.read("frames", frames);
  if (frames == "json") {
    s.frames = FrameFormat::json;
  } else if (frames == "msgpack") {
    s.frames = FrameFormat::msgpack;
  } else {
    throw OptionError("frames", "expected json or msgpack, got '" + frames + "'");
  }

  s.max_message_bytes = 2 * config.max_payload + 64 * 1024;
  std::int64_t max_message = 0;
  if (top.read("max_message_bytes", max_message)) {
    auto min = static_cast<std::int64_t>(config.max_payload + 1024);
    if (max_message < min) {
      throw OptionError("max_message_bytes", "must be at least max_payload + 1024 (" +
                                                 std::to_string(min) + "), got " +
                                                 std::to_string(max_message));
    }
    s.max_message_bytes = static_cast<std::size_t>(max_message);
  }
  top.read_size("max_outbound_bytes", s.max_outbound_bytes);
  top.read_size("max_connections", s.max_connections);
  top.read_positive("handshake_timeout_ms", s.handshake_timeout_ms);
  if (top.read("idle_timeout_ms", s.idle_timeout_ms) && s.idle_timeout_ms < 0) {
    throw OptionError("idle_timeout_ms", "must not be negative (0: no keep-alive)");
  }
  top.read_positive("connect_timeout_ms", s.connect_timeout_ms);
  top.read_positive("drain_timeout_ms", s.drain_timeout_ms);
  top.read("retry_on_failed_connect", s.retry_on_failed_connect);
  if (const Json* rc = top.section("reconnect")) {
    Reader r(*rc, "reconnect.");
    r.read_positive("wait_ms", s.reconnect_wait_ms);
    r.read("max_attempts", s.reconnect_max_attempts);
    r.read_size("buffer_bytes", s.reconnect_buffer_bytes);
    r.reject_unknown();
    if (s.reconnect_max_attempts < -1) {
      throw OptionError("reconnect.max_attempts", "-1 (forever) or a count");
    }
  }
  if (const Json* rq = top.section("request")) {
    Reader r(*rq, "request.");
    r.read_positive("timeout_ms", s.request_timeout_ms);
    r.read("retries", s.request_retries);
    r.reject_unknown();
    if (s.request_retries < 0) throw OptionError("request.retries", "must not be negative");
  }
  bool tls_section = false;
  if (const Json* tls = top.section("tls")) {
    tls_section = true;
    Reader r(*tls, "tls.");
    r.read("ca", s.tls.ca);
    r.read("cert", s.tls.cert);
    r.read("key", s.tls.key);
    r.read("hostname", s.tls.hostname);
    r.read("verify", s.tls.verify);
    r.reject_unknown();
    if (s.tls.cert.empty() != s.tls.key.empty()) {
      throw OptionError("tls.cert", "a certificate needs both tls.cert and tls.key");
    }
  }
  top.reject_unknown();

  if (s.mode != Mode::connect) {
    s.tls_server = s.listen.tls || (tls_section && !s.tls.cert.empty());
    s.listen.tls = s.tls_server;
    // auto: the address that was taken is dialed with the same scheme.
    if (listen.empty()) s.server.tls = s.tls_server;
    if (s.tls_server && s.tls.cert.empty()) {
      throw OptionError("tls.cert", "listening on wss:// needs tls.cert and tls.key");
    }
  }
  return s;
}

}  // namespace switchboard::websocket
