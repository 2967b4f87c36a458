#include "nats_jetstream.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <vector>

#include "switchboard/error.hpp"
#include "switchboard/json_parse.hpp"

namespace switchboard::nats {
namespace {

std::int64_t nanos(std::int64_t ms) {
  return ms * 1000000;
}

std::vector<std::string_view> tokens(std::string_view subject) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto dot = subject.find('.', start);
    out.push_back(subject.substr(start, dot == std::string_view::npos ? dot : dot - start));
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return out;
}

bool to_u64(std::string_view text, std::uint64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

bool valid_jetstream_name(const std::string& name) {
  if (name.empty() || name.size() > 255) return false;
  return name.find_first_of(".*> \t\r\n/\\") == std::string::npos;
}

std::string ApiError::text() const {
  return description + " (code " + std::to_string(code) + ", err_code " + std::to_string(err_code) +
         ")";
}

std::optional<ApiError> api_error(const Json& answer) {
  if (!answer.is_object()) return ApiError{0, 0, "not a JSON object: " + answer.dump()};
  auto it = answer.find("error");
  if (it == answer.end() || !it->is_object()) return std::nullopt;
  ApiError e;
  e.code = static_cast<int>(number_or(*it, "code"));
  e.err_code = static_cast<int>(number_or(*it, "err_code"));
  e.description = string_or(*it, "description", "unknown error");
  return e;
}

std::string api_prefix(const JetStreamSettings& settings) {
  return settings.domain.empty() ? "$JS.API" : "$JS." + settings.domain + ".API";
}

Json stream_config(const StreamSettings& stream) {
  return merge_stream_config(Json{{"name", stream.name}, {"retention", "limits"}}, stream);
}

Json merge_stream_config(Json config, const StreamSettings& stream) {
  config["subjects"] = stream.subjects;
  config["storage"] = stream.memory ? "memory" : "file";
  config["max_age"] = nanos(stream.max_age_ms);
  config["num_replicas"] = stream.replicas;
  // Unset: the server's default on creation, what is there on update.
  if (stream.duplicate_window_ms > 0) {
    config["duplicate_window"] = nanos(stream.duplicate_window_ms);
  }
  return config;
}

Json consumer_config(const DurableSubscribe& options, const std::string& deliver_subject,
                     const std::string& deliver_group) {
  Json c = {
      {"durable_name", options.durable},
      {"deliver_subject", deliver_subject},
      {"ack_policy", "explicit"},
      {"ack_wait", std::chrono::duration_cast<std::chrono::nanoseconds>(options.ack_wait).count()},
      {"max_ack_pending", static_cast<std::int64_t>(std::min<std::size_t>(
                              std::max<std::size_t>(options.max_in_flight, 1), INT32_MAX))},
      {"max_deliver", -1},
      {"replay_policy", "instant"},
  };
  if (!deliver_group.empty()) c["deliver_group"] = deliver_group;
  if (!options.subject.empty()) c["filter_subject"] = options.subject;
  switch (options.start) {
    case DurableStart::earliest:
      c["deliver_policy"] = "all";
      break;
    case DurableStart::latest:
      c["deliver_policy"] = "new";
      break;
    case DurableStart::sequence:
      c["deliver_policy"] = "by_start_sequence";
      c["opt_start_seq"] = options.start_sequence;
      break;
    case DurableStart::time:
      c["deliver_policy"] = "by_start_time";
      c["opt_start_time"] = rfc3339(options.start_time);
      break;
  }
  return c;
}

std::string rfc3339(std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  auto secs = static_cast<std::time_t>(ns / 1000000000);
  auto frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%09lldZ", static_cast<long long>(frac));
  return buf;
}

std::optional<AckSubject> parse_ack_subject(const std::string& reply) {
  auto t = tokens(reply);
  if (t.size() < 9 || t[0] != "$JS" || t[1] != "ACK") return std::nullopt;
  // 9 tokens: the original form; 11 or more: with domain and account hash.
  std::size_t base = t.size() == 9 ? 2 : 4;
  if (t.size() != 9 && t.size() < 11) return std::nullopt;
  AckSubject a;
  a.stream = std::string(t[base]);
  a.consumer = std::string(t[base + 1]);
  if (!to_u64(t[base + 2], a.delivered) || !to_u64(t[base + 3], a.stream_sequence)) {
    return std::nullopt;
  }
  // ...<consumer seq>.<timestamp>.<pending>: a figure for lag, not needed to ack.
  if (!to_u64(t[base + 6], a.pending)) a.pending = 0;
  return a;
}

std::string nak_body(std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return "-NAK";
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(delay).count();
  return "-NAK {\"delay\": " + std::to_string(ns) + "}";
}

PubAckResult read_pub_ack(std::string_view body, const std::string& subject,
                          const std::string& expected_stream) {
  PubAckResult r;
  Json answer;
  std::string error;
  if (!parse_json(body, answer, error) || !answer.is_object()) {
    r.ec = make_error_code(errc::transport_error);
    r.problem = "the PubAck for '" + subject + "' is not JSON: " + std::string(body.substr(0, 200));
    return r;
  }
  if (auto e = api_error(answer)) {
    if (e->err_code == kJsStreamNotMatch) {
      r.ec = make_error_code(errc::invalid_argument);
      r.problem = "'" + subject + "' is not stored by the expected stream '" + expected_stream +
                  "': " + e->text();
    } else if (e->err_code == kJsNotEnabled || e->err_code == kJsNotEnabledForAccount) {
      r.ec = make_error_code(errc::not_supported);
      r.problem = "JetStream refused '" + subject + "': " + e->text();
    } else {
      r.ec = make_error_code(errc::transport_error);
      r.problem = "JetStream did not store '" + subject + "': " + e->text();
    }
    return r;
  }
  r.receipt.target = string_or(answer, "stream");
  auto seq = answer.find("seq");
  if (seq != answer.end() && seq->is_number_unsigned())
    r.receipt.sequence = seq->get<std::uint64_t>();
  auto dup = answer.find("duplicate");
  r.receipt.duplicate = dup != answer.end() && dup->is_boolean() && dup->get<bool>();
  if (r.receipt.target.empty() || r.receipt.sequence == 0) {
    r.ec = make_error_code(errc::transport_error);
    r.problem = "the PubAck for '" + subject + "' has no stream or sequence: " + answer.dump();
  }
  return r;
}

}  // namespace switchboard::nats
