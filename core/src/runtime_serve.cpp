// The service side: add, the request pipeline (hooks, routing, validation,
// middleware, handler) and replies.
#include <spdlog/spdlog.h>

#include "envelope_json.hpp"
#include "payload_schema.hpp"
#include "runtime_impl.hpp"
#include "switchboard/subject.hpp"

namespace switchboard {

// An add pattern as the router indexes it: `$` keys split off into `opts`,
// the topic checked as a subscription subject, and a wildcard topic
// ("orders.*") turned into a subject matcher so that acts on "orders.new"
// route to it. Throws Error (invalid_argument).
Json add_routing(const Json& pattern, DollarOptions& opts, std::string& topic) {
  Json routing;
  std::string why;
  if (!split_dollar_keys(pattern, routing, opts, why)) throw Error(errc::invalid_argument, why);
  auto it = routing.find("topic");
  if (it == routing.end() || !it->is_string() || it->get<std::string>().empty()) {
    throw Error(errc::invalid_argument,
                "add pattern needs a non-empty string 'topic': " + routing.dump());
  }
  topic = it->get<std::string>();
  if (validate_subject(topic, true, why)) throw Error(errc::invalid_argument, "add topic: " + why);
  std::string literal_check;
  if (validate_subject(topic, false, literal_check)) *it = Json{{"$subject", topic}};
  return routing;
}

AddHandle Runtime::Impl::add(Json pattern, SyncHandler sync, AsyncHandler async) {
  if (closing) throw Error(errc::closed, "the runtime is closing; no new adds");
  DollarOptions opts;
  std::string name;
  Json routing = add_routing(pattern, opts, name);
  std::string why;
  Json schema = PatternRouter::schema_part(routing);
  if (auto err = check_schema_definition(schema)) {
    throw Error(errc::invalid_argument, "add " + routing.dump() + ": " + *err);
  }
  // As in Hemera: one subscription per topic, shared through the queue
  // group `queue.<topic>` unless pubsub$ (every instance gets every message).
  std::string queue = opts.pubsub ? "" : (opts.queue.empty() ? "queue." + name : opts.queue);
  std::string key = name + '\0' + queue;
  auto& slot = services[key];
  if (!slot) {
    auto service = std::make_unique<ServiceSubscription>();
    service->topic = name;
    service->queue = queue;
    service->router = std::make_unique<PatternRouter>(options.order);
    std::weak_ptr<Impl> weak = weak_from_this();
    ServiceSubscription* raw = service.get();
    std::string subject = name;
    auto ec = transport->subscribe(
        subject, queue,
        [weak, raw](Message msg) {
          if (auto rt = weak.lock()) rt->on_service_message(*raw, std::move(msg));
        },
        service->subscription);
    if (ec) {
      services.erase(key);
      throw Error(errc::transport_error, "subscribe to '" + name + "' failed: " + ec.message());
    }
    slot = std::move(service);
  }
  // As Hemera: the same pattern twice would leave the second unreachable.
  if (!slot->router->find_exact(routing).empty()) {
    throw Error(errc::invalid_argument, "pattern is already in use: " + routing.dump());
  }
  PatternRouter::Id router_id;
  if (auto ec = slot->router->add(routing, router_id, why)) {
    if (slot->router->size() == 0) {
      slot->subscription->unsubscribe();
      services.erase(key);
    }
    throw Error(errc::invalid_argument, "add " + routing.dump() + ": " + why);
  }
  AddEntry entry;
  entry.pattern = PatternRouter::routing_part(routing);
  entry.schema = std::move(schema);
  entry.sync = std::move(sync);
  entry.async = std::move(async);
  slot->entries.emplace(router_id, std::move(entry));
  auto id = next_add_id++;
  adds.emplace(id, std::make_pair(key, router_id));
  // The add is in place; a failing hook is reported, not undone.
  if (auto err = run_hooks(hooks.on_add, std::as_const(routing))) {
    spdlog::warn("on_add hook failed for {}: {}", routing.dump(), err->message());
  }
  return AddHandle(self, id);
}

void Runtime::Impl::on_service_message(ServiceSubscription& service, Message msg) {
  auto state = std::make_shared<CallState>();
  state->rt = shared_from_this();
  state->runtime = self;
  state->service = &service;
  state->codec = &codec_for(msg);
  state->reply_to = std::move(msg.reply_to);

  Json j;
  std::string why;
  if (auto ec = state->codec->decode(msg.data.view(), j, why)) {
    spdlog::warn("request on '{}' dropped: cannot decode ({}: {})", msg.subject,
                 state->codec->name(), why);
    state->request.type = state->reply_to.empty() ? "pubsub" : "request";
    ++inflight;
    return send_reply(state, nullptr, Error(errc::parse_error, "cannot decode request: " + why),
                      true);
  }
  // What decode_request_from leaves in `j` is freed when this returns,
  // after the handler (and a sync handler's reply), not before it.
  if (!decode_request_from(j, state->request, why)) {
    spdlog::warn("request on '{}' dropped: {}", msg.subject, why);
    ++inflight;
    return send_reply(state, nullptr, Error(errc::parse_error, why), true);
  }
  if (state->request.trace.service.empty()) state->request.trace.service = service.topic;
  if (state->request.trace.method.empty()) {
    state->request.trace.method = method_of(state->request.pattern);
  }
  ++inflight;

  if (auto err = run_hooks(hooks.on_request, state->call)) {
    return send_reply(state, nullptr, std::move(*err), true);
  }
  auto id = service.router->lookup(state->request.pattern);
  if (!id) {
    return send_reply(state, nullptr,
                      Error(errc::pattern_not_found, "No action found for this pattern")
                          .with_details({{"pattern", state->request.pattern}}),
                      true);
  }
  run_handler(state, service.entries.at(*id));
}

void Runtime::Impl::run_handler(const std::shared_ptr<CallState>& state, AddEntry& entry) {
  Call& call = state->call;
  if (auto err = validate_payload(entry.schema, call.pattern())) {
    return send_reply(state, nullptr, Error(errc::payload_validation, *err), true);
  }
  // Hemera's order: preHandler hooks, then the add's own middleware.
  if (auto err = run_hooks(hooks.pre_handler, call)) return send_reply(state, nullptr, *err, true);
  if (auto err = run_hooks(entry.middleware, call)) return send_reply(state, nullptr, *err, true);
  try {
    if (entry.sync) {
      Json result = entry.sync(call);
      send_reply(state, std::move(result), std::nullopt, true);
    } else {
      entry.async(call, Reply(state));
    }
  } catch (const Error& e) {
    send_reply(state, nullptr, e, true);
  } catch (const std::exception& e) {
    send_reply(state, nullptr, Error("Error", e.what()), true);
  }
}

void Runtime::Impl::send_reply(const std::shared_ptr<CallState>& state, Json result,
                               std::optional<Error> error, bool final_message) {
  if (closed) {
    spdlog::warn("handler for {} replied after close gave up on it; reply dropped",
                 state->request.trace.method);
    return;
  }
  if (state->finished) {
    spdlog::warn("handler for {} replied after it had finished; reply ignored",
                 state->request.trace.method);
    return;
  }
  Call& call = state->call;
  if (auto err = run_hooks(hooks.on_send, call, result, error)) error = std::move(err);
  if (error) {
    result = nullptr;
    error->add_hop(
        {state->request.trace.service, state->request.trace.method, options.name, now_ms()});
    report_error(*error);
  }
  if (!state->reply_to.empty()) {
    const Codec& reply_codec = state->codec ? *state->codec : *codec;
    std::string bytes;
    try {
      const RequestEnvelope& req = state->request;
      Json error_json = error ? error->to_json() : Json(nullptr);
      bytes = writes_json_envelopes(reply_codec)
                  ? write_json_reply(req.meta, req.trace, req, result, error_json, reply_codec)
                  : reply_codec.encode(encode_reply(req.meta, req.trace, req, result, error_json));
    } catch (const std::exception& e) {
      // A result the codec cannot carry becomes an error reply, not a lost one.
      Error encode_error(errc::parse_error, std::string("reply could not be encoded: ") + e.what());
      bytes = reply_codec.encode(encode_reply(state->request.meta, state->request.trace,
                                              state->request, nullptr, encode_error.to_json()));
    }
    if (bytes.size() > transport->max_payload()) {
      // The caller learns why instead of waiting for its timeout.
      Error too_large(errc::payload_too_large,
                      "reply of " + std::to_string(bytes.size()) +
                          " bytes is larger than the transport's maximum payload of " +
                          std::to_string(transport->max_payload()) + " bytes");
      too_large.add_hop(
          {state->request.trace.service, state->request.trace.method, options.name, now_ms()});
      report_error(too_large);
      bytes = reply_codec.encode(encode_reply(state->request.meta, state->request.trace,
                                              state->request, nullptr, too_large.to_json()));
    }
    if (auto ec = publish_bytes(state->reply_to, std::move(bytes), "", reply_codec)) {
      spdlog::warn("reply to {} for {} not sent: {}", state->reply_to, state->request.trace.method,
                   ec.message());
    }
  } else if (error) {
    spdlog::warn("pubsub handler for {} failed: {}: {}", state->request.trace.method, error->name(),
                 error->message());
  }
  run_hooks(hooks.on_response, call);
  if (final_message) {
    state->finished = true;
    --inflight;
    maybe_finish_close();
  }
}

}  // namespace switchboard
