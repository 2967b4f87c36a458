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
//
// JetStream (when the `jetstream` option is set) adds three things:
// - management requests (account info, streams, consumers) at connect and
//   subscribe_durable, sent with natsConnection_Request while this thread
//   reads the socket itself (see pump_while);
// - publish_durable: a message with a reply subject "<ack inbox>.<n>" on
//   one asynchronous cnats subscription per connection, whose callback (on
//   its cnats thread) only posts the PubAck to the executor. Asynchronous,
//   because only there does a "no responders" status keep its subject;
// - durable consumers: push consumers whose deliver subject is an ordinary
//   synchronous subscription of this file, so deliveries take the same path
//   as every message; ack and nak publish on the delivery's reply subject.
#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "nats_jetstream.hpp"
#include "nats_settings.hpp"
#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/json_parse.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"

// What natsMsg_Destroy calls for a message that is not being kept
// (cnats' msg.c: headers, then the message's one block), without the trip
// through the garbage-collector thread. Exported by libnats but not in its
// headers, so weak: a libnats without it leaves this null and the transport
// uses natsMsg_Destroy. Only for messages the transport owns (received
// from its synchronous subscriptions, or created by natsMsg_Create), never
// for those cnats keeps (its "no destroy" flag is set only on messages of
// JetStream's auto-ack callbacks and heartbeat timers, which are not used
// here).
extern "C" void natsMsg_free(void* object) __attribute__((weak));

namespace switchboard::nats {
namespace {

std::string last_error(natsStatus s) {
  const char* text = nats_GetLastError(nullptr);
  return std::string(natsStatus_GetText(s)) + (text && *text ? std::string(": ") + text : "");
}

struct SubState;

// What deliveries need to ack or nak from any thread: the connection, as
// long as it may be used. Cleared (under `mutex`) before it is destroyed.
struct AckLink {
  std::mutex mutex;
  natsConnection* nc = nullptr;
};

// A durable publish waiting for its PubAck.
struct PendingPublish {
  DurablePublishHandler done;
  std::string subject;
  std::string target;
  std::string message_id;
  std::chrono::steady_clock::time_point deadline;
};

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
  // natsMsg_Destroy hands a message to cnats' garbage-collector thread
  // (waking it when idle), which then frees on its thread what this one
  // allocated. Where libnats exports natsMsg_free (3.4.1 does, without
  // declaring it: see the top of this file), a message is freed here at
  // once; otherwise messages are destroyed in batches, so that the
  // wake-ups are few.
  std::vector<natsMsg*> spent;
  void free_message(natsMsg* msg) {
    if (natsMsg_free != nullptr) return natsMsg_free(msg);
    spent.push_back(msg);
    if (spent.size() >= 256) free_spent();
  }
  void free_spent() {
    for (natsMsg* m : spent) natsMsg_Destroy(m);
    spent.clear();
  }

  // JetStream publishes awaiting their PubAck, by number. Numbers and
  // deadlines both grow, so the first one is the next to time out.
  // Executor only, but for `publish_seq`, read by on_disconnected.
  std::map<std::uint64_t, PendingPublish> publishes;
  std::atomic<std::uint64_t> publish_seq{0};
  std::string ack_prefix;  // "<ack inbox>."; the PubAck of publish n comes to "<ack inbox>.n"
  std::unique_ptr<asio::steady_timer> publish_timer;
  bool publish_timer_armed = false;
  std::function<void()> when_publishes_settled;  // close() waits for the PubAcks
  void settle_publish(std::uint64_t id, bool no_responders, const std::string& body);
  void fail_publishes(std::uint64_t up_to, errc e, const std::string& why);
  void arm_publish_timer();
  void expire_publishes();
  void after_publish_settled() {
    if (publishes.empty() && when_publishes_settled) std::exchange(when_publishes_settled, {})();
  }

  std::shared_ptr<AckLink> ack_link = std::make_shared<AckLink>();

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
  // PubAcks of what was sent before are lost with the connection: those
  // publishes fail now (the caller retries; the message id de-duplicates).
  shared->post([s = shared, up_to = shared->publish_seq.load()] {
    s->fail_publishes(up_to, errc::disconnected, "the connection to " + s->endpoint + " was lost");
  });
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
    shared->when_publishes_settled = nullptr;
    shared->fail_publishes(UINT64_MAX, errc::closed, "the connection closed");
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

// ---- JetStream PubAcks (the ack inbox's cnats delivery thread) ----------------

// The closure is an anchor from retain_anchor(): cnats may deliver after
// the subscription is destroyed.
void on_pub_ack(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto& shared = *static_cast<Anchor*>(closure);
  std::string_view subject = natsMsg_GetSubject(msg);
  std::uint64_t id = 0;
  auto dot = subject.rfind('.');
  auto number = subject.substr(dot == std::string_view::npos ? 0 : dot + 1);
  bool known = std::from_chars(number.data(), number.data() + number.size(), id).ec == std::errc();
  bool no_responders = natsMsg_IsNoResponders(msg);
  std::string body(natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
  natsMsg_Destroy(msg);
  if (!known) return;
  shared->post([s = shared, id, no_responders, body = std::move(body)] {
    s->settle_publish(id, no_responders, body);
  });
}

void complete(PendingPublish& p, std::error_code ec, const DurableReceipt& receipt) {
  if (!p.done) return;
  try {
    p.done(ec, receipt);
  } catch (const std::exception& e) {
    spdlog::error("nats: a durable publish completion for '{}' threw: {}", p.subject, e.what());
  }
}

void Shared::settle_publish(std::uint64_t id, bool no_responders, const std::string& body) {
  auto it = publishes.find(id);
  if (it == publishes.end()) return;  // timed out or failed already
  PendingPublish p = std::move(it->second);
  publishes.erase(it);
  if (no_responders) {
    spdlog::warn(
        "nats: durable publish to '{}' failed: no JetStream stream stores this subject on {}",
        p.subject, endpoint);
    complete(p, make_error_code(errc::no_responders), DurableReceipt{});
  } else {
    auto result = read_pub_ack(body, p.subject, p.target);
    if (result.ec) spdlog::warn("nats: durable publish failed: {}", result.problem);
    complete(p, result.ec, result.receipt);
  }
  after_publish_settled();
}

void Shared::fail_publishes(std::uint64_t up_to, errc e, const std::string& why) {
  if (publishes.empty()) return;
  std::vector<PendingPublish> failed;
  for (auto it = publishes.begin(); it != publishes.end() && it->first <= up_to;) {
    failed.push_back(std::move(it->second));
    it = publishes.erase(it);
  }
  if (failed.empty()) return;
  spdlog::warn("nats: {} durable publish(es) without PubAck failed: {}", failed.size(), why);
  for (auto& p : failed) complete(p, make_error_code(e), DurableReceipt{});
  after_publish_settled();
}

void Shared::arm_publish_timer() {
  if (publish_timer_armed || publishes.empty()) return;
  if (!publish_timer) publish_timer = std::make_unique<asio::steady_timer>(executor);
  publish_timer_armed = true;
  publish_timer->expires_at(publishes.begin()->second.deadline);
  publish_timer->async_wait([self = shared_from_this()](std::error_code ec) {
    self->publish_timer_armed = false;
    if (!ec) self->expire_publishes();
  });
}

void Shared::expire_publishes() {
  auto now = std::chrono::steady_clock::now();
  std::vector<PendingPublish> expired;
  while (!publishes.empty() && publishes.begin()->second.deadline <= now) {
    expired.push_back(std::move(publishes.begin()->second));
    publishes.erase(publishes.begin());
  }
  for (auto& p : expired) {
    spdlog::warn("nats: durable publish to '{}'{} got no PubAck from JetStream in time (timeout)",
                 p.subject, p.message_id.empty() ? "" : " (message id '" + p.message_id + "')");
    complete(p, make_error_code(errc::timeout), DurableReceipt{});
  }
  arm_publish_timer();
  if (!expired.empty()) after_publish_settled();
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

// A durable subscription's lag (num_pending: messages at the stream that
// its consumer has not delivered yet). Each delivery's ack subject states
// it, for free; but the last delivery's figure goes stale once deliveries
// stop (a redelivery carries the figure of its own moment), so when none
// came since the previous look the consumer's info is asked, on the
// executor like the deliveries, and its answer taken unless a delivery came
// first. Touched on the executor only.
struct DurableLag {
  std::int64_t pending = -1;  // -1: not known yet
  std::uint64_t deliveries = 0;
  std::uint64_t deliveries_at_last_look = 0;
  std::chrono::steady_clock::time_point asked_at{};  // one question per interval at most
  std::string info_subject;                          // $JS.API.CONSUMER.INFO.<stream>.<durable>
  std::string reply_subject;                         // where the info answers arrive
  std::unique_ptr<Subscription> replies;

  void delivered(std::int64_t stated) {
    pending = stated;
    ++deliveries;
  }
};

class NatsSubscription final : public Subscription {
 public:
  // `shown`: the subject subject() reports, when not the one subscribed
  // (a durable subscription's filter, not its deliver subject).
  // `lag`: a durable subscription's lag; nullptr for any other.
  explicit NatsSubscription(std::shared_ptr<SubState> state, std::string shown = {},
                            std::shared_ptr<DurableLag> lag = nullptr)
      : state_(std::move(state)), shown_(std::move(shown)), lag_(std::move(lag)) {}
  void unsubscribe() override {
    if (lag_ && lag_->replies) lag_->replies->unsubscribe();
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
  const std::string& subject() const override { return shown_.empty() ? state_->subject : shown_; }
  DurableLag* lag() const { return lag_.get(); }

 private:
  std::shared_ptr<SubState> state_;
  std::string shown_;
  std::shared_ptr<DurableLag> lag_;
};

// One JetStream delivery. ack() and nak() publish to its reply subject
// ("$JS.ACK...") from whichever thread calls them; only the first counts.
class NatsDelivery final : public DurableDelivery {
 public:
  NatsDelivery(Message message, std::string ack_subject, const AckSubject& meta,
               std::shared_ptr<AckLink> link)
      : message_(std::move(message)),
        ack_subject_(std::move(ack_subject)),
        sequence_(meta.stream_sequence),
        delivery_count_(
            static_cast<std::uint32_t>(std::min<std::uint64_t>(meta.delivered, UINT32_MAX))),
        link_(std::move(link)) {}

  const Message& message() const override { return message_; }
  std::uint64_t sequence() const override { return sequence_; }
  std::uint32_t delivery_count() const override { return delivery_count_; }
  // One consumer reads one stream: its sequence names the stored message.
  std::string source_id() const override { return std::to_string(sequence_); }
  void ack() override { settle("+ACK"); }
  void nak(std::chrono::milliseconds delay) override { settle(nak_body(delay)); }

 private:
  void settle(const std::string& body) {
    if (settled_.exchange(true)) return;
    std::lock_guard lock(link_->mutex);
    if (!link_->nc) return;  // the transport is gone: the broker redelivers after ack_wait
    // Appended to cnats' buffer; the executor writes it (ev_write).
    natsStatus s = natsConnection_Publish(link_->nc, ack_subject_.c_str(), body.data(),
                                          static_cast<int>(body.size()));
    if (s != NATS_OK) {
      spdlog::debug("nats: {} of stream sequence {} not sent: {}", body, sequence_, last_error(s));
    }
  }

  Message message_;
  std::string ack_subject_;
  std::uint64_t sequence_;
  std::uint32_t delivery_count_;
  std::shared_ptr<AckLink> link_;
  std::atomic<bool> settled_{false};
};

// ---- the transport -------------------------------------------------------------

class NatsTransport final : public Transport {
 public:
  NatsTransport(const TransportConfig& config, const TransportContext& context)
      : settings_(read_settings(config)),
        instance_(config.instance),
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
    // Durable publishes still waiting are dropped without completion, and
    // deliveries still held elsewhere can no longer ack (the broker
    // redelivers them after ack_wait).
    shared_->when_publishes_settled = nullptr;
    shared_->publishes.clear();
    {
      std::lock_guard lock(shared_->ack_link->mutex);
      shared_->ack_link->nc = nullptr;
    }
    if (ack_sub_) natsSubscription_Destroy(ack_sub_);
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
    shared_->publish_timer.reset();
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
    // JetStream: when the options ask for it and, once connected, the
    // server has it (connect() fails otherwise).
    c.durable_acks = settings_.jetstream.enabled && !jetstream_failed_;
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
    {
      std::lock_guard lock(shared_->ack_link->mutex);
      shared_->ack_link->nc = nc_;
    }
    if (settings_.jetstream.enabled) {
      if (auto ec = start_jetstream()) {
        // The options ask for what this server cannot give: no transport.
        jetstream_failed_ = true;
        closing_ = true;
        shared_->closing = true;
        natsConnection_Close(nc_);
        return ec;
      }
    }
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

  // JetStream publish: the message goes out with the reply subject
  // "<ack inbox>.<n>"; `done` runs on the executor with the PubAck, or with
  // an error: errc::no_responders (no stream stores the subject),
  // invalid_argument (not the expected stream), timeout (no PubAck within
  // jetstream.publish_timeout_ms), disconnected (lost the connection before
  // the PubAck), not_supported (no `jetstream` option), closed.
  // msg.reply_to is not used.
  void publish_durable(Message msg, const DurablePublish& options,
                       DurablePublishHandler done) override {
    auto fail = [&](errc e) {
      asio::post(shared_->executor, [done = std::move(done), e] {
        if (done) done(make_error_code(e), DurableReceipt{});
      });
    };
    if (!nc_ || closing_) return fail(errc::closed);
    if (!jetstream_ready()) return fail(errc::not_supported);
    if (msg.data.size() > max_payload_) return fail(errc::payload_too_large);
    std::string why;
    if (validate_subject(msg.subject, false, why)) {
      spdlog::warn("nats: durable publish to '{}': {}", msg.subject, why);
      return fail(errc::invalid_argument);
    }
    if (!shared_->connected) return fail(errc::disconnected);
    std::uint64_t id = ++shared_->publish_seq;
    std::string reply = shared_->ack_prefix + std::to_string(id);
    natsMsg* m = nullptr;
    natsStatus s = natsMsg_Create(&m, msg.subject.c_str(), reply.c_str(), msg.data.data(),
                                  static_cast<int>(msg.data.size()));
    for (auto it = msg.headers.begin(); s == NATS_OK && it != msg.headers.end(); ++it) {
      s = natsMsgHeader_Set(m, it->first.c_str(), it->second.c_str());
    }
    if (s == NATS_OK && !options.message_id.empty()) {
      s = natsMsgHeader_Set(m, "Nats-Msg-Id", options.message_id.c_str());
    }
    if (s == NATS_OK && !options.target.empty()) {
      s = natsMsgHeader_Set(m, "Nats-Expected-Stream", options.target.c_str());
    }
    if (s == NATS_OK) s = natsConnection_PublishMsg(nc_, m);
    if (m) shared_->free_message(m);
    if (s != NATS_OK) {
      if (s == NATS_CONNECTION_CLOSED) return fail(errc::closed);
      if (s == NATS_MAX_PAYLOAD) return fail(errc::payload_too_large);
      spdlog::warn("nats: durable publish to '{}' failed: {}", msg.subject, last_error(s));
      return fail(errc::transport_error);
    }
    // The PubAck reaches the executor after this returns (posted by cnats'
    // thread), so the entry is there in time.
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(settings_.jetstream.publish_timeout_ms);
    shared_->publishes.emplace(id, PendingPublish{std::move(done), std::move(msg.subject),
                                                  options.target, options.message_id, deadline});
    shared_->arm_publish_timer();
  }

  // A durable push consumer (see docs/nats.md, "JetStream"): looked up or
  // created with a few JetStream API round trips (this call blocks on them,
  // as subscribe() blocks on one), then read through an ordinary
  // subscription to its deliver subject, in its deliver group.
  std::error_code subscribe_durable(const DurableSubscribe& options, DurableHandler handler,
                                    std::unique_ptr<Subscription>& out) override {
    if (!nc_ || closing_) return make_error_code(errc::closed);
    if (!jetstream_ready()) return make_error_code(errc::not_supported);
    std::string why;
    if (options.subject.empty() ? options.target.empty()
                                : bool(validate_subject(options.subject, true, why))) {
      spdlog::warn("nats: durable subscription to '{}': {}", options.subject,
                   options.subject.empty() ? "needs a subject or a target stream" : why);
      return make_error_code(errc::invalid_argument);
    }
    if (!valid_jetstream_name(options.durable)) {
      spdlog::warn("nats: durable subscription to '{}': '{}' is not a durable name",
                   options.subject, options.durable);
      return make_error_code(errc::invalid_argument);
    }
    if (options.start == DurableStart::sequence && options.start_sequence == 0) {
      spdlog::warn("nats: durable subscription '{}': DurableStart::sequence needs start_sequence",
                   options.durable);
      return make_error_code(errc::invalid_argument);
    }
    if (!shared_->connected) return make_error_code(errc::disconnected);

    std::string stream = options.target;
    if (stream.empty()) {
      if (auto ec = find_stream(options.subject, stream)) return ec;
    }
    const std::string what = "durable '" + options.durable + "' on stream '" + stream + "'";
    auto info = api(js_api_ + ".CONSUMER.INFO." + stream + "." + options.durable);
    if (auto ec = api_failure(info, what)) return ec;

    std::string deliver, group;
    Json config;  // to create or update the consumer with; null: as it is
    bool exists = !info.error;
    // The consumer's num_pending before its first delivery (durable_lag):
    // from the info (or create) answer; -1 while unknown.
    auto num_pending = [](const Json& answer, std::int64_t otherwise) {
      auto it = answer.is_object() ? answer.find("num_pending") : answer.end();
      return it != answer.end() && it->is_number_integer() ? it->get<std::int64_t>() : otherwise;
    };
    std::int64_t initial_pending = exists ? num_pending(info.json, -1) : -1;
    if (info.error && info.error->err_code == kJsStreamNotFound) {
      spdlog::error("nats: {}: stream '{}' not found on {}", what, stream, shared_->endpoint);
      return make_error_code(errc::invalid_argument);
    } else if (info.error && info.error->err_code != kJsConsumerNotFound) {
      spdlog::error("nats: {}: {}", what, info.error->text());
      return make_error_code(errc::transport_error);
    } else if (info.error) {
      deliver = new_inbox();
      group = options.durable;
      config = consumer_config(options, deliver, group);
    } else {
      Json existing = info.json.value("config", Json::object());
      deliver = string_or(existing, "deliver_subject");
      group = string_or(existing, "deliver_group");
      std::string filter = string_or(existing, "filter_subject");
      if (deliver.empty()) {
        spdlog::error(
            "nats: {} is a pull consumer; switchboard reads push consumers "
            "(use another durable name)",
            what);
        return make_error_code(errc::invalid_argument);
      }
      if (filter != options.subject) {
        spdlog::error("nats: {} filters '{}', not '{}' (use another durable name, or delete it)",
                      what, filter, options.subject);
        return make_error_code(errc::invalid_argument);
      }
      if (group.empty() && info.json.value("push_bound", false)) {
        spdlog::error("nats: {} has no deliver group and another subscriber reads it", what);
        return make_error_code(errc::invalid_argument);
      }
      Json fresh = consumer_config(options, deliver, group);
      Json wanted = existing;
      wanted["ack_wait"] = fresh["ack_wait"];
      wanted["max_ack_pending"] = fresh["max_ack_pending"];
      if (wanted != existing) config = std::move(wanted);
    }
    if (!config.is_null()) {
      Json request = {{"stream_name", stream}, {"config", config}};
      auto created = api(js_api_ + ".CONSUMER.DURABLE.CREATE." + stream + "." + options.durable,
                         request.dump());
      if (auto ec = api_failure(created, what)) return ec;
      if (!created.error) initial_pending = num_pending(created.json, initial_pending);
      if (created.error && exists) {
        // The server keeps some settings (2.9 refuses any update of a
        // consumer that starts at a time); the consumer is usable as is.
        spdlog::warn("nats: {}: ack_wait and max_in_flight not updated: {}", what,
                     created.error->text());
      } else if (created.error) {
        spdlog::error("nats: cannot create {}: {}", what, created.error->text());
        return make_error_code(created.error->code == 400 || created.error->code == 404
                                   ? errc::invalid_argument
                                   : errc::transport_error);
      }
    }

    auto state = std::make_shared<SubState>();
    state->shared = shared_;
    state->subject = deliver;
    auto lag = std::make_shared<DurableLag>();
    lag->pending = initial_pending;
    lag->info_subject = js_api_ + ".CONSUMER.INFO." + stream + "." + options.durable;
    state->handler = [handler = std::move(handler), link = shared_->ack_link,
                      filter = options.subject, lag](Message m) {
      auto meta = parse_ack_subject(m.reply_to);
      if (!meta) {
        spdlog::debug(
            "nats: a message that is no JetStream delivery reached the durable "
            "subscription to '{}'; dropped",
            filter);
        return;
      }
      lag->delivered(static_cast<std::int64_t>(meta->pending));
      std::string ack_subject = std::move(m.reply_to);
      m.reply_to.clear();
      auto delivery =
          std::make_shared<NatsDelivery>(std::move(m), std::move(ack_subject), *meta, link);
      try {
        handler(std::move(delivery));
      } catch (const std::exception& e) {
        spdlog::error("nats: the durable handler for '{}' threw: {} (redelivered after ack_wait)",
                      filter, e.what());
      }
    };
    natsSubscription* sub = nullptr;
    natsStatus s = group.empty() ? natsConnection_SubscribeSync(&sub, nc_, deliver.c_str())
                                 : natsConnection_QueueSubscribeSync(&sub, nc_, deliver.c_str(),
                                                                     group.c_str());
    if (s != NATS_OK) {
      spdlog::warn("nats: subscribe to the deliver subject of {} failed: {}", what, last_error(s));
      return make_error_code(s == NATS_CONNECTION_CLOSED ? errc::closed : errc::transport_error);
    }
    natsSubscription_SetPendingLimits(sub, settings_.pending_messages, settings_.pending_bytes);
    state->sub = sub;
    shared_->subs.push_back(state);
    if (natsStatus f = round_trip(); f != NATS_OK) {
      spdlog::warn("nats: subscription of {} not confirmed by the server yet: {}", what,
                   natsStatus_GetText(f));
    }
    watch_lag(lag);
    out = std::make_unique<NatsSubscription>(
        std::move(state), options.subject.empty() ? stream : options.subject, std::move(lag));
    return {};
  }

  // Subscribes to the answers of the consumer-info requests durable_lag
  // sends; one that crosses a delivery is dropped (the delivery is newer).
  void watch_lag(const std::shared_ptr<DurableLag>& lag) {
    lag->reply_subject = new_inbox();
    std::weak_ptr<DurableLag> weak = lag;
    auto on_answer = [weak](Message m) {
      auto lag = weak.lock();
      if (!lag || lag->deliveries != lag->deliveries_at_last_look) return;
      Json info;
      std::string error;
      if (!parse_json(m.data.view(), info, error) || !info.is_object()) return;
      auto it = info.find("num_pending");
      if (it != info.end() && it->is_number_integer()) lag->pending = it->get<std::int64_t>();
    };
    if (subscribe(lag->reply_subject, "", std::move(on_answer), lag->replies)) {
      spdlog::warn("nats: the lag of {} is only updated by deliveries", lag->info_subject);
    }
  }

  // num_pending as the server stated it in the last delivery's ack subject
  // (no round trip while deliveries flow; while the consumer has
  // max_ack_pending messages out it sends none, and the figure is the one of
  // the last delivery). When no delivery came since the previous call, the
  // consumer's info is asked for, and the next call has its answer.
  std::error_code durable_lag(const Subscription& subscription, std::uint64_t& out) override {
    auto* own = dynamic_cast<const NatsSubscription*>(&subscription);
    DurableLag* lag = own ? own->lag() : nullptr;
    if (!lag) return make_error_code(errc::not_supported);
    auto now = std::chrono::steady_clock::now();
    if (lag->deliveries == lag->deliveries_at_last_look && lag->replies && shared_->connected &&
        !closing_ && now - lag->asked_at >= std::chrono::milliseconds(100)) {
      lag->asked_at = now;
      natsConnection_PublishRequest(nc_, lag->info_subject.c_str(), lag->reply_subject.c_str(),
                                    nullptr, 0);
    }
    lag->deliveries_at_last_look = lag->deliveries;
    if (lag->pending < 0) return make_error_code(errc::timeout);
    out = static_cast<std::uint64_t>(lag->pending);
    return {};
  }

  // Drain: the server stops sending to our subscriptions, what was already
  // received is delivered, what we published is flushed, then cnats closes
  // the connection and the closed callback completes this. Durable
  // publishes still waiting get their PubAck (or time out) first.
  void close(std::function<void()> done) override {
    if (!nc_ || shared_->closed || jetstream_failed_) {
      asio::post(shared_->executor, std::move(done));
      return;
    }
    closing_ = true;
    {
      std::lock_guard lock(shared_->mutex);
      auto previous = std::move(shared_->on_closed);
      shared_->on_closed = [previous = std::move(previous), done = std::move(done)] {
        if (previous) previous();
        if (done) done();
      };
    }
    if (!shared_->publishes.empty()) {
      // Called on the executor, where the destructor clears it: `this` lives.
      shared_->when_publishes_settled = [this] { drain(); };
      return;
    }
    drain();
  }

 private:
  void drain() {
    if (drain_started_) return;
    drain_started_ = true;
    shared_->closing = true;
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
    return pump_while(
        [&] { return natsConnection_FlushTimeout(nc_, settings_.connect_timeout_ms); });
  }

  // Runs a blocking cnats call (one that waits for an answer from the
  // server) on a helper thread while this one reads and writes the socket.
  template <typename Call>
  natsStatus pump_while(Call&& call) {
    std::atomic<bool> done{false};
    natsStatus result = NATS_OK;
    std::thread waiter([&] {
      result = call();
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

  // ---- JetStream ----

  bool jetstream_ready() {
    if (jetstream_ready_) return true;
    if (!warned_no_jetstream_) {
      warned_no_jetstream_ = true;
      spdlog::warn(
          "nats: transport '{}' has no JetStream: durable publish and subscribe need "
          "the `jetstream` option (see docs/nats.md)",
          instance_);
    }
    return false;
  }

  // One JetStream API request, answered (or not) within api_timeout_ms.
  struct ApiAnswer {
    natsStatus status = NATS_OK;  // NATS_NO_RESPONDERS: no JetStream there
    Json json;
    std::optional<ApiError> error;  // the answer's `error`
  };
  ApiAnswer api(const std::string& subject, const std::string& body = "") {
    ApiAnswer a;
    natsMsg* reply = nullptr;
    a.status = pump_while([&] {
      return natsConnection_Request(&reply, nc_, subject.c_str(), body.data(),
                                    static_cast<int>(body.size()),
                                    settings_.jetstream.api_timeout_ms);
    });
    if (a.status != NATS_OK) return a;
    // An answer that is not JSON leaves a.json discarded; api_error says so.
    std::string error;
    parse_json(std::string_view(natsMsg_GetData(reply),
                                static_cast<std::size_t>(natsMsg_GetDataLength(reply))),
               a.json, error);
    natsMsg_Destroy(reply);
    a.error = api_error(a.json);
    return a;
  }

  // The error of a request that got no answer, logged; {} when answered.
  std::error_code api_failure(const ApiAnswer& a, const std::string& what) {
    switch (a.status) {
      case NATS_OK:
        return {};
      case NATS_NO_RESPONDERS:
        spdlog::error("nats: {}: no JetStream answers on {} (is JetStream enabled there?)", what,
                      shared_->endpoint);
        return make_error_code(errc::not_supported);
      case NATS_TIMEOUT:
        spdlog::error(
            "nats: {}: JetStream on {} did not answer within {} ms "
            "(jetstream.api_timeout_ms)",
            what, shared_->endpoint, settings_.jetstream.api_timeout_ms);
        return make_error_code(errc::timeout);
      case NATS_CONNECTION_CLOSED:
        return make_error_code(errc::closed);
      default:
        spdlog::error("nats: {}: JetStream request failed: {}", what, natsStatus_GetText(a.status));
        return make_error_code(errc::transport_error);
    }
  }

  // At connect: the server has JetStream, the declared streams exist as
  // declared, and PubAcks have a subscription to come to.
  std::error_code start_jetstream() {
    js_api_ = api_prefix(settings_.jetstream);
    auto info = api(js_api_ + ".INFO");
    if (info.status == NATS_NO_RESPONDERS ||
        (info.error && (info.error->err_code == kJsNotEnabled ||
                        info.error->err_code == kJsNotEnabledForAccount))) {
      spdlog::error(
          "nats: transport '{}' has the `jetstream` option but the server {} has no "
          "JetStream{} (start nats-server with -js, or give it a jetstream block)",
          instance_, connected_url(nc_), info.error ? ": " + info.error->text() : std::string());
      return make_error_code(errc::not_supported);
    }
    if (auto ec = api_failure(info, "JetStream account info")) return ec;
    if (info.error) {
      spdlog::error("nats: JetStream account info from {}: {}", shared_->endpoint,
                    info.error->text());
      return make_error_code(errc::transport_error);
    }
    for (const auto& stream : settings_.jetstream.streams) {
      if (auto ec = declare_stream(stream)) return ec;
    }
    shared_->ack_prefix = new_inbox() + ".";
    std::string acks = shared_->ack_prefix + "*";
    natsStatus s =
        natsConnection_Subscribe(&ack_sub_, nc_, acks.c_str(), on_pub_ack, retain_anchor(shared_));
    if (s != NATS_OK) {
      spdlog::error("nats: cannot subscribe to PubAcks on {}: {}", acks, last_error(s));
      return make_error_code(errc::transport_error);
    }
    natsSubscription_SetPendingLimits(ack_sub_, settings_.pending_messages,
                                      settings_.pending_bytes);
    jetstream_ready_ = true;
    return {};
  }

  // Creates the stream, or updates it to the declared settings (keeping
  // the ones not declared). Errors name the stream and the server's reason.
  std::error_code declare_stream(const StreamSettings& stream) {
    const std::string what = "JetStream stream '" + stream.name + "'";
    auto created = api(js_api_ + ".STREAM.CREATE." + stream.name, stream_config(stream).dump());
    if (auto ec = api_failure(created, what)) return ec;
    if (!created.error) {
      spdlog::debug("nats: {} ready", what);
      return {};
    }
    if (created.error->err_code != kJsStreamNameExists) {
      spdlog::error("nats: cannot create {}: {}", what, created.error->text());
      return make_error_code(errc::invalid_argument);
    }
    auto info = api(js_api_ + ".STREAM.INFO." + stream.name);
    if (auto ec = api_failure(info, what)) return ec;
    if (info.error) {
      spdlog::error("nats: {}: {}", what, info.error->text());
      return make_error_code(errc::transport_error);
    }
    Json config = merge_stream_config(info.json.value("config", Json::object()), stream);
    auto updated = api(js_api_ + ".STREAM.UPDATE." + stream.name, config.dump());
    if (auto ec = api_failure(updated, what)) return ec;
    if (updated.error) {
      spdlog::error("nats: cannot update {} to its declared settings: {}", what,
                    updated.error->text());
      return make_error_code(errc::invalid_argument);
    }
    spdlog::info("nats: {} updated to its declared settings", what);
    return {};
  }

  // The one stream that stores `subject`.
  std::error_code find_stream(const std::string& subject, std::string& out) {
    const std::string what = "durable subscription to '" + subject + "'";
    auto names = api(js_api_ + ".STREAM.NAMES", Json{{"subject", subject}}.dump());
    if (auto ec = api_failure(names, what)) return ec;
    if (names.error) {
      spdlog::error("nats: {}: {}", what, names.error->text());
      return make_error_code(errc::transport_error);
    }
    std::vector<std::string> streams;
    if (auto it = names.json.find("streams"); it != names.json.end() && it->is_array()) {
      for (const auto& name : *it) {
        if (name.is_string()) streams.push_back(name.get<std::string>());
      }
    }
    if (streams.size() == 1) {
      out = streams.front();
      return {};
    }
    if (streams.empty()) {
      spdlog::error("nats: {}: no JetStream stream stores this subject on {}", what,
                    shared_->endpoint);
    } else {
      std::string list;
      for (const auto& name : streams) list += (list.empty() ? "" : ", ") + name;
      spdlog::error("nats: {}: several streams store it ({}); name one in `target`", what, list);
    }
    return make_error_code(errc::invalid_argument);
  }

  static std::string new_inbox() {
    natsInbox* inbox = nullptr;
    if (natsInbox_Create(&inbox) != NATS_OK) return "_INBOX.switchboard";
    std::string out = inbox;
    natsInbox_Destroy(inbox);
    return out;
  }

  NatsSettings settings_;
  std::string instance_;
  std::size_t configured_max_;
  std::size_t max_payload_ = 1024 * 1024;
  std::shared_ptr<Shared> shared_;
  natsConnection* nc_ = nullptr;
  bool closing_ = false;
  bool drain_started_ = false;
  // JetStream
  std::string js_api_;  // $JS.API, or $JS.<domain>.API
  natsSubscription* ack_sub_ = nullptr;
  bool jetstream_ready_ = false;
  bool jetstream_failed_ = false;
  bool warned_no_jetstream_ = false;
};

const TransportFactoryFor<NatsTransport> factory;

}  // namespace
}  // namespace switchboard::nats

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "nats", "1.0.0", switchboard::nats::factory)
