#include "bridge_process.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

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
                        << "  rabbit: { url: \"" << urls.amqp << "\" }\n"
                        << "runtime: { transport: bus }\n"
                        << "log: { level: warn }\n"
                        << "bridges:\n"
                        << "  - name: to-kafka\n"
                        << "    from: { transport: bus, subject: \"tokafka.>\" }\n"
                        << "    to: { transport: events, subject: \"{2}\" }\n"
                        << "    max_in_flight: " << window << "\n"
                        << "  - name: to-rabbit\n"
                        << "    from: { transport: bus, subject: \"torabbit.>\" }\n"
                        << "    to: { transport: rabbit, subject: \"{2}\" }\n"
                        << "    max_in_flight: " << window << "\n";
  process_ = std::make_unique<switchboard::test::ChildProcess>(
      std::vector<std::string>{switchboard, "run", config}, log_);
}

double BridgeProcess::cpu_seconds() const {
  // /proc/PID/stat: fields 14 and 15 are utime and stime in clock ticks;
  // the command name (field 2) is in parentheses and may hold spaces.
  std::ifstream in("/proc/" + std::to_string(process_->pid()) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i >= 14) ticks += std::stod(field);
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

BridgeProcess::~BridgeProcess() {
  process_->stop(SIGTERM);
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace bridge_bench
