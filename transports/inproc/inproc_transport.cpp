// inproc: the reference transport, inside one process. Runtimes that open
// the same `inproc://<name>` share one bus. Payloads are shared, not copied,
// between receivers; each delivery is posted to the receiver's executor, in
// publish order, so per-publisher ordering holds.
#include <atomic>
#include <map>
#include <mutex>

#include "switchboard/config.hpp"
#include "switchboard/error.hpp"
#include "switchboard/plugin_abi.hpp"
#include "switchboard/subject.hpp"
#include "switchboard/transport.hpp"

namespace switchboard {
namespace {

struct Target {
  asio::any_io_executor executor;
  std::shared_ptr<MessageHandler> handler;
  std::shared_ptr<std::atomic<bool>> alive;
};

// One named bus: the subject index and who gets what.
class Bus {
 public:
  SubjectIndex::Id add(const std::string& subject, const std::string& queue, Target target) {
    std::lock_guard lock(mutex_);
    auto id = index_.insert(subject, queue);
    targets_.emplace(id, std::move(target));
    return id;
  }
  void remove(SubjectIndex::Id id) {
    std::lock_guard lock(mutex_);
    index_.erase(id);
    targets_.erase(id);
  }
  // Returns how many receivers got the message.
  std::size_t deliver(const Message& msg) {
    std::vector<Target> receivers;
    {
      std::lock_guard lock(mutex_);
      ids_.clear();
      index_.match(msg.subject, ids_);
      for (auto id : ids_) receivers.push_back(targets_.at(id));
    }
    for (auto& t : receivers) {
      asio::post(t.executor, [t, msg]() mutable {
        if (t.alive->load()) (*t.handler)(std::move(msg));
      });
    }
    return receivers.size();
  }

 private:
  std::mutex mutex_;
  SubjectIndex index_;
  std::map<SubjectIndex::Id, Target> targets_;
  std::vector<SubjectIndex::Id> ids_;
};

std::shared_ptr<Bus> bus_named(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, std::weak_ptr<Bus>> buses;
  std::lock_guard lock(mutex);
  auto& weak = buses[name];
  auto bus = weak.lock();
  if (!bus) {
    bus = std::make_shared<Bus>();
    weak = bus;
  }
  return bus;
}

// One subscription's registration on the bus, shared by the handle the
// user holds and the transport (which detaches it on close).
struct Registration {
  std::shared_ptr<Bus> bus;
  SubjectIndex::Id id;
  std::shared_ptr<std::atomic<bool>> alive;
  std::atomic<bool> registered{true};
  // Stops new deliveries; queued ones still run unless `alive` is cleared.
  void detach() {
    if (registered.exchange(false)) bus->remove(id);
  }
};

class InprocSubscription final : public Subscription {
 public:
  InprocSubscription(std::shared_ptr<Registration> reg, std::string subject)
      : reg_(std::move(reg)), subject_(std::move(subject)) {}
  void unsubscribe() override {
    reg_->alive->store(false);
    reg_->detach();
  }
  const std::string& subject() const override { return subject_; }

 private:
  std::shared_ptr<Registration> reg_;
  std::string subject_;
};

class InprocTransport final : public Transport {
 public:
  InprocTransport(const TransportConfig& config, const TransportContext& context)
      : executor_(context.executor), max_payload_(config.max_payload) {
    std::string url = config.url.empty() ? "inproc://default" : config.url;
    const std::string scheme = "inproc://";
    if (url.rfind(scheme, 0) != 0) {
      throw OptionError("url", "inproc url must start with inproc://, got '" + url + "'");
    }
    bus_name_ = url.substr(scheme.size());
    if (bus_name_.empty()) bus_name_ = "default";
    for (auto it = config.options.begin(); it != config.options.end(); ++it) {
      throw OptionError(it.key(), "unknown option for the inproc transport");
    }
  }

  const std::string& type() const override {
    static const std::string name = "inproc";
    return name;
  }
  Capabilities capabilities() const override {
    Capabilities c;
    c.wildcards = true;
    c.queue_groups = true;
    c.headers = true;
    c.no_responders = true;
    return c;
  }
  std::size_t max_payload() const override { return max_payload_; }

  std::error_code connect() override {
    bus_ = bus_named(bus_name_);
    emit({TransportStatus::connected, "inproc://" + bus_name_});
    return {};
  }

  std::error_code publish(Message msg) override {
    if (!bus_ || closed_) return make_error_code(errc::closed);
    if (msg.data.size() > max_payload_) return make_error_code(errc::payload_too_large);
    std::string why;
    if (auto ec = validate_subject(msg.subject, false, why)) return ec;
    bool wants_reply = !msg.reply_to.empty();
    std::size_t receivers = bus_->deliver(msg);
    if (wants_reply && receivers == 0) return make_error_code(errc::no_responders);
    return {};
  }

  std::error_code subscribe(const std::string& subject, const std::string& queue_group,
                            MessageHandler handler, std::unique_ptr<Subscription>& out) override {
    if (!bus_ || closed_) return make_error_code(errc::closed);
    std::string why;
    if (auto ec = validate_subject(subject, true, why)) return ec;
    auto alive = std::make_shared<std::atomic<bool>>(true);
    auto id =
        bus_->add(subject, queue_group,
                  Target{executor_, std::make_shared<MessageHandler>(std::move(handler)), alive});
    auto reg = std::make_shared<Registration>();
    reg->bus = bus_;
    reg->id = id;
    reg->alive = alive;
    registrations_.push_back(reg);
    out = std::make_unique<InprocSubscription>(std::move(reg), subject);
    return {};
  }

  void on_status(StatusHandler handler) override { status_ = std::move(handler); }

  void close(std::function<void()> done) override {
    closed_ = true;
    // Detach every subscription still alive, then complete after the
    // deliveries already queued on the executor (drain).
    for (auto& reg : registrations_) reg->detach();
    registrations_.clear();
    asio::post(executor_, [status = status_, name = bus_name_, done = std::move(done)] {
      if (status) status({TransportStatus::closed, "inproc://" + name});
      if (done) done();
    });
  }

 private:
  void emit(StatusEvent ev) {
    if (status_) asio::post(executor_, [h = status_, ev] { h(ev); });
  }

  asio::any_io_executor executor_;
  std::size_t max_payload_;
  std::string bus_name_;
  std::shared_ptr<Bus> bus_;
  bool closed_ = false;
  std::vector<std::shared_ptr<Registration>> registrations_;
  StatusHandler status_;
};

const TransportFactoryFor<InprocTransport> factory;

}  // namespace
}  // namespace switchboard

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_TRANSPORT, "inproc", "1.0.0", switchboard::factory)
