// The floor for the brokerless act benchmark (docs/benchmarks.md, "Mesh"):
// a ping-pong of length-prefixed frames over one loopback TCP connection,
// with the request and reply sizes of a Switchboard act, and nothing else:
// no envelope, no routing, blocking sockets, TCP_NODELAY.
//
//   raw_tcp_bench service --port=P                    echoes; prints "ready"
//   raw_tcp_bench client --url=tcp://127.0.0.1:P --size=S --reply-size=R
//                 [--seconds --warmup --inflight --pids]   one JSON line
//
// Each request is S bytes starting with its sequence number; the reply is R
// bytes starting with the same number, which the client checks. The phases
// and the report are those of the NATS benchmark (../nats/bench_common.hpp).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <iostream>
#include <thread>

#include "../nats/bench_common.hpp"

namespace {

using nats_bench::now_ns;

void write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w <= 0) throw std::runtime_error(std::string("write: ") + std::strerror(errno));
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool read_all(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r == 0) return false;
    if (r < 0) throw std::runtime_error(std::string("read: ") + std::strerror(errno));
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// One frame: u32 length (big endian), then the body.
bool read_frame(int fd, std::string& body) {
  std::uint32_t len;
  if (!read_all(fd, reinterpret_cast<char*>(&len), 4)) return false;
  body.resize(ntohl(len));
  return read_all(fd, body.data(), body.size());
}

std::string frame(std::uint64_t seq, std::size_t size) {
  std::string f(4 + size, 'x');
  std::uint32_t len = htonl(static_cast<std::uint32_t>(size));
  std::memcpy(f.data(), &len, 4);
  std::memcpy(f.data() + 4, &seq, sizeof seq);
  return f;
}

std::uint64_t seq_of(const std::string& body) {
  std::uint64_t seq = 0;
  if (body.size() >= sizeof seq) std::memcpy(&seq, body.data(), sizeof seq);
  return seq;
}

void nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int run_service(const nats_bench::Options& o) {
  const int port = std::stoi(o.extra.at("port"));
  const std::size_t reply_size =
      std::stoul(o.extra.count("reply-size") ? o.extra.at("reply-size") : "290");
  int ls = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(ls, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(ls, 16) != 0) {
    std::cerr << "raw_tcp_bench: cannot listen on " << port << ": " << std::strerror(errno) << '\n';
    return 1;
  }
  std::cout << "ready" << std::endl;
  for (;;) {
    int fd = ::accept(ls, nullptr, nullptr);
    if (fd < 0) continue;
    nodelay(fd);
    std::thread([fd, reply_size] {
      std::string body;
      try {
        while (read_frame(fd, body)) {
          std::string reply = frame(seq_of(body), reply_size);
          write_all(fd, reply.data(), reply.size());
        }
      } catch (const std::exception&) {
      }
      ::close(fd);
    }).detach();
  }
}

int connect_to(const std::string& url) {
  auto colon = url.rfind(':');
  int port = std::stoi(url.substr(colon + 1));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot connect to " + url + ": " + std::strerror(errno));
  }
  nodelay(fd);
  return fd;
}

int run_client(const nats_bench::Options& o) {
  const std::size_t size = std::stoul(o.extra.count("size") ? o.extra.at("size") : "330");
  const std::size_t reply_size =
      std::stoul(o.extra.count("reply-size") ? o.extra.at("reply-size") : "290");
  nats_bench::Report report;
  report.impl = "raw tcp";
  report.details = "blocking sockets, " + std::to_string(size) + "-byte requests, " +
                   std::to_string(reply_size) + "-byte replies";
  int fd = connect_to(o.url);
  std::string body;
  std::uint64_t seq = 0;

  // one in flight
  auto one = [&](bool record) {
    std::string f = frame(++seq, size);
    std::int64_t t0 = now_ns();
    write_all(fd, f.data(), f.size());
    bool ok = read_frame(fd, body);
    std::int64_t t1 = now_ns();
    report.check(ok, ok && seq_of(body) == seq && body.size() == reply_size, "reply mismatch");
    if (record) report.one_latencies_ns.push_back(t1 - t0);
  };
  for (auto end = now_ns() + static_cast<std::int64_t>(o.warmup * 1e9); now_ns() < end;) one(false);
  for (auto end = now_ns() + static_cast<std::int64_t>(o.seconds * 1e9); now_ns() < end;) one(true);

  // many in flight: a writer keeps `inflight` requests outstanding, this
  // thread reads the replies in order.
  std::atomic<std::int64_t> outstanding{0};
  std::atomic<bool> stop{false};
  const std::uint64_t first = seq + 1;
  std::thread writer([&] {
    std::uint64_t s = first;
    while (!stop.load(std::memory_order_relaxed)) {
      if (outstanding.load(std::memory_order_acquire) >= o.inflight) {
        std::this_thread::yield();
        continue;
      }
      std::string f = frame(s++, size);
      outstanding.fetch_add(1, std::memory_order_release);
      write_all(fd, f.data(), f.size());
    }
  });
  std::uint64_t expect = first;
  const std::int64_t warm_end = now_ns() + static_cast<std::int64_t>(o.warmup * 1e9);
  std::int64_t window_start = 0, window_end = 0;
  std::map<std::string, double> cpu_before;
  for (;;) {
    bool ok = read_frame(fd, body);
    outstanding.fetch_sub(1, std::memory_order_release);
    report.check(ok, ok && seq_of(body) == expect, "reply out of order");
    ++expect;
    std::int64_t t = now_ns();
    if (window_start == 0 && t >= warm_end) {
      window_start = t;
      window_end = t + static_cast<std::int64_t>(o.seconds * 1e9);
      cpu_before = nats_bench::sample_cpu(o.pids);
    } else if (window_start != 0) {
      ++report.many_count;
      if (t >= window_end) {
        report.many_seconds = static_cast<double>(t - window_start) / 1e9;
        report.many_cpu = nats_bench::cpu_delta(cpu_before, nats_bench::sample_cpu(o.pids));
        break;
      }
    }
  }
  stop = true;
  writer.join();
  ::close(fd);  // replies still on the way are dropped with the connection
  std::cout << report.json() << std::endl;
  return report.errors || report.mismatches ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    auto o = nats_bench::parse_options(argc, argv);
    if (o.role == "service") return run_service(o);
    if (o.role == "client") return run_client(o);
    std::cerr << "raw_tcp_bench: unknown role " << o.role << '\n';
  } catch (const std::exception& e) {
    std::cerr << "raw_tcp_bench: " << e.what() << '\n';
  }
  return 1;
}
