// The Transport interface every transport plugin implements.
//
// Threading contract: every callback a transport makes (message handlers,
// status events, close completion) runs on TransportContext::executor, never
// on a thread of the client library. Methods may be called from that
// executor; they do not block on the network except connect().
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include "switchboard/json.hpp"
#include "switchboard/message.hpp"
#include "switchboard/prelude.hpp"

namespace switchboard {

struct Capabilities {
  bool wildcards = false;       // '*' and '>' handled by the transport itself
  bool queue_groups = false;    // queue groups handled by the transport itself
  bool headers = false;         // headers travel with messages
  bool durable_acks = false;    // the source can acknowledge (JetStream, Kafka, AMQP)
  bool native_request = false;  // a request primitive exists (unused by the runtime)
  bool no_responders = false;   // a publish with reply_to and no subscriber is reported
};

enum class TransportStatus { connected, disconnected, reconnected, closed, error, slow_consumer };
const char* to_string(TransportStatus s) noexcept;

struct StatusEvent {
  TransportStatus status;
  std::string detail;
};

// A live subscription; destroying it does not unsubscribe, unsubscribe() does.
class Subscription {
 public:
  virtual ~Subscription() = default;
  virtual void unsubscribe() = 0;
  virtual const std::string& subject() const = 0;
};

using MessageHandler = std::function<void(Message)>;
using StatusHandler = std::function<void(const StatusEvent&)>;

struct TransportConfig {
  std::string instance;  // the name in config (`bus`), for messages and logs
  std::string type;      // plugin name (`nats`)
  std::string url;       // may be empty when options say everything
  Json options = Json::object();
  std::size_t max_payload = 1024 * 1024;  // bytes; publish above it fails clearly
};

struct TransportContext {
  asio::any_io_executor executor;  // where every callback of the transport runs
};

class Transport {
 public:
  virtual ~Transport() = default;

  virtual const std::string& type() const = 0;
  virtual Capabilities capabilities() const = 0;
  virtual std::size_t max_payload() const = 0;

  // Connects; may block on the network. Errors name the endpoint.
  virtual std::error_code connect() = 0;

  // Queues one message. errc::payload_too_large above max_payload(),
  // errc::no_responders when reply_to is set, nobody listens and the
  // transport can tell (capabilities().no_responders), errc::closed after
  // close().
  virtual std::error_code publish(Message msg) = 0;

  // Subscribes with NATS subject rules; an empty queue_group means every
  // subscriber gets every message, otherwise one member of the group does.
  virtual std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                                    MessageHandler handler, std::unique_ptr<Subscription>& out) = 0;

  virtual void on_status(StatusHandler handler) = 0;

  // Graceful close: stop delivery to new subscribers, deliver what was
  // already published, flush, then call done (on the executor).
  virtual void close(std::function<void()> done) = 0;
};

// Builds transports of one type; one per transport plugin.
class TransportFactory {
 public:
  virtual ~TransportFactory() = default;
  // Throws OptionError (config.hpp) for bad options, naming the key.
  virtual std::unique_ptr<Transport> create(const TransportConfig& config,
                                            const TransportContext& context) const = 0;
};

}  // namespace switchboard
