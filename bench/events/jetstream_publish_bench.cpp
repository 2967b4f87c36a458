// The peer of the event log's append benchmark (scripts/bench.sh events):
// JetStream file-store publishing through cnats on the same machine, as a
// user who chose JetStream for an event log would write it: one stream with
// file storage, async publishes of the event log benchmark's payload with a
// message id each (JetStream de-duplicates by it, as the log does by event
// id), at most `inflight` awaiting their PubAck. Counts PubAcks per second.
//
//   jetstream_publish_bench --url=nats://... [--seconds=S --inflight=N]
//
// Prints a JSON object on stdout: {"per_s": ..., "acked": ..., "errors": ...}.
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>

namespace {

struct Args {
  std::string url;
  double seconds = 3;
  long long inflight = 8192;
};

std::atomic<long long> acked{0};
std::atomic<long long> errors{0};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void*) {
  (pa && !pae ? acked : errors).fetch_add(1, std::memory_order_relaxed);
  natsMsg_Destroy(msg);
}

void check(natsStatus s, const char* what) {
  if (s != NATS_OK) {
    throw std::runtime_error(std::string(what) + ": " + natsStatus_GetText(s) + " " +
                             nats_GetLastError(nullptr));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    if (s.rfind("--url=", 0) == 0)
      a.url = s.substr(6);
    else if (s.rfind("--seconds=", 0) == 0)
      a.seconds = std::stod(s.substr(10));
    else if (s.rfind("--inflight=", 0) == 0)
      a.inflight = std::stoll(s.substr(11));
    else {
      std::cerr << "unknown argument " << s << "\n";
      return 2;
    }
  }
  try {
    natsConnection* nc = nullptr;
    check(natsConnection_ConnectTo(&nc, a.url.c_str()), "connect");
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.PublishAsync.MaxPending = a.inflight;
    // How long a publish waits for room under MaxPending: cnats' default,
    // 200 ms, failed the run ("too many outstanding") on a loaded machine.
    jo.PublishAsync.StallWait = 30000;
    jo.PublishAsync.AckHandler = on_ack;
    jsCtx* js = nullptr;
    check(natsConnection_JetStream(&js, nc, &jo), "jetstream");
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = "EVENTS_BENCH";
    const char* subjects[] = {"bench.events"};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsStreamInfo* info = nullptr;
    check(js_AddStream(&info, js, &cfg, nullptr, &jerr), "add stream");
    jsStreamInfo_Destroy(info);

    char payload[128];
    char id[32];
    long long n = 0;
    auto start = std::chrono::steady_clock::now();
    auto end = start + std::chrono::duration<double>(a.seconds);
    while (std::chrono::steady_clock::now() < end) {
      for (int k = 0; k < 256; ++k) {
        ++n;
        int len = std::snprintf(payload, sizeof payload,
                                "{\"amount\":12.5,\"customer\":\"c-000123\",\"order\":%lld,"
                                "\"sku\":\"ABC-12345\"}",
                                n);
        std::snprintf(id, sizeof id, "bench-%lld", n);
        natsMsg* msg = nullptr;
        check(natsMsg_Create(&msg, "bench.events", nullptr, payload, len), "message");
        check(natsMsgHeader_Set(msg, "Nats-Msg-Id", id), "header");
        // Blocks while `inflight` publishes wait for their PubAck.
        natsStatus s = js_PublishMsgAsync(js, &msg, nullptr);
        if (s != NATS_OK) {
          natsMsg_Destroy(msg);
          check(s, "publish");
        }
      }
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 30000;
    check(js_PublishAsyncComplete(js, &po), "waiting for PubAcks");
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("{\"per_s\": %.1f, \"acked\": %lld, \"errors\": %lld, \"inflight\": %lld}\n",
                static_cast<double>(acked.load()) / seconds, acked.load(), errors.load(),
                a.inflight);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return errors.load() == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "jetstream_publish_bench: " << e.what() << "\n";
    return 1;
  }
}
