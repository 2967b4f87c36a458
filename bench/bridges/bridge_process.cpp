#include "bridge_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
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
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int out = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    ::execl(switchboard.c_str(), switchboard.c_str(), "run", config.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
}

bool BridgeProcess::running() {
  if (pid_ <= 0) return false;
  if (::waitpid(pid_, nullptr, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

double BridgeProcess::cpu_seconds() const {
  // /proc/PID/stat: fields 14 and 15 are utime and stime in clock ticks;
  // the command name (field 2) is in parentheses and may hold spaces.
  std::ifstream in("/proc/" + std::to_string(pid_) + "/stat");
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
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

}  // namespace bridge_bench
