// amqp: the AMQP 0-9-1 transport on rabbitmq-c. This file is where
// rabbitmq-c meets the runtime's executor.
//
// rabbitmq-c is blocking and not thread-safe per connection, so each
// transport owns one thread (Link::run) that alone touches its
// amqp_connection_state_t: it reads frames, writes publishes, acks and
// declarations, reconnects and re-declares the topology. Everything else
// talks to that thread through a command queue (Link::enqueue, woken by an
// eventfd), and that thread talks back only by posting to the executor:
// message handlers, durable publish completions and status events all run
// on TransportContext::executor. Deliveries read in one pass are handed
// over in one post.
//
// Channels of a connection:
//   1  publish() and the consumers of subscribe() (no-ack: at most once)
//   2  publish_durable(), in confirm mode (the broker's ack completes it)
//   3  declarations (exchange, queues, bindings), so that a refused
//      declaration closes no channel with consumers on it
//   4+ one per subscribe_durable(): its prefetch (basic.qos) is the
//      subscription's max_in_flight, and closing it on unsubscribe hands
//      every unacknowledged message back to the queue
// See docs/amqp.md for the mapping rules and guarantees.
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "amqp_frames.hpp"
#include "amqp_mapping.hpp"
#include "amqp_settings.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"

namespace switchboard::amqp {
namespace {

using Clock = std::chrono::steady_clock;

constexpr amqp_channel_t kPublishChannel = 1;
constexpr amqp_channel_t kConfirmChannel = 2;
constexpr amqp_channel_t kDeclareChannel = 3;
constexpr amqp_channel_t kFirstDurableChannel = 4;

timeval to_timeval(std::int64_t ms) {
  return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
}

// One subscription. Fields below `alive` belong to the connection's thread.
struct SubRecord {
  std::uint64_t id = 0;
  std::string subject;      // the NATS filter
  std::string binding_key;  // its AMQP form; empty: no binding (a durable queue read as is)
  std::string group;        // queue group; empty: an exclusive queue of its own
  bool durable = false;     // subscribe_durable: manual acks on a channel of its own
  std::string durable_queue;
  std::uint16_t prefetch = 0;
  MessageHandler handler;          // executor only
  DurableHandler durable_handler;  // executor only
  std::atomic<bool> alive{true};

  amqp_channel_t channel = 0;  // 0: not declared on the current connection
  std::uint64_t epoch = 0;     // of `channel`: acks of an older one are void
  std::string queue;
  std::string consumer_tag;
  bool warned_mismatch = false;
  // The queue's ready messages at the last passive queue.declare (durable
  // subscriptions, for durable_lag); -1: not asked yet.
  std::atomic<std::int64_t> ready{-1};
  std::atomic<bool> ready_asked{false};  // a refresh is queued
};
using SubPtr = std::shared_ptr<SubRecord>;

// A durable publish waiting for the broker's confirm.
struct PendingConfirm {
  DurablePublishHandler done;
  std::string exchange;
  std::string routing_key;
  Clock::time_point deadline;
  bool returned = false;  // unroutable (basic.return came before the ack)
};

class Link;

// One delivery of subscribe_durable: ack()/nak() queue a command for the
// connection's thread, from any thread; only the first call counts.
class AmqpDelivery final : public DurableDelivery {
 public:
  AmqpDelivery(Message m, std::string message_id, std::weak_ptr<Link> link, SubPtr sub,
               std::uint64_t epoch, std::uint64_t tag, std::uint32_t count)
      : message_(std::move(m)),
        message_id_(std::move(message_id)),
        link_(std::move(link)),
        sub_(std::move(sub)),
        epoch_(epoch),
        tag_(tag),
        count_(count) {}
  const Message& message() const override { return message_; }
  std::uint64_t sequence() const override { return 0; }  // AMQP has no stored sequence
  std::uint32_t delivery_count() const override { return count_; }
  // The publisher's message-id property (a requeued message keeps its
  // properties); empty when it set none.
  std::string source_id() const override { return message_id_; }
  void ack() override { settle(true, std::chrono::milliseconds(0)); }
  void nak(std::chrono::milliseconds delay) override { settle(false, delay); }

 private:
  void settle(bool ack, std::chrono::milliseconds delay);

  Message message_;
  std::string message_id_;
  std::weak_ptr<Link> link_;
  SubPtr sub_;
  std::uint64_t epoch_, tag_;
  std::uint32_t count_;
  std::atomic<bool> settled_{false};
};

class Link : public std::enable_shared_from_this<Link> {
 public:
  Link(AmqpSettings settings, asio::any_io_executor executor, std::string instance)
      : settings_(std::move(settings)),
        executor_(std::move(executor)),
        instance_(std::move(instance)),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  ~Link() {
    shutdown();
    if (wake_fd_ >= 0) ::close(wake_fd_);
  }

  const AmqpSettings& settings() const { return settings_; }
  std::atomic<bool> connected{false};
  std::atomic<bool> finished{false};  // closed, gave up reconnecting, or shut down
  std::atomic<std::size_t> pending_bytes{0};

  // ---- called on the caller's thread ----

  // The first connection, on the caller's thread (connect() may block);
  // then the connection's thread takes it over.
  std::error_code connect() {
    std::string why;
    if (!open(why)) {
      spdlog::error("amqp: cannot connect to {}: {}", settings_.endpoint, why);
      return make_error_code(errc::transport_error);
    }
    connected = true;
    emit(TransportStatus::connected, settings_.endpoint);
    thread_ = std::thread([this] { run(); });
    return {};
  }

  bool started() const { return thread_.joinable(); }

  // What a command does with the connection, which decides how it may be
  // batched (see run()).
  enum class Kind {
    rpc,      // may wait for the broker's answer: never corked or buffered
    write,    // writes frames through rabbitmq-c (an ack): may run corked
    publish,  // a publish: its frames may wait in out_ for the batch's write
  };
  void enqueue(std::function<void()> cmd, Kind kind = Kind::rpc) {
    std::lock_guard lock(mutex_);
    commands_.push_back({std::move(cmd), kind});
    if (sleeping_) {
      sleeping_ = false;
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
  }

  // Runs `fn` on the connection's thread and waits for its result.
  std::error_code run_sync(std::function<std::error_code()> fn) {
    if (finished) return make_error_code(errc::closed);
    auto promise = std::make_shared<std::promise<std::error_code>>();
    auto future = promise->get_future();
    enqueue([promise, fn = std::move(fn)] { promise->set_value(fn()); });
    auto limit = std::chrono::milliseconds(settings_.rpc_timeout_ms * 3 + 1000);
    if (future.wait_for(limit) != std::future_status::ready) {
      spdlog::warn("amqp: the connection's thread did not answer within {} ms", limit.count());
      return make_error_code(errc::timeout);
    }
    return future.get();
  }

  void on_status(StatusHandler h) {
    std::lock_guard lock(post_mutex_);
    status_ = std::move(h);
  }

  // Stops the thread without the close handshake (the transport is gone).
  void shutdown() {
    {
      std::lock_guard lock(mutex_);
      stop_now_ = true;
      std::uint64_t one = 1;
      [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
    }
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
    {
      std::lock_guard lock(post_mutex_);
      dead_ = true;
    }
    destroy_connection();
  }

  template <typename F>
  void post(F&& f) {
    std::lock_guard lock(post_mutex_);
    if (!dead_) asio::post(executor_, std::forward<F>(f));
  }

  void emit(TransportStatus s, std::string detail) {
    std::lock_guard lock(post_mutex_);
    if (!status_ || dead_) return;
    asio::post(executor_, [h = status_, ev = StatusEvent{s, std::move(detail)}] { h(ev); });
  }

  // ---- commands: run on the connection's thread ----

  void cmd_publish(const Message& msg) {
    pending_bytes -= msg.data.size();
    if (!conn_) return;  // lost meanwhile: at most once, like every publish()
    HeaderTable table;
    std::string why;
    if (to_table(msg.headers, table, why)) return;  // checked by publish()
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 1;  // transient
    if (!table.entries.empty()) {
      props._flags |= AMQP_BASIC_HEADERS_FLAG;
      props.headers = table.table();
    }
    if (!msg.reply_to.empty()) {
      props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
      props.reply_to = to_bytes(msg.reply_to);
    }
    // A request is mandatory: when no queue takes it, the broker returns it
    // and the requester learns "no responders" at once (see on_return).
    int rc = send_publish(kPublishChannel, to_bytes(settings_.exchange), to_bytes(msg.subject),
                          !msg.reply_to.empty(), props, msg.data);
    if (rc < 0) lost(std::string("publish failed: ") + amqp_error_string2(rc));
  }

  void cmd_publish_durable(const Message& msg, const std::string& exchange,
                           const std::string& message_id, DurablePublishHandler done) {
    pending_bytes -= msg.data.size();
    auto fail = [&](errc e) {
      post([done = std::move(done), e] {
        if (done) done(make_error_code(e), DurableReceipt{});
      });
    };
    if (!conn_) return fail(finished ? errc::closed : errc::disconnected);
    HeaderTable table;
    std::string why;
    if (to_table(msg.headers, table, why)) return fail(errc::invalid_argument);
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.delivery_mode = 2;  // persistent
    if (!table.entries.empty()) {
      props._flags |= AMQP_BASIC_HEADERS_FLAG;
      props.headers = table.table();
    }
    if (!message_id.empty()) {
      props._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
      props.message_id = to_bytes(message_id);
    }
    if (!msg.reply_to.empty()) {
      props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
      props.reply_to = to_bytes(msg.reply_to);
    }
    int rc = send_publish(kConfirmChannel, to_bytes(exchange), to_bytes(msg.subject), true, props,
                          msg.data);
    if (rc < 0) {
      fail(errc::disconnected);
      lost(std::string("publish failed: ") + amqp_error_string2(rc));
      return;
    }
    confirms_.emplace(
        ++confirm_seq_,
        PendingConfirm{std::move(done), exchange, msg.subject,
                       Clock::now() + std::chrono::milliseconds(settings_.publish_timeout_ms)});
  }

  std::error_code cmd_subscribe(const SubPtr& sub) {
    subs_[sub->id] = sub;
    if (!conn_) return {};  // declared when the connection is back
    std::string why;
    if (auto ec = declare(*sub, why)) {
      spdlog::warn("amqp: subscription to '{}' on {} failed: {}", sub->subject, settings_.endpoint,
                   why);
      subs_.erase(sub->id);
      return ec;
    }
    return {};
  }

  void cmd_unsubscribe(std::uint64_t id) {
    auto it = subs_.find(id);
    if (it == subs_.end()) return;
    SubPtr sub = it->second;
    subs_.erase(it);
    if (!conn_ || sub->channel == 0) return;
    by_tag_.erase(sub->consumer_tag);
    amqp_basic_cancel(conn_, sub->channel, to_bytes(sub->consumer_tag));
    std::string why;
    if (!rpc_ok(sub->channel, why)) return;
    if (sub->durable) {
      // Unacknowledged messages go back to the queue with the channel.
      amqp_channel_close(conn_, sub->channel, AMQP_REPLY_SUCCESS);
      if (rpc_ok(0, why)) free_channels_.insert(sub->channel);
    }
    sub->channel = 0;
  }

  // The queue's message count, from a passive queue.declare on the
  // declaration channel (a refusal closes only that channel).
  void cmd_queue_depth(const SubPtr& sub) {
    sub->ready_asked = false;
    if (!conn_ || sub->channel == 0 || sub->queue.empty()) return;
    auto* ok = amqp_queue_declare(conn_, kDeclareChannel, to_bytes(sub->queue), 1, 0, 0, 0,
                                  amqp_empty_table);
    std::string why;
    if (!ok || !rpc_ok(kDeclareChannel, why)) {
      spdlog::debug("amqp: message count of queue '{}' unknown: {}", sub->queue, why);
      return;
    }
    sub->ready = static_cast<std::int64_t>(ok->message_count);
  }

  void cmd_settle(const SubPtr& sub, std::uint64_t epoch, std::uint64_t tag, bool ack) {
    if (!conn_ || sub->channel == 0 || sub->epoch != epoch) return;  // redelivered anyway
    int rc = ack ? amqp_basic_ack(conn_, sub->channel, tag, 0)
                 : amqp_basic_nack(conn_, sub->channel, tag, 0, 1);
    if (rc < 0) lost(std::string("ack failed: ") + amqp_error_string2(rc));
  }

  void cmd_settle_later(SubPtr sub, std::uint64_t epoch, std::uint64_t tag,
                        std::chrono::milliseconds delay) {
    timers_.emplace(Clock::now() + delay, [this, sub = std::move(sub), epoch, tag] {
      cmd_settle(sub, epoch, tag, false);
    });
  }

  // Graceful close: the confirms still awaited, then the consumers are
  // cancelled (the broker sends what it had sent before cancel-ok, and that
  // is delivered), then the connection is closed.
  void cmd_close(std::function<void()> done) {
    close_done_ = std::move(done);
    closing_ = true;
    close_deadline_ = Clock::now() + std::chrono::milliseconds(settings_.publish_timeout_ms);
  }

  // ---- the connection's thread ----

 private:
  void run() {
    while (true) {
      std::deque<Command> batch;
      {
        std::lock_guard lock(mutex_);
        if (stop_now_) break;
        batch.swap(commands_);
      }
      for (auto& cmd : batch) {
        // What rabbitmq-c writes goes after the publishes before it.
        if (cmd.kind != Kind::publish) write_out();
        const bool frame_by_frame =
            cmd.kind == Kind::write || (cmd.kind == Kind::publish && settings_.tls);
        cork(frame_by_frame && batch.size() > 1);
        cmd.run();
      }
      write_out();
      cork(false);
      if (conn_) read_frames(4096);
      run_timers();
      expire_confirms();
      flush_posts();
      if (closing_ && (confirms_.empty() || Clock::now() >= close_deadline_ || !conn_)) {
        finish_close();
        break;
      }
      if (!conn_ && !finished) {
        reconnect();
        continue;
      }
      wait();
    }
    finished = true;
  }

  // A publish: on a plain TCP connection its frames go into out_, and
  // write_out() sends all that a batch published with one send(2), where
  // amqp_basic_publish makes one per frame (three for a small message). On
  // TLS, through rabbitmq-c (corked, see cork()).
  int send_publish(amqp_channel_t channel, amqp_bytes_t exchange, amqp_bytes_t routing_key,
                   bool mandatory, const amqp_basic_properties_t& props, const Payload& body) {
    amqp_bytes_t bytes{body.size(), const_cast<char*>(body.data())};
    if (settings_.tls) {
      return amqp_basic_publish(conn_, channel, exchange, routing_key, mandatory ? 1 : 0, 0, &props,
                                bytes);
    }
    PublishFrames frames{channel, exchange, routing_key, mandatory, &props, bytes};
    const int rc =
        append_publish(out_, frames, static_cast<std::size_t>(amqp_get_frame_max(conn_)));
    if (rc < 0) return rc;
    // A batch of large messages is written as it goes, not held whole.
    constexpr std::size_t kMaxBuffered = 256 * 1024;
    if (out_.size() >= kMaxBuffered && !write_out()) return AMQP_STATUS_SOCKET_ERROR;
    return AMQP_STATUS_OK;
  }

  // Writes out_ whole, waiting for room as rabbitmq-c's own writes do (its
  // socket is non-blocking). False, and the connection lost, on an error.
  bool write_out() {
    if (out_.empty()) return true;
    if (!conn_) {
      out_.clear();
      return false;
    }
    const int fd = amqp_get_sockfd(conn_);
    std::size_t at = 0;
    while (at < out_.size()) {
      const ssize_t n = ::send(fd, out_.data() + at, out_.size() - at, MSG_NOSIGNAL);
      if (n > 0) {
        at += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 1000);
        std::lock_guard lock(mutex_);
        if (!stop_now_) continue;
      }
      out_.clear();
      lost(std::string("write failed: ") + (n < 0 ? std::strerror(errno) : "stopped"));
      return false;
    }
    out_.clear();
    return true;
  }

  // TCP_CORK while a run of what rabbitmq-c writes frame by frame goes out
  // (acks, and publishes over TLS): it sends each as its own segment, so a
  // burst of small messages cost a segment each, on our side and the
  // broker's (one read each); corked, they leave in full segments, and
  // uncorking sends the rest at once. Never corked around a command that
  // waits for an answer; publishes on plain TCP need none (one send).
  void cork(bool on) {
    if (on == corked_) return;
    corked_ = on && conn_;
    if (!conn_) return;  // a new connection's socket starts uncorked
    int value = on ? 1 : 0;
    ::setsockopt(amqp_get_sockfd(conn_), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
  }

  // Sleeps until the socket is readable, a command arrives or a timer is due.
  void wait() {
    if (conn_ && amqp_frames_enqueued(conn_)) return;
    {
      std::lock_guard lock(mutex_);
      if (!commands_.empty() || stop_now_) return;
      sleeping_ = true;
    }
    int timeout = 1000;  // heartbeats are sent from inside rabbitmq-c's reads
    if (settings_.heartbeat_s > 0) timeout = std::min(timeout, settings_.heartbeat_s * 250);
    auto now = Clock::now();
    auto until = [&](Clock::time_point t) {
      auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count();
      timeout = std::clamp(static_cast<int>(ms) + 1, 0, timeout);
    };
    if (!timers_.empty()) until(timers_.begin()->first);
    if (!confirms_.empty()) until(confirms_.begin()->second.deadline);
    if (closing_) until(close_deadline_);
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {conn_ ? amqp_get_sockfd(conn_) : -1, POLLIN, 0}};
    ::poll(fds, conn_ ? 2 : 1, timeout);
    std::uint64_t drained;
    [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
    std::lock_guard lock(mutex_);
    sleeping_ = false;
  }

  // Waits between reconnect attempts; a command (a close) or a shutdown
  // ends the wait early.
  void reconnect() {
    if (closing_) return;
    if (attempts_ > 0) {
      auto until = Clock::now() + std::chrono::milliseconds(settings_.reconnect_wait_ms);
      while (Clock::now() < until) {
        {
          std::lock_guard lock(mutex_);
          if (stop_now_ || !commands_.empty()) return;
          sleeping_ = true;
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
        pollfd p{wake_fd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
        std::uint64_t drained;
        [[maybe_unused]] auto n = ::read(wake_fd_, &drained, sizeof drained);
        std::lock_guard lock(mutex_);
        sleeping_ = false;
      }
    }
    ++attempts_;
    std::string why;
    if (!open(why)) {
      // The first failure and every tenth: a broker down for minutes
      // should not flood the log.
      spdlog::log(
          attempts_ == 1 || attempts_ % 10 == 0 ? spdlog::level::warn : spdlog::level::debug,
          "amqp: reconnect {} to {} failed: {}", attempts_, settings_.endpoint, why);
      if (settings_.reconnect_max_attempts >= 0 && attempts_ >= settings_.reconnect_max_attempts) {
        spdlog::error("amqp: gave up reconnecting to {} after {} attempts", settings_.endpoint,
                      attempts_);
        finished = true;
        emit(TransportStatus::closed, settings_.endpoint + ": gave up reconnecting");
      }
      return;
    }
    // The topology: every queue, binding and consumer again (exclusive
    // queues died with the old connection; durable ones are re-declared
    // idempotently).
    for (auto& [id, sub] : subs_) {
      if (!conn_) return;
      if (auto ec = declare(*sub, why)) {
        spdlog::error("amqp: after reconnecting, subscription to '{}' could not be restored: {}",
                      sub->subject, why);
        emit(TransportStatus::error, "subscription to '" + sub->subject + "' lost: " + why);
      }
    }
    if (!conn_) return;
    attempts_ = 0;
    connected = true;
    spdlog::info("amqp: reconnected to {}, {} subscription(s) restored", settings_.endpoint,
                 subs_.size());
    emit(TransportStatus::reconnected, settings_.endpoint);
  }

  void finish_close() {
    for (auto& [id, sub] : subs_) {
      if (!conn_) break;
      if (sub->channel == 0) continue;
      amqp_basic_cancel(conn_, sub->channel, to_bytes(sub->consumer_tag));
      std::string why;
      rpc_ok(sub->channel, why);
    }
    if (conn_) read_frames(1 << 20);  // what came before each cancel-ok
    for (auto& [tag, c] : confirms_) {
      complete(c, make_error_code(errc::closed), "the connection closed before the confirm");
    }
    confirms_.clear();
    if (conn_) amqp_connection_close(conn_, AMQP_REPLY_SUCCESS);
    destroy_connection();
    connected = false;
    finished = true;
    flush_posts();
    emit(TransportStatus::closed, settings_.endpoint);
    if (close_done_) post(std::move(close_done_));
  }

  // Opens the connection and its fixed channels, declares the exchange.
  bool open(std::string& why) {
    destroy_connection();
    conn_ = amqp_new_connection();
    amqp_socket_t* socket = settings_.tls ? amqp_ssl_socket_new(conn_) : amqp_tcp_socket_new(conn_);
    if (!socket) {
      why = "cannot create a socket";
      destroy_connection();
      return false;
    }
    if (settings_.tls) {
      if (!settings_.tls_ca.empty() &&
          amqp_ssl_socket_set_cacert(socket, settings_.tls_ca.c_str()) != AMQP_STATUS_OK) {
        why = "cannot load the CA file '" + settings_.tls_ca + "' (tls.ca)";
        destroy_connection();
        return false;
      }
      if (!settings_.tls_cert.empty() &&
          amqp_ssl_socket_set_key(socket, settings_.tls_cert.c_str(), settings_.tls_key.c_str()) !=
              AMQP_STATUS_OK) {
        why = "cannot load the certificate '" + settings_.tls_cert + "' and key '" +
              settings_.tls_key + "' (tls.cert, tls.key)";
        destroy_connection();
        return false;
      }
      amqp_ssl_socket_set_verify_peer(socket, settings_.tls_verify_peer ? 1 : 0);
      amqp_ssl_socket_set_verify_hostname(socket, settings_.tls_verify_hostname ? 1 : 0);
    }
    timeval tv = to_timeval(settings_.connect_timeout_ms);
    int rc = amqp_socket_open_noblock(socket, settings_.host.c_str(), settings_.port, &tv);
    if (rc != AMQP_STATUS_OK) {
      why = amqp_error_string2(rc);
      destroy_connection();
      return false;
    }
    amqp_set_handshake_timeout(conn_, &tv);
    timeval rpc = to_timeval(settings_.rpc_timeout_ms);
    amqp_set_rpc_timeout(conn_, &rpc);

    amqp_table_entry_t caps[] = {amqp_table_entry_t{}};
    caps[0].key = amqp_cstring_bytes("consumer_cancel_notify");
    caps[0].value.kind = AMQP_FIELD_KIND_BOOLEAN;
    caps[0].value.value.boolean = 1;
    std::string name = settings_.name.empty() ? "switchboard " + instance_ : settings_.name;
    amqp_table_entry_t props[2] = {amqp_table_entry_t{}, amqp_table_entry_t{}};
    props[0].key = amqp_cstring_bytes("capabilities");
    props[0].value.kind = AMQP_FIELD_KIND_TABLE;
    props[0].value.value.table = amqp_table_t{1, caps};
    props[1].key = amqp_cstring_bytes("connection_name");
    props[1].value.kind = AMQP_FIELD_KIND_UTF8;
    props[1].value.value.bytes = to_bytes(name);
    amqp_table_t properties{2, props};
    amqp_rpc_reply_t login = amqp_login_with_properties(
        conn_, settings_.vhost.c_str(), 0, settings_.frame_max, settings_.heartbeat_s, &properties,
        AMQP_SASL_METHOD_PLAIN, settings_.user.c_str(), settings_.password.c_str());
    if (login.reply_type != AMQP_RESPONSE_NORMAL) {
      why = "login as '" + settings_.user + "' to vhost '" + settings_.vhost +
            "' refused: " + describe(login);
      destroy_connection();
      return false;
    }
    for (amqp_channel_t ch : {kPublishChannel, kConfirmChannel, kDeclareChannel}) {
      amqp_channel_open(conn_, ch);
      if (!rpc_ok(0, why)) return fail_open(why);
    }
    amqp_confirm_select(conn_, kConfirmChannel);
    if (!rpc_ok(0, why)) return fail_open(why);
    confirm_seq_ = 0;
    next_channel_ = kFirstDurableChannel;
    free_channels_.clear();
    by_tag_.clear();
    for (auto& [id, sub] : subs_) sub->channel = 0;
    amqp_exchange_declare(conn_, kDeclareChannel, to_bytes(settings_.exchange),
                          amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
    if (!rpc_ok(kDeclareChannel, why)) {
      why = "cannot declare the topic exchange '" + settings_.exchange + "' (exchange): " + why;
      return fail_open(why);
    }
    return true;
  }

  bool fail_open(const std::string&) {
    destroy_connection();
    return false;
  }

  void destroy_connection() {
    if (!conn_) return;
    amqp_destroy_connection(conn_);
    conn_ = nullptr;
  }

  static std::string describe(const amqp_rpc_reply_t& r) {
    switch (r.reply_type) {
      case AMQP_RESPONSE_NORMAL:
        return "ok";
      case AMQP_RESPONSE_NONE:
        return "no reply";
      case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return amqp_error_string2(r.library_error);
      case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
          auto* m = static_cast<amqp_connection_close_t*>(r.reply.decoded);
          return std::to_string(m->reply_code) + " " + to_string(m->reply_text);
        }
        if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
          auto* m = static_cast<amqp_channel_close_t*>(r.reply.decoded);
          return std::to_string(m->reply_code) + " " + to_string(m->reply_text);
        }
        return "unexpected method " + std::to_string(r.reply.id);
    }
    return "unknown";
  }

  // Checks the last RPC. A channel the broker closed is acknowledged and
  // opened again; a lost connection is handled (lost()). `why` says what
  // went wrong.
  bool rpc_ok(amqp_channel_t channel, std::string& why) {
    if (!conn_) {
      why = "not connected";
      return false;
    }
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return true;
    why = describe(r);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      reopen_channel(channel ? channel : kDeclareChannel);
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
      amqp_connection_close_ok_t ok{};
      amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
      lost("the broker closed the connection: " + why);
    } else {
      lost(why);
    }
    return false;
  }

  // After the broker closed `channel`: close-ok, then open it again.
  void reopen_channel(amqp_channel_t channel) {
    amqp_channel_close_ok_t ok{};
    if (amqp_send_method(conn_, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) < 0) {
      return lost("cannot acknowledge a channel close");
    }
    if (channel >= kFirstDurableChannel) {
      // A durable subscription's channel: the subscription is re-declared.
      for (auto& [id, sub] : subs_) {
        if (sub->channel != channel) continue;
        by_tag_.erase(sub->consumer_tag);
        sub->channel = 0;
        free_channels_.insert(channel);
        std::string why;
        if (declare(*sub, why)) {
          emit(TransportStatus::error, "subscription to '" + sub->subject + "' lost: " + why);
        }
        return;
      }
      free_channels_.insert(channel);
      return;
    }
    amqp_channel_open(conn_, channel);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn_);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
      return lost("cannot reopen a channel: " + describe(r));
    if (channel == kConfirmChannel) {
      fail_confirms(errc::invalid_argument, "the broker closed the confirm channel");
      amqp_confirm_select(conn_, kConfirmChannel);
      if (amqp_get_rpc_reply(conn_).reply_type != AMQP_RESPONSE_NORMAL) {
        return lost("cannot select confirms");
      }
      confirm_seq_ = 0;
    } else if (channel == kPublishChannel) {
      // Its consumers are gone: declare those subscriptions again.
      for (auto& [id, sub] : subs_) {
        if (!conn_) return;
        if (sub->durable || sub->channel == 0) continue;
        by_tag_.erase(sub->consumer_tag);
        sub->channel = 0;
        std::string why;
        if (declare(*sub, why)) {
          emit(TransportStatus::error, "subscription to '" + sub->subject + "' lost: " + why);
        }
      }
    }
  }

  // Queue, binding and consumer of one subscription on this connection.
  std::error_code declare(SubRecord& sub, std::string& why) {
    amqp_channel_t channel = kPublishChannel;
    if (sub.durable) {
      if (!free_channels_.empty()) {
        channel = *free_channels_.begin();
        free_channels_.erase(free_channels_.begin());
      } else {
        channel = next_channel_++;
      }
      amqp_channel_open(conn_, channel);
      if (!rpc_ok(0, why)) return make_error_code(errc::transport_error);
      amqp_basic_qos(conn_, channel, 0, sub.prefetch, 0);
      if (!rpc_ok(channel, why)) return make_error_code(errc::transport_error);
    }
    std::string queue;
    if (sub.durable) {
      queue = sub.durable_queue;
      bool passive = sub.binding_key.empty();  // read an existing queue as it is
      amqp_queue_declare(conn_, kDeclareChannel, to_bytes(queue), passive ? 1 : 0, 1, 0, 0,
                         amqp_empty_table);
    } else if (!sub.group.empty()) {
      queue = settings_.group_prefix + sub.group;
      amqp_queue_declare(conn_, kDeclareChannel, to_bytes(queue), 0,
                         settings_.group_durable ? 1 : 0, 0, settings_.group_auto_delete ? 1 : 0,
                         amqp_empty_table);
    } else {
      auto* ok = amqp_queue_declare(conn_, kDeclareChannel, amqp_empty_bytes, 0, 0, 1, 1,
                                    amqp_empty_table);
      if (ok) queue = to_string(ok->queue);
    }
    if (!rpc_ok(kDeclareChannel, why)) {
      why = "queue '" + queue + "': " + why;
      return release(sub, channel, errc::invalid_argument);
    }
    if (!sub.binding_key.empty()) {
      amqp_queue_bind(conn_, kDeclareChannel, to_bytes(queue), to_bytes(settings_.exchange),
                      to_bytes(sub.binding_key), amqp_empty_table);
      if (!rpc_ok(kDeclareChannel, why)) {
        why = "binding '" + sub.binding_key + "' of queue '" + queue + "': " + why;
        return release(sub, channel, errc::invalid_argument);
      }
    }
    auto* consumed = amqp_basic_consume(conn_, channel, to_bytes(queue), amqp_empty_bytes, 0,
                                        sub.durable ? 0 : 1, 0, amqp_empty_table);
    if (!consumed || !rpc_ok(channel, why)) {
      if (why.empty()) why = "basic.consume refused";
      why = "consumer on queue '" + queue + "': " + why;
      return release(sub, channel, errc::transport_error);
    }
    sub.queue = queue;
    sub.consumer_tag = to_string(consumed->consumer_tag);
    sub.channel = channel;
    sub.epoch = ++epoch_;
    by_tag_[sub.consumer_tag] = subs_.count(sub.id) ? subs_[sub.id] : nullptr;
    return {};
  }

  std::error_code release(SubRecord& sub, amqp_channel_t channel, errc e) {
    if (sub.durable && conn_) {
      amqp_channel_close(conn_, channel, AMQP_REPLY_SUCCESS);
      std::string ignored;
      if (rpc_ok(0, ignored)) free_channels_.insert(channel);
    }
    return make_error_code(conn_ ? e : errc::disconnected);
  }

  // The connection is gone: publishes awaiting confirms fail, deliveries
  // not yet acknowledged will be redelivered by the broker, and the
  // thread reconnects.
  void lost(const std::string& why) {
    out_.clear();  // frames for the connection that is gone
    if (!conn_) return;
    destroy_connection();
    connected = false;
    by_tag_.clear();
    for (auto& [id, sub] : subs_) sub->channel = 0;
    fail_confirms(errc::disconnected, "the connection to " + settings_.endpoint + " was lost");
    flush_posts();  // those failures before the status event
    if (closing_) return;
    spdlog::warn("amqp: lost {}: {}", settings_.endpoint, why);
    emit(TransportStatus::disconnected, "lost " + settings_.endpoint + ": " + why);
  }

  void complete(PendingConfirm& c, std::error_code ec, const std::string& why) {
    if (ec) {
      spdlog::warn("amqp: durable publish to '{}' on exchange '{}' failed: {}", c.routing_key,
                   c.exchange, why);
    }
    completions_.push_back({std::move(c.done), ec, c.exchange});
  }

  void fail_confirms(errc e, const std::string& why) {
    for (auto& [tag, c] : confirms_) complete(c, make_error_code(e), why);
    confirms_.clear();
  }

  void expire_confirms() {
    auto now = Clock::now();
    while (!confirms_.empty() && confirms_.begin()->second.deadline <= now) {
      complete(confirms_.begin()->second, make_error_code(errc::timeout),
               "no confirm from the broker within publish_timeout_ms");
      confirms_.erase(confirms_.begin());
    }
  }

  void run_timers() {
    auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      auto fn = std::move(timers_.begin()->second);
      timers_.erase(timers_.begin());
      fn();
    }
  }

  // Reads what has arrived, without waiting, up to `limit` frames.
  void read_frames(int limit) {
    for (int i = 0; i < limit && conn_; ++i) {
      amqp_maybe_release_buffers(conn_);
      amqp_frame_t frame;
      timeval zero{0, 0};
      int rc = amqp_simple_wait_frame_noblock(conn_, &frame, &zero);
      if (rc == AMQP_STATUS_TIMEOUT) return;
      if (rc != AMQP_STATUS_OK) return lost(amqp_error_string2(rc));
      if (frame.frame_type != AMQP_FRAME_METHOD) continue;
      switch (frame.payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
          on_deliver(frame);
          break;
        case AMQP_BASIC_RETURN_METHOD:
          on_return(frame);
          break;
        case AMQP_BASIC_ACK_METHOD: {
          auto* m = static_cast<amqp_basic_ack_t*>(frame.payload.method.decoded);
          if (frame.channel == kConfirmChannel) on_confirm(m->delivery_tag, m->multiple, true);
          break;
        }
        case AMQP_BASIC_NACK_METHOD: {
          auto* m = static_cast<amqp_basic_nack_t*>(frame.payload.method.decoded);
          if (frame.channel == kConfirmChannel) on_confirm(m->delivery_tag, m->multiple, false);
          break;
        }
        case AMQP_BASIC_CANCEL_METHOD: {
          // The broker cancelled a consumer (its queue was deleted).
          auto* m = static_cast<amqp_basic_cancel_t*>(frame.payload.method.decoded);
          std::string tag = to_string(m->consumer_tag);
          auto it = by_tag_.find(tag);
          if (it == by_tag_.end() || !it->second) break;
          SubPtr sub = it->second;
          by_tag_.erase(it);
          amqp_channel_t old = sub->channel;
          sub->channel = 0;
          if (sub->durable && conn_) {
            amqp_channel_close(conn_, old, AMQP_REPLY_SUCCESS);
            std::string ignored;
            if (rpc_ok(0, ignored)) free_channels_.insert(old);
          }
          spdlog::warn(
              "amqp: the broker cancelled the consumer of '{}' (queue '{}' deleted?); "
              "declaring it again",
              sub->subject, sub->queue);
          std::string why;
          if (conn_ && declare(*sub, why)) {
            emit(TransportStatus::error, "subscription to '" + sub->subject + "' lost: " + why);
          }
          break;
        }
        case AMQP_CHANNEL_CLOSE_METHOD: {
          auto* m = static_cast<amqp_channel_close_t*>(frame.payload.method.decoded);
          std::string why = std::to_string(m->reply_code) + " " + to_string(m->reply_text);
          spdlog::warn("amqp: the broker closed channel {}: {}", frame.channel, why);
          if (frame.channel == kConfirmChannel) {
            fail_confirms(m->reply_code == 404 ? errc::invalid_argument : errc::transport_error,
                          why);
          }
          emit(TransportStatus::error, "channel closed by the broker: " + why);
          reopen_channel(frame.channel);
          break;
        }
        case AMQP_CONNECTION_CLOSE_METHOD: {
          auto* m = static_cast<amqp_connection_close_t*>(frame.payload.method.decoded);
          std::string why = std::to_string(m->reply_code) + " " + to_string(m->reply_text);
          amqp_connection_close_ok_t ok{};
          amqp_send_method(conn_, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
          lost("the broker closed the connection: " + why);
          break;
        }
        case AMQP_CONNECTION_BLOCKED_METHOD:
          emit(TransportStatus::slow_consumer, "the broker blocks publishers (resource alarm)");
          break;
        default:
          break;
      }
    }
  }

  // Reads the content of a deliver or return into a Message, and its
  // message-id property into `message_id` (empty without one).
  bool read_content(amqp_channel_t channel, const std::string& routing_key, Message& out,
                    bool& redelivered_header, std::uint32_t& delivery_count,
                    std::string& message_id) {
    amqp_message_t msg;
    amqp_rpc_reply_t r = amqp_read_message(conn_, channel, &msg, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
      lost("reading a message: " + describe(r));
      return false;
    }
    out.subject = routing_key;
    out.data = Payload(to_string(msg.body));
    const auto& p = msg.properties;
    if (p._flags & AMQP_BASIC_HEADERS_FLAG) from_table(p.headers, out.headers);
    if (p._flags & AMQP_BASIC_REPLY_TO_FLAG) out.reply_to = to_string(p.reply_to);
    if (p._flags & AMQP_BASIC_MESSAGE_ID_FLAG) message_id = to_string(p.message_id);
    // Quorum queues count deliveries (x-delivery-count: earlier attempts).
    if (auto it = out.headers.find("x-delivery-count"); it != out.headers.end()) {
      delivery_count =
          static_cast<std::uint32_t>(std::strtoul(it->second.c_str(), nullptr, 10)) + 1;
      redelivered_header = true;
    }
    amqp_destroy_message(&msg);
    return true;
  }

  void on_deliver(const amqp_frame_t& frame) {
    auto* d = static_cast<amqp_basic_deliver_t*>(frame.payload.method.decoded);
    std::string tag = to_string(d->consumer_tag);
    std::string routing_key = to_string(d->routing_key);
    std::uint64_t delivery_tag = d->delivery_tag;
    bool redelivered = d->redelivered != 0;
    Message m;
    bool counted = false;
    std::uint32_t count = 0;
    std::string message_id;
    if (!read_content(frame.channel, routing_key, m, counted, count, message_id)) return;
    auto it = by_tag_.find(tag);
    if (it == by_tag_.end() || !it->second) return;  // cancelled meanwhile
    const SubPtr& sub = it->second;
    if (sub->durable) {
      if (!counted) count = redelivered ? 2 : 1;
      durable_batch_.push_back(std::make_shared<AmqpDelivery>(std::move(m), std::move(message_id),
                                                              weak_from_this(), sub, sub->epoch,
                                                              delivery_tag, count));
      durable_subs_.push_back(sub);
      return;
    }
    // A group's queue is named after the group alone: a member subscribed
    // to another subject with the same group name shares it (docs/amqp.md).
    if (!subject_matches(sub->subject, m.subject)) {
      if (!sub->warned_mismatch) {
        sub->warned_mismatch = true;
        spdlog::warn(
            "amqp: queue '{}' carries '{}', which its subscription '{}' does not match: the "
            "group name is used with several subjects; such messages are dropped here",
            sub->queue, m.subject, sub->subject);
      }
      return;
    }
    batch_.emplace_back(sub, std::move(m));
  }

  // basic.return: a mandatory message no queue took.
  void on_return(const amqp_frame_t& frame) {
    auto* r = static_cast<amqp_basic_return_t*>(frame.payload.method.decoded);
    std::string exchange = to_string(r->exchange);
    std::string routing_key = to_string(r->routing_key);
    Message m;
    bool counted = false;
    std::uint32_t count = 0;
    std::string message_id;
    if (!read_content(frame.channel, routing_key, m, counted, count, message_id)) return;
    if (frame.channel == kConfirmChannel) {
      // The return comes before the ack of the same message; the oldest
      // unconfirmed publish with this exchange and key is the one.
      for (auto& [tag, c] : confirms_) {
        if (!c.returned && c.exchange == exchange && c.routing_key == routing_key) {
          c.returned = true;
          break;
        }
      }
      return;
    }
    // A request nobody listens to: the requester's inbox gets what NATS
    // sends in that case, an empty message with "Status: 503".
    if (m.reply_to.empty()) return;
    for (auto& [id, sub] : subs_) {
      if (sub->durable || !subject_matches(sub->subject, m.reply_to)) continue;
      Message status;
      status.subject = m.reply_to;
      status.headers.emplace("Status", "503");
      batch_.emplace_back(sub, std::move(status));
    }
  }

  void on_confirm(std::uint64_t tag, bool multiple, bool ack) {
    auto settle = [&](PendingConfirm& c) {
      if (!ack) {
        complete(c, make_error_code(errc::transport_error), "the broker refused it (basic.nack)");
      } else if (c.returned) {
        complete(c, make_error_code(errc::no_responders),
                 "no queue is bound to routing key '" + c.routing_key + "'");
      } else {
        complete(c, {}, "");
      }
    };
    if (multiple) {
      while (!confirms_.empty() && confirms_.begin()->first <= tag) {
        settle(confirms_.begin()->second);
        confirms_.erase(confirms_.begin());
      }
    } else if (auto it = confirms_.find(tag); it != confirms_.end()) {
      settle(it->second);
      confirms_.erase(it);
    }
  }

  // What a pass produced, in one post each: deliveries, durable
  // deliveries, publish completions (a confirm with `multiple` settles
  // hundreds at once).
  void flush_posts() {
    if (!completions_.empty()) {
      post([batch = std::move(completions_)]() mutable {
        for (auto& c : batch) {
          if (!c.done) continue;
          DurableReceipt receipt;
          receipt.target = std::move(c.exchange);
          try {
            c.done(c.ec, receipt);
          } catch (const std::exception& e) {
            spdlog::error("amqp: a durable publish completion threw: {}", e.what());
          }
        }
      });
      completions_.clear();
    }
    if (!batch_.empty()) {
      post([batch = std::move(batch_)]() mutable {
        for (auto& [sub, m] : batch) {
          if (!sub->alive) continue;
          try {
            sub->handler(std::move(m));
          } catch (const std::exception& e) {
            spdlog::error("amqp: the handler for '{}' threw: {}", sub->subject, e.what());
          }
        }
      });
      batch_.clear();
    }
    if (!durable_batch_.empty()) {
      post([batch = std::move(durable_batch_), subs = std::move(durable_subs_)]() mutable {
        for (std::size_t i = 0; i < batch.size(); ++i) {
          if (!subs[i]->alive) continue;  // not acked: the broker redelivers it
          try {
            subs[i]->durable_handler(std::move(batch[i]));
          } catch (const std::exception& e) {
            spdlog::error("amqp: the durable handler for '{}' threw: {} (redelivered later)",
                          subs[i]->subject, e.what());
          }
        }
      });
      durable_batch_.clear();
      durable_subs_.clear();
    }
  }

  AmqpSettings settings_;
  asio::any_io_executor executor_;
  std::string instance_;
  std::thread thread_;

  struct Command {
    std::function<void()> run;
    Kind kind = Kind::rpc;
  };
  std::mutex mutex_;  // commands_, sleeping_, stop_now_
  std::deque<Command> commands_;
  bool sleeping_ = false;
  bool stop_now_ = false;
  int wake_fd_ = -1;

  std::mutex post_mutex_;  // status_, dead_
  StatusHandler status_;
  bool dead_ = false;

  // The connection's thread only (and connect() before it starts).
  amqp_connection_state_t conn_ = nullptr;
  int attempts_ = 0;
  std::map<std::uint64_t, SubPtr> subs_;
  std::unordered_map<std::string, SubPtr> by_tag_;
  amqp_channel_t next_channel_ = kFirstDurableChannel;
  std::set<amqp_channel_t> free_channels_;
  std::uint64_t epoch_ = 0;
  std::uint64_t confirm_seq_ = 0;
  std::map<std::uint64_t, PendingConfirm> confirms_;
  std::multimap<Clock::time_point, std::function<void()>> timers_;
  std::vector<std::pair<SubPtr, Message>> batch_;
  std::vector<std::shared_ptr<DurableDelivery>> durable_batch_;
  struct Completion {
    DurablePublishHandler done;
    std::error_code ec;
    std::string exchange;
  };
  std::vector<Completion> completions_;
  bool corked_ = false;
  std::string out_;  // publish frames not written yet (see send_publish)
  std::vector<SubPtr> durable_subs_;
  bool closing_ = false;
  Clock::time_point close_deadline_;
  std::function<void()> close_done_;
};

void AmqpDelivery::settle(bool ack, std::chrono::milliseconds delay) {
  if (settled_.exchange(true)) return;
  auto link = link_.lock();
  if (!link) return;  // the transport is gone: the broker redelivers
  if (ack || delay.count() <= 0) {
    link->enqueue([l = link.get(), sub = sub_, epoch = epoch_, tag = tag_,
                   ack] { l->cmd_settle(sub, epoch, tag, ack); },
                  Link::Kind::write);
  } else {
    link->enqueue([l = link.get(), sub = sub_, epoch = epoch_, tag = tag_, delay] {
      l->cmd_settle_later(sub, epoch, tag, delay);
    });
  }
}

class AmqpSubscription final : public Subscription {
 public:
  AmqpSubscription(SubPtr sub, std::weak_ptr<Link> link, std::string shown)
      : sub_(std::move(sub)), link_(std::move(link)), shown_(std::move(shown)) {}
  void unsubscribe() override {
    if (!sub_->alive.exchange(false)) return;
    if (auto link = link_.lock()) {
      link->enqueue([l = link.get(), id = sub_->id] { l->cmd_unsubscribe(id); });
    }
  }
  const std::string& subject() const override { return shown_; }

  // The last known ready count of a durable subscription's queue; asks
  // the connection's thread for a fresh one (at most one request queued).
  std::error_code lag(std::uint64_t& out) const {
    if (!sub_->durable) return make_error_code(errc::not_supported);
    if (auto link = link_.lock(); link && sub_->alive && !sub_->ready_asked.exchange(true)) {
      link->enqueue([l = link.get(), sub = sub_] { l->cmd_queue_depth(sub); });
    }
    std::int64_t n = sub_->ready.load();
    if (n < 0) return make_error_code(errc::timeout);
    out = static_cast<std::uint64_t>(n);
    return {};
  }

 private:
  SubPtr sub_;
  std::weak_ptr<Link> link_;
  std::string shown_;
};

// ---- the transport -------------------------------------------------------------

class AmqpTransport final : public Transport {
 public:
  AmqpTransport(const TransportConfig& config, const TransportContext& context)
      : link_(std::make_shared<Link>(read_settings(config), context.executor, config.instance)),
        executor_(context.executor),
        max_payload_(config.max_payload) {}

  ~AmqpTransport() override { link_->shutdown(); }

  const std::string& type() const override {
    static const std::string name = "amqp";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;
    c.queue_groups = true;
    c.headers = true;
    c.durable_acks = true;
    // "No responders" arrives later, as an empty "Status: 503" message on
    // the reply subject (from basic.return of a mandatory request).
    return c;
  }
  std::size_t max_payload() const override { return max_payload_; }

  std::error_code connect() override {
    if (link_->started()) return {};
    return link_->connect();
  }

  std::error_code publish(Message msg) override {
    if (closing_ || !link_->started() || link_->finished) return make_error_code(errc::closed);
    if (auto ec = check(msg)) return ec;
    if (!link_->connected) return make_error_code(errc::disconnected);
    if (link_->pending_bytes + msg.data.size() > link_->settings().max_pending_bytes) {
      spdlog::warn("amqp: publish to '{}' refused: {} bytes wait for the connection already",
                   msg.subject, link_->pending_bytes.load());
      return make_error_code(errc::transport_error);
    }
    link_->pending_bytes += msg.data.size();
    link_->enqueue([l = link_.get(), m = std::move(msg)] { l->cmd_publish(m); },
                   Link::Kind::publish);
    return {};
  }

  // Declares the queue, binding and consumer, and waits for the broker (one
  // round trip per step on the connection's thread), so that an add()
  // followed at once by an act() from elsewhere finds its queue.
  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    if (closing_ || !link_->started() || link_->finished) return make_error_code(errc::closed);
    auto sub = std::make_shared<SubRecord>();
    std::string why;
    if (auto ec = binding_key_for(subject, sub->binding_key, why)) {
      spdlog::warn("amqp: subscribe to '{}': {}", subject, why);
      return ec;
    }
    if (!queue_group.empty() &&
        link_->settings().group_prefix.size() + queue_group.size() > kMaxShortString) {
      spdlog::warn("amqp: queue group '{}' is too long for an AMQP queue name", queue_group);
      return make_error_code(errc::invalid_argument);
    }
    sub->id = ++next_id_;
    sub->subject = subject;
    sub->group = queue_group;
    sub->handler = std::move(handler);
    if (auto ec = link_->run_sync([l = link_.get(), sub] { return l->cmd_subscribe(sub); })) {
      return ec;
    }
    out = std::make_unique<AmqpSubscription>(sub, link_, subject);
    return {};
  }

  void on_status(StatusHandler handler) override { link_->on_status(std::move(handler)); }

  // Publishes on the confirm channel, persistent and mandatory; `done` runs
  // on the executor with the broker's ack, or with an error: no_responders
  // (no queue is bound for the routing key: the broker returned it),
  // invalid_argument (no such exchange), transport_error (basic.nack),
  // timeout (no confirm within publish_timeout_ms), disconnected (the
  // connection was lost before the confirm), closed.
  void publish_durable(Message msg, const DurablePublish& options,
                       DurablePublishHandler done) override {
    auto fail = [&](errc e) {
      asio::post(executor_, [done = std::move(done), e] {
        if (done) done(make_error_code(e), DurableReceipt{});
      });
    };
    if (closing_ || !link_->started() || link_->finished) return fail(errc::closed);
    if (auto ec = check(msg)) return fail(static_cast<errc>(ec.value()));
    if (options.message_id.size() > kMaxShortString || options.target.size() > kMaxShortString) {
      return fail(errc::invalid_argument);
    }
    if (!link_->connected) return fail(errc::disconnected);
    std::string exchange = options.target.empty() ? link_->settings().exchange : options.target;
    link_->pending_bytes += msg.data.size();
    link_->enqueue(
        [l = link_.get(), m = std::move(msg), exchange, id = options.message_id,
         done = std::move(done)]() mutable {
          l->cmd_publish_durable(m, exchange, id, std::move(done));
        },
        Link::Kind::publish);
  }

  // A durable queue named options.target (or options.durable), bound to the
  // exchange with options.subject (none when the subject is empty: the
  // queue must exist), read with manual acks and a prefetch of
  // max_in_flight on a channel of its own. Blocks for the declarations as
  // subscribe() does. start, start_sequence, start_time and ack_wait do not
  // apply (docs/amqp.md).
  std::error_code subscribe_durable(const DurableSubscribe& options, DurableHandler handler,
                                    std::unique_ptr<Subscription>& out) override {
    if (closing_ || !link_->started() || link_->finished) return make_error_code(errc::closed);
    auto sub = std::make_shared<SubRecord>();
    std::string why;
    sub->durable_queue = options.target.empty() ? options.durable : options.target;
    if (sub->durable_queue.empty() || sub->durable_queue.size() > kMaxShortString ||
        sub->durable_queue.rfind("amq.", 0) == 0) {
      spdlog::warn("amqp: durable subscription to '{}': '{}' is not a queue name", options.subject,
                   sub->durable_queue);
      return make_error_code(errc::invalid_argument);
    }
    if (!options.subject.empty()) {
      if (auto ec = binding_key_for(options.subject, sub->binding_key, why)) {
        spdlog::warn("amqp: durable subscription to '{}': {}", options.subject, why);
        return ec;
      }
    }
    if (options.max_in_flight == 0) return make_error_code(errc::invalid_argument);
    sub->id = ++next_id_;
    sub->durable = true;
    sub->subject = options.subject.empty() ? ">" : options.subject;
    sub->prefetch = static_cast<std::uint16_t>(std::min<std::size_t>(options.max_in_flight, 65535));
    sub->durable_handler = std::move(handler);
    if (auto ec = link_->run_sync([l = link_.get(), sub] { return l->cmd_subscribe(sub); })) {
      return ec;
    }
    out = std::make_unique<AmqpSubscription>(
        sub, link_, options.subject.empty() ? sub->durable_queue : options.subject);
    return {};
  }

  std::error_code durable_lag(const Subscription& subscription, std::uint64_t& out) override {
    auto* own = dynamic_cast<const AmqpSubscription*>(&subscription);
    if (!own) return make_error_code(errc::not_supported);
    return own->lag(out);
  }

  // Graceful: what was published is written, durable publishes get their
  // confirms (up to publish_timeout_ms), consumers are cancelled and what
  // the broker had sent before is delivered; then `done` on the executor.
  void close(std::function<void()> done) override {
    if (closing_ || !link_->started() || link_->finished) {
      closing_ = true;
      asio::post(executor_, std::move(done));
      return;
    }
    closing_ = true;
    link_->enqueue(
        [l = link_.get(), done = std::move(done)]() mutable { l->cmd_close(std::move(done)); });
  }

 private:
  std::error_code check(const Message& msg) const {
    if (msg.data.size() > max_payload_) return make_error_code(errc::payload_too_large);
    std::string key, why;
    if (auto ec = routing_key_for(msg.subject, key, why)) {
      spdlog::warn("amqp: publish to '{}': {}", msg.subject, why);
      return ec;
    }
    if (msg.reply_to.size() > kMaxShortString) return make_error_code(errc::invalid_argument);
    HeaderTable table;
    if (auto ec = to_table(msg.headers, table, why)) {
      spdlog::warn("amqp: publish to '{}': {}", msg.subject, why);
      return ec;
    }
    return {};
  }

  std::shared_ptr<Link> link_;
  asio::any_io_executor executor_;
  std::size_t max_payload_;
  std::atomic<bool> closing_{false};
  std::uint64_t next_id_ = 0;
};

const TransportFactoryFor<AmqpTransport> factory;

}  // namespace
}  // namespace switchboard::amqp

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "amqp", "1.0.0", switchboard::amqp::factory)
