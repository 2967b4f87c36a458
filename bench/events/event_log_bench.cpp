// Event log benchmark (scripts/bench.sh events), one run, three numbers:
//
//   floor    write + fdatasync of one record-sized buffer in a loop: what
//            durable appends/s would be with one fsync per event, on this disk
//   append   durable appends/s through EventLog::emit with group commit: many
//            emits in flight from several threads, each completion emitting again
//   replay   events/s read back: EventLog::read (payload as stored text) and
//            EventLog::stream from the beginning through the log's strand
//
// Prints a JSON object on stdout (scripts/bench.sh turns it into a table).
//   event_log_bench [--dir=DIR] [--seconds=S] [--inflight=N] [--threads=T]
//                   [--replay-events=N] [--backend=jetstream --url=nats://HOST:PORT]
//                   [--backend=kafka --url=kafka://HOST:PORT]
// With --backend the log is a fresh stream (or topic) on that broker; the
// floor is still the local disk's.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "switchboard/event_log.hpp"

using namespace switchboard;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string dir = "bench-data/events";
  double seconds = 3;
  int inflight = 8192;
  int threads = 2;
  std::uint64_t replay_events = 1000000;
  std::string backend = "sqlite";
  std::string url;
};

// The log's options for this run: the file, or a fresh log on a broker.
EventLogOptions log_options(const Args& a, const std::string& path) {
  EventLogOptions o;
  o.backend = a.backend;
  o.url = a.url;
  if (a.backend == "sqlite") {
    o.path = path;
  } else {
    static const std::string name = "bench_" + std::to_string(::getpid());
    o.path = name;
    o.plugin_path = {fs::canonical("/proc/self/exe").parent_path().string() +
                     "/../lib/switchboard"};
  }
  return o;
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    std::string s = argv[i];
    auto value = [&](const char* key) -> const char* {
      std::size_t n = std::strlen(key);
      return s.compare(0, n, key) == 0 ? s.c_str() + n : nullptr;
    };
    if (auto v = value("--dir="))
      a.dir = v;
    else if (auto v = value("--seconds="))
      a.seconds = std::stod(v);
    else if (auto v = value("--inflight="))
      a.inflight = std::stoi(v);
    else if (auto v = value("--threads="))
      a.threads = std::stoi(v);
    else if (auto v = value("--replay-events="))
      a.replay_events = std::stoull(v);
    else if (auto v = value("--backend="))
      a.backend = v;
    else if (auto v = value("--url="))
      a.url = v;
    else {
      std::cerr << "unknown argument " << s << "\n";
      std::exit(2);
    }
  }
  return a;
}

// CPU seconds (user + system) of the whole process so far: with the machine
// shared, appends per CPU second show the code's cost where appends per
// wall second also show the neighbours'.
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

double since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

Json payload(std::uint64_t n) {
  return {{"order", n}, {"sku", "ABC-12345"}, {"amount", 12.5}, {"customer", "c-000123"}};
}

// The floor: one record per fdatasync, `seconds` long.
double fdatasync_floor(const std::string& dir, std::size_t record, double seconds) {
  std::string path = dir + "/floor.bin";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
  if (fd < 0) {
    std::perror("open floor file");
    std::exit(1);
  }
  std::string buf(record, 'x');
  std::uint64_t n = 0;
  auto t = Clock::now();
  while (since(t) < seconds) {
    if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size()) ||
        ::fdatasync(fd) != 0) {
      std::perror("write/fdatasync");
      std::exit(1);
    }
    ++n;
  }
  double rate = n / since(t);
  ::close(fd);
  fs::remove(path);
  return rate;
}

}  // namespace

int main(int argc, char** argv) {
  Args args = parse(argc, argv);
  fs::create_directories(args.dir);
  std::string path = args.dir + "/bench.db";
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) fs::remove(path + suffix);

  // A stored event's size: its payload, ids, hashes and SQLite's row overhead.
  std::size_t record = payload(1).dump().size() + 32 + 16 + 12 + 64 + 40;
  double floor = fdatasync_floor(args.dir, record, std::min(args.seconds, 2.0));

  Json out;
  out["record_bytes"] = record;
  out["fdatasync_per_s"] = floor;

  // ---- durable appends with group commit ----
  std::uint64_t appended = 0;
  double append_rate = 0, append_seconds = 0, append_cpu = 0;
  EventLogStats stats;
  {
    asio::io_context io;
    auto guard = asio::make_work_guard(io);
    EventLogOptions o = log_options(args, path);
    EventLog log(io.get_executor(), o);
    log.declare("order.created", {{"order", {{"type", "integer"}, {"required", true}}},
                                  {"sku", {{"type", "string"}}},
                                  {"amount", {{"type", "number"}}},
                                  {"customer", {{"type", "string"}}}});
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> done{0}, errors{0}, counter{0};
    std::function<void()> one = [&] {
      log.emit("order.created", payload(counter++),
               asio::bind_executor(io.get_executor(), [&](std::error_code ec, EmitResult) {
                 if (ec) ++errors;
                 ++done;
                 if (!stop) one();
               }));
    };
    // Completions on a plain io_context run by several threads: the
    // emitters. Each completion emits the next event.
    auto ex = io.get_executor();
    for (int i = 0; i < args.inflight; ++i) asio::post(ex, one);
    std::vector<std::thread> threads;
    for (int t = 0; t < args.threads; ++t) threads.emplace_back([&io] { io.run(); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // warm up
    std::uint64_t d0 = done;
    auto s0 = log.stats();
    auto t0 = Clock::now();
    double c0 = process_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::duration<double>(args.seconds));
    std::uint64_t d1 = done;
    append_cpu = process_cpu_seconds() - c0;
    auto s1 = log.stats();
    append_seconds = since(t0);
    stop = true;
    append_rate = (d1 - d0) / append_seconds;
    stats.events = s1.events - s0.events;
    stats.batches = s1.batches - s0.batches;
    stats.largest_batch = s1.largest_batch;
    guard.reset();
    for (auto& t : threads) t.join();  // the in-flight emits finish
    appended = log.last_sequence();
    if (errors) {
      std::cerr << errors << " emits failed\n";
      return 1;
    }
  }
  out["append"] = {{"per_s", append_rate},
                   {"seconds", append_seconds},
                   {"inflight", args.inflight},
                   {"threads", args.threads},
                   // CPU of all the process's threads (emitters, writer,
                   // syncer) per appended event, in microseconds
                   {"cpu_us_per_event", stats.events ? append_cpu * 1e6 / stats.events : 0.0},
                   {"batches_per_s", stats.batches / append_seconds},
                   {"mean_batch", stats.batches ? double(stats.events) / stats.batches : 0.0},
                   {"largest_batch", stats.largest_batch}};

  // ---- top the log up for replay ----
  {
    asio::io_context io;
    EventLogOptions o = log_options(args, path);
    EventLog log(io.get_executor(), o);
    std::uint64_t have = log.last_sequence();
    std::uint64_t want = args.replay_events;
    std::uint64_t next = have;
    std::function<void()> one = [&] {
      if (next >= want) return;
      log.emit("order.created", payload(++next), [&](std::error_code, EmitResult) { one(); });
    };
    for (int i = 0; i < args.inflight; ++i) one();
    io.run();
  }

  // ---- replay ----
  {
    asio::io_context io;
    EventLogOptions o = log_options(args, path);
    o.read_only = true;
    EventLog log(io.get_executor(), o);
    std::uint64_t total = log.last_sequence();

    std::uint64_t n = 0, bytes = 0;
    auto t = Clock::now();
    std::error_code ec;
    for (std::uint64_t from = 1;;) {
      std::size_t got = log.read(
          from, 65536,
          [&](const Event& e) {
            ++n;
            bytes += e.payload_json.size();
          },
          ec);
      if (ec || got == 0) break;
      from += got;
    }
    double read_s = since(t);

    std::uint64_t streamed = 0;
    t = Clock::now();
    StreamOptions so;
    so.from = StreamFrom::beginning();
    auto s = log.stream(so, [&](const Event&) { ++streamed; });
    io.run();  // read-only: the stream ends at the end of the log
    double stream_s = since(t);

    std::uint64_t parsed = 0;
    t = Clock::now();
    for (std::uint64_t from = 1; from <= std::min<std::uint64_t>(total, 200000);) {
      std::size_t got = log.read(
          from, 65536,
          [&](const Event& e) { parsed += e.payload()["order"].get<std::uint64_t>() > 0; }, ec);
      if (ec || got == 0) break;
      from += got;
    }
    double parse_s = since(t);

    out["replay"] = {{"events", n},
                     {"read_per_s", n / read_s},
                     {"stream_per_s", streamed / stream_s},
                     {"parsed_per_s", parsed / parse_s},
                     {"payload_bytes", n ? bytes / n : 0}};
    if (streamed != total || n != total) {
      std::cerr << "replay mismatch: " << n << " read, " << streamed << " streamed, " << total
                << " stored\n";
      return 1;
    }
  }
  out["appended_total"] = appended;
  std::cout << out.dump() << std::endl;
  for (const char* suffix : {"", "-wal", "-shm", ".lock"}) fs::remove(path + suffix);
  return 0;
}
