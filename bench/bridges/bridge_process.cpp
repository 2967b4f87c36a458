#include "bridge_process.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "machine_cpu.hpp"

namespace bridge_bench {

BridgeProcess::BridgeProcess(const std::string& switchboard, const BridgeUrls& urls,
                             std::size_t window) {
  char dir[] = "/tmp/switchboard-bridge-bench-XXXXXX";
  if (!::mkdtemp(dir)) throw std::runtime_error("cannot create a directory for the bridge");
  dir_ = dir;
  log_ = dir_ + "/bridge.log";
  std::string config = dir_ + "/bridge.yaml";
  std::ofstream(config) << "transports:\n"
                        << "  bus: { url: \"" << urls.nats << "\" }\n"
                        << "  events: { url: \"" << urls.kafka << "\" }\n"
                        << "  events_plain: { url: \"" << urls.kafka << "\", idempotence: false }\n"
                        << "  rabbit: { url: \"" << urls.amqp << "\" }\n"
                        << "runtime: { transport: bus }\n"
                        << "log: { level: warn }\n"
                        << "bridges:\n"
                        << "  - name: to-kafka\n"
                        << "    from: { transport: bus, subject: \"tokafka.>\" }\n"
                        << "    to: { transport: events, subject: \"{2}\" }\n"
                        << "    max_in_flight: " << window << "\n"
                        << "  - name: to-kafka-plain\n"
                        << "    from: { transport: bus, subject: \"tokafkaplain.>\" }\n"
                        << "    to: { transport: events_plain, subject: \"{2}\" }\n"
                        << "    max_in_flight: " << window << "\n"
                        << "  - name: to-rabbit\n"
                        << "    from: { transport: bus, subject: \"torabbit.>\" }\n"
                        << "    to: { transport: rabbit, subject: \"{2}\" }\n"
                        << "    max_in_flight: " << window << "\n";
  process_ = std::make_unique<switchboard::test::ChildProcess>(
      std::vector<std::string>{switchboard, "run", config}, log_);
}

double BridgeProcess::cpu_seconds() const {
  auto cpu = read_process_cpu(process_->pid());
  if (!cpu) return 0;
  return static_cast<double>(cpu->ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

BridgeProcess::~BridgeProcess() {
  process_->stop(SIGTERM);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace bridge_bench
