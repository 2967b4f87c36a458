// The client side of act: options, inheritance from a parent call, the
// envelope, the reply inbox, timeouts and streams.
#include <spdlog/spdlog.h>

#include "envelope_json.hpp"
#include "runtime_impl.hpp"

namespace switchboard {
namespace {

Response error_response(Error error) {
  Response r;
  r.error = std::move(error);
  return r;
}

}  // namespace

void Runtime::Impl::act(std::shared_ptr<CallState> parent, Json pattern, StreamCallback on_message,
                        ActCompletion done) {
  auto fail = [&](Error error) {
    report_error(error);
    auto ec = error.error_code();
    done(ec, error_response(std::move(error)));
  };
  // While closing, in-flight handlers may still call downstream (parent
  // set); only new top-level work is refused.
  if (closed || (closing && !parent)) {
    return fail(Error(errc::closed, "the runtime is closing; no new acts"));
  }
  if (!started) return fail(Error(errc::transport_error, "the runtime is not started"));

  ActInfo info;
  DollarOptions opts;
  std::string why;
  if (!split_dollar_keys(std::move(pattern), info.pattern, opts, why)) {
    return fail(Error(errc::invalid_argument, why));
  }
  auto topic = info.pattern.find("topic");
  if (topic == info.pattern.end() || !topic->is_string() || topic->get<std::string>().empty()) {
    return fail(Error(errc::invalid_argument,
                      "act pattern needs a non-empty string 'topic': " + info.pattern.dump()));
  }

  // Inheritance from the call this act is nested in.
  int depth = 0;
  info.meta = Json::object();
  info.context = Json::object();
  if (parent) {
    info.meta = parent->request.meta;
    info.context = parent->context;
    depth = parent->request.depth + 1;
    info.trace.trace_id = parent->request.trace.trace_id;
    info.trace.parent_span_id = parent->request.trace.span_id;
  }
  info.meta.update(opts.meta);
  info.context.update(opts.context);
  info.delegate = opts.delegate;
  if (options.max_recursion > 0 && depth >= options.max_recursion) {
    return fail(Error(errc::max_recursion, "max recursion depth " +
                                               std::to_string(options.max_recursion) +
                                               " reached at " + method_of(info.pattern)));
  }
  if (opts.trace.is_object()) {
    auto given = Trace::from_json(opts.trace);
    if (!given.trace_id.empty()) info.trace.trace_id = given.trace_id;
    if (!given.parent_span_id.empty()) info.trace.parent_span_id = given.parent_span_id;
    if (!given.span_id.empty()) info.trace.span_id = given.span_id;
  }
  if (info.trace.trace_id.empty()) info.trace.trace_id = random_id();
  if (info.trace.span_id.empty()) info.trace.span_id = random_id();
  info.trace.timestamp = now_ms();
  info.trace.service = topic->get<std::string>();
  info.trace.method = method_of(info.pattern);
  info.request_id = opts.request_id.empty() ? random_id() : opts.request_id;
  info.timeout = opts.timeout.value_or(options.timeout);
  info.pubsub = opts.pubsub;

  if (auto err = run_hooks(hooks.on_act, info)) return fail(std::move(*err));

  const char* type = info.pubsub ? "pubsub" : "request";
  std::string bytes;
  if (writes_json_envelopes(*codec)) {
    bytes = write_json_request(info.pattern, info.meta, info.delegate, info.trace, info.request_id,
                               type, depth, *codec);
  } else {
    RequestEnvelope env;
    env.pattern = info.pattern;
    env.meta = info.meta;
    env.delegate = info.delegate;
    env.trace = info.trace;
    env.request_id = info.request_id;
    env.type = type;
    env.depth = depth;
    bytes = codec->encode(encode_request(std::move(env)));
  }

  if (info.pubsub) {
    auto ec = publish_bytes(info.trace.service, std::move(bytes), "", *codec);
    Response r;
    r.trace = info.trace;
    if (ec) {
      errc kind =
          ec.category() == category() ? static_cast<errc>(ec.value()) : errc::transport_error;
      r.error = Error(kind, "publish to '" + info.trace.service + "' failed: " + ec.message());
    }
    const ActInfo& finished = info;
    const Response& outcome = r;
    run_hooks(hooks.on_act_finished, finished, outcome);
    if (r.error) report_error(*r.error);
    return done(ec, std::move(r));
  }

  if (pending.count(info.request_id)) {
    return fail(Error(errc::invalid_argument, "requestId$ '" + info.request_id + "' is in use"));
  }
  auto entry = std::make_unique<PendingAct>();
  entry->done = std::move(done);
  entry->on_message = std::move(on_message);
  entry->max_messages = opts.max_messages;
  entry->expected_messages = opts.expected_messages;
  set_deadline(*entry, info.timeout);
  auto id = info.request_id;
  auto subject = info.trace.service;
  entry->info = std::move(info);
  pending.emplace(id, std::move(entry));

  std::size_t size = bytes.size();
  if (auto ec = publish_bytes(subject, std::move(bytes), inbox_prefix + id, *codec)) {
    // Our own codes keep their kind (no_responders, payload_too_large, closed).
    errc kind = ec.category() == category() ? static_cast<errc>(ec.value()) : errc::transport_error;
    std::string message = "publish to '" + subject + "' failed: " + ec.message();
    if (kind == errc::no_responders) message = "no responders on '" + subject + "'";
    if (ec == make_error_code(errc::payload_too_large)) {
      message = "request of " + std::to_string(size) + " bytes to '" + subject +
                "' is larger than the transport's maximum payload of " +
                std::to_string(transport->max_payload()) + " bytes";
    }
    finish_act(id, make_error_code(kind), error_response(Error(kind, message)));
  }
}

void Runtime::Impl::on_inbox_message(const Message& msg) {
  auto id = msg.subject.substr(inbox_prefix.size());
  auto it = pending.find(id);
  if (it == pending.end()) {
    spdlog::debug("late or unknown reply on {}", msg.subject);
    return;
  }
  PendingAct& p = *it->second;
  // What is left of the decoded reply is freed when this returns: after the
  // caller's completion, which finish_act dispatches in place.
  Json j;
  std::string why;
  Response r;
  r.trace = p.info.trace;
  r.trace.duration = now_ms() - p.info.trace.timestamp;
  // NATS answers a request nobody listens to with an empty "Status: 503".
  if (auto status = msg.headers.find("Status");
      status != msg.headers.end() && status->second == "503" && msg.data.empty()) {
    r.error = Error(errc::no_responders, "no responders on '" + p.info.trace.service + "'");
    return finish_act(id, make_error_code(errc::no_responders), std::move(r));
  }
  if (auto ec = codec_for(msg).decode(msg.data.view(), j, why); ec || !j.is_object()) {
    r.error = Error(errc::parse_error, "reply on " + msg.subject + " could not be decoded: " +
                                           (ec ? why : std::string("not an object")));
    return finish_act(id, make_error_code(errc::parse_error), std::move(r));
  }
  if (auto m = j.find("meta"); m != j.end() && m->is_object()) r.meta = std::move(*m);
  if (auto e = j.find("error"); e != j.end() && !e->is_null()) {
    r.error = Error::from_json(*e);
  } else if (auto res = j.find("result"); res != j.end()) {
    r.result = std::move(*res);
  }
  std::error_code ec = r.error ? r.error->error_code() : std::error_code();

  bool streaming = p.max_messages != 0 || p.expected_messages > 0;
  if (!streaming) return finish_act(id, ec, std::move(r));

  ++p.received;
  if (p.on_message) {
    try {
      p.on_message(r);
    } catch (const std::exception& e) {
      spdlog::warn("stream callback threw: {}", e.what());
    }
  }
  bool enough = (p.expected_messages > 0 && p.received >= p.expected_messages) ||
                (p.max_messages > 0 && p.received >= p.max_messages);
  if (enough) return finish_act(id, ec, std::move(r));
  p.last = std::move(r);
  // A stream stays open until the timeout since its last message.
  set_deadline(p, p.info.timeout);
}

void Runtime::Impl::on_act_timeout(const std::string& id) {
  auto it = pending.find(id);
  if (it == pending.end()) return;
  PendingAct& p = *it->second;
  bool stream_ended_normally = p.received > 0 && p.expected_messages == 0 && p.max_messages != 0;
  if (stream_ended_normally) {
    std::error_code ec = p.last.error ? p.last.error->error_code() : std::error_code();
    return finish_act(id, ec, std::move(p.last));
  }
  Response r;
  r.trace = p.info.trace;
  r.trace.duration = now_ms() - p.info.trace.timestamp;
  std::string detail = p.expected_messages > 0
                           ? " (" + std::to_string(p.received) + " of " +
                                 std::to_string(p.expected_messages) + " expected messages)"
                           : "";
  r.error = Error(errc::timeout, "Timeout: " + p.info.trace.method + " after " +
                                     std::to_string(p.info.timeout.count()) + " ms" + detail);
  finish_act(id, make_error_code(errc::timeout), std::move(r));
}

void Runtime::Impl::finish_act(const std::string& id, std::error_code ec, Response response) {
  auto it = pending.find(id);
  if (it == pending.end()) return;
  auto entry = std::move(it->second);
  pending.erase(it);
  clear_deadline(*entry);
  for (const auto& hook : hooks.on_act_finished) {
    try {
      hook(entry->info, response);
    } catch (const std::exception& e) {
      spdlog::warn("on_act_finished hook threw: {}", e.what());
    }
  }
  if (response.error) report_error(*response.error);
  entry->done(ec, std::move(response));
  // The act's state is freed now, after its completion (which, dispatched in
  // place, has run and may have acted again). Nothing left to time out: the
  // armed timer would keep io_context::run() from returning until it fires.
  entry.reset();
  if (deadlines.empty()) stop_deadline_timer();
  maybe_finish_close();
}

void Runtime::Impl::set_deadline(PendingAct& p, std::chrono::milliseconds after) {
  clear_deadline(p);
  p.deadline = std::chrono::steady_clock::now() + after;
  p.has_deadline = true;
  deadlines.emplace(p.deadline, &p);
  if (p.deadline < deadline_timer_at) arm_deadline_timer(p.deadline);
}

void Runtime::Impl::clear_deadline(PendingAct& p) {
  if (!p.has_deadline) return;
  deadlines.erase({p.deadline, &p});
  p.has_deadline = false;
}

void Runtime::Impl::arm_deadline_timer(std::chrono::steady_clock::time_point at) {
  if (!deadline_timer) deadline_timer = std::make_unique<asio::steady_timer>(executor);
  deadline_timer_at = at;
  deadline_timer->expires_at(at);
  deadline_timer->async_wait([weak = weak_from_this(), at](std::error_code ec) {
    auto rt = weak.lock();
    // Cancelled, or re-armed since (a stale wake-up is harmless but useless).
    if (ec || !rt || rt->deadline_timer_at != at) return;
    rt->on_deadline_timer();
  });
}

void Runtime::Impl::on_deadline_timer() {
  deadline_timer_at = std::chrono::steady_clock::time_point::max();
  auto now = std::chrono::steady_clock::now();
  while (!deadlines.empty() && deadlines.begin()->first <= now) {
    PendingAct* p = deadlines.begin()->second;
    deadlines.erase(deadlines.begin());
    p->has_deadline = false;
    std::string id = p->info.request_id;
    on_act_timeout(id);  // finishes the act (and may start others)
  }
  if (!deadlines.empty() && deadlines.begin()->first < deadline_timer_at) {
    arm_deadline_timer(deadlines.begin()->first);
  }
}

void Runtime::Impl::stop_deadline_timer() {
  deadline_timer_at = std::chrono::steady_clock::time_point::max();
  if (deadline_timer) deadline_timer->cancel();
}

}  // namespace switchboard
