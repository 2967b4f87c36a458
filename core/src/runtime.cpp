// Runtime set-up, plugins, hooks, plain pub/sub and graceful close. The
// client side of act is in runtime_act.cpp, the service side in
// runtime_serve.cpp.
#include <spdlog/spdlog.h>

#include "runtime_impl.hpp"
#include "switchboard/subject.hpp"

namespace switchboard {

// ---- Call and Reply -------------------------------------------------------

const Json& Call::pattern() const {
  return state_->request.pattern;
}
Json& Call::meta() {
  return state_->request.meta;
}
const Json& Call::delegate() const {
  return state_->request.delegate;
}
Json& Call::context() {
  return state_->context;
}
const Trace& Call::trace() const {
  return state_->request.trace;
}
const std::string& Call::request_id() const {
  return state_->request.request_id;
}
int Call::depth() const {
  return state_->request.depth;
}
Runtime& Call::runtime() const {
  return *state_->runtime;
}
std::shared_ptr<CallState> Call::share() const {
  return state_->shared_from_this();
}

// Replies may come from any thread (a handler that finished its work
// elsewhere); they run on the runtime's executor.
void Reply::send(Json result) const {
  asio::dispatch(state_->rt->executor, [s = state_, result = std::move(result)]() mutable {
    s->rt->send_reply(s, std::move(result), std::nullopt, true);
  });
}
void Reply::next(Json result) const {
  asio::dispatch(state_->rt->executor, [s = state_, result = std::move(result)]() mutable {
    s->rt->send_reply(s, std::move(result), std::nullopt, false);
  });
}
void Reply::fail(Error error) const {
  asio::dispatch(state_->rt->executor, [s = state_, error = std::move(error)]() mutable {
    s->rt->send_reply(s, nullptr, std::move(error), true);
  });
}
Call& Reply::call() const {
  return state_->call;
}

AddHandle& AddHandle::use(Middleware middleware) {
  if (rt_) rt_->add_middleware(id_, std::move(middleware));
  return *this;
}

// ---- Runtime ----------------------------------------------------------------

Runtime::Runtime(asio::any_io_executor executor, std::shared_ptr<Transport> transport,
                 std::shared_ptr<Codec> codec, RuntimeOptions options)
    : impl_(std::make_shared<Impl>()) {
  impl_->self = this;
  impl_->executor = std::move(executor);
  impl_->transport = std::move(transport);
  impl_->codec = std::move(codec);
  impl_->decoders.push_back(impl_->codec);
  impl_->options = std::move(options);
  impl_->inbox_prefix = impl_->options.inbox_prefix + "." + impl_->node_id + ".";
}

Runtime::~Runtime() {
  // Timers and subscriptions hold weak references; cut them loose.
  impl_->stop_deadline_timer();
  impl_->self = nullptr;
}

std::error_code Runtime::start() {
  if (impl_->started) return {};
  std::weak_ptr<Impl> weak = impl_;
  // Before connect(), so that the first `connected` is seen too.
  impl_->transport->on_status([weak](const StatusEvent& ev) {
    if (auto rt = weak.lock()) rt->on_transport_status(ev);
  });
  if (auto ec = impl_->transport->connect()) return ec;
  auto ec = impl_->transport->subscribe(
      impl_->inbox_prefix + "*", "",
      [weak](Message msg) {
        if (auto rt = weak.lock()) rt->on_inbox_message(msg);
      },
      impl_->inbox);
  if (ec) return ec;
  impl_->started = true;
  return {};
}

const RuntimeOptions& Runtime::options() const {
  return impl_->options;
}
asio::any_io_executor Runtime::executor() const {
  return impl_->executor;
}
asio::any_io_executor Runtime::strand_executor() const {
  return impl_->executor;
}
Transport& Runtime::transport() const {
  return *impl_->transport;
}
const Codec& Runtime::codec() const {
  return *impl_->codec;
}
void Runtime::add_decoder(std::shared_ptr<Codec> codec) {
  for (const auto& d : impl_->decoders) {
    if (d->name() == codec->name()) return;
  }
  impl_->decoders.push_back(std::move(codec));
}
std::size_t Runtime::pending_requests() const {
  return impl_->pending.size();
}
std::size_t Runtime::inflight_handlers() const {
  return impl_->inflight;
}

void Runtime::start_act(std::shared_ptr<CallState> parent, Json pattern, StreamCallback on_message,
                        ActCompletion done) {
  asio::dispatch(
      impl_->executor, [impl = impl_, parent = std::move(parent), pattern = std::move(pattern),
                        on_message = std::move(on_message), done = std::move(done)]() mutable {
        impl->act(std::move(parent), std::move(pattern), std::move(on_message), std::move(done));
      });
}

AddHandle Runtime::add_sync(Json pattern, SyncHandler handler) {
  return impl_->add(std::move(pattern), std::move(handler), nullptr);
}

AddHandle Runtime::add_async(Json pattern, AsyncHandler handler) {
  return impl_->add(std::move(pattern), nullptr, std::move(handler));
}

void Runtime::add_middleware(PatternRouter::Id id, Middleware middleware) {
  auto it = impl_->adds.find(id);
  if (it == impl_->adds.end()) return;
  auto& service = impl_->services.at(it->second.first);
  service->entries.at(it->second.second).middleware.push_back(std::move(middleware));
}

std::size_t Runtime::remove(const Json& pattern) {
  std::size_t removed = 0;
  DollarOptions opts;
  std::string topic;
  Json routing = PatternRouter::routing_part(add_routing(pattern, opts, topic));
  for (auto s = impl_->services.begin(); s != impl_->services.end();) {
    auto& service = *s->second;
    for (auto id : service.router->find_exact(routing)) {
      service.router->remove(id);
      service.entries.erase(id);
      ++removed;
    }
    if (service.router->size() == 0) {
      service.subscription->unsubscribe();
      s = impl_->services.erase(s);
    } else {
      ++s;
    }
  }
  for (auto a = impl_->adds.begin(); a != impl_->adds.end();) {
    auto s = impl_->services.find(a->second.first);
    bool gone = s == impl_->services.end() || !s->second->entries.count(a->second.second);
    a = gone ? impl_->adds.erase(a) : std::next(a);
  }
  return removed;
}

// ---- plugins and hooks ------------------------------------------------------

void Runtime::use(std::shared_ptr<RuntimePlugin> plugin, const Json& options) {
  auto name = plugin->name();
  for (const auto& p : impl_->plugins) {
    if (p->name() == name) {
      throw Error(errc::plugin_error, "plugin '" + name + "' is already registered");
    }
  }
  for (const auto& dep : plugin->dependencies()) {
    bool found = false;
    for (const auto& p : impl_->plugins) found = found || p->name() == dep;
    if (!found) {
      throw Error(errc::plugin_error, "plugin '" + name + "' depends on '" + dep +
                                          "', which is not registered; register '" + dep +
                                          "' first");
    }
  }
  plugin->attach(*this, options);
  impl_->plugins.push_back(std::move(plugin));
  spdlog::debug("plugin {} {} registered", name, impl_->plugins.back()->version());
}

std::vector<std::shared_ptr<RuntimePlugin>> Runtime::plugins() const {
  return impl_->plugins;
}

void Runtime::on_act(std::function<void(ActInfo&)> h) {
  impl_->hooks.on_act.push_back(std::move(h));
}
void Runtime::on_act_finished(std::function<void(const ActInfo&, const Response&)> h) {
  impl_->hooks.on_act_finished.push_back(std::move(h));
}
void Runtime::on_request(std::function<void(Call&)> h) {
  impl_->hooks.on_request.push_back(std::move(h));
}
void Runtime::pre_handler(std::function<void(Call&)> h) {
  impl_->hooks.pre_handler.push_back(std::move(h));
}
void Runtime::on_send(std::function<void(Call&, Json&, std::optional<Error>&)> h) {
  impl_->hooks.on_send.push_back(std::move(h));
}
void Runtime::on_response(std::function<void(Call&)> h) {
  impl_->hooks.on_response.push_back(std::move(h));
}
void Runtime::on_error(std::function<void(const Error&)> h) {
  impl_->hooks.on_error.push_back(std::move(h));
}
void Runtime::on_add(std::function<void(const Json&)> h) {
  impl_->hooks.on_add.push_back(std::move(h));
}
void Runtime::on_close(std::function<void()> h) {
  impl_->hooks.on_close.push_back(std::move(h));
}
void Runtime::on_transport_status(std::function<void(const StatusEvent&)> h) {
  impl_->hooks.on_transport_status.push_back(std::move(h));
}

void Runtime::Impl::on_transport_status(const StatusEvent& ev) {
  // Connection changes matter to operators; open and close are routine.
  auto level = spdlog::level::info;
  if (ev.status == TransportStatus::error || ev.status == TransportStatus::slow_consumer ||
      ev.status == TransportStatus::disconnected) {
    level = spdlog::level::warn;
  } else if (ev.status == TransportStatus::connected || ev.status == TransportStatus::closed) {
    level = spdlog::level::debug;
  }
  spdlog::log(level, "transport {}: {}", to_string(ev.status), ev.detail);
  if (ev.status == TransportStatus::disconnected && !pending.empty()) {
    // Replies sent to us while we are away are lost (core NATS keeps
    // nothing for a disconnected client): fail now instead of at timeout.
    fail_pending(errc::disconnected, "transport disconnected before the reply arrived");
  }
  const StatusEvent& event = ev;
  if (auto err = run_hooks(hooks.on_transport_status, event)) {
    spdlog::warn("on_transport_status hook failed: {}", err->message());
  }
}

void Runtime::Impl::report_error(const Error& error) {
  for (const auto& hook : hooks.on_error) {
    try {
      hook(error);
    } catch (const std::exception& e) {
      spdlog::warn("on_error hook threw: {}", e.what());
    }
  }
}

// ---- plain pub/sub ----------------------------------------------------------

const Codec& Runtime::Impl::codec_for(const Message& msg) const {
  if (decoders.size() == 1) return *codec;
  if (auto type = msg.headers.find("content-type"); type != msg.headers.end()) {
    for (const auto& d : decoders) {
      if (d->content_type() == type->second) return *d;
    }
  }
  for (const auto& d : decoders) {
    if (d->sniff(msg.data.view())) return *d;
  }
  return *codec;  // its decode() then says what is wrong with the bytes
}

std::error_code Runtime::Impl::publish_bytes(const std::string& subject, std::string bytes,
                                             const std::string& reply_to, const Codec& encoded_by) {
  Message msg;
  msg.subject = subject;
  msg.data = Payload(std::move(bytes));
  msg.reply_to = reply_to;
  // JSON is what every peer assumes (Hemera sends no headers at all), and a
  // header turns each NATS message into a costlier header message; only
  // other codecs say what they are.
  if (encoded_by.name() != "json") {
    msg.headers.emplace("content-type", encoded_by.content_type());
  }
  return transport->publish(std::move(msg));
}

std::error_code Runtime::publish(const std::string& subject, const Json& data) {
  std::string why;
  if (auto ec = validate_subject(subject, false, why)) {
    spdlog::warn("publish: {}", why);
    return ec;
  }
  if (impl_->closing) return make_error_code(errc::closed);
  return impl_->publish_bytes(subject, impl_->codec->encode(data), "", *impl_->codec);
}

std::error_code Runtime::publish_raw(Message message) {
  if (impl_->closing) return make_error_code(errc::closed);
  return impl_->transport->publish(std::move(message));
}

std::error_code Runtime::subscribe(const std::string& subject, const std::string& queue_group,
                                   std::function<void(const Message&)> handler,
                                   SubscriptionId* id) {
  std::string why;
  if (auto ec = validate_subject(subject, true, why)) {
    spdlog::warn("subscribe: {}", why);
    return ec;
  }
  if (impl_->closing) return make_error_code(errc::closed);
  auto raw_id = impl_->next_raw_id++;
  std::weak_ptr<Impl> weak = impl_;
  RawSubscription raw;
  raw.handler = std::move(handler);
  auto ec = impl_->transport->subscribe(
      subject, queue_group,
      [weak, raw_id](Message msg) {
        auto rt = weak.lock();
        if (!rt) return;
        auto it = rt->raw.find(raw_id);
        if (it == rt->raw.end()) return;
        try {
          it->second.handler(msg);
        } catch (const std::exception& e) {
          spdlog::warn("subscriber on '{}' threw: {}", msg.subject, e.what());
        }
      },
      raw.subscription);
  if (ec) return ec;
  impl_->raw.emplace(raw_id, std::move(raw));
  if (id) *id = raw_id;
  return {};
}

void Runtime::unsubscribe(SubscriptionId id) {
  auto it = impl_->raw.find(id);
  if (it == impl_->raw.end()) return;
  it->second.subscription->unsubscribe();
  impl_->raw.erase(it);
}

// ---- close ------------------------------------------------------------------

void Runtime::start_close(std::function<void()> done) {
  asio::dispatch(impl_->executor, [impl = impl_, done = std::move(done)]() mutable {
    if (impl->closed || impl->closing) {
      // A second close completes when the first does (or at once).
      if (impl->closed) {
        done();
      } else {
        auto first = std::move(impl->close_done);
        impl->close_done = [first = std::move(first), done = std::move(done)] {
          if (first) first();
          done();
        };
      }
      return;
    }
    impl->closing = true;
    impl->close_done = std::move(done);
    // Stop taking new requests: queue groups move work to other members.
    for (auto& [key, service] : impl->services) service->subscription->unsubscribe();
    // Work gets one default timeout to finish; a handler that never replies
    // must not keep the process from stopping.
    impl->close_timer = std::make_unique<asio::steady_timer>(impl->executor, impl->options.timeout);
    impl->close_timer->async_wait([weak = std::weak_ptr<Impl>(impl)](std::error_code ec) {
      if (auto rt = weak.lock(); rt && !ec) rt->force_close();
    });
    impl->maybe_finish_close();
  });
}

void Runtime::Impl::fail_pending(errc kind, const std::string& message) {
  std::vector<std::string> ids;
  for (const auto& [id, p] : pending) ids.push_back(id);
  for (const auto& id : ids) {
    Response r;
    r.error = Error(kind, message);
    finish_act(id, make_error_code(kind), std::move(r));
  }
}

void Runtime::Impl::force_close() {
  if (closed) return;
  spdlog::warn("close: gave up after {} ms on {} in-flight handler(s) and {} pending act(s)",
               options.timeout.count(), inflight, pending.size());
  fail_pending(errc::closed, "the runtime closed before a reply arrived");
  inflight = 0;  // late replies of abandoned handlers are dropped (see send_reply)
  maybe_finish_close();
}

void Runtime::Impl::maybe_finish_close() {
  if (!closing || closed || inflight > 0 || !pending.empty()) return;
  closed = true;
  if (close_timer) close_timer->cancel();
  for (const auto& hook : hooks.on_close) {
    try {
      hook();
    } catch (const std::exception& e) {
      spdlog::warn("on_close hook threw: {}", e.what());
    }
  }
  if (inbox) inbox->unsubscribe();
  for (auto& [id, r] : raw) r.subscription->unsubscribe();
  auto done = std::move(close_done);
  transport->close([self = shared_from_this(), done = std::move(done)] {
    self->services.clear();
    self->raw.clear();
    if (done) done();
  });
}

}  // namespace switchboard
