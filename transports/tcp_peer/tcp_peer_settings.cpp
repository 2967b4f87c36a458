#include "tcp_peer_settings.hpp"

#include <set>

#include "switchboard/config.hpp"
#include "switchboard/option_reader.hpp"

namespace switchboard::tcp_peer {
namespace {

// The transport's options, read with the shared OptionReader.
struct Reader : OptionReader {
  Reader(const Json& object, std::string prefix)
      : OptionReader(object, std::move(prefix), "the tcp_peer transport") {}
};

bool is_unspecified_host(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "::" || host == "[::]";
}

}  // namespace

std::string Address::text() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port;
  return host + ":" + port;
}

Address parse_address(const std::string& text, const std::string& key) {
  std::string rest = text;
  if (rest.rfind("tcp://", 0) == 0) {
    rest = rest.substr(6);
  } else if (rest.find("://") != std::string::npos) {
    throw OptionError(key, "'" + text + "' is not a tcp:// URL");
  }
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  Address a;
  std::size_t colon;
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      throw OptionError(key, "'" + text + "': expected [ipv6]:port");
    }
    a.host = rest.substr(1, close - 1);
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string::npos) throw OptionError(key, "'" + text + "': expected host:port");
    a.host = rest.substr(0, colon);
    if (a.host.find(':') != std::string::npos) {
      throw OptionError(key, "'" + text + "': put an IPv6 address in brackets ([::1]:7400)");
    }
  }
  a.port = rest.substr(colon + 1);
  if (a.port.empty() || a.port.size() > 5 ||
      a.port.find_first_not_of("0123456789") != std::string::npos || std::stoi(a.port) > 65535) {
    throw OptionError(key, "'" + text + "': bad port '" + a.port + "'");
  }
  if (a.host.empty()) a.host = "0.0.0.0";
  return a;
}

Settings read_settings(const TransportConfig& config) {
  Settings s;
  Reader top(config.options, "");
  s.mode = Mode::auto_;
  top.read_choice("mode", s.mode,
                  {{"auto", Mode::auto_}, {"listen", Mode::listen}, {"connect", Mode::connect}});

  std::string listen;
  top.read("listen", listen);
  std::vector<Address> peers;
  if (const Json* list = top.find("peers")) {
    if (!list->is_array())
      throw OptionError("peers", "expected a list of URLs, got " + list->dump());
    for (std::size_t i = 0; i < list->size(); ++i) {
      const Json& p = (*list)[i];
      std::string key = "peers[" + std::to_string(i) + "]";
      if (!p.is_string()) throw OptionError(key, "expected a tcp:// URL, got " + p.dump());
      peers.push_back(parse_address(p.get<std::string>(), key));
    }
  }

  if (s.mode == Mode::connect) {
    if (!listen.empty()) throw OptionError("listen", "mode connect does not listen");
    if (!config.url.empty()) s.peers.push_back(parse_address(config.url, "url"));
    s.peers.insert(s.peers.end(), peers.begin(), peers.end());
    if (s.peers.empty()) throw OptionError("peers", "mode connect needs a url or peers to join");
  } else {
    if (!listen.empty()) {
      s.listen = parse_address(listen, "listen");
    } else if (!config.url.empty()) {
      s.listen = parse_address(config.url, "url");
    } else {
      throw OptionError("url", "give the address to listen on (url or listen), or mode: connect");
    }
    s.has_listen = true;
    s.peers = peers;
  }

  top.read("advertise", s.advertise);
  if (!s.advertise.empty()) s.advertise = parse_address(s.advertise, "advertise").text();
  top.read("name", s.name);
  if (s.name.empty()) s.name = config.instance;
  top.read("token", s.token);
  if (s.token.size() > 4096) throw OptionError("token", "longer than 4096 bytes");
  top.read("gossip", s.gossip);
  top.read("retry_on_failed_connect", s.retry_on_failed_connect);
  top.read_positive("connect_timeout_ms", s.connect_timeout_ms);
  top.read_positive("handshake_timeout_ms", s.handshake_timeout_ms);
  top.read_positive("drain_timeout_ms", s.drain_timeout_ms);
  std::int64_t max_frame = 0, max_outbound = 0;
  if (top.read("max_frame_bytes", max_frame)) {
    auto min_frame = static_cast<std::int64_t>(config.max_payload + 1024);
    if (max_frame < min_frame) {
      throw OptionError("max_frame_bytes", "must be at least max_payload + 1024 (" +
                                               std::to_string(min_frame) + "), got " +
                                               std::to_string(max_frame));
    }
    if (max_frame > 0xffffffffLL) throw OptionError("max_frame_bytes", "above 4 GiB");
    s.max_frame_bytes = static_cast<std::size_t>(max_frame);
  } else {
    s.max_frame_bytes = std::min<std::size_t>(config.max_payload + kHeaderRoom, 0xffffffffULL);
  }
  if (top.read("max_outbound_bytes", max_outbound)) {
    if (max_outbound <= 0) throw OptionError("max_outbound_bytes", "must be above 0");
    s.max_outbound_bytes = static_cast<std::size_t>(max_outbound);
  }
  if (const Json* hb = top.section("heartbeat")) {
    Reader r(*hb, "heartbeat.");
    r.read_positive("interval_ms", s.heartbeat_interval_ms);
    r.read_positive("max_missed", s.heartbeat_max_missed);
    r.reject_unknown();
  }
  if (const Json* rc = top.section("reconnect")) {
    Reader r(*rc, "reconnect.");
    r.read_positive("wait_ms", s.reconnect_wait_ms);
    r.read_positive("max_wait_ms", s.reconnect_max_wait_ms);
    r.read("jitter_ms", s.reconnect_jitter_ms);
    r.read("max_attempts", s.reconnect_max_attempts);
    r.reject_unknown();
    if (s.reconnect_jitter_ms < 0) throw OptionError("reconnect.jitter_ms", "must not be negative");
    if (s.reconnect_max_attempts < -1) {
      throw OptionError("reconnect.max_attempts", "-1 (forever) or a count");
    }
    if (s.reconnect_max_wait_ms < s.reconnect_wait_ms)
      s.reconnect_max_wait_ms = s.reconnect_wait_ms;
  }
  if (const Json* tls = top.section("tls")) {
    Reader r(*tls, "tls.");
    s.tls.enabled = true;
    r.read("ca", s.tls.ca);
    r.read("cert", s.tls.cert);
    r.read("key", s.tls.key);
    r.read("hostname", s.tls.hostname);
    r.read("verify", s.tls.verify);
    r.read("verify_clients", s.tls.verify_clients);
    r.reject_unknown();
    if (s.tls.cert.empty() != s.tls.key.empty()) {
      throw OptionError("tls.cert", "a certificate needs both tls.cert and tls.key");
    }
    if (s.has_listen && s.tls.cert.empty()) {
      throw OptionError("tls.cert", "a listening node needs tls.cert and tls.key");
    }
    if (s.tls.verify_clients && s.tls.ca.empty()) {
      throw OptionError("tls.verify_clients", "needs tls.ca to verify the peers' certificates");
    }
  }
  top.reject_unknown();
  if (s.has_listen && s.advertise.empty() && !is_unspecified_host(s.listen.host)) {
    s.advertise = s.listen.text();  // the port is fixed up once bound (port 0)
  }
  return s;
}

}  // namespace switchboard::tcp_peer
