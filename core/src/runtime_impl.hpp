// The runtime's private state, shared by runtime.cpp (setup, plugins, hooks,
// pub/sub, close), runtime_act.cpp (the client side) and runtime_serve.cpp
// (the service side). Everything here is touched only on the executor.
#pragma once

#include <chrono>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "envelope.hpp"
#include "switchboard/runtime.hpp"

namespace switchboard {

// One add: its handler, schema and middleware.
struct AddEntry {
  Json pattern;  // routing part, as added (for remove and listing)
  Json schema;   // payload schemas
  SyncHandler sync;
  AsyncHandler async;
  std::vector<Middleware> middleware;
};

// One transport subscription serving the adds of one topic and queue group.
struct ServiceSubscription {
  std::string topic;
  std::string queue;  // empty for pubsub$ adds
  std::unique_ptr<Subscription> subscription;
  std::unique_ptr<PatternRouter> router;
  std::unordered_map<PatternRouter::Id, AddEntry> entries;
};

// A request being handled; shared by Call and Reply handles.
struct CallState : std::enable_shared_from_this<CallState> {
  std::shared_ptr<Runtime::Impl> rt;
  Runtime* runtime = nullptr;
  ServiceSubscription* service = nullptr;
  RequestEnvelope request;
  Json context = Json::object();
  std::string reply_to;
  const Codec* codec = nullptr;  // the request's codec; the reply goes out in it
  bool finished = false;
  Call call{this};
};

// An act waiting for its reply (or replies).
struct PendingAct {
  ActInfo info;
  ActCompletion done;
  StreamCallback on_message;
  int max_messages = 0;
  int expected_messages = 0;
  int received = 0;
  Response last;
  // When the act (or a stream, since its last message) times out; an entry
  // of Runtime::Impl::deadlines while `has_deadline`.
  std::chrono::steady_clock::time_point deadline{};
  bool has_deadline = false;
};

struct RawSubscription {
  std::unique_ptr<Subscription> subscription;
  std::function<void(const Message&)> handler;
};

struct Hooks {
  std::vector<std::function<void(ActInfo&)>> on_act;
  std::vector<std::function<void(const ActInfo&, const Response&)>> on_act_finished;
  std::vector<std::function<void(Call&)>> on_request;
  std::vector<std::function<void(Call&)>> pre_handler;
  std::vector<std::function<void(Call&, Json&, std::optional<Error>&)>> on_send;
  std::vector<std::function<void(Call&)>> on_response;
  std::vector<std::function<void(const Error&)>> on_error;
  std::vector<std::function<void(const Json&)>> on_add;
  std::vector<std::function<void()>> on_close;
  std::vector<std::function<void(const StatusEvent&)>> on_transport_status;
};

struct Runtime::Impl : std::enable_shared_from_this<Runtime::Impl> {
  Runtime* self = nullptr;
  asio::any_io_executor executor;
  std::shared_ptr<Transport> transport;
  std::shared_ptr<Codec> codec;                  // encodes what this node starts
  std::vector<std::shared_ptr<Codec>> decoders;  // codec first, then add_decoder()'s
  RuntimeOptions options;
  std::string node_id = random_id();
  std::string inbox_prefix;  // "<prefix>.<node id>."

  bool started = false;
  bool closing = false;
  bool closed = false;
  std::function<void()> close_done;
  std::unique_ptr<asio::steady_timer> close_timer;

  std::map<std::string, std::unique_ptr<ServiceSubscription>> services;  // by topic + queue
  // Global add id -> (service key, router id).
  std::unordered_map<PatternRouter::Id, std::pair<std::string, PatternRouter::Id>> adds;
  PatternRouter::Id next_add_id = 1;

  std::unique_ptr<Subscription> inbox;
  std::unordered_map<std::string, std::unique_ptr<PendingAct>> pending;
  std::size_t inflight = 0;

  // Act timeouts: the deadlines of the pending acts, soonest first, and one
  // timer for all of them. It is armed for the soonest and left alone when
  // acts finish (they leave the set); when it fires it times out what is
  // due and re-arms for the next. An Asio timer per act re-armed the
  // kernel's timerfd on every act (a syscall on the act's critical path).
  std::set<std::pair<std::chrono::steady_clock::time_point, PendingAct*>> deadlines;
  std::unique_ptr<asio::steady_timer> deadline_timer;  // made on first use
  std::chrono::steady_clock::time_point deadline_timer_at =
      std::chrono::steady_clock::time_point::max();

  std::unordered_map<Runtime::SubscriptionId, RawSubscription> raw;
  Runtime::SubscriptionId next_raw_id = 1;

  std::vector<std::shared_ptr<RuntimePlugin>> plugins;
  Hooks hooks;

  // runtime_act.cpp
  void act(std::shared_ptr<CallState> parent, Json pattern, StreamCallback on_message,
           ActCompletion done);
  void on_inbox_message(const Message& msg);
  void finish_act(const std::string& id, std::error_code ec, Response response);
  void on_act_timeout(const std::string& id);
  void set_deadline(PendingAct& p, std::chrono::milliseconds after);
  void clear_deadline(PendingAct& p);
  void arm_deadline_timer(std::chrono::steady_clock::time_point at);
  void on_deadline_timer();
  void stop_deadline_timer();
  void fail_pending(errc kind, const std::string& message);  // every pending act

  // runtime_serve.cpp
  AddHandle add(Json pattern, SyncHandler sync, AsyncHandler async);
  void on_service_message(ServiceSubscription& service, Message msg);
  void run_handler(const std::shared_ptr<CallState>& state, AddEntry& entry);
  void send_reply(const std::shared_ptr<CallState>& state, Json result, std::optional<Error> error,
                  bool final_message);

  // runtime.cpp
  void report_error(const Error& error);
  void maybe_finish_close();
  void force_close();
  void on_transport_status(const StatusEvent& ev);
  std::error_code publish_bytes(const std::string& subject, std::string bytes,
                                const std::string& reply_to, const Codec& encoded_by);
  // The codec to decode msg with (see Runtime::add_decoder).
  const Codec& codec_for(const Message& msg) const;
};

// runtime_serve.cpp: an add pattern as the router indexes it.
Json add_routing(const Json& pattern, DollarOptions& opts, std::string& topic);

// Runs hooks that may throw Error; returns the error of the first that did.
template <typename Hooks, typename... Args>
std::optional<Error> run_hooks(const Hooks& hooks, Args&... args) {
  for (const auto& hook : hooks) {
    try {
      hook(args...);
    } catch (const Error& e) {
      return e;
    } catch (const std::exception& e) {
      return Error("Error", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace switchboard
