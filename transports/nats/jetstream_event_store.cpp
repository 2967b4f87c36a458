// The event-store plugin "jetstream-events": an EventLog kept in a JetStream
// stream (layout in jetstream_event_format.hpp, docs/events.md "Backends").
//
// cnats is used synchronously here: the EventLog calls a store from its
// writer thread (or under its read lock), so blocking is what it expects.
// Group commit publishes a batch asynchronously (pipelined) and waits for
// every ack before commit() returns.
#include <nats/nats.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <vector>

#include "jetstream_event_format.hpp"
#include "nats_jetstream.hpp"
#include "switchboard/config.hpp"
#include "switchboard/event_store.hpp"
#include "switchboard/plugin_abi.hpp"

namespace switchboard::nats::events {
namespace {

constexpr const char* kFormat = "switchboard-events";

std::string status_text(natsStatus s) {
  std::string text = natsStatus_GetText(s);
  const char* last = nats_GetLastError(nullptr);
  if (last != nullptr && *last != '\0' && text != last) text += " (" + std::string(last) + ")";
  return text;
}

struct Options {
  std::string prefix;  // subject prefix
  int replicas = 1;
  bool memory = false;
  std::int64_t timeout_ms = 5000;
};

Options read_options(const EventStoreConfig& config) {
  Options o;
  o.prefix = "sbevents." + config.location;
  for (const auto& [key, value] : config.options.items()) {
    if (key == "subject_prefix") {
      if (!value.is_string() || value.get<std::string>().empty()) {
        throw OptionError(key, "must be a non-empty string of subject tokens");
      }
      o.prefix = value.get<std::string>();
    } else if (key == "replicas") {
      if (!value.is_number_integer() || value.get<int>() < 1 || value.get<int>() > 5) {
        throw OptionError(key, "must be an integer from 1 to 5");
      }
      o.replicas = value.get<int>();
    } else if (key == "storage") {
      if (!value.is_string() || (value != "file" && value != "memory")) {
        throw OptionError(key, "must be \"file\" or \"memory\"");
      }
      o.memory = value == "memory";
    } else if (key == "timeout_ms") {
      if (!value.is_number_integer() || value.get<std::int64_t>() < 1) {
        throw OptionError(key, "must be a positive integer (milliseconds)");
      }
      o.timeout_ms = value.get<std::int64_t>();
    } else {
      throw OptionError(key,
                        "unknown option (known: subject_prefix, replicas, storage, timeout_ms)");
    }
  }
  return o;
}

// Owns a natsMsg.
struct Msg {
  natsMsg* m = nullptr;
  Msg() = default;
  explicit Msg(natsMsg* p) : m(p) {}
  ~Msg() { natsMsg_Destroy(m); }
  Msg(const Msg&) = delete;
  Msg& operator=(const Msg&) = delete;
  std::optional<std::string> header(const char* key) const {
    const char* v = nullptr;
    if (natsMsgHeader_Get(m, key, &v) != NATS_OK || v == nullptr) return std::nullopt;
    return std::string(v);
  }
  std::string data() const {
    return std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m)));
  }
};

class JetStreamEventStore final : public EventStore {
 public:
  explicit JetStreamEventStore(const EventStoreConfig& config)
      : config_(config), options_(read_options(config)) {
    name_ = config.location;
    if (!valid_jetstream_name(name_)) {
      throw EventStoreError("event log '" + name_ +
                            "' (jetstream): the name must be a valid stream name (one subject "
                            "token without '.', '*', '>' or spaces)");
    }
    meta_name_ = name_ + "_META";
    events_subjects_ = options_.prefix + ".e.*";
    meta_subjects_ = options_.prefix + ".m.>";
    connect();
    try {
      open_streams();
    } catch (...) {
      disconnect();
      throw;
    }
  }
  ~JetStreamEventStore() override { disconnect(); }

  Head head() override {
    Head h;
    auto state = stream_state(name_, nullptr);
    h.sequence = state.last_seq;
    if (h.sequence == 0) return h;
    Msg m = get_msg(h.sequence);
    if (!m.m) fail("its newest event " + std::to_string(h.sequence) + " is missing");
    auto hash = hash_from_hex(m.header(kHashHeader).value_or(""));
    if (!hash) fail("event " + std::to_string(h.sequence) + " has no valid " + kHashHeader);
    h.hash = *hash;
    return h;
  }

  OriginHead origin_head(const std::string& origin) override {
    OriginHead h;
    if (!valid_subject_token(origin)) return h;
    Msg m = get_last(name_, options_.prefix + ".e." + origin);
    if (!m.m) return h;
    Event e;
    decode(m, natsMsg_GetSequence(m.m), e);
    h.origin_sequence = e.origin_sequence;
    h.timestamp_us = e.timestamp_us;
    return h;
  }

  std::map<std::string, std::uint64_t> origin_heads() override {
    std::map<std::string, std::uint64_t> out;
    std::vector<std::string> subjects;
    stream_state(name_, events_subjects_.c_str(), &subjects);
    const std::string lead = options_.prefix + ".e.";
    for (const auto& s : subjects) {
      std::string origin = s.substr(lead.size());
      auto h = origin_head(origin);
      if (h.origin_sequence > 0) out[origin] = h.origin_sequence;
    }
    return out;
  }

  std::optional<std::string> meta(const std::string& key) override {
    Msg m = get_last(meta_name_, meta_subject("meta", key));
    if (!m.m) return std::nullopt;
    return m.data();
  }

  std::map<std::string, std::string> types() override {
    std::map<std::string, std::string> out;
    std::vector<std::string> subjects;
    const std::string lead = options_.prefix + ".m.type.";
    stream_state(meta_name_, (lead + "*").c_str(), &subjects);
    for (const auto& s : subjects) {
      auto name = hex_decode(s.substr(lead.size()));
      if (!name) continue;
      Msg m = get_last(meta_name_, s);
      if (m.m) out[*name] = m.data();
    }
    return out;
  }

  std::optional<std::uint64_t> consumer(const std::string& name) override {
    Msg m = get_last(meta_name_, meta_subject("consumer", name));
    if (!m.m) return std::nullopt;
    try {
      return std::stoull(m.data());
    } catch (const std::exception&) {
      fail("consumer '" + name + "' has a cursor that is not a number: " + m.data());
    }
  }

  void begin() override {
    pending_events_.clear();
    pending_meta_.clear();
  }
  void insert(const Event& e) override {
    if (config_.read_only) fail("it is open read-only");
    if (!valid_subject_token(e.origin)) {
      fail("origin '" + e.origin +
           "' cannot name a subject (letters, digits, '-' and '_' only on this backend)");
    }
    if (!valid_header_value(e.type)) {
      fail("event type '" + e.type + "' cannot be a header value (CR, LF or NUL in it)");
    }
    pending_events_.push_back(e);
  }
  void put_meta(const std::string& key, const std::string& value) override {
    // Write-once (the origin): the first writer of a new log wins.
    pending_meta_.push_back({meta_subject("meta", key), value, true});
  }
  void put_type(const std::string& name, const std::string& schema) override {
    pending_meta_.push_back({meta_subject("type", name), schema, false});
  }
  void put_consumer(const std::string& name, std::uint64_t position) override {
    pending_meta_.push_back({meta_subject("consumer", name), std::to_string(position), false});
  }

  void commit() override {
    if (!pending_events_.empty()) publish_events();
    for (const auto& m : pending_meta_) publish_meta(m);
    pending_events_.clear();
    pending_meta_.clear();
  }
  void rollback() noexcept override {
    pending_events_.clear();
    pending_meta_.clear();
  }

  std::size_t read(std::uint64_t from, std::uint64_t to, std::size_t max,
                   const std::function<void(const Event&)>& fn, Event& scratch) override {
    from = std::max<std::uint64_t>(from, 1);
    if (max == 0 || from > to) return 0;
    std::uint64_t last = stream_state(name_, nullptr).last_seq;
    to = std::min(to, last);
    if (from > to) return 0;
    std::size_t n = 0;
    consume(events_subjects_, from, [&](Msg& m, std::uint64_t seq, std::uint64_t pending) {
      if (seq > to) return false;
      decode(m, seq, scratch);
      fn(scratch);
      ++n;
      return n < max && seq < to && pending > 0;
    });
    return n;
  }

  std::size_t read_origin(const std::string& origin, std::uint64_t from, std::size_t max,
                          const std::function<void(const Event&)>& fn, Event& scratch) override {
    if (max == 0 || !valid_subject_token(origin)) return 0;
    if (origin_head(origin).origin_sequence < from) return 0;
    // The origin's events are its subject's messages in order; JetStream has
    // no index by a header, so this reads the subject from its start.
    std::size_t n = 0;
    consume(options_.prefix + ".e." + origin, 1,
            [&](Msg& m, std::uint64_t seq, std::uint64_t pending) {
              decode(m, seq, scratch);
              if (scratch.origin_sequence >= from) {
                fn(scratch);
                ++n;
              }
              return n < max && pending > 0;
            });
    return n;
  }

 private:
  struct MetaWrite {
    std::string subject;
    std::string value;
    bool once;
  };
  struct StreamState {
    std::uint64_t last_seq = 0;
  };

  [[noreturn]] void fail(const std::string& what) const {
    throw EventStoreError("event log '" + name_ + "' (jetstream " + config_.url + "): " + what);
  }

  std::string meta_subject(const char* kind, const std::string& name) const {
    return options_.prefix + ".m." + kind + "." + hex_encode(name);
  }

  void connect() {
    natsOptions* opts = nullptr;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK) s = natsOptions_SetURL(opts, config_.url.c_str());
    if (s == NATS_OK) s = natsOptions_SetName(opts, ("switchboard events " + name_).c_str());
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, options_.timeout_ms);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK) s = natsConnection_Connect(&nc_, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) fail("cannot connect: " + status_text(s));
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.timeout_ms;
    jo.PublishAsync.AckHandler = &JetStreamEventStore::on_ack;
    jo.PublishAsync.AckHandlerClosure = this;
    s = natsConnection_JetStream(&js_, nc_, &jo);
    if (s != NATS_OK) fail("no JetStream context: " + status_text(s));
  }

  void disconnect() {
    if (js_) jsCtx_Destroy(js_);
    js_ = nullptr;
    if (nc_) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
    nc_ = nullptr;
  }

  void open_streams() {
    ensure_stream(name_, events_subjects_, false);
    ensure_stream(meta_name_, meta_subjects_, true);
    auto format = meta("format");
    if (!format) {
      if (config_.read_only) fail("the log has no format marker: it was never written");
      publish_meta({meta_subject("meta", "format"), kFormat, true});
    } else if (*format != kFormat) {
      fail("not an event log (its format marker is '" + *format + "')");
    }
  }

  void ensure_stream(const std::string& stream, const std::string& subject, bool per_subject_one) {
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), nullptr, &jerr);
    if (s == NATS_OK) {
      bool ours = si->Config->SubjectsLen == 1 && subject == si->Config->Subjects[0];
      jsStreamInfo_Destroy(si);
      if (!ours) {
        fail("stream '" + stream + "' exists with other subjects than '" + subject +
             "': not this event log (or another subject_prefix)");
      }
      return;
    }
    if (s != NATS_NOT_FOUND && jerr != kJsStreamNotFound) {
      fail("stream info of '" + stream + "': " + status_text(s));
    }
    if (config_.read_only) fail("there is no stream '" + stream + "' (the log does not exist)");
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = stream.c_str();
    const char* subjects[] = {subject.c_str()};
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = options_.memory ? js_MemoryStorage : js_FileStorage;
    cfg.Replicas = options_.replicas;
    if (per_subject_one) cfg.MaxMsgsPerSubject = 1;
    s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (s == NATS_OK) {
      jsStreamInfo_Destroy(si);
      return;
    }
    if (jerr == kJsStreamNameExists) return ensure_stream(stream, subject, per_subject_one);
    fail("cannot create stream '" + stream + "': " + status_text(s));
  }

  StreamState stream_state(const std::string& stream, const char* filter,
                           std::vector<std::string>* subjects = nullptr) {
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = options_.timeout_ms;
    if (filter) jo.Stream.Info.SubjectsFilter = filter;
    jsStreamInfo* si = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetStreamInfo(&si, js_, stream.c_str(), &jo, &jerr);
    if (s != NATS_OK) fail("stream info of '" + stream + "': " + status_text(s));
    StreamState out;
    out.last_seq = si->State.LastSeq;
    if (subjects && si->State.Subjects) {
      for (int i = 0; i < si->State.Subjects->Count; ++i) {
        subjects->emplace_back(si->State.Subjects->List[i].Subject);
      }
    }
    jsStreamInfo_Destroy(si);
    return out;
  }

  Msg get_msg(std::uint64_t seq) {
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetMsg(&m, js_, name_.c_str(), seq, nullptr, &jerr);
    if (s == NATS_NOT_FOUND) return Msg();
    if (s != NATS_OK) fail("get event " + std::to_string(seq) + ": " + status_text(s));
    return Msg(m);
  }

  Msg get_last(const std::string& stream, const std::string& subject) {
    natsMsg* m = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_GetLastMsg(&m, js_, stream.c_str(), subject.c_str(), nullptr, &jerr);
    if (s == NATS_NOT_FOUND) return Msg();
    if (s != NATS_OK) fail("get last of '" + subject + "': " + status_text(s));
    return Msg(m);
  }

  void decode(const Msg& m, std::uint64_t seq, Event& e) const {
    e.sequence = seq;
    const char* subject = natsMsg_GetSubject(m.m);
    const std::string lead = options_.prefix + ".e.";
    e.origin = std::strlen(subject) > lead.size() ? std::string(subject + lead.size()) : "";
    e.id = m.header(kMsgIdHeader).value_or("");
    e.payload_json = m.data();
    event_records::read_chain_headers([&](const char* key) { return m.header(key); }, e);
  }

  // An ordered consumer from stream sequence `from` on `subject`; `on` gets
  // each message with its stream sequence and the number still pending
  // after it, and returns whether to go on.
  template <class On>
  void consume(const std::string& subject, std::uint64_t from, On&& on) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = name_.c_str();
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = from;
    natsSubscription* sub = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    natsStatus s = js_SubscribeSync(&sub, js_, subject.c_str(), nullptr, &so, &jerr);
    if (s != NATS_OK) fail("read from " + std::to_string(from) + ": " + status_text(s));
    struct Unsub {
      natsSubscription* sub;
      ~Unsub() {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
      }
    } unsub{sub};
    for (;;) {
      natsMsg* raw = nullptr;
      s = natsSubscription_NextMsg(&raw, sub, options_.timeout_ms);
      if (s != NATS_OK) fail("read from " + std::to_string(from) + ": " + status_text(s));
      Msg m(raw);
      jsMsgMetaData* md = nullptr;
      if (natsMsg_GetMetaData(&md, raw) != NATS_OK) continue;  // not a stream message
      std::uint64_t seq = md->Sequence.Stream, pending = md->NumPending;
      jsMsgMetaData_Destroy(md);
      if (!on(m, seq, pending)) return;
    }
  }

  // ---- group commit: pipelined publishes, every ack awaited ----
  struct AckState {
    std::mutex mutex;
    std::uint64_t lo = 0, hi = 0;  // this commit's sequences
    std::size_t acked = 0;
    std::string error;
    bool conflict = false;
  };

  static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* self = static_cast<JetStreamEventStore*>(closure);
    Msg owned(msg);
    auto expect = owned.header(kExpectedLastSequenceHeader);
    std::uint64_t seq = expect ? std::stoull(*expect) + 1 : 0;
    AckState& st = self->acks_;
    std::lock_guard lock(st.mutex);
    if (seq < st.lo || seq > st.hi) return;  // a late ack of an earlier, failed commit
    ++st.acked;
    if (!st.error.empty()) return;
    if (pae) {
      if (pae->ErrCode == kWrongLastSequence) {
        st.conflict = true;
        st.error = "another writer appended to stream '" + self->name_ + "' (event " +
                   std::to_string(seq) + " refused: " + (pae->ErrText ? pae->ErrText : "") + ")";
      } else {
        st.error = "event " + std::to_string(seq) + " refused: " +
                   (pae->ErrText ? std::string(pae->ErrText) : status_text(pae->Err));
      }
    } else if (pa && (pa->Duplicate || pa->Sequence != seq)) {
      // The id is there already (another writer stored this origin's event)
      // or the stream put it elsewhere: either way another writer was here.
      st.conflict = true;
      st.error = "another writer appended to stream '" + self->name_ + "' (event " +
                 std::to_string(seq) + " acknowledged as " +
                 (pa->Duplicate ? "a duplicate" : "sequence " + std::to_string(pa->Sequence)) + ")";
    }
  }

  void publish_events() {
    {
      std::lock_guard lock(acks_.mutex);
      acks_.lo = pending_events_.front().sequence;
      acks_.hi = pending_events_.back().sequence;
      acks_.acked = 0;
      acks_.error.clear();
      acks_.conflict = false;
    }
    for (const Event& e : pending_events_) {
      natsMsg* m = nullptr;
      std::string subject = options_.prefix + ".e." + e.origin;
      natsStatus s = natsMsg_Create(&m, subject.c_str(), nullptr, e.payload_json.data(),
                                    static_cast<int>(e.payload_json.size()));
      auto set = [&](const char* k, const std::string& v) {
        if (s == NATS_OK) s = natsMsgHeader_Set(m, k, v.c_str());
      };
      set(kMsgIdHeader, e.id);
      set(kExpectedLastSequenceHeader, std::to_string(e.sequence - 1));
      for (const auto& [key, value] : event_records::chain_headers(e)) set(key, value);
      if (s == NATS_OK) s = js_PublishMsgAsync(js_, &m, nullptr);
      if (s != NATS_OK) {
        natsMsg_Destroy(m);
        wait_acks();  // what was sent may land; the log reads the head again
        fail("publish of event " + std::to_string(e.sequence) + ": " + status_text(s));
      }
    }
    wait_acks();
    std::lock_guard lock(acks_.mutex);
    if (acks_.conflict)
      throw EventStoreConflict("event log '" + name_ + "' (jetstream): " + acks_.error);
    if (!acks_.error.empty()) fail(acks_.error);
  }

  void wait_acks() {
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = options_.timeout_ms;
    natsStatus s = js_PublishAsyncComplete(js_, &po);
    if (s != NATS_OK) fail("waiting for acks: " + status_text(s));
  }

  void publish_meta(const MetaWrite& w) {
    natsMsg* m = nullptr;
    natsStatus s = natsMsg_Create(&m, w.subject.c_str(), nullptr, w.value.data(),
                                  static_cast<int>(w.value.size()));
    if (s == NATS_OK && w.once) s = natsMsgHeader_Set(m, kExpectedLastSubjectSequenceHeader, "0");
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    if (s == NATS_OK) s = js_PublishMsg(&pa, js_, m, nullptr, &jerr);
    natsMsg_Destroy(m);
    jsPubAck_Destroy(pa);
    if (s != NATS_OK) {
      if (w.once && jerr != 0) return;  // set already by another writer: theirs stands
      fail("write of '" + w.subject + "': " + status_text(s));
    }
  }

  EventStoreConfig config_;
  Options options_;
  std::string name_, meta_name_, events_subjects_, meta_subjects_;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  AckState acks_;
  std::vector<Event> pending_events_;
  std::vector<MetaWrite> pending_meta_;
};

const EventStoreFactoryFor<JetStreamEventStore> kFactory;

}  // namespace
}  // namespace switchboard::nats::events

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_EVENT_STORE, "jetstream-events", "1.0.0",
                   switchboard::nats::events::kFactory)
