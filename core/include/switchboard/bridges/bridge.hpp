// Bridges: relays declared in config (`bridges:`) from a subject on one
// transport instance to a destination on another (docs/bridges.md).
//
// Delivery: when the source can acknowledge (capabilities().durable_acks:
// JetStream, Kafka, AMQP) a bridge reads it with subscribe_durable and acks
// each message only after the destination confirmed it (publish_durable's
// completion without error, or publish() accepting it when the destination
// has no confirms): at-least-once. Any other source (core NATS, tcp_peer,
// websocket, inproc) is read with subscribe(): at-most-once.
//
// Threading: a BridgeHost and its relays live on one executor, which must
// run one handler at a time (App's strand); every transport a host creates
// gets that executor, so every callback runs there. start() and close() are
// called on it (or before it runs); status() and metrics_text() may be
// called from any thread (the counters are atomics).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <vector>

#include "switchboard/config.hpp"
#include "switchboard/plugin_host.hpp"
#include "switchboard/prelude.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {
class App;
}

namespace switchboard::bridges {

// `orders.{1}`, `{subject}`, or a literal: `{subject}` is the whole source
// subject, `{N}` its N-th token (1-based, split on '.').
class SubjectTemplate {
 public:
  SubjectTemplate() = default;
  // Throws OptionError (key empty) for an unclosed brace or a bad name.
  explicit SubjectTemplate(std::string text);
  const std::string& text() const noexcept { return text_; }
  bool empty() const noexcept { return text_.empty(); }
  // errc::invalid_argument when `subject` has fewer tokens than used.
  std::error_code render(std::string_view subject, std::string& out) const;

 private:
  struct Part {
    std::string literal;
    int token = -1;  // -1: literal, 0: whole subject, N: N-th token
  };
  std::string text_;
  std::vector<Part> parts_;
};

enum class Delivery { automatic, at_least_once, at_most_once };

// The bridge's own keys (BridgeSpec::options and Endpoint::options).
struct BridgeOptions {
  Delivery delivery = Delivery::automatic;
  std::size_t max_in_flight = 256;
  int max_retries = 3;  // attempts after the first, per message
  std::chrono::milliseconds backoff{100};
  std::chrono::milliseconds max_backoff{5000};
  SubjectTemplate subject;  // `to`'s subject; empty: the source subject
  std::optional<SubjectTemplate> key;
  std::string key_header = "switchboard-key";
  Headers set_headers;
  std::vector<std::string> remove_headers;
  std::map<std::string, std::string> rename_headers;
  // from: options
  std::string queue_group;  // plain subscribe
  std::string durable;      // consumer / group / queue; default switchboard-bridge-<name>
  std::string source_target;
  DurableStart start = DurableStart::earliest;
  std::chrono::milliseconds ack_wait{30000};
  // to: options
  std::string target;
  // dead_letter: {transport, subject}
  std::string dead_letter_transport;
  SubjectTemplate dead_letter_subject;
  // `codec`: re-encode payloads into this codec (plugin name); empty: relay
  // the bytes as they are.
  std::string codec;
  // How often the source's lag is read (durable sources).
  std::chrono::milliseconds lag_interval{1000};
};

// Reads and checks spec.options, spec.from.options and spec.to.options.
// Throws OptionError with a key relative to the bridge ("retry.max_retries",
// "from.start").
BridgeOptions parse_bridge_options(const BridgeSpec& spec);

struct BridgeCounters {
  std::uint64_t relayed = 0;        // confirmed by the destination (source acked)
  std::uint64_t failed = 0;         // messages whose retries ran out
  std::uint64_t retried = 0;        // re-attempts after a destination failure
  std::uint64_t dead_lettered = 0;  // stored on the dead-letter destination
  std::uint64_t dropped = 0;        // given up (at-most-once sources only)
  std::uint64_t redelivered = 0;    // source deliveries with delivery_count > 1
  std::uint64_t duplicates = 0;     // destination said it had the message id already
  std::uint64_t in_flight = 0;      // received, not yet settled
  std::uint64_t lag = 0;            // stored at the source, not yet handed to the bridge
};

struct BridgeStatus {
  std::string name;
  std::string from;  // "instance:subject"
  std::string to;
  bool at_least_once = false;
  bool running = false;
  bool lag_known = false;  // the source transport reports lag (durable_lag) and has answered
  BridgeCounters counters;
};

class CodecConversion;

// One bridge: subscribe on `from`, map, publish on `to`, settle the source.
class BridgeRelay : public std::enable_shared_from_this<BridgeRelay> {
 public:
  // `dead_letter` and `conversion` may be null. The transports must be
  // connected and deliver on `executor`.
  BridgeRelay(asio::any_io_executor executor, BridgeSpec spec, BridgeOptions options,
              std::shared_ptr<Transport> from, std::shared_ptr<Transport> to,
              std::shared_ptr<Transport> dead_letter,
              std::shared_ptr<const CodecConversion> conversion = nullptr);
  ~BridgeRelay();

  // Subscribes on the source. errc::not_supported when at_least_once was
  // asked of a source that cannot acknowledge; the source's error otherwise.
  std::error_code start();
  // Unsubscribes, waits (at most `limit`) for messages in flight to settle,
  // then calls done on the executor. Messages waiting for a retry are nak'ed
  // (durable sources) or dropped (plain sources).
  void stop(std::function<void()> done,
            std::chrono::milliseconds limit = std::chrono::milliseconds(5000));

  BridgeStatus status() const;
  const std::string& name() const { return spec_.name; }

 private:
  // One message from receipt to settlement. Owned by pending_ until
  // finish(), then kept in spare_ for the next message; callbacks hold a
  // Pending* together with a reference to the relay, and finish() is the
  // last thing any of them does with it.
  struct Pending;
  // Where a send goes: the destination, or the dead letter.
  enum class Leg { destination, dead_letter };
  Pending& take_pending();
  void on_message(Message msg, std::shared_ptr<DurableDelivery> delivery);
  void attempt(Pending* p);
  void on_result(Pending* p, std::error_code ec, bool duplicate);
  // `why`: what was wrong, for the dead letter's switchboard-error header.
  void give_up(Pending* p, std::error_code ec, const std::string& why = {});
  void on_dead_lettered(Pending* p, std::error_code ec);
  void finish(Pending* p, bool ack);
  void send(Transport& transport, bool durable, Message msg, std::string message_id, Pending* p,
            Leg leg);
  void on_sent(Pending* p, Leg leg, std::error_code ec, bool duplicate);
  std::chrono::milliseconds backoff_for(std::uint32_t attempt) const;
  void maybe_stopped();
  void poll_lag();

  asio::any_io_executor executor_;
  BridgeSpec spec_;
  BridgeOptions options_;
  std::shared_ptr<Transport> from_, to_, dead_letter_;
  std::shared_ptr<const CodecConversion> conversion_;
  std::unique_ptr<asio::steady_timer> lag_timer_;
  bool durable_source_ = false;
  bool durable_destination_ = false;
  bool durable_dead_letter_ = false;
  std::unique_ptr<Subscription> subscription_;
  std::vector<std::unique_ptr<Pending>> pending_;  // in flight; Pending::slot is the index
  std::vector<std::unique_ptr<Pending>> spare_;    // settled, for reuse
  // In flight by source_id(), for sources whose ids the broker assigns
  // (JetStream, Kafka): where a redelivery finds its first delivery.
  std::optional<std::unordered_map<std::string, Pending*>> by_source_id_;
  bool running_ = false;
  bool stopping_ = false;
  std::function<void()> stopped_;
  std::unique_ptr<asio::steady_timer> stop_timer_;

  struct Atomics {
    std::atomic<std::uint64_t> relayed{0}, failed{0}, retried{0}, dead_lettered{0}, dropped{0},
        redelivered{0}, duplicates{0}, in_flight{0}, lag{0};
    std::atomic<bool> lag_known{false};
  };
  Atomics counters_;
};

// Every bridge of a config, with the transports they need.
class BridgeHost {
 public:
  // `existing`: instances already created and connected (the runtime's),
  // reused by name; the others are created through `host` and connected by
  // start(). Everything runs on `executor` (see the threading note above).
  BridgeHost(asio::any_io_executor executor, PluginHost& host, const Config& config,
             std::map<std::string, std::shared_ptr<Transport>> existing = {});
  // Bridges of an App's config, on its executor, reusing its runtime's
  // transport. The App must outlive the host.
  explicit BridgeHost(App& app);
  ~BridgeHost();
  BridgeHost(const BridgeHost&) = delete;
  BridgeHost& operator=(const BridgeHost&) = delete;

  // Creates and connects the transports and starts every bridge, in config
  // order. Throws ConfigError (bad option, with file and line) or Error
  // (a transport cannot connect, a source cannot be subscribed).
  void start();
  // Stops every bridge, then closes the transports this host created (not
  // the existing ones); done runs on the executor.
  void close(std::function<void()> done);

  std::vector<BridgeStatus> status() const;
  // Prometheus text exposition format (version 0.0.4) of status().
  std::string metrics_text() const;
  std::size_t size() const { return relays_.size(); }

 private:
  std::shared_ptr<Transport> instance(const std::string& name);
  std::shared_ptr<const CodecConversion> codec_conversion(const std::string& name,
                                                          const std::string& key);

  asio::any_io_executor executor_;
  PluginHost& host_;
  const Config& config_;
  std::map<std::string, std::shared_ptr<Transport>> existing_;
  std::map<std::string, std::shared_ptr<Transport>> created_;
  std::vector<std::shared_ptr<BridgeRelay>> relays_;
};

std::string to_prometheus(const std::vector<BridgeStatus>& statuses);

}  // namespace switchboard::bridges
