#include "switchboard/app.hpp"

#include <spdlog/spdlog.h>

namespace switchboard {

App::App(asio::io_context& io, Config config)
    : config_(std::move(config)), host_(config_.plugin_path), strand_(asio::make_strand(io)) {
  set_log_level(config_.log.level);
  auto codec = host_.create_codec(config_.codec);
  const TransportConfig& tc = config_.runtime_transport();
  std::shared_ptr<Transport> transport;
  try {
    transport = host_.create_transport(tc, TransportContext{strand_});
  } catch (const OptionError& e) {
    rethrow_with_location(config_, "transports." + tc.instance, e);
  }
  RuntimeOptions options;
  options.name = config_.runtime.name;
  options.timeout = config_.runtime.timeout;
  options.order = config_.runtime.order == "insertion" ? PatternRouter::Order::insertion
                                                       : PatternRouter::Order::specificity;
  options.max_recursion = config_.runtime.max_recursion;
  options.inbox_prefix = config_.runtime.inbox_prefix;
  runtime_ = std::make_unique<Runtime>(strand_, std::move(transport), std::move(codec), options);
  add_decoders();
}

App::~App() = default;

// Every node decodes every envelope codec it can load, so json and msgpack
// nodes interoperate; json is always there (Hemera speaks it). A codec that
// is not installed is simply not offered.
void App::add_decoders() {
  for (const char* name : {"json", "msgpack"}) {
    if (name == config_.codec) continue;
    try {
      runtime_->add_decoder(host_.create_codec(name));
    } catch (const std::exception& e) {
      spdlog::debug("codec '{}' not available for decoding: {}", name, e.what());
    }
  }
}

void App::start() {
  const TransportConfig& tc = config_.runtime_transport();
  if (auto ec = runtime_->start()) {
    throw Error(errc::transport_error, "transport '" + tc.instance + "' (" + tc.type + " " +
                                           tc.url + "): cannot connect: " + ec.message());
  }
  for (std::size_t i = 0; i < config_.plugins.size(); ++i) {
    const auto& spec = config_.plugins[i];
    auto plugin = host_.create_runtime_plugin(spec.name);
    try {
      runtime_->use(plugin, spec.options);
    } catch (const OptionError& e) {
      rethrow_with_location(config_, "plugins[" + std::to_string(i) + "].options", e);
    }
  }
}

void set_log_level(const std::string& level) {
  auto parsed = spdlog::level::from_str(level);
  if (parsed == spdlog::level::off && level != "off") {
    throw Error(errc::invalid_argument, "unknown log level '" + level +
                                            "' (trace, debug, info, warn, error, critical, off)");
  }
  spdlog::set_level(parsed);
}

}  // namespace switchboard
