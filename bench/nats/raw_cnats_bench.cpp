// The raw cnats side of the NATS act benchmark (docs/benchmarks.md, "NATS
// act"): request/reply written against cnats directly, no Switchboard, as a
// C user who knows cnats writes it. The same payload as the other sides:
// the request is the JSON object {"topic":"math","cmd":"add","a":A,"b":B}
// (snprintf), the reply {"result":A+B}; both ends parse what they receive
// (nlohmann::json, the parser Switchboard's json codec uses).
//
//   raw_cnats_bench responder --url=nats://...
//       one connection with natsOptions_SetSendAsap (every reply is written
//       at once); an async queue subscription on "math" (group "queue.math",
//       as Hemera's services) whose callback, on cnats' delivery thread,
//       parses the request and publishes the reply. Prints "ready", runs
//       until SIGTERM.
//   raw_cnats_bench client --url=nats://... [--seconds=S --warmup=W
//       --inflight=N --pids=... --many-asap=0|1]
//       one in flight: natsConnection_Request (cnats' new-style request: one
//       shared response inbox, the request written at once), with
//       natsOptions_SetSendAsap (--old-request-style=1: a new inbox
//       subscription per request, measured about 10% slower here);
//       N in flight: its own connection with one shared reply inbox
//       ("_INBOX.<nuid>.*", an async subscription) and PublishRequest to
//       "<inbox>.<slot>"; each reply's callback publishes that slot's next
//       request. By default without SendAsap: cnats' flusher thread writes
//       what accumulated (it waits 1 ms before each write), which with 256
//       in flight beats a write per request (--many-asap=1, measured
//       10-25% slower here).
//
// bench_common.hpp describes the phases and the report.
#include <nats/nats.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

using nats_bench::now_ns;

void check(natsStatus s, const char* what) {
  if (s == NATS_OK) return;
  const char* last = nats_GetLastError(nullptr);
  throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s) +
                           (last && *last ? std::string(" (") + last + ")" : ""));
}

natsConnection* connect(const std::string& url, bool send_asap, bool old_request_style = false) {
  natsOptions* opts = nullptr;
  check(natsOptions_Create(&opts), "options");
  check(natsOptions_SetURL(opts, url.c_str()), "url");
  check(natsOptions_SetSendAsap(opts, send_asap), "send asap");
  check(natsOptions_UseOldRequestStyle(opts, old_request_style), "request style");
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_Connect(&nc, opts);
  natsOptions_Destroy(opts);
  check(s, "connect");
  return nc;
}

int request_json(char* buf, std::size_t size, std::uint64_t seq, std::int64_t& sum) {
  auto [a, b] = nats_bench::operands(seq);
  sum = a + b;
  return std::snprintf(buf, size, "{\"topic\":\"math\",\"cmd\":\"add\",\"a\":%lld,\"b\":%lld}",
                       static_cast<long long>(a), static_cast<long long>(b));
}

// ---- responder ---------------------------------------------------------------

void on_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
  const char* reply = natsMsg_GetReply(msg);
  if (reply) {
    char out[64];
    int len;
    try {
      const char* data = natsMsg_GetData(msg);
      auto j = nlohmann::json::parse(data, data + natsMsg_GetDataLength(msg));
      if (j.at("topic") != "math" || j.at("cmd") != "add") throw std::runtime_error("pattern");
      len = std::snprintf(
          out, sizeof out, "{\"result\":%lld}",
          static_cast<long long>(j.at("a").get<std::int64_t>() + j.at("b").get<std::int64_t>()));
    } catch (const std::exception&) {
      len = std::snprintf(out, sizeof out, "{\"error\":\"bad request\"}");
    }
    natsConnection_Publish(nc, reply, out, len);
  }
  natsMsg_Destroy(msg);
}

int run_responder(const nats_bench::Options& o) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before cnats starts its threads

  natsConnection* nc = connect(o.url, true);
  natsSubscription* sub = nullptr;
  check(natsConnection_QueueSubscribe(&sub, nc, "math", "queue.math", on_request, nullptr),
        "subscribe");
  check(natsConnection_Flush(nc), "flush");
  std::cout << "ready" << std::endl;
  int signo = 0;
  sigwait(&set, &signo);
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(nc);
  nats_Close();
  return 0;
}

// ---- client --------------------------------------------------------------------

bool check_reply(nats_bench::Report& report, const char* data, int len, std::int64_t sum) {
  bool ok = false, right = false;
  std::string what;
  try {
    auto j = nlohmann::json::parse(data, data + len);
    auto it = j.find("result");
    ok = it != j.end() && it->is_number_integer();
    right = ok && it->get<std::int64_t>() == sum;
    what = std::string(data, static_cast<std::size_t>(len)) + ", expected " + std::to_string(sum);
  } catch (const std::exception& e) {
    what = e.what();
  }
  report.check(ok, right, what);
  return ok && right;
}

// One request in flight, natsConnection_Request.
void run_one(const nats_bench::Options& o, nats_bench::Report& report, std::uint64_t& seq,
             bool old_style) {
  natsConnection* nc = connect(o.url, true, old_style);
  char buf[128];
  auto run_for = [&](double seconds, bool record) {
    auto end = now_ns() + static_cast<std::int64_t>(seconds * 1e9);
    while (now_ns() < end) {
      std::int64_t sum = 0;
      int len = request_json(buf, sizeof buf, seq++, sum);
      natsMsg* reply = nullptr;
      auto started = now_ns();
      natsStatus s = natsConnection_Request(&reply, nc, "math", buf, len, 2000);
      auto latency = now_ns() - started;
      if (s != NATS_OK) {
        report.check(false, false, std::string("request: ") + natsStatus_GetText(s));
        continue;
      }
      check_reply(report, natsMsg_GetData(reply), natsMsg_GetDataLength(reply), sum);
      natsMsg_Destroy(reply);
      if (record) report.one_latencies_ns.push_back(latency);
    }
  };
  run_for(o.warmup, false);
  run_for(o.seconds, true);
  natsConnection_Destroy(nc);
}

// N in flight: one shared inbox, PublishRequest, the next request sent from
// the reply's callback.
struct Many {
  natsConnection* nc = nullptr;
  std::string inbox;
  std::vector<std::string> reply_subjects;
  std::vector<std::int64_t> expected;  // per slot; touched by one thread at a time
  std::mutex mutex;                    // report and seq
  nats_bench::Report* report = nullptr;
  std::uint64_t* seq = nullptr;
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> completed{0};
  std::atomic<int> outstanding{0};

  void send(std::size_t slot) {
    char buf[128];
    std::uint64_t n;
    {
      std::lock_guard lock(mutex);
      n = (*seq)++;
    }
    int len = request_json(buf, sizeof buf, n, expected[slot]);
    outstanding.fetch_add(1);
    natsStatus s =
        natsConnection_PublishRequest(nc, "math", reply_subjects[slot].c_str(), buf, len);
    if (s != NATS_OK) {
      outstanding.fetch_sub(1);
      std::lock_guard lock(mutex);
      report->check(false, false, std::string("publish: ") + natsStatus_GetText(s));
    }
  }
};

void on_reply(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto& many = *static_cast<Many*>(closure);
  const char* subject = natsMsg_GetSubject(msg);
  std::size_t slot = std::strtoul(subject + many.inbox.size() + 1, nullptr, 10);
  {
    std::lock_guard lock(many.mutex);
    check_reply(*many.report, natsMsg_GetData(msg), natsMsg_GetDataLength(msg),
                many.expected[slot]);
  }
  natsMsg_Destroy(msg);
  many.completed.fetch_add(1);
  many.outstanding.fetch_sub(1);
  if (!many.stop) many.send(slot);
}

void run_many(const nats_bench::Options& o, nats_bench::Report& report, std::uint64_t& seq,
              bool send_asap) {
  Many many;
  many.nc = connect(o.url, send_asap);
  many.report = &report;
  many.seq = &seq;
  natsInbox* inbox = nullptr;
  check(natsInbox_Create(&inbox), "inbox");
  many.inbox = inbox;
  natsInbox_Destroy(inbox);
  for (int i = 0; i < o.inflight; ++i)
    many.reply_subjects.push_back(many.inbox + "." + std::to_string(i));
  many.expected.assign(static_cast<std::size_t>(o.inflight), 0);
  natsSubscription* sub = nullptr;
  check(natsConnection_Subscribe(&sub, many.nc, (many.inbox + ".*").c_str(), on_reply, &many),
        "subscribe inbox");
  check(natsSubscription_SetPendingLimits(sub, -1, -1), "pending limits");
  check(natsConnection_Flush(many.nc), "flush");

  for (std::size_t i = 0; i < static_cast<std::size_t>(o.inflight); ++i) many.send(i);
  std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
  auto start = now_ns();
  auto cpu_start = nats_bench::sample_cpu(o.pids);
  auto done_start = many.completed.load();
  std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
  report.many_count = many.completed.load() - done_start;
  report.many_seconds = static_cast<double>(now_ns() - start) / 1e9;
  report.many_cpu = nats_bench::cpu_delta(cpu_start, nats_bench::sample_cpu(o.pids));
  many.stop = true;
  auto deadline = now_ns() + 3'000'000'000LL;
  while (many.outstanding.load() > 0 && now_ns() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  natsSubscription_Unsubscribe(sub);
  natsSubscription_Destroy(sub);
  natsConnection_Destroy(many.nc);
}

int run_client(const nats_bench::Options& o) {
  nats_bench::Report report;
  bool many_asap = o.extra.count("many-asap") ? o.extra.at("many-asap") != "0" : false;
  bool old_style = o.extra.count("old-request-style") && o.extra.at("old-request-style") != "0";
  report.impl = "raw-cnats";
  report.details = std::string("cnats ") + NATS_VERSION_STRING +
                   "; one: natsConnection_Request + SendAsap; many: shared inbox + "
                   "PublishRequest" +
                   (many_asap ? " + SendAsap" : ", writes by the flusher thread") +
                   "; responder: async queue subscription + SendAsap";
  std::uint64_t seq = 0;
  run_one(o, report, seq, old_style);
  run_many(o, report, seq, many_asap);
  nats_Close();
  std::cout << report.json() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = nats_bench::parse_options(argc, argv);
    if (o.role == "responder") return run_responder(o);
    if (o.role == "client") return run_client(o);
    std::cerr << "unknown role '" << o.role << "' (responder, client)\n";
  } catch (const std::exception& e) {
    std::cerr << "raw_cnats_bench: " << e.what() << "\n";
  }
  return 1;
}
