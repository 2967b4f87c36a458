// nats: the NATS transport on cnats. This file is where cnats meets the
// runtime's executor.
//
// cnats runs on the executor's own event loop (natsOptions_SetEventLoop):
// the socket is watched by the executor's io_context, reads and writes are
// done by handlers on the executor, and every subscription is a synchronous
// cnats subscription whose messages those handlers take off its queue and
// hand to the runtime in place. So a message reaches its handler, and a
// reply leaves, without crossing a thread (cnats' own model costs a reader
// thread, a delivery thread per subscription and a flusher thread that waits
// 1 ms before each write). Writes are coalesced: a publish appends to cnats'
// buffer and asks for one write, which runs after the handlers already
// queued; an idle connection sends at once, a busy one sends a batch per
// write.
//
// cnats' own threads (reconnect, ping timer, drain, connection callbacks)
// only post to the executor; nothing else touches runtime state.
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "nats_settings.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"

namespace switchboard::nats {
namespace {

std::string last_error(natsStatus s) {
  const char* text = nats_GetLastError(nullptr);
  return std::string(natsStatus_GetText(s)) + (text && *text ? std::string(": ") + text : "");
}

struct SubState;

// State shared with cnats callbacks and with handlers queued on the
// executor. cnats holds raw pointers to heap shared_ptrs of it (`Anchor`):
// one released by the closed callback, one by the event loop's detach, so
// the state outlives every callback even when the transport object is gone.
struct Shared : std::enable_shared_from_this<Shared> {
  asio::any_io_executor executor;
  std::mutex mutex;
  StatusHandler status;
  std::function<void()> on_closed;  // completion of close()
  std::atomic<bool> closed{false};
  std::atomic<bool> connected{false};  // publishes fail fast while false
  std::atomic<bool> closing{false};    // a drain's disconnect is no news
  std::string endpoint;

  // The connection: set by connect() or the first attach, cleared (under
  // nc_mutex, so that a late attach cannot set it again) when the transport
  // is destroyed. Used on the executor.
  std::atomic<natsConnection*> nc{nullptr};
  std::mutex nc_mutex;
  bool destroyed = false;

  // Executor only.
  std::vector<std::shared_ptr<SubState>> subs;
  std::uint64_t request_seq = 0;  // publishes with a reply subject, numbered
  std::unique_ptr<asio::posix::stream_descriptor> socket;
  std::uint64_t socket_generation = 0;  // generation `socket` belongs to
  bool read_armed = false;
  bool write_armed = false;
  std::unique_ptr<asio::steady_timer> drain_timer;
  // Messages (received, and sent with headers) are freed in batches: cnats
  // hands each natsMsg_Destroy to its garbage collector thread and wakes
  // that thread when it is idle, which one at a time costs a thread wake-up
  // per message.
  std::vector<natsMsg*> spent;
  void free_message(natsMsg* msg) {
    spent.push_back(msg);
    if (spent.size() >= 256) free_spent();
  }
  void free_spent() {
    for (natsMsg* m : spent) natsMsg_Destroy(m);
    spent.clear();
  }

  // Set from cnats' threads (under its connection lock).
  std::atomic<int> fd{-1};
  std::atomic<std::uint64_t> generation{0};  // one per attached socket
  std::atomic<bool> want_write{false};

  // Posts from cnats' threads go through here: once the transport is gone
  // (`dead`), its executor may be gone too, and nothing is posted.
  bool dead = false;  // under `mutex`
  template <typename Handler>
  void post(Handler&& handler) {
    std::lock_guard lock(mutex);
    if (!dead) asio::post(executor, std::forward<Handler>(handler));
  }

  void emit(TransportStatus s, std::string detail) {
    std::lock_guard lock(mutex);
    if (!status || dead) return;
    asio::post(executor, [h = status, ev = StatusEvent{s, std::move(detail)}] { h(ev); });
  }

  // Event loop, on the executor.
  void attach_socket(int socket_fd, std::uint64_t gen);
  void release_socket();
  void arm_read();
  void on_readable(std::uint64_t gen);
  void flush_writes();
  void deliver_pending();
  void pump_drain();
};
using Anchor = std::shared_ptr<Shared>;

// ---- cnats connection callbacks (cnats' callback thread) -------------------

// The closure of the connection callbacks. cnats gives no signal after
// which it makes no more of them (an error callback can follow the closed
// one), so these anchors are kept for the life of the process in a
// registry, about 100 bytes per connection ever opened; a transport that is
// gone marks its state dead, and late callbacks then do nothing.
// The registry itself is never destroyed either: cnats' threads can still
// call back while the process runs its static destructors at exit.
Anchor* retain_anchor(const std::shared_ptr<Shared>& shared) {
  static auto* mutex = new std::mutex;
  static auto* registry = new std::vector<std::unique_ptr<Anchor>>;
  std::lock_guard lock(*mutex);
  registry->push_back(std::make_unique<Anchor>(shared));
  return registry->back().get();
}

std::string connected_url(natsConnection* nc) {
  char buf[256] = {0};
  if (natsConnection_GetConnectedUrl(nc, buf, sizeof buf) == NATS_OK) return buf;
  return "";
}

void on_disconnected(natsConnection* nc, void* closure) {
  auto& shared = *static_cast<Anchor*>(closure);
  shared->connected = false;
  if (shared->closing) return;
  shared->emit(TransportStatus::disconnected, "lost the server " + shared->endpoint);
}
void on_reconnected(natsConnection* nc, void* closure) {
  auto& shared = *static_cast<Anchor*>(closure);
  shared->connected = true;
  shared->emit(TransportStatus::reconnected, connected_url(nc));
}
void on_closed(natsConnection* nc, void* closure) {
  // The anchor is not freed here: cnats may still make an error callback
  // after this one (a drain that timed out does). See retain_anchor().
  auto shared = *static_cast<Anchor*>(closure);
  shared->closed = true;
  shared->emit(TransportStatus::closed, shared->endpoint);
  std::function<void()> done;
  {
    std::lock_guard lock(shared->mutex);
    done = std::move(shared->on_closed);
  }
  // Whatever drain left queued is delivered before close completes.
  shared->post([shared, done = std::move(done)] {
    shared->deliver_pending();
    if (shared->drain_timer) shared->drain_timer->cancel();
    if (done) done();
  });
}
void on_error(natsConnection* nc, natsSubscription* sub, natsStatus err, void* closure) {
  auto& shared = *static_cast<Anchor*>(closure);
  if (err == NATS_SLOW_CONSUMER) {
    const char* subject = sub ? natsSubscription_GetSubject(sub) : nullptr;
    shared->emit(TransportStatus::slow_consumer, std::string("messages dropped on ") +
                                                     (subject ? subject : "a subscription") +
                                                     ": pending limit reached");
  } else {
    shared->emit(TransportStatus::error, natsStatus_GetText(err));
  }
}

// ---- the event loop: cnats asks, the executor does -------------------------
//
// These are called by cnats with its connection lock held, from any of its
// threads or from ours inside a cnats call: they only record and post.

natsStatus ev_attach(void** user_data, void* loop, natsConnection* nc, natsSock socket) {
  auto* shared = static_cast<Shared*>(loop);
  {
    std::lock_guard lock(shared->nc_mutex);
    if (!shared->destroyed) shared->nc = nc;
  }
  // The first attach anchors the state until detach.
  if (*user_data == nullptr) *user_data = new Anchor(shared->shared_from_this());
  auto gen = ++shared->generation;
  shared->fd = static_cast<int>(socket);
  shared->post([s = shared->shared_from_this(), socket, gen] {
    s->attach_socket(static_cast<int>(socket), gen);
  });
  return NATS_OK;
}

// cnats asks to stop reading only when the socket goes away (disconnect or
// close); it closes the socket right after.
natsStatus ev_read(void* user_data, bool add) {
  auto& shared = *static_cast<Anchor*>(user_data);
  if (!add) {
    shared->fd = -1;
    ++shared->generation;
    shared->post([s = shared] { s->release_socket(); });
  }
  return NATS_OK;
}

// Asked once when cnats' write buffer gets data (until the write that
// empties it); the write runs after the handlers already queued, so that
// replies produced together leave together.
natsStatus ev_write(void* user_data, bool add) {
  auto& shared = *static_cast<Anchor*>(user_data);
  shared->want_write = add;
  if (add) shared->post([s = shared] { s->flush_writes(); });
  return NATS_OK;
}

natsStatus ev_detach(void* user_data) {
  auto* anchor = static_cast<Anchor*>(user_data);
  auto shared = *anchor;
  delete anchor;  // cnats makes no event loop callback after this one
  shared->fd = -1;
  ++shared->generation;
  shared->post([shared] { shared->release_socket(); });
  return NATS_OK;
}

void Shared::attach_socket(int socket_fd, std::uint64_t gen) {
  if (gen != generation.load() || !nc.load()) return;  // already replaced or gone
  release_socket();
  socket = std::make_unique<asio::posix::stream_descriptor>(executor, socket_fd);
  socket_generation = gen;
  arm_read();
  // Anything published before the socket was watched.
  if (want_write) flush_writes();
  deliver_pending();
}

void Shared::release_socket() {
  if (!socket) return;
  boost::system::error_code ignored;
  socket->cancel(ignored);
  socket->release();  // cnats owns the descriptor and closes it
  socket.reset();
  read_armed = write_armed = false;
}

void Shared::arm_read() {
  if (!socket || read_armed) return;
  read_armed = true;
  socket->async_wait(asio::posix::stream_descriptor::wait_read,
                     [self = shared_from_this(), gen = socket_generation](std::error_code ec) {
                       if (gen == self->socket_generation) self->read_armed = false;
                       if (!ec) self->on_readable(gen);
                     });
}

void Shared::on_readable(std::uint64_t gen) {
  natsConnection* conn = nc;
  if (!conn || gen != generation.load()) return;
  // One read of up to cnats' buffer size, parsed into the subscriptions'
  // queues; then every message is handed over here, on the executor.
  natsConnection_ProcessReadEvent(conn);
  deliver_pending();
  // What the handlers published leaves now, before we wait again.
  flush_writes();
  if (gen == generation.load() && gen == socket_generation) arm_read();
}

void Shared::flush_writes() {
  natsConnection* conn = nc;
  if (!conn || !want_write) return;
  natsConnection_ProcessWriteEvent(conn);  // clears want_write once all is written
  if (!want_write || !socket || write_armed) return;
  // The socket took only part of it: wait until it takes more.
  write_armed = true;
  socket->async_wait(asio::posix::stream_descriptor::wait_write,
                     [self = shared_from_this(), gen = socket_generation](std::error_code ec) {
                       if (gen == self->socket_generation) self->write_armed = false;
                       if (!ec) self->flush_writes();
                     });
}

// ---- subscriptions -----------------------------------------------------------

// One subscription (a synchronous cnats subscription), shared between the
// user's handle, the transport and handlers queued on the executor.
struct SubState : std::enable_shared_from_this<SubState> {
  std::weak_ptr<Shared> shared;
  MessageHandler handler;
  std::atomic<bool> alive{true};
  std::mutex mutex;
  natsSubscription* sub = nullptr;  // destroyed once, by whoever stops it first
  std::string subject;

  // cnats reports a "no responders" status (an empty message with Status
  // 503 on the reply subject) without its subject on a synchronous
  // subscription, so the transport works out which request it answers.
  //
  // Requests whose reply subject is one token under a subscription "X.*"
  // (the runtime's inbox) go out with the reply subject "X.~<b>.<token>",
  // where <b> is one of kReplyBuckets buckets picked by the request's
  // subject: a hidden subscription "X.~<b>.*" per bucket in use receives the
  // replies and hands them to "X.*"'s handler under the original reply
  // subject, and a "no responders" on it can only answer a request to a
  // subject of that bucket. Other requests are noted on every subscription
  // their reply subject matches. Executor only.
  std::weak_ptr<SubState> target;  // set on a bucket: whose handler gets its messages
  std::string base;                // "X." of "X.*"
  std::string hidden_prefix;       // on a bucket: "X.~<b>."
  std::vector<std::shared_ptr<SubState>> buckets;  // on "X.*": by bucket, made on first use

  // Requests awaiting their first reply, by (original) reply subject.
  struct Request {
    std::uint64_t seq;
    std::string subject;  // where the request went
    std::chrono::steady_clock::time_point sent;
  };
  std::unordered_map<std::string, Request> awaiting;
  std::uint64_t answered_seq = 0;  // highest request seq answered so far
  std::chrono::steady_clock::time_point pruned;

  void stop() {
    alive = false;
    std::lock_guard lock(mutex);
    if (!sub) return;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    sub = nullptr;
  }

  natsSubscription* handle() {
    std::lock_guard lock(mutex);
    return sub;
  }

  // Takes what cnats queued and hands it to the handler, here. `until_empty`
  // (while draining) also polls an empty queue, which is what lets cnats
  // finish draining a synchronous subscription.
  void deliver(bool until_empty);
  // To the handler, or on a bucket to its target's.
  void hand_over(Message m) {
    if (hidden_prefix.empty()) return handler(std::move(m));
    if (auto t = target.lock(); t && t->alive) t->handler(std::move(m));
  }
  void note_request(const std::string& reply, const std::string& subject, std::uint64_t seq);
  void on_reply_subject(const std::string& reply);
  void on_no_responders();
  void prune_awaiting();
};
using SubAnchor = std::shared_ptr<SubState>;

// Copies the message out; the caller frees `msg`.
Message to_message(natsMsg* msg) {
  Message m;
  m.subject = natsMsg_GetSubject(msg);
  if (const char* reply = natsMsg_GetReply(msg)) m.reply_to = reply;
  m.data = Payload(std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)));
  const char** keys = nullptr;
  int count = 0;
  if (natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK) {
    for (int i = 0; i < count; ++i) {
      const char* value = nullptr;
      if (natsMsgHeader_Get(msg, keys[i], &value) == NATS_OK && value) {
        m.headers.emplace(keys[i], value);
      }
    }
    free(static_cast<void*>(keys));
  }
  return m;
}

void SubState::deliver(bool until_empty) {
  while (alive) {
    natsSubscription* s = handle();
    if (!s) return;
    int pending = 0, bytes = 0;
    if (natsSubscription_GetPending(s, &pending, &bytes) != NATS_OK) return;
    if (pending <= 0 && !until_empty) return;
    for (int i = 0; i < std::max(pending, 1) && alive; ++i) {
      natsMsg* msg = nullptr;
      // While draining, a wait of 1 ms: cnats ends the drain of a synchronous
      // subscription only when a waiting NextMsg finds its queue empty (and
      // returns at once once the drain has begun).
      natsStatus status = natsSubscription_NextMsg(&msg, s, until_empty ? 1 : 0);
      if (status == NATS_OK) {
        Message m = to_message(msg);
        if (auto owner = shared.lock()) {
          owner->free_message(msg);
        } else {
          natsMsg_Destroy(msg);
        }
        if (!hidden_prefix.empty() && m.subject.rfind(hidden_prefix, 0) == 0) {
          m.subject = base + m.subject.substr(hidden_prefix.size());
        }
        if (!awaiting.empty()) on_reply_subject(m.subject);
        hand_over(std::move(m));
      } else if (status == NATS_NO_RESPONDERS) {
        on_no_responders();
      } else if (status != NATS_SLOW_CONSUMER) {
        return;  // empty (or drained, or closed)
      }
    }
  }
}

void SubState::note_request(const std::string& reply, const std::string& to, std::uint64_t seq) {
  auto now = std::chrono::steady_clock::now();
  if (awaiting.size() >= 4096 && now - pruned > std::chrono::seconds(1)) {
    pruned = now;
    prune_awaiting();
  }
  awaiting[reply] = Request{seq, to, now};
}

void SubState::on_reply_subject(const std::string& reply) {
  auto it = awaiting.find(reply);
  if (it == awaiting.end()) return;
  answered_seq = std::max(answered_seq, it->second.seq);
  awaiting.erase(it);
}

// The server sends "no responders" when it processes the request, so it
// reaches us before any reply to a request sent after that one: the request
// it answers is one still waiting whose number is above every request
// answered so far. When those candidates all went to one subject, it is the
// oldest of them (the server answers in the order it got them); when they
// went to several (two subjects in one bucket, or requests outside the
// buckets), the transport cannot tell, and that act runs into its timeout
// instead of failing at once.
void SubState::on_no_responders() {
  const std::string* reply = nullptr;
  const Request* found = nullptr;
  bool ambiguous = false;
  for (const auto& [subject, request] : awaiting) {
    if (request.seq <= answered_seq) continue;
    if (found && found->subject != request.subject) ambiguous = true;
    if (!found || request.seq < found->seq) {
      reply = &subject;
      found = &request;
    }
  }
  if (!found || ambiguous) {
    spdlog::debug("nats: a 'no responders' status on {} could not be matched to a request",
                  this->subject);
    return;
  }
  Message m;
  m.subject = *reply;
  m.headers.emplace("Status", "503");  // what the runtime reads as no responders
  answered_seq = found->seq;
  awaiting.erase(m.subject);
  hand_over(std::move(m));
}

// Requests that got no reply (their act timed out) are forgotten after a
// minute; "no responders" comes within a round trip of the request.
void SubState::prune_awaiting() {
  auto limit = std::chrono::steady_clock::now() - std::chrono::minutes(1);
  for (auto it = awaiting.begin(); it != awaiting.end();) {
    it = it->second.sent < limit ? awaiting.erase(it) : std::next(it);
  }
}

void Shared::deliver_pending() {
  if (!nc.load()) return;
  // A handler may subscribe or unsubscribe: walk a copy.
  auto snapshot = subs;
  for (auto& s : snapshot) s->deliver(false);
}

// While cnats drains the connection, poll every subscription until cnats
// has removed them all (and closed the connection).
void Shared::pump_drain() {
  if (!nc.load() || closed) return;
  auto snapshot = subs;
  for (auto& s : snapshot) s->deliver(true);
  drain_timer->expires_after(std::chrono::milliseconds(5));
  drain_timer->async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) self->pump_drain();
  });
}

class NatsSubscription final : public Subscription {
 public:
  explicit NatsSubscription(std::shared_ptr<SubState> state) : state_(std::move(state)) {}
  void unsubscribe() override {
    state_->stop();
    for (auto& b : state_->buckets) {
      if (b) b->stop();
    }
    if (auto shared = state_->shared.lock()) {
      std::erase_if(shared->subs, [&](const std::shared_ptr<SubState>& s) {
        return s == state_ || (s->target.lock() == state_);
      });
    }
  }
  const std::string& subject() const override { return state_->subject; }

 private:
  std::shared_ptr<SubState> state_;
};

// ---- the transport -------------------------------------------------------------

class NatsTransport final : public Transport {
 public:
  NatsTransport(const TransportConfig& config, const TransportContext& context)
      : settings_(read_settings(config)),
        configured_max_(config.max_payload),
        shared_(std::make_shared<Shared>()) {
    shared_->executor = context.executor;
    for (const auto& s : settings_.servers) {
      shared_->endpoint += (shared_->endpoint.empty() ? "" : ",") + s;
    }
  }

  ~NatsTransport() override {
    for (auto& s : shared_->subs) s->stop();
    shared_->subs.clear();
    shared_->free_spent();
    {
      std::lock_guard lock(shared_->nc_mutex);
      shared_->destroyed = true;
      shared_->nc = nullptr;  // handlers still queued do nothing
    }
    {
      std::lock_guard lock(shared_->mutex);
      shared_->dead = true;
    }
    if (nc_) natsConnection_Destroy(nc_);  // closes first if needed
    // The asio objects go now, on the executor's thread, while their
    // io_context surely exists; the descriptor is cnats' (closed by it), so
    // it is released, never closed here.
    shared_->release_socket();
    shared_->drain_timer.reset();
  }

  const std::string& type() const override {
    static const std::string name = "nats";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;
    c.queue_groups = true;
    c.headers = true;
    c.native_request = true;
    // No-responders arrives later, on the reply subject (Status: 503).
    return c;
  }
  std::size_t max_payload() const override { return max_payload_; }

  std::error_code connect() override {
    natsOptions* opts = build_options(settings_);
    auto* anchor = retain_anchor(shared_);
    natsOptions_SetDisconnectedCB(opts, on_disconnected, anchor);
    natsOptions_SetReconnectedCB(opts, on_reconnected, anchor);
    natsOptions_SetClosedCB(opts, on_closed, anchor);
    natsOptions_SetErrorHandler(opts, on_error, anchor);
    // The executor's event loop; every publish asks for a write at once
    // (there is no flusher thread to wait for).
    natsOptions_SetEventLoop(opts, shared_.get(), ev_attach, ev_read, ev_write, ev_detach);
    natsOptions_SetSendAsap(opts, true);
    natsStatus s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
      nc_ = nullptr;
      spdlog::error("nats: cannot connect to {}: {}", shared_->endpoint, last_error(s));
      return make_error_code(errc::transport_error);
    }
    shared_->connected = true;
    auto server_max = static_cast<std::size_t>(natsConnection_GetMaxPayload(nc_));
    max_payload_ = std::min(configured_max_, server_max);
    shared_->emit(TransportStatus::connected, connected_url(nc_));
    return {};
  }

  std::error_code publish(Message msg) override {
    if (!nc_ || closing_) return make_error_code(errc::closed);
    if (msg.data.size() > max_payload_) return make_error_code(errc::payload_too_large);
    std::string why;
    if (auto ec = validate_subject(msg.subject, false, why)) return ec;
    // cnats would buffer while reconnecting; a caller is better served by an
    // error now than by a timeout later.
    if (!shared_->connected) return make_error_code(errc::disconnected);
    natsStatus s;
    std::string wire_reply;
    if (!msg.reply_to.empty()) wire_reply = route_reply(msg.reply_to, msg.subject);
    const char* reply = wire_reply.empty() ? nullptr : wire_reply.c_str();
    if (msg.headers.empty() && reply) {
      s = natsConnection_PublishRequest(nc_, msg.subject.c_str(), reply, msg.data.data(),
                                        static_cast<int>(msg.data.size()));
    } else if (msg.headers.empty()) {
      s = natsConnection_Publish(nc_, msg.subject.c_str(), msg.data.data(),
                                 static_cast<int>(msg.data.size()));
    } else {
      natsMsg* m = nullptr;
      s = natsMsg_Create(&m, msg.subject.c_str(), reply, msg.data.data(),
                         static_cast<int>(msg.data.size()));
      for (auto it = msg.headers.begin(); s == NATS_OK && it != msg.headers.end(); ++it) {
        s = natsMsgHeader_Set(m, it->first.c_str(), it->second.c_str());
      }
      if (s == NATS_OK) s = natsConnection_PublishMsg(nc_, m);
      shared_->free_message(m);
    }
    if (s == NATS_OK) return {};
    if (s == NATS_CONNECTION_CLOSED) return make_error_code(errc::closed);
    if (s == NATS_MAX_PAYLOAD) return make_error_code(errc::payload_too_large);
    spdlog::warn("nats: publish to {} failed: {}", msg.subject, last_error(s));
    return make_error_code(errc::transport_error);
  }

  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    if (!nc_ || closing_) return make_error_code(errc::closed);
    std::string why;
    if (auto ec = validate_subject(subject, true, why)) return ec;
    auto state = std::make_shared<SubState>();
    state->shared = shared_;
    state->handler = std::move(handler);
    state->subject = subject;
    if (subject.size() > 2 && subject.ends_with(".*")) {
      state->base = subject.substr(0, subject.size() - 1);
    }
    natsSubscription* sub = nullptr;
    natsStatus s = queue_group.empty() ? natsConnection_SubscribeSync(&sub, nc_, subject.c_str())
                                       : natsConnection_QueueSubscribeSync(
                                             &sub, nc_, subject.c_str(), queue_group.c_str());
    if (s != NATS_OK) {
      spdlog::warn("nats: subscribe to {} failed: {}", subject, last_error(s));
      return make_error_code(s == NATS_CONNECTION_CLOSED ? errc::closed : errc::transport_error);
    }
    natsSubscription_SetPendingLimits(sub, settings_.pending_messages, settings_.pending_bytes);
    state->sub = sub;
    shared_->subs.push_back(state);
    // One round trip so that the server has the interest before we return:
    // an add() followed at once by an act() from elsewhere must find its
    // responder.
    if (natsStatus f = round_trip(); f != NATS_OK) {
      spdlog::warn("nats: subscription to {} not confirmed by the server yet: {}", subject,
                   last_error(f));
    }
    out = std::make_unique<NatsSubscription>(std::move(state));
    return {};
  }

  void on_status(StatusHandler handler) override {
    std::lock_guard lock(shared_->mutex);
    shared_->status = std::move(handler);
  }

  // Drain: the server stops sending to our subscriptions, what was already
  // received is delivered, what we published is flushed, then cnats closes
  // the connection and the closed callback completes this.
  void close(std::function<void()> done) override {
    if (!nc_ || shared_->closed) {
      asio::post(shared_->executor, std::move(done));
      return;
    }
    closing_ = true;
    shared_->closing = true;
    {
      std::lock_guard lock(shared_->mutex);
      auto previous = std::move(shared_->on_closed);
      shared_->on_closed = [previous = std::move(previous), done = std::move(done)] {
        if (previous) previous();
        if (done) done();
      };
    }
    natsStatus s = natsConnection_DrainTimeout(nc_, settings_.drain_timeout_ms);
    if (s != NATS_OK && s != NATS_DRAINING) {
      // Not connected (or already closing): close outright.
      natsConnection_Close(nc_);
      return;
    }
    if (!shared_->drain_timer) {
      shared_->drain_timer = std::make_unique<asio::steady_timer>(shared_->executor);
      asio::post(shared_->executor, [s = shared_] { s->pump_drain(); });
    }
  }

 private:
  // A publish with a reply subject (see SubState): returns the reply
  // subject to send.
  std::string route_reply(const std::string& reply, const std::string& to) {
    std::uint64_t seq = ++shared_->request_seq;
    for (auto& s : shared_->subs) {
      if (s->base.empty() || !s->hidden_prefix.empty() || !s->alive ||
          reply.size() <= s->base.size() || reply.compare(0, s->base.size(), s->base) != 0 ||
          reply.find('.', s->base.size()) != std::string::npos) {
        continue;
      }
      // reply_bucket may add to `subs`: `s` is not used after it.
      if (SubState* bucket = reply_bucket(*s, to)) {
        bucket->note_request(reply, to, seq);
        return bucket->hidden_prefix + reply.substr(bucket->base.size());
      }
      break;
    }
    for (auto& s : shared_->subs) {
      if (s->hidden_prefix.empty() && subject_matches(s->subject, reply)) {
        s->note_request(reply, to, seq);
      }
    }
    return reply;
  }

  static constexpr std::size_t kReplyBuckets = 64;

  // The bucket of `inbox` for requests to `to`, subscribed on first use (the
  // server has the SUB before the request: one connection keeps order).
  SubState* reply_bucket(SubState& inbox, const std::string& to) {
    if (inbox.buckets.empty()) inbox.buckets.resize(kReplyBuckets);
    auto& slot = inbox.buckets[std::hash<std::string>{}(to) % kReplyBuckets];
    if (slot) return slot->alive ? slot.get() : nullptr;
    auto state = std::make_shared<SubState>();
    state->shared = shared_;
    state->target = inbox.shared_from_this();
    state->base = inbox.base;
    state->hidden_prefix = inbox.base + "~" + std::to_string(&slot - inbox.buckets.data()) + ".";
    state->subject = state->hidden_prefix + "*";
    natsSubscription* sub = nullptr;
    if (natsConnection_SubscribeSync(&sub, nc_, state->subject.c_str()) != NATS_OK) {
      state->alive = false;
      slot = state;
      return nullptr;
    }
    natsSubscription_SetPendingLimits(sub, settings_.pending_messages, settings_.pending_bytes);
    state->sub = sub;
    shared_->subs.push_back(state);
    slot = state;
    return slot.get();
  }

  // natsConnection_FlushTimeout waits for the server's PONG, which only
  // this thread (the event loop) reads: so it runs on a helper thread while
  // this one writes and reads the socket itself. Called on the executor or
  // before it runs, so no handler of ours touches the socket meanwhile;
  // messages read here are handed over by a queued delivery.
  natsStatus round_trip() {
    std::atomic<bool> done{false};
    natsStatus result = NATS_OK;
    std::thread waiter([&] {
      result = natsConnection_FlushTimeout(nc_, settings_.connect_timeout_ms);
      done = true;
    });
    while (!done) {
      if (shared_->want_write) natsConnection_ProcessWriteEvent(nc_);
      int fd = shared_->fd;
      if (fd < 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 1) > 0) natsConnection_ProcessReadEvent(nc_);
    }
    waiter.join();
    asio::post(shared_->executor, [s = shared_] { s->deliver_pending(); });
    return result;
  }

  NatsSettings settings_;
  std::size_t configured_max_;
  std::size_t max_payload_ = 1024 * 1024;
  std::shared_ptr<Shared> shared_;
  natsConnection* nc_ = nullptr;
  bool closing_ = false;
};

class NatsFactory final : public TransportFactory {
 public:
  std::unique_ptr<Transport> create(const TransportConfig& config,
                                    const TransportContext& context) const override {
    return std::make_unique<NatsTransport>(config, context);
  }
};

const NatsFactory factory;

}  // namespace
}  // namespace switchboard::nats

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "nats", "1.0.0", switchboard::nats::factory)
