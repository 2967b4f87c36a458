#include "nats_settings.hpp"

#include <set>

#include "nats_jetstream.hpp"
#include "switchboard/config.hpp"
#include "switchboard/option_reader.hpp"
#include "switchboard/subject.hpp"

namespace switchboard::nats {
namespace {

std::vector<std::string> split_urls(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto comma = text.find(',', start);
    auto part = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!part.empty() && part.front() == ' ') part.erase(part.begin());
    while (!part.empty() && part.back() == ' ') part.pop_back();
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

// The transport's options, read with the shared OptionReader.
struct Reader : OptionReader {
  Reader(const Json& object, std::string prefix)
      : OptionReader(object, std::move(prefix), "the nats transport") {}
};

StreamSettings read_stream(const Json& item, const std::string& prefix) {
  if (!item.is_object()) {
    throw OptionError(prefix.substr(0, prefix.size() - 1),
                      "expected a mapping, got " + item.dump());
  }
  StreamSettings st;
  Reader r(item, prefix);
  r.read("name", st.name);
  if (!valid_jetstream_name(st.name)) {
    throw OptionError(prefix + "name",
                      st.name.empty()
                          ? std::string("a stream needs a name")
                          : "'" + st.name + "' is not a stream name (no '.', '*', '>', spaces)");
  }
  r.mark_seen("subjects");  // read below
  auto subjects = item.find("subjects");
  if (subjects == item.end() || !subjects->is_array() || subjects->empty()) {
    throw OptionError(prefix + "subjects", "expected a non-empty list of subjects");
  }
  for (const auto& subject : *subjects) {
    std::string why;
    if (!subject.is_string()) {
      throw OptionError(prefix + "subjects", "expected subject strings, got " + subject.dump());
    }
    if (validate_subject(subject.get<std::string>(), true, why)) {
      throw OptionError(prefix + "subjects", "'" + subject.get<std::string>() + "': " + why);
    }
    st.subjects.push_back(subject.get<std::string>());
  }
  std::string storage = "file";
  r.read("storage", storage);
  if (storage != "file" && storage != "memory") {
    throw OptionError(prefix + "storage", "expected file or memory, got '" + storage + "'");
  }
  st.memory = storage == "memory";
  r.read("max_age_ms", st.max_age_ms);
  r.read("duplicate_window_ms", st.duplicate_window_ms);
  r.read("replicas", st.replicas);
  r.reject_unknown();
  if (st.max_age_ms < 0) throw OptionError(prefix + "max_age_ms", "must not be negative");
  if (st.duplicate_window_ms < 0) {
    throw OptionError(prefix + "duplicate_window_ms", "must not be negative");
  }
  if (st.max_age_ms > 0 && st.duplicate_window_ms > st.max_age_ms) {
    throw OptionError(prefix + "duplicate_window_ms", "must not be longer than max_age_ms");
  }
  if (st.replicas < 1 || st.replicas > 5) {
    throw OptionError(prefix + "replicas", "expected 1 to 5");
  }
  return st;
}

JetStreamSettings read_jetstream(const Json& value) {
  JetStreamSettings js;
  if (value.is_boolean()) {
    js.enabled = value.get<bool>();
    return js;
  }
  if (!value.is_object()) {
    throw OptionError("jetstream", "expected true, false or a mapping, got " + value.dump());
  }
  js.enabled = true;
  Reader r(value, "jetstream.");
  r.read("domain", js.domain);
  r.read("publish_timeout_ms", js.publish_timeout_ms);
  r.read("api_timeout_ms", js.api_timeout_ms);
  r.mark_seen("streams");  // read below
  if (auto streams = value.find("streams"); streams != value.end() && !streams->is_null()) {
    if (!streams->is_array()) {
      throw OptionError("jetstream.streams", "expected a list of streams, got " + streams->dump());
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < streams->size(); ++i) {
      auto prefix = "jetstream.streams[" + std::to_string(i) + "].";
      js.streams.push_back(read_stream((*streams)[i], prefix));
      if (!names.insert(js.streams.back().name).second) {
        throw OptionError(prefix + "name",
                          "stream '" + js.streams.back().name + "' is declared twice");
      }
    }
  }
  r.reject_unknown();
  if (!js.domain.empty() && !valid_jetstream_name(js.domain)) {
    throw OptionError("jetstream.domain", "'" + js.domain + "' is not a domain name");
  }
  if (js.publish_timeout_ms <= 0) {
    throw OptionError("jetstream.publish_timeout_ms", "must be positive");
  }
  if (js.api_timeout_ms <= 0) throw OptionError("jetstream.api_timeout_ms", "must be positive");
  return js;
}

void check(natsStatus s, const char* key, const std::string& what) {
  if (s == NATS_OK) return;
  const char* last = nats_GetLastError(nullptr);
  throw OptionError(
      key, what + ": " + natsStatus_GetText(s) + (last ? std::string(" (") + last + ")" : ""));
}

}  // namespace

NatsSettings read_settings(const TransportConfig& config) {
  NatsSettings s;
  if (!config.url.empty()) s.servers = split_urls(config.url);
  Reader top(config.options, "");
  std::vector<std::string> listed;
  if (auto it = config.options.find("servers"); it != config.options.end()) {
    if (!it->is_array()) throw OptionError("servers", "expected a list of URLs, got " + it->dump());
    for (const auto& url : *it) {
      if (!url.is_string()) throw OptionError("servers", "expected URL strings, got " + url.dump());
      listed.push_back(url.get<std::string>());
    }
  }
  top.mark_seen("servers");  // read above
  s.servers.insert(s.servers.end(), listed.begin(), listed.end());
  if (s.servers.empty()) s.servers.push_back("nats://127.0.0.1:4222");
  top.read("name", s.name);
  top.read("user", s.user);
  top.read("password", s.password);
  top.read("token", s.token);
  top.read("nkey_seed", s.nkey_seed_file);
  top.read("nkey", s.nkey_public);
  top.read("creds", s.creds_file);
  top.read("connect_timeout_ms", s.connect_timeout_ms);
  top.read("retry_on_failed_connect", s.retry_on_failed_connect);
  top.read("no_echo", s.no_echo);
  top.read("ping_interval_ms", s.ping_interval_ms);
  top.read("max_pings_out", s.max_pings_out);
  top.read("drain_timeout_ms", s.drain_timeout_ms);
  top.mark_seen("jetstream");  // bool or mapping: read below
  if (auto it = config.options.find("jetstream"); it != config.options.end() && !it->is_null()) {
    s.jetstream = read_jetstream(*it);
  }
  if (const Json* tls = top.section("tls")) {
    Reader r(*tls, "tls.");
    s.tls = true;
    r.read("ca", s.tls_ca);
    r.read("cert", s.tls_cert);
    r.read("key", s.tls_key);
    r.read("hostname", s.tls_hostname);
    r.read("skip_verify", s.tls_skip_verify);
    r.reject_unknown();
  }
  if (const Json* rc = top.section("reconnect")) {
    Reader r(*rc, "reconnect.");
    r.read("max_attempts", s.reconnect_max_attempts);
    r.read("wait_ms", s.reconnect_wait_ms);
    r.read("jitter_ms", s.reconnect_jitter_ms);
    r.read("jitter_tls_ms", s.reconnect_jitter_tls_ms);
    r.read("buffer_bytes", s.reconnect_buffer_bytes);
    r.reject_unknown();
  }
  if (const Json* pending = top.section("pending")) {
    Reader r(*pending, "pending.");
    r.read("messages", s.pending_messages);
    r.read("bytes", s.pending_bytes);
    r.reject_unknown();
  }
  top.reject_unknown();
  for (const auto& url : s.servers) {
    if (url.rfind("nats://", 0) != 0 && url.rfind("tls://", 0) != 0) {
      throw OptionError("url", "'" + url + "' is not a nats:// or tls:// URL");
    }
    if (url.rfind("tls://", 0) == 0) s.tls = true;
  }
  if (!s.nkey_seed_file.empty() && s.nkey_public.empty()) {
    throw OptionError("nkey", "nkey_seed needs the matching public key in `nkey`");
  }
  if (!s.creds_file.empty() && !s.nkey_seed_file.empty()) {
    throw OptionError("creds", "creds and nkey_seed cannot both be set");
  }
  if (s.tls_cert.empty() != s.tls_key.empty()) {
    throw OptionError("tls.cert", "a client certificate needs both tls.cert and tls.key");
  }
  return s;
}

natsOptions* build_options(const NatsSettings& s) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "", "cannot create cnats options");
  try {
    std::vector<const char*> urls;
    for (const auto& u : s.servers) urls.push_back(u.c_str());
    check(natsOptions_SetServers(opts, urls.data(), static_cast<int>(urls.size())), "url",
          "bad server list");
    if (!s.name.empty()) check(natsOptions_SetName(opts, s.name.c_str()), "name", "bad name");
    if (!s.user.empty()) {
      check(natsOptions_SetUserInfo(opts, s.user.c_str(), s.password.c_str()), "user", "bad user");
    }
    if (!s.token.empty()) check(natsOptions_SetToken(opts, s.token.c_str()), "token", "bad token");
    if (!s.creds_file.empty()) {
      check(natsOptions_SetUserCredentialsFromFiles(opts, s.creds_file.c_str(), nullptr), "creds",
            "cannot use creds file '" + s.creds_file + "'");
    }
    if (!s.nkey_seed_file.empty()) {
      check(natsOptions_SetNKeyFromSeed(opts, s.nkey_public.c_str(), s.nkey_seed_file.c_str()),
            "nkey_seed", "cannot use nkey seed file '" + s.nkey_seed_file + "'");
    }
    if (s.tls) {
      check(natsOptions_SetSecure(opts, true), "tls", "TLS is not available in this cnats build");
      if (!s.tls_ca.empty()) {
        check(natsOptions_LoadCATrustedCertificates(opts, s.tls_ca.c_str()), "tls.ca",
              "cannot load CA file '" + s.tls_ca + "'");
      }
      if (!s.tls_cert.empty()) {
        check(natsOptions_LoadCertificatesChain(opts, s.tls_cert.c_str(), s.tls_key.c_str()),
              "tls.cert",
              "cannot load certificate '" + s.tls_cert + "' and key '" + s.tls_key + "'");
      }
      if (!s.tls_hostname.empty()) {
        check(natsOptions_SetExpectedHostname(opts, s.tls_hostname.c_str()), "tls.hostname",
              "bad hostname");
      }
      if (s.tls_skip_verify) {
        check(natsOptions_SkipServerVerification(opts, true), "tls.skip_verify", "refused");
      }
    }
    check(natsOptions_SetAllowReconnect(opts, true), "reconnect", "refused");
    check(natsOptions_SetMaxReconnect(opts, s.reconnect_max_attempts), "reconnect.max_attempts",
          "refused");
    check(natsOptions_SetReconnectWait(opts, s.reconnect_wait_ms), "reconnect.wait_ms", "refused");
    check(natsOptions_SetReconnectJitter(opts, s.reconnect_jitter_ms, s.reconnect_jitter_tls_ms),
          "reconnect.jitter_ms", "refused");
    check(natsOptions_SetReconnectBufSize(opts, s.reconnect_buffer_bytes), "reconnect.buffer_bytes",
          "refused");
    check(natsOptions_SetTimeout(opts, s.connect_timeout_ms), "connect_timeout_ms", "refused");
    check(natsOptions_SetNoEcho(opts, s.no_echo), "no_echo", "refused");
    check(natsOptions_SetPingInterval(opts, s.ping_interval_ms), "ping_interval_ms", "refused");
    check(natsOptions_SetMaxPingsOut(opts, s.max_pings_out), "max_pings_out", "refused");
    check(natsOptions_SetMaxPendingMsgs(opts, s.pending_messages), "pending.messages", "refused");
  } catch (...) {
    natsOptions_Destroy(opts);
    throw;
  }
  return opts;
}

}  // namespace switchboard::nats
