// Runtime: add/act/remove, publish/subscribe, hooks, plugins and close, over
// one Transport and one Codec.
//
// Threading: the runtime's state lives on the executor it was given, which
// must run one handler at a time (a strand, or an io_context run by one
// thread; App gives it a strand). act(), act_stream() and close() may be
// called from any thread: they are dispatched onto that executor. The other
// calls (add, remove, use, hooks, publish, subscribe) must be made on the
// executor, or before it runs; Reply's methods may be called from any thread.
// The transport must deliver on the same executor (App arranges it).
// Handlers, hooks and subscription callbacks run on it. Completion tokens complete on their
// associated executor (the runtime's executor when the token has none):
// never inside act() itself; a reply's completion runs in place when the
// reply arrives on that executor (asio::dispatch), so it may act again at
// once.
//
// Async results use the signature void(std::error_code, Response): with a
// callback you get both, with asio::use_future a
// std::future<std::tuple<std::error_code, Response>>, and with
// asio::use_awaitable `auto [ec, response] = co_await rt.act(...)`. An error
// never throws out of act(); its details (name, message, code, hops) are in
// response.error.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "switchboard/codec.hpp"
#include "switchboard/error.hpp"
#include "switchboard/json.hpp"
#include "switchboard/pattern_router.hpp"
#include "switchboard/prelude.hpp"
#include "switchboard/runtime_plugin.hpp"
#include "switchboard/trace.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {

struct RuntimeOptions {
  std::string name = "switchboard";                                // app name in hops and logs
  std::chrono::milliseconds timeout{2000};                         // default timeout$
  PatternRouter::Order order = PatternRouter::Order::specificity;  // or Hemera's insertion
  int max_recursion = 0;                // nested act depth limit; 0 = no limit
  std::string inbox_prefix = "_INBOX";  // reply subjects: <prefix>.<node id>.<request>
};

// The outcome of one act (or one message of a streaming act).
struct Response {
  Json result;                 // null on error
  std::optional<Error> error;  // set whenever the error_code is set
  Json meta = Json::object();  // the service's meta, as it replied
  Trace trace;                 // the caller's span, with duration
};

class Runtime;
struct CallState;

// What a handler sees: the request and its context. Valid until the handler
// has replied (sync handlers: until they return).
class Call {
 public:
  const Json& pattern() const;   // the act pattern without `$` keys
  Json& meta();                  // travels and comes back in the reply
  const Json& delegate() const;  // travels one hop
  Json& context();               // local only, inherited by nested acts
  const Trace& trace() const;    // this request's span (the caller's span id)
  const std::string& request_id() const;
  int depth() const;  // nested act depth of this request
  Runtime& runtime() const;

  // A nested act inheriting meta$, context$, the trace (child span) and the
  // depth of this call.
  template <typename Token>
  auto act(Json pattern, Token&& token);

 private:
  friend class Runtime;
  friend struct CallState;
  explicit Call(CallState* state) : state_(state) {}
  std::shared_ptr<CallState> share() const;
  CallState* state_;
};

// The answer handle of an async handler. Copyable; the first send or fail
// ends the request, next() streams one message of several.
class Reply {
 public:
  void send(Json result) const;  // final result
  void next(Json result) const;  // one message of a stream (maxMessages$)
  void fail(Error error) const;  // error reply
  Call& call() const;

 private:
  friend class Runtime;
  explicit Reply(std::shared_ptr<CallState> state) : state_(std::move(state)) {}
  std::shared_ptr<CallState> state_;
};

using SyncHandler = std::function<Json(Call&)>;
using AsyncHandler = std::function<void(Call&, Reply)>;
// Per-add middleware, run in order before the handler; throw Error to reject.
using Middleware = std::function<void(Call&)>;

// Client-side view of an act for the on_act hooks.
struct ActInfo {
  Json pattern;  // what travels (no `$` keys)
  Json meta;
  Json delegate;
  Json context;
  Trace trace;
  std::string request_id;
  std::chrono::milliseconds timeout{0};
  bool pubsub = false;
};

// Handle to one add, to attach middleware after the fact (Hemera's .use()).
class AddHandle {
 public:
  AddHandle() = default;
  AddHandle& use(Middleware middleware);
  PatternRouter::Id id() const { return id_; }

 private:
  friend class Runtime;
  AddHandle(Runtime* rt, PatternRouter::Id id) : rt_(rt), id_(id) {}
  Runtime* rt_ = nullptr;
  PatternRouter::Id id_ = 0;
};

// The private machinery behind act(); defined in the .cpp.
using ActCompletion = std::function<void(std::error_code, Response)>;
using StreamCallback = std::function<void(const Response&)>;

class Runtime {
 public:
  Runtime(asio::any_io_executor executor, std::shared_ptr<Transport> transport,
          std::shared_ptr<Codec> codec, RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Connects the transport and subscribes the reply inbox. Blocks on connect.
  std::error_code start();

  // Registers a handler. `handler` is Json(Call&) (return the result, throw
  // Error to fail) or void(Call&, Reply) (answer later). Throws Error
  // (invalid_argument) for a pattern without a string topic or a bad matcher.
  template <typename Handler>
  AddHandle add(Json pattern, Handler&& handler) {
    if constexpr (std::is_invocable_v<Handler&, Call&, Reply>) {
      return add_async(std::move(pattern), AsyncHandler(std::forward<Handler>(handler)));
    } else {
      return add_sync(std::move(pattern), SyncHandler(std::forward<Handler>(handler)));
    }
  }
  AddHandle add_sync(Json pattern, SyncHandler handler);
  AddHandle add_async(Json pattern, AsyncHandler handler);
  // Removes every add whose routing properties equal `pattern`'s; returns how many.
  std::size_t remove(const Json& pattern);

  // Request/reply (or fire-and-forget with pubsub$). Completion:
  // void(std::error_code, Response).
  template <typename Token>
  auto act(Json pattern, Token&& token) {
    return initiate_act(nullptr, std::move(pattern), nullptr, std::forward<Token>(token));
  }

  // Several replies to one act (maxMessages$ / expectedMessages$): each reply
  // goes to `on_message`; the token completes with the last Response once the
  // expected count arrived, or at the timeout (TimeoutError if fewer than
  // expectedMessages$, or none at all).
  template <typename Token>
  auto act_stream(Json pattern, StreamCallback on_message, Token&& token) {
    return initiate_act(nullptr, std::move(pattern), std::move(on_message),
                        std::forward<Token>(token));
  }

  // Plain messaging with NATS subject rules.
  std::error_code publish(const std::string& subject, const Json& data);
  std::error_code publish_raw(Message message);
  using SubscriptionId = std::uint64_t;
  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            std::function<void(const Message&)> handler,
                            SubscriptionId* id = nullptr);
  void unsubscribe(SubscriptionId id);

  // Runtime plugins. Throws Error (plugin_error) for a missing dependency or
  // a duplicate name, naming both.
  void use(std::shared_ptr<RuntimePlugin> plugin, const Json& options = Json::object());
  std::vector<std::shared_ptr<RuntimePlugin>> plugins() const;

  // Extension points (Hemera's onClientPreRequest ... onClose). A hook that
  // throws Error aborts the request with that error.
  void on_act(std::function<void(ActInfo&)> hook);
  void on_act_finished(std::function<void(const ActInfo&, const Response&)> hook);
  void on_request(std::function<void(Call&)> hook);
  void pre_handler(std::function<void(Call&)> hook);
  void on_send(std::function<void(Call&, Json& result, std::optional<Error>& error)> hook);
  void on_response(std::function<void(Call&)> hook);
  void on_error(std::function<void(const Error&)> hook);
  void on_add(std::function<void(const Json& pattern)> hook);
  void on_close(std::function<void()> hook);
  // Transport connection events (connected, disconnected, reconnected,
  // closed, error, slow consumer), after the runtime has logged them.
  void on_transport_status(std::function<void(const StatusEvent&)> hook);

  // Graceful close: stop taking work, let in-flight handlers and acts
  // finish, run on_close hooks, close the transport. Completion: void().
  template <typename Token>
  auto close(Token&& token) {
    return asio::async_initiate<Token, void()>(
        [this](auto handler) {
          auto h = std::make_shared<std::decay_t<decltype(handler)>>(std::move(handler));
          auto ex = asio::get_associated_executor(*h, strand_executor());
          start_close([h, ex]() mutable { asio::post(ex, [h]() mutable { std::move (*h)(); }); });
        },
        token);
  }

  const RuntimeOptions& options() const;
  asio::any_io_executor executor() const;
  Transport& transport() const;
  // The codec this runtime encodes its own acts and publishes with.
  const Codec& codec() const;
  // Also decode messages in `codec`: an incoming message is decoded by the
  // codec its content-type header names, else by the first whose sniff()
  // recognises the bytes (the runtime's own codec first). A request is
  // answered in the codec it came in, so a msgpack node still answers a JSON
  // caller (a Hemera service) in JSON. Call before start().
  void add_decoder(std::shared_ptr<Codec> codec);
  std::size_t pending_requests() const;   // acts waiting for replies
  std::size_t inflight_handlers() const;  // requests being handled

 private:
  friend class Call;
  friend class Reply;
  friend class AddHandle;
  friend struct CallState;

  template <typename Token>
  auto initiate_act(std::shared_ptr<CallState> parent, Json pattern, StreamCallback on_message,
                    Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, Response)>(
        [this, parent = std::move(parent), on_message = std::move(on_message)](
            auto handler, Json pattern) mutable {
          using H = std::decay_t<decltype(handler)>;
          // `initiated`: set once start_act returned. A completion before
          // that (a failure found at once) is posted, as Asio requires of an
          // initiating function; one after it (a reply, a timeout) is
          // dispatched, and runs in place when the handler's executor is
          // the one delivering the reply: no extra trip through the
          // scheduler per act.
          struct Completion {
            explicit Completion(H handler) : handler(std::move(handler)) {}
            H handler;
            std::atomic<bool> initiated{false};
          };
          auto c = std::make_shared<Completion>(std::move(handler));
          auto ex = asio::get_associated_executor(c->handler, strand_executor());
          ActCompletion done = [c, ex](std::error_code ec, Response r) {
            auto call = [c, ec, r = std::move(r)]() mutable {
              std::move(c->handler)(ec, std::move(r));
            };
            if (c->initiated.load(std::memory_order_acquire)) {
              asio::dispatch(ex, std::move(call));
            } else {
              asio::post(ex, std::move(call));
            }
          };
          start_act(std::move(parent), std::move(pattern), std::move(on_message), std::move(done));
          c->initiated.store(true, std::memory_order_release);
        },
        token, std::move(pattern));
  }

  asio::any_io_executor strand_executor() const;
  void start_act(std::shared_ptr<CallState> parent, Json pattern, StreamCallback on_message,
                 ActCompletion done);
  void start_close(std::function<void()> done);
  void add_middleware(PatternRouter::Id id, Middleware middleware);

  struct Impl;
  std::shared_ptr<Impl> impl_;
};

template <typename Token>
auto Call::act(Json pattern, Token&& token) {
  return runtime().initiate_act(share(), std::move(pattern), nullptr, std::forward<Token>(token));
}

}  // namespace switchboard
