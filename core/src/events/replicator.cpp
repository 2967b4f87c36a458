// EventReplicator: live publishing of own events, ingest of others', heads
// announcements and pull-based catch-up. All its state but the pending own
// events lives on the transport's executor. The wire format is in
// replication_protocol.hpp; the protocol in docs/events.md.
#include "switchboard/event_replication.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>
#include <set>

#include "replication_protocol.hpp"

namespace switchboard {

namespace rp = events::replication;
using Clock = std::chrono::steady_clock;

struct EventReplicator::Impl : std::enable_shared_from_this<EventReplicator::Impl> {
  Impl(EventLog& l, std::shared_ptr<Transport> t, asio::any_io_executor e, EventReplicatorOptions o)
      : log(l), transport(std::move(t)), ex(std::move(e)), options(std::move(o)), timer(ex) {}

  EventLog& log;
  std::shared_ptr<Transport> transport;
  asio::any_io_executor ex;
  EventReplicatorOptions options;
  rp::Subjects subjects;
  std::string node;
  std::size_t budget = 0;  // bytes per message

  std::atomic<bool> stopped{false};
  std::atomic<bool> started{false};
  EventLog::HandlerId handler = 0;
  std::vector<std::unique_ptr<Subscription>> subs;  // executor
  asio::steady_timer timer;                         // executor

  // Own new events, handed over from the log's strand.
  std::mutex pending_mutex;
  std::vector<Event> pending;
  bool flush_posted = false;

  // ---- executor only ----
  struct Peer {
    std::map<std::string, std::uint64_t> heads;
    Clock::time_point seen;
  };
  std::map<std::string, Peer> peers;           // their last announcement
  std::map<std::string, std::uint64_t> heard;  // per origin: highest origin_sequence received
  std::map<std::string, std::string> sender;   // per origin: who sent it last
  struct Fetch {
    std::string from;
    std::uint64_t first = 0;  // the origin_sequence asked from
    Clock::time_point deadline;
  };
  std::map<std::string, Fetch> in_flight;  // per origin: one fetch at a time
  // Per origin, while answers are being stored: the highest origin_sequence
  // handed to ingest from answers (they continue the head), so the next
  // fetch goes out before the commit (pipelined), and how many such ingests
  // are pending.
  std::map<std::string, std::uint64_t> queued;
  std::map<std::string, int> answers_pending;
  Clock::time_point last_announce{};

  struct Counters {
    std::atomic<std::uint64_t> published{0}, received{0}, stored{0}, duplicates{0}, gaps{0},
        rejected{0}, bad_messages{0}, fetches_sent{0}, fetches_answered{0}, announcements{0};
  } counters;

  std::error_code start();
  void stop();
  void on_local(const Event& e);
  void flush();
  void on_message(const Message& m, bool inbox);
  void on_events(rp::EventsMessage m);
  void on_state(rp::StateMessage m);
  void on_fetch(const rp::FetchMessage& m, const std::string& reply_to);
  void announce();
  void tick();
  void arm_timer();
  void pump(const std::string& origin);
  bool publish(const std::string& subject, std::string body, const std::string& reply_to = "");
};

std::error_code EventReplicator::Impl::start() {
  if (started.exchange(true)) return {};
  std::weak_ptr<Impl> weak = weak_from_this();
  auto subscribe = [&](const std::string& subject, bool inbox) {
    std::unique_ptr<Subscription> sub;
    auto ec = transport->subscribe(
        subject, "",
        [weak, inbox](Message m) {
          if (auto self = weak.lock()) self->on_message(m, inbox);
        },
        sub);
    if (ec) {
      spdlog::error("event replication: subscribe to '{}' failed: {}", subject, ec.message());
      return ec;
    }
    subs.push_back(std::move(sub));
    return std::error_code{};
  };
  for (auto [subject, inbox] : {std::pair{subjects.live(), false},
                                {subjects.state(), false},
                                {subjects.fetch(node), false},
                                {subjects.inbox(node), true}}) {
    if (auto ec = subscribe(subject, inbox)) return ec;
  }
  handler = log.on("*", [weak](const Event& e) {
    if (auto self = weak.lock()) self->on_local(e);
  });
  announce();
  arm_timer();
  return {};
}

void EventReplicator::Impl::stop() {
  if (stopped.exchange(true)) return;
  if (handler) log.off(handler);
  asio::post(ex, [self = shared_from_this()] {
    for (auto& s : self->subs) s->unsubscribe();
    self->subs.clear();
    self->timer.cancel();
  });
}

bool EventReplicator::Impl::publish(const std::string& subject, std::string body,
                                    const std::string& reply_to) {
  Message m;
  m.subject = subject;
  m.data = Payload(std::move(body));
  m.reply_to = reply_to;
  if (auto ec = transport->publish(std::move(m))) {
    spdlog::debug("event replication: publish to '{}' failed: {}", subject, ec.message());
    return false;
  }
  return true;
}

// ---- own events: live ----

// On the log's strand, after each commit: batches what one dispatch hands
// out into one flush on the executor.
void EventReplicator::Impl::on_local(const Event& e) {
  if (stopped || e.origin != node) return;
  std::lock_guard lock(pending_mutex);
  pending.push_back(e);
  if (!flush_posted) {
    flush_posted = true;
    asio::post(ex, [self = shared_from_this()] { self->flush(); });
  }
}

void EventReplicator::Impl::flush() {
  std::vector<Event> batch;
  {
    std::lock_guard lock(pending_mutex);
    batch.swap(pending);
    flush_posted = false;
  }
  if (stopped) return;
  std::vector<std::string> encoded;
  std::size_t bytes = 0;
  auto send = [&] {
    if (encoded.empty()) return;
    // A lost live message is not fatal: peers fetch what they lack.
    if (publish(subjects.live(), rp::encode_events(node, encoded))) {
      counters.published += encoded.size();
    }
    encoded.clear();
    bytes = 0;
  };
  for (const Event& e : batch) {
    std::string one = rp::encode_event(e);
    if (one.size() + 256 > transport->max_payload()) {
      spdlog::error(
          "event replication: event {} ('{}', {} bytes) does not fit in one message of the "
          "transport (max_payload {}); it is not replicated",
          e.id, e.type, one.size(), transport->max_payload());
    }
    if (!encoded.empty() &&
        (encoded.size() >= options.batch_events || bytes + one.size() > budget)) {
      send();
    }
    bytes += one.size() + 1;
    encoded.push_back(std::move(one));
  }
  send();
}

// ---- incoming ----

void EventReplicator::Impl::on_message(const Message& m, bool inbox) {
  if (stopped) return;
  std::string error;
  auto decoded = rp::decode(m.data.view(), error);
  if (!decoded) {
    ++counters.bad_messages;
    spdlog::warn("event replication: bad message on '{}': {}", m.subject, error);
    return;
  }
  if (auto* ev = std::get_if<rp::EventsMessage>(&*decoded)) {
    if (!inbox && !ev->answers.empty()) ev->answers.clear();  // only answers clear a fetch
    if (ev->node != node) on_events(std::move(*ev));
  } else if (auto* st = std::get_if<rp::StateMessage>(&*decoded)) {
    if (st->node != node) on_state(std::move(*st));
  } else if (auto* f = std::get_if<rp::FetchMessage>(&*decoded)) {
    if (m.reply_to.empty()) {
      ++counters.bad_messages;
      spdlog::warn("event replication: fetch from '{}' on '{}' has no reply subject", f->node,
                   m.subject);
      return;
    }
    on_fetch(*f, m.reply_to);
  }
}

void EventReplicator::Impl::on_events(rp::EventsMessage m) {
  std::set<std::string> origins;
  for (const Event& e : m.events) {
    auto& h = heard[e.origin];
    h = std::max(h, e.origin_sequence);
    sender[e.origin] = m.node;
    origins.insert(e.origin);
  }
  if (!m.answers.empty()) origins.insert(m.answers);
  counters.received += m.events.size();
  if (m.events.empty()) {
    // An empty answer: that node has nothing more of this origin.
    auto it = in_flight.find(m.answers);
    if (it != in_flight.end() && it->second.from == m.node) in_flight.erase(it);
    auto p = peers.find(m.node);
    if (p != peers.end()) p->second.heads[m.answers] = log.origin_head(m.answers);
    pump(m.answers);
    return;
  }
  // The answer to the pending fetch (not a late one to an older fetch)?
  std::string answers;
  if (!m.answers.empty()) {
    auto it = in_flight.find(m.answers);
    if (it != in_flight.end() && it->second.from == m.node &&
        it->second.first == m.events.front().origin_sequence &&
        m.events.back().origin == m.answers) {
      answers = m.answers;
      in_flight.erase(it);
      auto& q = queued[answers];
      q = std::max(q, m.events.back().origin_sequence);
      ++answers_pending[answers];
    }
  }
  log.ingest(std::move(m.events),
             asio::bind_executor(ex, [self = shared_from_this(), origins = std::move(origins),
                                      answers, from = m.node](std::error_code ec, IngestResult r) {
               if (self->stopped) return;
               auto& c = self->counters;
               c.stored += r.stored;
               c.duplicates += r.duplicates;
               c.gaps += r.gaps;
               c.rejected += r.rejected;
               if (ec) {
                 spdlog::error("event replication: storing events from '{}' failed: {}", from,
                               ec.message());
               }
               if (!answers.empty() && --self->answers_pending[answers] == 0) {
                 // Stored (or failed): the committed head says where to go on.
                 self->answers_pending.erase(answers);
                 self->queued.erase(answers);
               }
               for (const auto& o : origins) self->pump(o);
             }));
  if (!answers.empty()) pump(answers);  // the next batch, while this one commits
}

void EventReplicator::Impl::on_state(rp::StateMessage m) {
  auto& peer = peers[m.node];
  peer.heads = std::move(m.heads);
  peer.seen = Clock::now();
  bool they_lack = false;
  auto mine = log.origin_heads();
  for (const auto& [origin, head] : mine) {
    auto it = peer.heads.find(origin);
    if (head > 0 && (it == peer.heads.end() || it->second < head)) they_lack = true;
  }
  std::vector<std::string> behind;
  for (const auto& [origin, head] : peer.heads) {
    auto it = mine.find(origin);
    if (head > (it == mine.end() ? 0 : it->second)) behind.push_back(origin);
  }
  for (const auto& o : behind) pump(o);
  // Tell a node that lacks events at once (a late joiner), not at the next
  // tick; at most four times per interval.
  if (they_lack && Clock::now() - last_announce > options.announce_interval / 4) announce();
}

void EventReplicator::Impl::on_fetch(const rp::FetchMessage& m, const std::string& reply_to) {
  std::size_t max = static_cast<std::size_t>(
      std::min<std::uint64_t>(std::max<std::uint64_t>(m.max, 1), options.batch_events));
  std::vector<std::string> encoded;
  std::size_t bytes = 0;
  std::error_code ec;
  // One read per answer; the rest is asked for again.
  log.read_origin(
      m.origin, m.from, max,
      [&](const Event& e) {
        if (bytes >= budget) return;
        std::string one = rp::encode_event(e);
        if (!encoded.empty() && bytes + one.size() > budget) {
          bytes = budget;
          return;
        }
        bytes += one.size() + 1;
        encoded.push_back(std::move(one));
      },
      ec);
  if (ec) {
    spdlog::error("event replication: reading origin '{}' for '{}' failed", m.origin, m.node);
    return;
  }
  ++counters.fetches_answered;
  publish(reply_to, rp::encode_events(node, encoded, m.origin));
}

// ---- catch-up ----

// Asks one node for the next events of `origin`, if some node is known to
// have more than this log and no fetch for it is pending.
void EventReplicator::Impl::pump(const std::string& origin) {
  if (stopped || origin.empty()) return;
  std::uint64_t head = log.origin_head(origin);
  if (auto q = queued.find(origin); q != queued.end()) head = std::max(head, q->second);
  const auto now = Clock::now();
  auto fl = in_flight.find(origin);
  if (fl != in_flight.end()) {
    if (now < fl->second.deadline) return;
    // No answer in time: forget what that node announced, so that another
    // one is asked (its next announcement brings it back).
    spdlog::debug("event replication: fetch of '{}' from '{}' timed out", origin, fl->second.from);
    peers.erase(fl->second.from);
    in_flight.erase(fl);
  }
  std::string source;
  std::uint64_t best = head;
  for (const auto& [name, peer] : peers) {
    auto it = peer.heads.find(origin);
    if (it != peer.heads.end() && it->second > best) {
      best = it->second;
      source = name;
    }
  }
  if (source.empty()) {
    auto h = heard.find(origin);
    auto s = sender.find(origin);
    if (h == heard.end() || h->second <= head || s == sender.end()) return;
    source = s->second;
  }
  rp::FetchMessage f{node, origin, head + 1, options.batch_events};
  if (!publish(subjects.fetch(source), rp::encode(f), subjects.inbox(node))) {
    peers.erase(source);  // gone (no responders); the next tick tries another
    if (sender[origin] == source) sender.erase(origin);
    return;
  }
  ++counters.fetches_sent;
  in_flight[origin] = {source, head + 1, now + options.fetch_timeout};
}

void EventReplicator::Impl::announce() {
  rp::StateMessage m{node, log.origin_heads()};
  last_announce = Clock::now();
  if (publish(subjects.state(), rp::encode(m))) ++counters.announcements;
}

void EventReplicator::Impl::tick() {
  announce();
  const auto now = Clock::now();
  std::erase_if(peers,
                [&](const auto& p) { return now - p.second.seen > 5 * options.announce_interval; });
  std::set<std::string> origins;
  for (const auto& [o, h] : heard) origins.insert(o);
  for (const auto& [name, peer] : peers) {
    for (const auto& [o, h] : peer.heads) origins.insert(o);
  }
  for (const auto& o : origins) pump(o);
}

void EventReplicator::Impl::arm_timer() {
  timer.expires_after(options.announce_interval);
  timer.async_wait([weak = weak_from_this()](std::error_code ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopped) return;
    self->tick();
    self->arm_timer();
  });
}

// ---- EventReplicator ----

EventReplicator::EventReplicator(EventLog& log, std::shared_ptr<Transport> transport,
                                 asio::any_io_executor executor, EventReplicatorOptions options)
    : impl_(std::make_shared<Impl>(log, std::move(transport), std::move(executor),
                                   std::move(options))) {
  Impl& d = *impl_;
  if (!d.transport) throw Error(errc::invalid_argument, "event replication: no transport");
  d.node = log.origin();
  if (!rp::valid_token(d.node)) {
    throw Error(errc::invalid_argument,
                "event replication: the log's origin '" + d.node +
                    "' cannot be a subject token (no '.', '*', '>' or spaces); set "
                    "EventLogOptions::origin");
  }
  const std::string& prefix = d.options.subject_prefix;
  bool prefix_ok = !prefix.empty();
  for (std::size_t start = 0; prefix_ok && start <= prefix.size();) {
    std::size_t dot = prefix.find('.', start);
    if (dot == std::string::npos) dot = prefix.size();
    prefix_ok = rp::valid_token(std::string_view(prefix).substr(start, dot - start));
    start = dot + 1;
  }
  if (!prefix_ok) {
    throw Error(errc::invalid_argument, "event replication: subject_prefix '" + prefix +
                                            "' is not a subject without wildcards");
  }
  if (d.options.batch_events == 0) d.options.batch_events = 1;
  if (d.options.announce_interval.count() <= 0) {
    throw Error(errc::invalid_argument, "event replication: announce_interval must be positive");
  }
  d.subjects.prefix = prefix;
  std::size_t max = d.transport->max_payload();
  d.budget = std::min(d.options.batch_bytes, max > 4096 ? max - 1024 : max);
}

EventReplicator::~EventReplicator() {
  stop();
}

std::error_code EventReplicator::start() {
  return impl_->start();
}

void EventReplicator::stop() {
  impl_->stop();
}

const std::string& EventReplicator::node() const {
  return impl_->node;
}

EventReplicatorStats EventReplicator::stats() const {
  auto& c = impl_->counters;
  return {c.published.load(),    c.received.load(),     c.stored.load(),
          c.duplicates.load(),   c.gaps.load(),         c.rejected.load(),
          c.bad_messages.load(), c.fetches_sent.load(), c.fetches_answered.load(),
          c.announcements.load()};
}

}  // namespace switchboard
