// nats: the NATS transport on cnats. This file is where cnats' threads meet
// the runtime's executor: every cnats callback copies what it needs and
// posts it to the executor; nothing else touches runtime state.
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>

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

// State shared with cnats callbacks. cnats holds a raw pointer to a heap
// shared_ptr of it (`Anchor`), released by the closed callback, so the state
// outlives every callback even when the transport object is gone.
struct Shared {
  asio::any_io_executor executor;
  std::mutex mutex;
  StatusHandler status;
  std::function<void()> on_closed;  // completion of close()
  std::atomic<bool> closed{false};
  std::atomic<bool> connected{false};  // publishes fail fast while false
  std::atomic<bool> closing{false};    // a drain's disconnect is no news
  std::string endpoint;

  void emit(TransportStatus s, std::string detail) {
    std::lock_guard lock(mutex);
    if (!status) return;
    asio::post(executor, [h = status, ev = StatusEvent{s, std::move(detail)}] { h(ev); });
  }
};
using Anchor = std::shared_ptr<Shared>;

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
  auto* anchor = static_cast<Anchor*>(closure);
  auto shared = *anchor;
  delete anchor;  // cnats makes no callback after this one
  shared->closed = true;
  shared->emit(TransportStatus::closed, shared->endpoint);
  std::function<void()> done;
  {
    std::lock_guard lock(shared->mutex);
    done = std::move(shared->on_closed);
  }
  if (done) asio::post(shared->executor, std::move(done));
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

// One subscription, shared between the user's handle, the transport and
// cnats' message callback (through a heap shared_ptr freed on completion).
struct SubState {
  std::shared_ptr<Shared> shared;
  MessageHandler handler;
  std::atomic<bool> alive{true};
  std::mutex mutex;
  natsSubscription* sub = nullptr;  // destroyed once, by whoever stops it first
  std::string subject;

  void stop() {
    alive = false;
    std::lock_guard lock(mutex);
    if (!sub) return;
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    sub = nullptr;
  }
};
using SubAnchor = std::shared_ptr<SubState>;

void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto state = *static_cast<SubAnchor*>(closure);
  Message m;
  m.subject = natsMsg_GetSubject(msg);
  if (const char* reply = natsMsg_GetReply(msg)) m.reply_to = reply;
  m.data = Payload(std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)));
  if (natsMsg_IsNoResponders(msg)) {
    m.headers.emplace("Status", "503");  // what the runtime reads as no responders
  } else {
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
  }
  natsMsg_Destroy(msg);
  asio::post(state->shared->executor, [state, m = std::move(m)]() mutable {
    if (state->alive) state->handler(std::move(m));
  });
}

void on_subscription_complete(void* closure) {
  delete static_cast<SubAnchor*>(closure);
}

class NatsSubscription final : public Subscription {
 public:
  explicit NatsSubscription(std::shared_ptr<SubState> state) : state_(std::move(state)) {}
  void unsubscribe() override { state_->stop(); }
  const std::string& subject() const override { return state_->subject; }

 private:
  std::shared_ptr<SubState> state_;
};

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
    for (auto& s : subs_) s->stop();
    if (nc_) natsConnection_Destroy(nc_);  // closes first if needed
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
    auto* anchor = new Anchor(shared_);
    natsOptions_SetDisconnectedCB(opts, on_disconnected, anchor);
    natsOptions_SetReconnectedCB(opts, on_reconnected, anchor);
    natsOptions_SetClosedCB(opts, on_closed, anchor);
    natsOptions_SetErrorHandler(opts, on_error, anchor);
    natsStatus s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) {
      delete anchor;  // no connection, so no closed callback
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
    // cnats would buffer while reconnecting; a caller is better served by an
    // error now than by a timeout later.
    if (!shared_->connected) return make_error_code(errc::disconnected);
    std::string why;
    if (auto ec = validate_subject(msg.subject, false, why)) return ec;
    natsStatus s;
    const char* reply = msg.reply_to.empty() ? nullptr : msg.reply_to.c_str();
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
      natsMsg_Destroy(m);
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
    auto* anchor = new SubAnchor(state);
    natsSubscription* sub = nullptr;
    natsStatus s = queue_group.empty()
                       ? natsConnection_Subscribe(&sub, nc_, subject.c_str(), on_message, anchor)
                       : natsConnection_QueueSubscribe(&sub, nc_, subject.c_str(),
                                                       queue_group.c_str(), on_message, anchor);
    if (s != NATS_OK) {
      delete anchor;
      spdlog::warn("nats: subscribe to {} failed: {}", subject, last_error(s));
      return make_error_code(s == NATS_CONNECTION_CLOSED ? errc::closed : errc::transport_error);
    }
    natsSubscription_SetOnCompleteCB(sub, on_subscription_complete, anchor);
    natsSubscription_SetPendingLimits(sub, settings_.pending_messages, settings_.pending_bytes);
    // One round trip so that the server has the interest before we return:
    // an add() followed at once by an act() must find its responder.
    if (natsStatus f = natsConnection_FlushTimeout(nc_, settings_.connect_timeout_ms);
        f != NATS_OK) {
      spdlog::warn("nats: subscription to {} not confirmed by the server yet: {}", subject,
                   last_error(f));
    }
    state->sub = sub;
    subs_.push_back(state);
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
    }
  }

 private:
  NatsSettings settings_;
  std::size_t configured_max_;
  std::size_t max_payload_ = 1024 * 1024;
  std::shared_ptr<Shared> shared_;
  natsConnection* nc_ = nullptr;
  bool closing_ = false;
  std::vector<std::shared_ptr<SubState>> subs_;
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
