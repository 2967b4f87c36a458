// The Switchboard side of the NATS act benchmark (docs/benchmarks.md, "NATS
// act"): a service and a client, run as two processes over one nats-server,
// each an App on the nats transport plugin as a user would write them.
//
//   switchboard_nats_bench service --url=nats://...   add {topic:math, cmd:add}
//                                                      -> a + b; prints "ready",
//                                                      runs until SIGTERM
//   switchboard_nats_bench client --url=nats://... [--seconds=S --warmup=W
//                                  --inflight=N --pids=service:PID,server:PID]
//                                                      acts {topic:math, cmd:add,
//                                                      a, b}; prints one JSON line
//
// and, to tell the transport's share from the runtime's, the same request
// and reply as raw_cnats_bench ({topic, cmd, a, b} -> {"result": a + b}, no
// envelope) through the nats transport plugin alone, without the runtime:
//
//   switchboard_nats_bench transport-service --url=...
//   switchboard_nats_bench transport-client --url=... [as client]
//
// scripts/bench.sh starts the server and both processes; bench_common.hpp
// describes the phases.
#include <csignal>
#include <functional>
#include <iostream>
#include <unordered_map>

#include "bench_common.hpp"
#include "switchboard/app.hpp"
#include "switchboard/event_loop.hpp"
#include "switchboard/plugin_host.hpp"

using namespace switchboard;

namespace {

Config bench_config(const nats_bench::Options& o, const std::string& name) {
  Config config = config_from_url(o.url, {});
  config.runtime.name = name;
  config.log.level = "warn";
  // --idle-spin-us: the runtime.idle_spin_us a latency-minded user sets.
  if (auto it = o.extra.find("idle-spin-us"); it != o.extra.end()) {
    config.runtime.idle_spin = std::chrono::microseconds(std::stoll(it->second));
  }
  return config;
}

int run_service(const nats_bench::Options& o) {
  asio::io_context io;
  App app(io, bench_config(o, "math-service"));
  app.start();
  Runtime& rt = app.runtime();
  rt.add(Json{{"topic", "math"}, {"cmd", "add"}}, [](Call& call) -> Json {
    const Json& p = call.pattern();
    return p.at("a").get<std::int64_t>() + p.at("b").get<std::int64_t>();
  });
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](std::error_code, int) { rt.close([] {}); });
  std::cout << "ready" << std::endl;
  run_event_loop(io, app.config().runtime.idle_spin);
  return 0;
}

std::int64_t to_ns(double seconds) {
  return static_cast<std::int64_t>(seconds * 1e9);
}

// The many-in-flight phase both clients share: a warm-up, then a timed
// window whose completions, length and CPU go to the report.
class ManyWindow {
 public:
  ManyWindow(asio::io_context& io, const nats_bench::Options& o, nats_bench::Report& report)
      : o_(o), report_(report), timer_(io) {}

  void start() {
    timer_.expires_after(std::chrono::nanoseconds(to_ns(o_.warmup)));
    timer_.async_wait([this](std::error_code) {
      start_ = nats_bench::now_ns();
      cpu_start_ = nats_bench::sample_cpu(o_.pids);
      completed_ = 0;
      timer_.expires_after(std::chrono::nanoseconds(to_ns(o_.seconds)));
      timer_.async_wait([this](std::error_code) {
        report_.many_count = completed_;
        report_.many_seconds = static_cast<double>(nats_bench::now_ns() - start_) / 1e9;
        report_.many_cpu = nats_bench::cpu_delta(cpu_start_, nats_bench::sample_cpu(o_.pids));
        done_ = true;
      });
    });
  }
  void count() { ++completed_; }
  bool done() const { return done_; }

 private:
  const nats_bench::Options& o_;
  nats_bench::Report& report_;
  asio::steady_timer timer_;
  bool done_ = false;
  std::int64_t completed_ = 0;
  std::int64_t start_ = 0;
  std::map<std::string, double> cpu_start_;
};

// The client: a small state machine on the runtime's executor (one thread).
class Client {
 public:
  Client(asio::io_context& io, Runtime& rt, const nats_bench::Options& o)
      : io_(io), rt_(rt), o_(o), window_(io, o_, report_) {
    report_.impl = "switchboard";
    report_.details = "App + Runtime::act, nats transport plugin";
  }

  void start() {
    phase_ = Phase::one_warmup;
    phase_end_ = nats_bench::now_ns() + to_ns(o_.warmup);
    send_one();
  }

  const nats_bench::Report& report() const { return report_; }

 private:
  enum class Phase { one_warmup, one, many };

  // Sends request `seq_` and calls `then(latency_ns)` with its round trip.
  void act(std::function<void(std::int64_t)> then) {
    auto [a, b] = nats_bench::operands(seq_++);
    auto started = nats_bench::now_ns();
    rt_.act(Json{{"topic", "math"}, {"cmd", "add"}, {"a", a}, {"b", b}},
            [this, sum = a + b, started, then = std::move(then)](std::error_code ec, Response r) {
              auto latency = nats_bench::now_ns() - started;
              bool ok = !ec && r.result.is_number_integer();
              report_.check(ok, ok && r.result.get<std::int64_t>() == sum,
                            ec ? ec.message() + ": " + (r.error ? r.error->message() : "")
                               : "got " + r.result.dump() + ", expected " + std::to_string(sum));
              then(latency);
            });
  }

  void send_one() {
    act([this](std::int64_t latency) {
      if (phase_ == Phase::one) report_.one_latencies_ns.push_back(latency);
      auto now = nats_bench::now_ns();
      if (now < phase_end_) return send_one();
      if (phase_ == Phase::one_warmup) {
        phase_ = Phase::one;
        phase_end_ = now + to_ns(o_.seconds);
        return send_one();
      }
      start_many();
    });
  }

  void start_many() {
    phase_ = Phase::many;
    window_.start();
    for (int i = 0; i < o_.inflight; ++i) send_many();
  }

  void send_many() {
    ++outstanding_;
    act([this](std::int64_t) {
      --outstanding_;
      window_.count();
      if (!window_.done()) return send_many();
      if (outstanding_ == 0) rt_.close([] {});
    });
  }

  asio::io_context& io_;
  Runtime& rt_;
  nats_bench::Options o_;
  nats_bench::Report report_;
  ManyWindow window_;
  Phase phase_ = Phase::one_warmup;
  std::int64_t phase_end_ = 0;
  std::uint64_t seq_ = 0;
  int outstanding_ = 0;
};

// ---- the transport alone ----------------------------------------------------

std::shared_ptr<Transport> open_transport(PluginHost& host, asio::io_context& io,
                                          const nats_bench::Options& o) {
  TransportConfig config;
  config.instance = "bench";
  config.type = "nats";
  config.url = o.url;
  auto transport = host.create_transport(config, TransportContext{io.get_executor()});
  if (auto ec = transport->connect()) throw std::runtime_error("connect: " + ec.message());
  return transport;
}

Message bytes_message(std::string subject, std::string data, std::string reply_to = "") {
  Message m;
  m.subject = std::move(subject);
  m.data = Payload(std::move(data));
  m.reply_to = std::move(reply_to);
  return m;
}

int run_transport_service(const nats_bench::Options& o) {
  asio::io_context io;
  PluginHost host;
  auto transport = open_transport(host, io, o);
  std::unique_ptr<Subscription> sub;
  auto ec = transport->subscribe(
      "math", "queue.math",
      [&](Message m) {
        std::string reply;
        try {
          auto j = Json::parse(m.data.view());
          if (j.at("topic") != "math" || j.at("cmd") != "add") throw std::runtime_error("pattern");
          reply = "{\"result\":" +
                  std::to_string(j.at("a").get<std::int64_t>() + j.at("b").get<std::int64_t>()) +
                  "}";
        } catch (const std::exception&) {
          reply = "{\"error\":\"bad request\"}";
        }
        if (!m.reply_to.empty()) transport->publish(bytes_message(m.reply_to, std::move(reply)));
      },
      sub);
  if (ec) throw std::runtime_error("subscribe: " + ec.message());
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](std::error_code, int) {
    sub->unsubscribe();
    transport->close([] {});
  });
  std::cout << "ready" << std::endl;
  io.run();
  return 0;
}

// The client's phases with a transport instead of a runtime: requests go
// out with reply subjects "<inbox>.<n>" under one inbox subscription.
class TransportClient {
 public:
  TransportClient(asio::io_context& io, Transport& t, const nats_bench::Options& o)
      : t_(t), o_(o), window_(io, o_, report_), inbox_("_INBOX." + random_id()) {
    report_.impl = "switchboard-transport";
    report_.details =
        "the nats transport plugin alone: Transport::publish/subscribe, "
        "the raw side's payloads, no runtime";
    auto ec = t_.subscribe(
        inbox_ + ".*", "", [this](Message m) { on_reply(std::move(m)); }, sub_);
    if (ec) throw std::runtime_error("subscribe: " + ec.message());
  }

  void start() {
    phase_ = Phase::one_warmup;
    phase_end_ = nats_bench::now_ns() + to_ns(o_.warmup);
    send();
  }
  const nats_bench::Report& report() const { return report_; }

 private:
  enum class Phase { one_warmup, one, many };
  struct Pending {
    std::int64_t sum;
    std::int64_t started;
  };

  void send() {
    auto n = seq_++;
    auto [a, b] = nats_bench::operands(n);
    std::string reply_to = inbox_ + "." + std::to_string(n);
    pending_[reply_to] = Pending{a + b, nats_bench::now_ns()};
    ++outstanding_;
    std::string data = R"({"topic":"math","cmd":"add","a":)" + std::to_string(a) + R"(,"b":)" +
                       std::to_string(b) + "}";
    if (auto ec = t_.publish(bytes_message("math", std::move(data), reply_to))) {
      report_.check(false, false, "publish: " + ec.message());
    }
  }

  void on_reply(Message m) {
    auto it = pending_.find(m.subject);
    if (it == pending_.end()) return;
    Pending p = it->second;
    pending_.erase(it);
    --outstanding_;
    auto now = nats_bench::now_ns();
    bool ok = false, right = false;
    try {
      auto j = Json::parse(m.data.view());
      auto r = j.find("result");
      ok = r != j.end() && r->is_number_integer();
      right = ok && r->get<std::int64_t>() == p.sum;
    } catch (const std::exception&) {
    }
    report_.check(ok, right, std::string(m.data.view()) + ", expected " + std::to_string(p.sum));
    switch (phase_) {
      case Phase::one_warmup:
      case Phase::one:
        if (phase_ == Phase::one) report_.one_latencies_ns.push_back(now - p.started);
        if (now < phase_end_) return send();
        if (phase_ == Phase::one_warmup) {
          phase_ = Phase::one;
          phase_end_ = now + to_ns(o_.seconds);
          return send();
        }
        return start_many();
      case Phase::many:
        if (!window_.done()) {
          window_.count();
          return send();
        }
        if (outstanding_ == 0) {
          sub_->unsubscribe();
          t_.close([] {});
        }
        return;
    }
  }

  void start_many() {
    phase_ = Phase::many;
    window_.start();
    for (int i = 0; i < o_.inflight; ++i) send();
  }

  Transport& t_;
  nats_bench::Options o_;
  nats_bench::Report report_;
  ManyWindow window_;
  std::string inbox_;
  std::unique_ptr<Subscription> sub_;
  std::unordered_map<std::string, Pending> pending_;
  Phase phase_ = Phase::one_warmup;
  std::int64_t phase_end_ = 0;
  std::uint64_t seq_ = 0;
  int outstanding_ = 0;
};

int run_transport_client(const nats_bench::Options& o) {
  asio::io_context io;
  PluginHost host;
  auto transport = open_transport(host, io, o);
  TransportClient client(io, *transport, o);
  asio::post(io, [&] { client.start(); });
  io.run();
  std::cout << client.report().json() << std::endl;
  return 0;
}

int run_client(const nats_bench::Options& o) {
  asio::io_context io;
  App app(io, bench_config(o, "bench-client"));
  app.start();
  Client client(io, app.runtime(), o);
  asio::post(app.runtime().executor(), [&] { client.start(); });
  run_event_loop(io, app.config().runtime.idle_spin);
  std::cout << client.report().json() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = nats_bench::parse_options(argc, argv);
    if (o.role == "service") return run_service(o);
    if (o.role == "client") return run_client(o);
    if (o.role == "transport-service") return run_transport_service(o);
    if (o.role == "transport-client") return run_transport_client(o);
    std::cerr << "unknown role '" << o.role
              << "' (service, client, transport-service, transport-client)\n";
  } catch (const std::exception& e) {
    std::cerr << "switchboard_nats_bench: " << e.what() << "\n";
  }
  return 1;
}
