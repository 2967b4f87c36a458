// The Transport interface every transport plugin implements.
//
// Threading contract: every callback a transport makes (message handlers,
// status events, close completion) runs on TransportContext::executor, never
// on a thread of the client library. Methods may be called from that
// executor; they do not block on the network except connect().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
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

// ---- At-least-once delivery (capabilities().durable_acks) ----
//
// Transports whose broker can store and acknowledge messages (JetStream,
// Kafka, AMQP) implement publish_durable and subscribe_durable; bridges and
// the event log use them for at-least-once delivery. The others keep the
// defaults, which fail with errc::not_supported.

struct DurablePublish {
  // De-duplication id (JetStream Nats-Msg-Id, Kafka idempotent key, AMQP
  // message-id); empty for none.
  std::string message_id;
  // Where it applies: the JetStream stream the subject must land in, checked
  // by the broker (empty: any stream), the Kafka topic or the AMQP exchange.
  std::string target;
};

// What the broker said when it stored a message.
struct DurableReceipt {
  std::string target;          // stream, topic or exchange that stored it
  std::uint64_t sequence = 0;  // stream sequence / partition offset; 0 if unknown
  bool duplicate = false;      // the broker had this message_id already
};
using DurablePublishHandler = std::function<void(std::error_code, const DurableReceipt&)>;

enum class DurableStart { earliest, latest, sequence, time };

struct DurableSubscribe {
  std::string subject;  // filter, NATS subject rules (translated by the transport)
  std::string target;   // stream / topic / queue to read; empty: the one holding subject
  std::string durable;  // consumer name (JetStream durable, Kafka group, AMQP queue)
  DurableStart start = DurableStart::earliest;         // for a consumer that does not exist yet
  std::uint64_t start_sequence = 0;                    // with DurableStart::sequence
  std::chrono::system_clock::time_point start_time{};  // with DurableStart::time
  std::size_t max_in_flight = 1024;           // unacknowledged messages the broker may hand out
  std::chrono::milliseconds ack_wait{30000};  // redelivery after this without ack
};

// One delivered message and how to settle it. ack() after the handler (or
// the destination) is done; nak() asks for redelivery; neither: redelivered
// after ack_wait. Safe to call once from any thread; later calls do nothing.
class DurableDelivery {
 public:
  virtual ~DurableDelivery() = default;
  virtual const Message& message() const = 0;
  virtual std::uint64_t sequence() const = 0;        // stream sequence / offset
  virtual std::uint32_t delivery_count() const = 0;  // 1 on first delivery
  // A stable id of the stored message: the same on every redelivery, unique
  // within the subscription's source; empty when the source has none.
  // JetStream: the stream sequence ("42"); Kafka: "<topic>:<partition>:<offset>";
  // AMQP: the message-id property, if the publisher set one. Bridges send
  // "<bridge>:<source_id>" as the destination's message id.
  virtual std::string source_id() const { return {}; }
  virtual void ack() = 0;
  virtual void nak(std::chrono::milliseconds delay = std::chrono::milliseconds(0)) = 0;
};
using DurableHandler = std::function<void(std::shared_ptr<DurableDelivery>)>;

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

  // Stores one message; done (on the executor) once the broker confirmed it
  // (JetStream PubAck, Kafka delivery report, AMQP publisher confirm) or
  // failed. The default calls done at once with errc::not_supported.
  virtual void publish_durable(Message msg, const DurablePublish& options,
                               DurablePublishHandler done);
  // Reads stored messages with acknowledgements. The default fails with
  // errc::not_supported.
  virtual std::error_code subscribe_durable(const DurableSubscribe& options, DurableHandler handler,
                                            std::unique_ptr<Subscription>& out);
  // How far a durable subscription is behind its source: messages the
  // broker holds for it that it has not been handed yet (JetStream: the
  // consumer's num_pending as of the last delivery; Kafka: high watermark
  // minus the next offset, summed over the assigned partitions; AMQP: the
  // queue's ready messages). Never blocks: it answers the newest figure the
  // transport has (AMQP asks the broker in the background, so a call sees
  // the answer to the one before). `subscription` must come from this
  // transport's subscribe_durable. errc::not_supported by default and for
  // other subscriptions; errc::timeout while no figure is known yet.
  virtual std::error_code durable_lag(const Subscription& subscription, std::uint64_t& out);

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

// The factory of a transport whose constructor takes the config and the
// context: what a transport plugin exports as
// `const TransportFactoryFor<MyTransport> factory;`.
template <typename T>
class TransportFactoryFor final : public TransportFactory {
 public:
  std::unique_ptr<Transport> create(const TransportConfig& config,
                                    const TransportContext& context) const override {
    return std::make_unique<T>(config, context);
  }
};

}  // namespace switchboard
