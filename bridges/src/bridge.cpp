// BridgeRelay and BridgeHost: the relay engine (docs/bridges.md).
#include "switchboard/bridges/bridge.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "codec_conversion.hpp"
#include "switchboard/app.hpp"
#include "switchboard/error.hpp"

namespace switchboard::bridges {

struct BridgeRelay::Pending {
  Message out;
  std::shared_ptr<DurableDelivery> delivery;  // null for plain sources
  std::string source_subject;
  std::string source_id;   // the delivery's; empty for plain sources
  std::string message_id;  // "<bridge>:<source_id>", or empty
  std::uint32_t attempts = 0;
  std::size_t slot = 0;  // index in pending_
  std::unique_ptr<asio::steady_timer> retry_timer;
  // Redeliveries of this message that arrived while it was still in flight
  // (ack_wait ran out meanwhile): settled with it instead of sent again.
  std::vector<std::shared_ptr<DurableDelivery>> also;
};

namespace {
// Spare records kept at most: enough for a busy bridge's window without
// holding the memory of a burst forever.
constexpr std::size_t kMaxSpare = 1024;

// asio::dispatch, without its cost where it runs `f` inline anyway. On an
// any_io_executor, dispatch first converts the executor (App's strand does
// not fit any_executor's small buffer, so that allocates) and wraps `f`,
// and only then finds the caller already on the strand. The relay's
// transports deliver on that strand, so nearly every call takes the short
// way here.
template <typename F>
void dispatch_on(const asio::any_io_executor& executor, F&& f) {
  using Strand = asio::strand<asio::io_context::executor_type>;
  if (const auto* strand = executor.target<Strand>()) {
    if (strand->running_in_this_thread()) return std::forward<F>(f)();
  } else if (const auto* plain = executor.target<asio::io_context::executor_type>()) {
    if (plain->running_in_this_thread()) return std::forward<F>(f)();
  }
  asio::dispatch(executor, std::forward<F>(f));
}
}  // namespace

BridgeRelay::BridgeRelay(asio::any_io_executor executor, BridgeSpec spec, BridgeOptions options,
                         std::shared_ptr<Transport> from, std::shared_ptr<Transport> to,
                         std::shared_ptr<Transport> dead_letter,
                         std::shared_ptr<const CodecConversion> conversion)
    : executor_(std::move(executor)),
      spec_(std::move(spec)),
      options_(std::move(options)),
      from_(std::move(from)),
      to_(std::move(to)),
      dead_letter_(std::move(dead_letter)),
      conversion_(std::move(conversion)) {
  bool want_durable = options_.delivery != Delivery::at_most_once;
  durable_source_ = want_durable && from_->capabilities().durable_acks;
  durable_destination_ = want_durable && to_->capabilities().durable_acks;
  durable_dead_letter_ = want_durable && dead_letter_ && dead_letter_->capabilities().durable_acks;
  // Redeliveries are folded into a first delivery still in flight by the
  // source's id where the broker assigns it, one per stored message
  // (JetStream: the stream sequence; Kafka: topic, partition and offset).
  // Not AMQP: its id is the publisher's message-id property, which nothing
  // makes unique, and folding two different messages would lose one.
  if (durable_source_ && (from_->type() == "nats" || from_->type() == "kafka")) {
    by_source_id_.emplace();
  }
}

BridgeRelay::~BridgeRelay() = default;

std::error_code BridgeRelay::start() {
  if (options_.delivery == Delivery::at_least_once && !from_->capabilities().durable_acks) {
    spdlog::error(
        "bridge '{}': delivery at_least_once, but transport '{}' ({}) cannot acknowledge "
        "(durable acks: JetStream, Kafka, AMQP)",
        spec_.name, spec_.from.transport, from_->type());
    return errc::not_supported;
  }
  std::weak_ptr<BridgeRelay> weak = weak_from_this();
  std::error_code ec;
  if (durable_source_) {
    DurableSubscribe ds;
    ds.subject = spec_.from.subject;
    ds.target = options_.source_target;
    ds.durable = options_.durable;
    ds.start = options_.start;
    ds.max_in_flight = options_.max_in_flight;
    ds.ack_wait = options_.ack_wait;
    ec = from_->subscribe_durable(
        ds,
        [weak](std::shared_ptr<DurableDelivery> d) {
          auto self = weak.lock();
          if (!self) return;
          dispatch_on(self->executor_, [self, d = std::move(d)]() mutable {
            Message m = d->message();
            self->on_message(std::move(m), std::move(d));
          });
        },
        subscription_);
  } else {
    ec = from_->subscribe(
        spec_.from.subject, options_.queue_group,
        [weak](Message m) {
          auto self = weak.lock();
          if (!self) return;
          dispatch_on(self->executor_, [self, m = std::move(m)]() mutable {
            self->on_message(std::move(m), nullptr);
          });
        },
        subscription_);
  }
  if (ec) return ec;
  running_ = true;
  if (durable_source_) poll_lag();
  spdlog::info("bridge '{}': {}:{} -> {}:{} ({})", spec_.name, spec_.from.transport,
               spec_.from.subject, spec_.to.transport,
               spec_.to.subject.empty() ? "{subject}" : spec_.to.subject,
               durable_source_ ? "at-least-once" : "at-most-once");
  return {};
}

// Reads the source's lag now and every lag_interval until stop(). A
// transport without durable_lag (not_supported) is asked once.
void BridgeRelay::poll_lag() {
  if (!running_ || !subscription_) return;
  std::uint64_t lag = 0;
  std::error_code ec = from_->durable_lag(*subscription_, lag);
  if (!ec) {
    counters_.lag = lag;
    counters_.lag_known = true;
  } else if (ec == errc::not_supported) {
    return;
  }
  if (!lag_timer_) lag_timer_ = std::make_unique<asio::steady_timer>(executor_);
  lag_timer_->expires_after(options_.lag_interval);
  std::weak_ptr<BridgeRelay> weak = weak_from_this();
  lag_timer_->async_wait([weak](std::error_code wait_ec) {
    auto self = weak.lock();
    if (!wait_ec && self) self->poll_lag();
  });
}

std::chrono::milliseconds BridgeRelay::backoff_for(std::uint32_t attempt) const {
  auto d = options_.backoff;
  for (std::uint32_t i = 1; i < attempt && d < options_.max_backoff; ++i) d *= 2;
  return std::min(d, options_.max_backoff);
}

// A record for a new message: a spare one (its strings keep their room)
// or a new one, entered in pending_.
BridgeRelay::Pending& BridgeRelay::take_pending() {
  std::unique_ptr<Pending> p;
  if (spare_.empty()) {
    p = std::make_unique<Pending>();
  } else {
    p = std::move(spare_.back());
    spare_.pop_back();
  }
  p->slot = pending_.size();
  pending_.push_back(std::move(p));
  return *pending_.back();
}

void BridgeRelay::on_message(Message msg, std::shared_ptr<DurableDelivery> delivery) {
  std::string source_id = delivery ? delivery->source_id() : std::string();
  if (delivery && delivery->delivery_count() > 1) {
    ++counters_.redelivered;
    if (by_source_id_ && !source_id.empty()) {
      auto it = by_source_id_->find(source_id);
      if (it != by_source_id_->end()) {
        it->second->also.push_back(std::move(delivery));
        return;
      }
    }
  }
  if (stopping_ || pending_.size() >= options_.max_in_flight) {
    // Durable sources: the broker's window (max_in_flight) keeps this rare;
    // hand the message back. Plain sources cannot be paused: drop, counted.
    if (delivery) {
      delivery->nak(stopping_ ? std::chrono::milliseconds(0) : options_.backoff);
    } else {
      ++counters_.dropped;
      spdlog::debug("bridge '{}': window full ({}), dropped a message on '{}'", spec_.name,
                    options_.max_in_flight, msg.subject);
    }
    return;
  }
  Pending* p = &take_pending();
  p->delivery = std::move(delivery);
  // Copied into the record's own string: a reused record has the room.
  p->source_subject.assign(msg.subject);
  p->source_id = std::move(source_id);
  if (by_source_id_ && !p->source_id.empty()) by_source_id_->emplace(p->source_id, p);
  ++counters_.in_flight;

  Message& out = p->out;
  out.data = std::move(msg.data);
  out.headers = std::move(msg.headers);
  // Replies do not cross a bridge: the inbox lives on the source side.
  for (const auto& [from, to] : options_.rename_headers) {
    auto it = out.headers.find(from);
    if (it == out.headers.end()) continue;
    std::string value = std::move(it->second);
    out.headers.erase(it);
    out.headers[to] = std::move(value);
  }
  for (const auto& name : options_.remove_headers) out.headers.erase(name);
  for (const auto& [name, value] : options_.set_headers) out.headers[name] = value;
  std::error_code ec;
  if (options_.subject.empty()) {
    out.subject = p->source_subject;
  } else {
    ec = options_.subject.render(p->source_subject, out.subject);
  }
  if (!ec && options_.key) {
    std::string key;
    ec = options_.key->render(p->source_subject, key);
    if (!ec) out.headers[options_.key_header] = std::move(key);
  }
  if (ec) {
    spdlog::warn("bridge '{}': subject '{}' does not fit the template '{}'", spec_.name,
                 p->source_subject, options_.subject.text());
    give_up(p, ec);
    return;
  }
  if (conversion_) {
    std::string why;
    if (auto cec = conversion_->convert(out, why)) {
      // Bad bytes stay bad: no retries, straight to the dead letter (or nak).
      spdlog::warn("bridge '{}': payload on '{}' cannot be converted to {}: {}", spec_.name,
                   p->source_subject, conversion_->target().name(), why);
      give_up(p, cec, "payload is " + why);
      return;
    }
  }
  // A stable id per stored source message lets a JetStream destination drop
  // the copy a redelivery makes.
  if (!p->source_id.empty()) p->message_id = spec_.name + ":" + p->source_id;
  attempt(p);
}

// The completion holds the relay (so that it outlives every publish it
// started) and `p`, which stays in pending_ until on_sent settles it.
void BridgeRelay::send(Transport& transport, bool durable, Message msg, std::string message_id,
                       Pending* p, Leg leg) {
  auto self = shared_from_this();
  if (durable) {
    DurablePublish options;
    options.message_id = std::move(message_id);
    options.target = &transport == to_.get() ? options_.target : std::string();
    transport.publish_durable(
        std::move(msg), options,
        [self = std::move(self), p, leg](std::error_code ec,
                                         const DurableReceipt& receipt) mutable {
          // Runs inline when the transport completes on this executor (the
          // bridge host's transports do). Called once: `self` moves on.
          auto& executor = self->executor_;
          dispatch_on(executor, [self = std::move(self), p, leg, ec, dup = receipt.duplicate] {
            self->on_sent(p, leg, ec, dup);
          });
        });
  } else {
    std::error_code ec = transport.publish(std::move(msg));
    // Completes later, as the durable path does, so that a failing publish
    // never recurses into the retry logic.
    asio::post(executor_,
               [self = std::move(self), p, leg, ec] { self->on_sent(p, leg, ec, false); });
  }
}

void BridgeRelay::on_sent(Pending* p, Leg leg, std::error_code ec, bool duplicate) {
  if (leg == Leg::destination) {
    on_result(p, ec, duplicate);
  } else {
    on_dead_lettered(p, ec);
  }
}

void BridgeRelay::attempt(Pending* p) {
  ++p->attempts;
  send(*to_, durable_destination_, p->out, p->message_id, p, Leg::destination);
}

void BridgeRelay::on_result(Pending* p, std::error_code ec, bool duplicate) {
  if (!ec) {
    ++counters_.relayed;
    if (duplicate) ++counters_.duplicates;
    finish(p, true);
    return;
  }
  spdlog::warn("bridge '{}': publish of '{}' to {} failed (attempt {}): {}", spec_.name,
               p->out.subject, spec_.to.transport, p->attempts, ec.message());
  if (static_cast<int>(p->attempts) <= options_.max_retries && !stopping_) {
    ++counters_.retried;
    if (!p->retry_timer) p->retry_timer = std::make_unique<asio::steady_timer>(executor_);
    p->retry_timer->expires_after(backoff_for(p->attempts));
    auto self = shared_from_this();
    p->retry_timer->async_wait([self, p](std::error_code wait_ec) {
      if (wait_ec || self->stopping_) {
        // Cancelled by stop(): a durable source gets it again later.
        if (!p->delivery) ++self->counters_.dropped;
        self->finish(p, false);
        return;
      }
      self->attempt(p);
    });
    return;
  }
  give_up(p, ec);
}

void BridgeRelay::give_up(Pending* p, std::error_code ec, const std::string& why) {
  ++counters_.failed;
  if (!dead_letter_) {
    if (!p->delivery) ++counters_.dropped;
    // A durable source keeps the message: redelivered after max_backoff.
    finish(p, false);
    return;
  }
  Message dl;
  dl.data = p->out.data;
  dl.headers = p->out.headers;
  dl.headers["switchboard-bridge"] = spec_.name;
  dl.headers["switchboard-original-subject"] = p->source_subject;
  dl.headers["switchboard-error"] = why.empty() ? ec.message() : ec.message() + ": " + why;
  dl.headers["switchboard-attempts"] = std::to_string(p->attempts);
  if (auto tec = options_.dead_letter_subject.render(p->source_subject, dl.subject)) {
    dl.subject = options_.dead_letter_subject.text();
  }
  std::string id = p->message_id.empty() ? std::string() : p->message_id + ":dead";
  send(*dead_letter_, durable_dead_letter_, std::move(dl), std::move(id), p, Leg::dead_letter);
}

void BridgeRelay::on_dead_lettered(Pending* p, std::error_code ec) {
  if (ec) {
    spdlog::error("bridge '{}': dead-letter publish to {} failed: {}", spec_.name,
                  options_.dead_letter_transport, ec.message());
    if (!p->delivery) ++counters_.dropped;
    finish(p, false);
    return;
  }
  ++counters_.dead_lettered;
  finish(p, true);
}

// Settles the source and returns the record to spare_; `p` is not used
// after this.
void BridgeRelay::finish(Pending* p, bool ack) {
  if (p->slot >= pending_.size() || pending_[p->slot].get() != p) return;  // settled already
  if (p->delivery) {
    p->also.push_back(p->delivery);
    for (const auto& d : p->also) {
      if (ack) {
        d->ack();
      } else {
        d->nak(stopping_ ? std::chrono::milliseconds(0) : options_.max_backoff);
      }
    }
    if (by_source_id_ && !p->source_id.empty()) {
      auto it = by_source_id_->find(p->source_id);
      if (it != by_source_id_->end() && it->second == p) by_source_id_->erase(it);
    }
  }
  // Out of pending_ (the last record takes its slot), reset, and kept.
  std::unique_ptr<Pending> own = std::move(pending_[p->slot]);
  if (p->slot + 1 != pending_.size()) {
    pending_[p->slot] = std::move(pending_.back());
    pending_[p->slot]->slot = p->slot;
  }
  pending_.pop_back();
  --counters_.in_flight;
  own->delivery.reset();
  own->also.clear();
  own->attempts = 0;
  own->source_id.clear();
  own->message_id.clear();
  own->out.data = Payload();
  own->out.headers.clear();
  own->out.reply_to.clear();
  if (spare_.size() < kMaxSpare) spare_.push_back(std::move(own));
  maybe_stopped();
}

void BridgeRelay::stop(std::function<void()> done, std::chrono::milliseconds limit) {
  if (running_ && subscription_) subscription_->unsubscribe();
  if (lag_timer_) lag_timer_->cancel();
  running_ = false;
  stopping_ = true;
  stopped_ = std::move(done);
  for (auto& p : pending_) {
    if (p->retry_timer) p->retry_timer->cancel();
  }
  stop_timer_ = std::make_unique<asio::steady_timer>(executor_, limit);
  auto self = shared_from_this();
  stop_timer_->async_wait([self](std::error_code ec) {
    if (ec || !self->stopped_) return;
    spdlog::warn("bridge '{}': stopped with {} message(s) still in flight", self->spec_.name,
                 self->pending_.size());
    auto done = std::move(self->stopped_);
    self->stopped_ = nullptr;
    done();
  });
  asio::post(executor_, [self] { self->maybe_stopped(); });
}

void BridgeRelay::maybe_stopped() {
  if (!stopping_ || !pending_.empty() || !stopped_) return;
  if (stop_timer_) stop_timer_->cancel();
  auto done = std::move(stopped_);
  stopped_ = nullptr;
  asio::post(executor_, std::move(done));
}

BridgeStatus BridgeRelay::status() const {
  BridgeStatus s;
  s.name = spec_.name;
  s.from = spec_.from.transport + ":" + spec_.from.subject;
  s.to = spec_.to.transport + ":" + (spec_.to.subject.empty() ? "{subject}" : spec_.to.subject);
  s.at_least_once = durable_source_;
  s.running = running_;
  auto& c = s.counters;
  c.relayed = counters_.relayed;
  c.failed = counters_.failed;
  c.retried = counters_.retried;
  c.dead_lettered = counters_.dead_lettered;
  c.dropped = counters_.dropped;
  c.redelivered = counters_.redelivered;
  c.duplicates = counters_.duplicates;
  c.in_flight = counters_.in_flight;
  c.lag = counters_.lag;
  s.lag_known = counters_.lag_known;
  return s;
}

// ---- BridgeHost ----

BridgeHost::BridgeHost(asio::any_io_executor executor, PluginHost& host, const Config& config,
                       std::map<std::string, std::shared_ptr<Transport>> existing)
    : executor_(std::move(executor)),
      host_(host),
      config_(config),
      existing_(std::move(existing)) {}

BridgeHost::BridgeHost(App& app)
    : BridgeHost(app.runtime().executor(), app.host(), app.config(),
                 {{app.config().runtime.transport,
                   // Not owned: the runtime keeps its transport, and the App
                   // outlives this host.
                   std::shared_ptr<Transport>(&app.runtime().transport(), [](Transport*) {})}}) {}

BridgeHost::~BridgeHost() = default;

std::shared_ptr<Transport> BridgeHost::instance(const std::string& name) {
  if (auto it = existing_.find(name); it != existing_.end()) return it->second;
  if (auto it = created_.find(name); it != created_.end()) return it->second;
  const TransportConfig& tc = config_.transports.at(name);
  std::shared_ptr<Transport> t;
  try {
    t = host_.create_transport(tc, TransportContext{executor_});
  } catch (const OptionError& e) {
    rethrow_with_location(config_, "transports." + name, e);
  }
  if (auto ec = t->connect()) {
    throw Error(errc::transport_error, "transport '" + name + "' (" + tc.type + " " + tc.url +
                                           "): cannot connect: " + ec.message());
  }
  created_.emplace(name, t);
  return t;
}

// The target codec, and every codec a payload may come in: the two in-tree
// ones when they can be loaded (a build without msgpack has only json).
std::shared_ptr<const CodecConversion> BridgeHost::codec_conversion(const std::string& name,
                                                                    const std::string& key) {
  std::shared_ptr<Codec> target;
  try {
    target = host_.create_codec(name);
  } catch (const std::exception& e) {
    throw ConfigError(config_.source, config_.locate(key), key,
                      "codec '" + name + "' cannot be loaded: " + e.what());
  }
  std::vector<std::shared_ptr<Codec>> decoders{target};
  for (const char* other : {"json", "msgpack"}) {
    if (name == other) continue;
    try {
      decoders.push_back(host_.create_codec(other));
    } catch (const std::exception& e) {
      spdlog::debug("bridge codec conversion: no {} decoder: {}", other, e.what());
    }
  }
  return std::make_shared<CodecConversion>(std::move(target), std::move(decoders));
}

void BridgeHost::start() {
  for (std::size_t i = 0; i < config_.bridges.size(); ++i) {
    const BridgeSpec& spec = config_.bridges[i];
    const std::string path = "bridges[" + std::to_string(i) + "]";
    BridgeOptions options;
    try {
      options = parse_bridge_options(spec);
    } catch (const OptionError& e) {
      rethrow_with_location(config_, path, e);
    }
    if (!options.dead_letter_transport.empty() &&
        !config_.transports.contains(options.dead_letter_transport)) {
      std::string key = path + ".dead_letter.transport";
      throw ConfigError(
          config_.source, config_.locate(key), key,
          "names transport '" + options.dead_letter_transport + "', which is not defined");
    }
    auto from = instance(spec.from.transport);
    auto to = instance(spec.to.transport);
    std::shared_ptr<Transport> dead_letter;
    if (!options.dead_letter_transport.empty())
      dead_letter = instance(options.dead_letter_transport);
    std::shared_ptr<const CodecConversion> conversion;
    if (!options.codec.empty()) conversion = codec_conversion(options.codec, path + ".codec");
    auto relay = std::make_shared<BridgeRelay>(executor_, spec, std::move(options), from, to,
                                               dead_letter, std::move(conversion));
    if (auto ec = relay->start()) {
      throw Error(errc::transport_error, "bridge '" + spec.name + "': cannot subscribe to '" +
                                             spec.from.subject + "' on '" + spec.from.transport +
                                             "' (" + from->type() + "): " + ec.message());
    }
    relays_.push_back(std::move(relay));
  }
}

void BridgeHost::close(std::function<void()> done) {
  struct State {
    std::size_t left = 0;
    std::function<void()> next;
  };
  auto close_transports = [this, done = std::move(done)]() mutable {
    auto state = std::make_shared<State>();
    state->left = created_.size() + 1;
    state->next = std::move(done);
    auto one = [state] {
      if (--state->left == 0) state->next();
    };
    for (auto& [name, t] : created_) t->close(one);
    one();
  };
  auto state = std::make_shared<State>();
  state->left = relays_.size() + 1;
  state->next = std::move(close_transports);
  auto one = [state] {
    if (--state->left == 0) state->next();
  };
  for (auto& relay : relays_) relay->stop(one);
  asio::post(executor_, one);
}

std::vector<BridgeStatus> BridgeHost::status() const {
  std::vector<BridgeStatus> out;
  for (const auto& r : relays_) out.push_back(r->status());
  return out;
}

std::string BridgeHost::metrics_text() const {
  return to_prometheus(status());
}

}  // namespace switchboard::bridges
