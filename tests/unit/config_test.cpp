#include "switchboard/config.hpp"

#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

namespace switchboard {
namespace {

namespace fs = std::filesystem;

// Fixtures live beside this file. The directory comes from CMake rather than
// __FILE__, which a compiler cache may have made relative (ccache base_dir).
std::string fixture(const std::string& name) {
  return (fs::path(SWITCHBOARD_CONFIG_FIXTURES) / name).string();
}

ConfigError error_of(const std::string& yaml) {
  try {
    load_config_string(yaml, "bad.yaml");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return ConfigError("", std::nullopt, "", "");
}

class TempFile {
 public:
  explicit TempFile(const std::string& text)
      : path_((fs::temp_directory_path() / ("config_test_" + std::to_string(::getpid()) + "_" +
                                            std::to_string(next_++) + ".yaml"))
                  .string()) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { fs::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  static inline int next_ = 0;
  std::string path_;
};

TEST(Config, ArchitectureExample) {
  const std::string path = fixture("full.yaml");
  Config c = load_config_file(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.plugin_path, std::vector<std::string>{"./build/lib/switchboard"});
  EXPECT_EQ(c.codec, "json");
  ASSERT_EQ(c.transports.size(), 3u);

  const TransportConfig& bus = c.transports.at("bus");
  EXPECT_EQ(bus.instance, "bus");
  EXPECT_EQ(bus.type, "nats");
  EXPECT_EQ(bus.url, "nats://127.0.0.1:4222");
  EXPECT_EQ(bus.options, Json::object());
  EXPECT_EQ(bus.max_payload, 1024u * 1024u);

  const TransportConfig& events = c.transports.at("events");
  EXPECT_EQ(events.type, "kafka");
  EXPECT_EQ(events.url, "");
  EXPECT_EQ(events.options, (Json{{"brokers", "127.0.0.1:9092"}}));
  EXPECT_EQ(c.transports.at("queue").type, "amqp");

  EXPECT_EQ(c.runtime.transport, "bus");
  EXPECT_EQ(&c.runtime_transport(), &bus);
  EXPECT_EQ(c.runtime.timeout, std::chrono::milliseconds(2000));
  EXPECT_EQ(c.runtime.name, "switchboard");
  EXPECT_EQ(c.runtime.order, "specificity");
  EXPECT_EQ(c.runtime.max_recursion, 0);
  EXPECT_EQ(c.runtime.idle_spin, std::chrono::microseconds(0));

  ASSERT_EQ(c.plugins.size(), 1u);
  EXPECT_EQ(c.plugins[0].name, "math");
  EXPECT_EQ(c.plugins[0].options, Json::object());

  ASSERT_EQ(c.bridges.size(), 1u);
  const BridgeSpec& b = c.bridges[0];
  EXPECT_EQ(b.name, "orders-to-kafka");
  EXPECT_EQ(b.from.transport, "bus");
  EXPECT_EQ(b.from.subject, "orders.>");
  EXPECT_EQ(b.to.transport, "events");
  EXPECT_EQ(b.to.subject, "orders");
  EXPECT_EQ(b.options, Json::object());
  EXPECT_EQ(c.log.level, "info");
}

TEST(Config, EveryKey) {
  Config c = load_config_file(fixture("all_keys.yaml"));
  EXPECT_EQ(c.plugin_path, (std::vector<std::string>{"/opt/switchboard/plugins", "./plugins"}));
  EXPECT_EQ(c.codec, "msgpack");
  EXPECT_EQ(c.admin, "127.0.0.1:9100");

  const TransportConfig& bus = c.transports.at("bus");
  EXPECT_EQ(bus.type, "nats");
  EXPECT_EQ(bus.max_payload, 8u * 1024 * 1024);
  EXPECT_EQ(bus.options, (Json{{"reconnect_wait_ms", 250},
                               {"tls", {{"ca_file", "/etc/ssl/ca.pem"}, {"verify", true}}}}));
  EXPECT_EQ(c.transports.at("peer").type, "tcp_peer");
  EXPECT_EQ(c.transports.at("peer").max_payload, 65536u);

  EXPECT_EQ(c.runtime.transport, "bus");
  EXPECT_EQ(c.runtime.timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(c.runtime.name, "billing");
  EXPECT_EQ(c.runtime.order, "insertion");
  EXPECT_EQ(c.runtime.max_recursion, 16);
  EXPECT_EQ(c.runtime.inbox_prefix, "_REPLY");
  EXPECT_EQ(c.runtime.idle_spin, std::chrono::microseconds(250));

  ASSERT_EQ(c.plugins.size(), 2u);
  EXPECT_EQ(c.plugins[0].name, "math");
  EXPECT_EQ(c.plugins[1].name, "stats");
  EXPECT_EQ(c.plugins[1].options,
            (Json{{"interval_ms", 1000}, {"subjects", {"stats.a", "stats.b"}}}));

  ASSERT_EQ(c.bridges.size(), 1u);
  EXPECT_EQ(c.bridges[0].from.options, (Json{{"queue_group", "relays"}}));
  EXPECT_EQ(c.bridges[0].to.transport, "peer");
  EXPECT_EQ(c.bridges[0].to.subject, "");  // keep the source subject
  EXPECT_EQ(c.bridges[0].options, (Json{{"max_inflight", 128}}));
  EXPECT_EQ(c.log.level, "debug");
}

TEST(Config, EmbeddedDefault) {
  for (const char* yaml :
       {"", "# nothing\n", "transports: {}\n", "transports:\n", "codec: json\n"}) {
    SCOPED_TRACE(yaml);
    Config c = load_config_string(yaml);
    ASSERT_EQ(c.transports.size(), 1u);
    const TransportConfig& d = c.transports.at("default");
    EXPECT_EQ(d.instance, "default");
    EXPECT_EQ(d.type, "inproc");
    EXPECT_EQ(d.url, "inproc://default");
    EXPECT_EQ(c.runtime.transport, "default");
    EXPECT_EQ(c.codec, "json");
    EXPECT_EQ(c.runtime.timeout, std::chrono::milliseconds(2000));
    EXPECT_TRUE(c.plugins.empty());
    EXPECT_TRUE(c.bridges.empty());
  }
}

TEST(Config, SingleInstanceIsTheRuntimeTransport) {
  Config c = load_config_string("transports:\n  only: { url: ws://127.0.0.1:8080/bus }\n");
  EXPECT_EQ(c.runtime.transport, "only");
  EXPECT_EQ(c.transports.at("only").type, "websocket");
}

TEST(Config, ExplicitTypeWinsOverScheme) {
  // A third-party transport may bring its own scheme.
  Config c = load_config_string("transports:\n  x: { type: mqtt, url: \"mqtt://h:1883\" }\n");
  EXPECT_EQ(c.transports.at("x").type, "mqtt");
}

TEST(Config, OptionsKeepTheirYamlTypes) {
  Config c = load_config_string(R"(transports:
  t:
    type: custom
    int: 42
    negative: -7
    hex: 0x1f
    big: 18446744073709551615
    float: 2.5
    exp: 1e3
    yes_bool: true
    no_bool: False
    nothing: ~
    empty:
    quoted_int: "42"
    tagged: !!str 7
    text: hello world
    version: 1.2.3
    block: |
      two
      lines
    list: [1, two, 3.0]
    inf: .inf
)");
  const Json& o = c.transports.at("t").options;
  EXPECT_EQ(o["int"], 42);
  EXPECT_TRUE(o["int"].is_number_integer());
  EXPECT_EQ(o["negative"], -7);
  EXPECT_EQ(o["hex"], 31);
  EXPECT_EQ(o["big"].get<std::uint64_t>(), 18446744073709551615ull);
  EXPECT_EQ(o["float"], 2.5);
  EXPECT_EQ(o["exp"], 1000.0);
  EXPECT_EQ(o["yes_bool"], true);
  EXPECT_EQ(o["no_bool"], false);
  EXPECT_TRUE(o["nothing"].is_null());
  EXPECT_TRUE(o["empty"].is_null());
  EXPECT_EQ(o["quoted_int"], "42");
  EXPECT_EQ(o["tagged"], "7");
  EXPECT_EQ(o["text"], "hello world");
  EXPECT_EQ(o["version"], "1.2.3");
  EXPECT_EQ(o["block"], "two\nlines\n");
  EXPECT_EQ(o["list"], (Json{1, "two", 3.0}));
  EXPECT_TRUE(std::isinf(o["inf"].get<double>()));
}

TEST(Config, MaxPayloadSizes) {
  auto payload = [](const std::string& v) {
    return load_config_string("transports:\n  t: { type: x, max_payload: " + v + " }\n")
        .transports.at("t")
        .max_payload;
  };
  EXPECT_EQ(payload("1"), 1u);
  EXPECT_EQ(payload("1048576"), 1048576u);
  EXPECT_EQ(payload("64KiB"), 65536u);
  EXPECT_EQ(payload("\"2 MB\""), 2u * 1024 * 1024);
  EXPECT_EQ(payload("1g"), 1024u * 1024 * 1024);
}

TEST(Config, AnchorsAndMergeKeys) {
  // Top-level `x-` keys are ignored, so shared settings have a place to live.
  Config c = load_config_string(R"(x-common: &common { type: nats, max_payload: 4KB, verbose: true }
transports:
  a: { <<: *common, url: "nats://a:4222" }
  b: { url: "nats://b:4222", verbose: false, <<: *common }
runtime: { transport: a }
)");
  const TransportConfig& a = c.transports.at("a");
  EXPECT_EQ(a.type, "nats");
  EXPECT_EQ(a.url, "nats://a:4222");
  EXPECT_EQ(a.max_payload, 4096u);
  EXPECT_EQ(a.options, (Json{{"verbose", true}}));
  EXPECT_EQ(c.transports.at("b").options, (Json{{"verbose", false}}));  // explicit keys win
  EXPECT_EQ(c.locate("transports.b.verbose")->line, 4);
}

TEST(Config, LocateKeys) {
  Config c = load_config_file(fixture("all_keys.yaml"));
  auto line = [&](const char* key) {
    auto where = c.locate(key);
    return where ? where->line : -1;
  };
  EXPECT_EQ(line("transports"), 6);
  EXPECT_EQ(line("transports.bus"), 7);
  EXPECT_EQ(line("transports.bus.url"), 8);
  EXPECT_EQ(line("transports.bus.tls.ca_file"), 11);
  EXPECT_EQ(line("runtime.order"), 20);
  EXPECT_EQ(line("plugins[0]"), 25);
  EXPECT_EQ(line("plugins[1].options.subjects[1]"), 29);
  EXPECT_EQ(line("bridges[0].to.transport"), 33);
  EXPECT_EQ(line("log.level"), 36);
  EXPECT_EQ(c.locate("transports.bus.tls")->column, 5);
  EXPECT_FALSE(c.locate("transports.bus.type"));
  EXPECT_FALSE(c.locate("nope"));
}

struct BadCase {
  const char* name;
  const char* yaml;
  int line;
  const char* key;
  const char* says;
};

class BadConfig : public testing::TestWithParam<BadCase> {};

TEST_P(BadConfig, NamesFileLineAndKey) {
  const BadCase& p = GetParam();
  ConfigError e = error_of(p.yaml);
  EXPECT_EQ(e.file(), "bad.yaml");
  EXPECT_EQ(e.line(), p.line) << e.what();
  EXPECT_EQ(e.key(), p.key) << e.what();
  const std::string what = e.what();
  EXPECT_EQ(what.rfind("bad.yaml:" + std::to_string(p.line) + ":", 0), 0u) << what;
  EXPECT_NE(what.find(p.key), std::string::npos) << what;
  EXPECT_NE(what.find(p.says), std::string::npos) << what;
}

const BadCase kBadCases[] = {
    {"UnknownTopLevelKey", "codec: json\ntransport: {}\n", 2, "transport",
     "unknown key 'transport'; known keys: plugin_path, codec, transports"},
    {"TopLevelSequence", "- a\n- b\n", 1, "",
     "expected a mapping at the top level, got a sequence"},
    {"SyntaxError", "runtime:\n  transport: [bus\nlog: {}\n", 3, "",
     "end of sequence flow not found"},
    {"TwoDocuments", "codec: json\n---\ncodec: msgpack\n", 3, "", "expected one YAML document"},
    {"DuplicateKey", "log: {}\ncodec: a\ncodec: b\n", 3, "codec",
     "duplicate key; first defined at line 2"},
    {"CodecNotAString", "codec: [json]\n", 1, "codec", "expected a string, got a sequence"},
    {"AdminWithoutPort", "log: {}\nadmin: localhost\n", 2, "admin",
     "expected host:port (e.g. 127.0.0.1:9100), got 'localhost'"},
    {"AdminPortTooLarge", "admin: ':70000'\n", 1, "admin", "expected host:port"},
    {"EmptyCodec", "codec: ''\n", 1, "codec", "expected a non-empty string"},
    {"PluginPathNumberList", "plugin_path: {a: 1}\n", 1, "plugin_path",
     "expected a sequence, got a mapping"},
    {"TransportsNotAMapping", "transports: [a, b]\n", 1, "transports",
     "expected a mapping, got a sequence"},
    {"UrlIsASequence", "transports:\n  bus:\n    type: nats\n    url: [a]\n", 4,
     "transports.bus.url", "expected a string, got a sequence"},
    {"MissingType", "transports:\n  bus: { brokers: x }\n", 2, "transports.bus",
     "missing key 'type'"},
    {"NullInstance", "transports:\n  bus:\n", 2, "transports.bus", "missing key 'type'"},
    {"UnknownScheme", "transports:\n  bus:\n    url: \"foo://h\"\n", 3, "transports.bus.url",
     "unknown scheme 'foo://'; known: inproc://, tcp://"},
    {"NoScheme", "transports:\n  bus: { url: localhost:4222 }\n", 2, "transports.bus.url",
     "has no scheme"},
    {"BadInstanceName", "transports:\n  \"a.b\": { type: nats }\n", 2, "transports.a.b",
     "instance names use letters"},
    {"ZeroMaxPayload", "transports:\n  bus: { type: nats, max_payload: 0 }\n", 2,
     "transports.bus.max_payload", "expected a positive size in bytes"},
    {"BadMaxPayloadSuffix", "transports:\n  bus:\n    type: nats\n    max_payload: 3 parsecs\n", 4,
     "transports.bus.max_payload", "got '3 parsecs'"},
    {"RuntimeUnknownKey", "runtime:\n  timeout: 5\n", 2, "runtime.timeout",
     "unknown key 'timeout'; known keys: transport, timeout_ms"},
    {"RuntimeUndefinedTransport",
     "transports:\n  bus: { type: nats }\nruntime:\n  transport: buss\n", 4, "runtime.transport",
     "names transport 'buss', which is not defined (defined: bus)"},
    {"RuntimeTransportAmbiguous", "transports:\n  a: { type: nats }\n  b: { type: kafka }\n", 1,
     "runtime.transport", "required when more than one transport is defined (a, b)"},
    {"RuntimeTransportAmbiguousWithSection",
     "transports:\n  a: { type: nats }\n  b: { type: kafka }\nruntime: { name: x }\n", 4,
     "runtime.transport", "required when more than one"},
    {"NegativeTimeout", "runtime:\n  timeout_ms: -5\n", 2, "runtime.timeout_ms",
     "expected a positive integer (milliseconds), got '-5'"},
    {"ZeroTimeout", "runtime: { timeout_ms: 0 }\n", 1, "runtime.timeout_ms", "positive integer"},
    {"TextTimeout", "runtime: { timeout_ms: soon }\n", 1, "runtime.timeout_ms", "got 'soon'"},
    {"BadOrder", "runtime:\n  order: random\n", 2, "runtime.order",
     "expected one of specificity, insertion, got 'random'"},
    {"NegativeRecursion", "runtime:\n  max_recursion: -1\n", 2, "runtime.max_recursion",
     "non-negative integer"},
    {"NegativeIdleSpin", "runtime:\n  idle_spin_us: -1\n", 2, "runtime.idle_spin_us",
     "expected an integer from 0 to 1000000 (microseconds), got '-1'"},
    {"IdleSpinOverASecond", "runtime: { idle_spin_us: 2000000 }\n", 1, "runtime.idle_spin_us",
     "from 0 to 1000000"},
    {"RuntimeNotAMapping", "runtime: bus\n", 1, "runtime", "expected a mapping, got 'bus'"},
    {"LogUnknownKey", "log:\n  level: info\n  file: x.log\n", 3, "log.file", "unknown key 'file'"},
    {"BadLogLevel", "log: { level: loud }\n", 1, "log.level", "expected one of trace, debug"},
    {"PluginsNotASequence", "plugins: math\n", 1, "plugins", "expected a sequence, got 'math'"},
    {"PluginUnknownKey", "plugins:\n  - name: math\n    option: {}\n", 3, "plugins[0].option",
     "unknown key 'option'; known keys: name, options"},
    {"PluginMissingName", "plugins:\n  - math\n  - options: {}\n", 3, "plugins[1]",
     "missing key 'name'"},
    {"PluginOptionsNotAMapping", "plugins:\n  - { name: math, options: [1] }\n", 2,
     "plugins[0].options", "expected a mapping, got a sequence"},
    {"PluginTwice", "plugins:\n  - math\n  - { name: math }\n", 3, "plugins[1]",
     "plugin 'math' is listed twice (also plugins[0])"},
    {"BridgeMissingName", "bridges:\n  - from: { transport: default, subject: a }\n", 2,
     "bridges[0]", "missing key 'name'"},
    {"BridgeMissingFrom", "bridges:\n  - name: x\n    to: { transport: default }\n", 2,
     "bridges[0]", "missing key 'from'"},
    {"BridgeMissingTo", "bridges:\n  - name: x\n    from: { transport: default, subject: a }\n", 2,
     "bridges[0]", "missing key 'to'"},
    {"BridgeNotAMapping", "bridges:\n  - x\n", 2, "bridges[0]", "expected a mapping, got 'x'"},
    {"BridgeFromMissingSubject",
     "bridges:\n  - name: x\n    from: { transport: default }\n    to: { transport: default, "
     "subject: b }\n",
     3, "bridges[0].from", "missing key 'subject' (or 'topic', 'routing_key')"},
    {"BridgeEndpointMissingTransport",
     "bridges:\n  - name: x\n    from: { transport: default, subject: a }\n    to: { subject: b "
     "}\n",
     4, "bridges[0].to", "missing key 'transport'"},
    {"BridgeTwoSubjects",
     "bridges:\n  - name: x\n    from: { transport: default, subject: a, topic: b }\n    to: { "
     "transport: default }\n",
     3, "bridges[0].from.topic", "'topic' and 'subject' both name the subject"},
    {"DuplicateBridgeName",
     "transports:\n  a: { type: nats }\n  b: { type: kafka }\nruntime: { transport: a }\nbridges:\n"
     "  - { name: x, from: { transport: a, subject: s }, to: { transport: b } }\n"
     "  - name: x\n    from: { transport: b, subject: s }\n    to: { transport: a }\n",
     7, "bridges[1].name", "bridge name 'x' is used twice"},
    {"BridgeFromUndefined",
     "bridges:\n  - name: x\n    from:\n      transport: nats\n      subject: a\n    to: { "
     "transport: "
     "default }\n",
     4, "bridges[0].from.transport",
     "names transport 'nats', which is not defined (defined: default)"},
    {"BridgeToUndefined",
     "transports:\n  a: { type: nats }\nbridges:\n  - name: x\n    from: { transport: a, subject: "
     "s }\n"
     "    to: { transport: kafka, topic: t }\n",
     6, "bridges[0].to.transport", "names transport 'kafka'"},
    {"BridgeOntoItself",
     "bridges:\n  - name: x\n    from: { transport: default, subject: a }\n    to: { transport: "
     "default "
     "}\n",
     4, "bridges[0].to", "relays 'a' onto itself on 'default'"},
    {"NonStringKey", "transports:\n  bus:\n    type: nats\n    [a, b]: 1\n", 4, "transports.bus",
     "keys must be strings, got a sequence"},
    {"MergeOfAScalar", "transports:\n  bus:\n    <<: 3\n    type: nats\n", 3, "transports.bus.<<",
     "expected a mapping to merge, got '3'"},
    {"DuplicateOptionKey", "plugins:\n  - name: m\n    options:\n      a: 1\n      a: 2\n", 5,
     "plugins[0].options.a", "duplicate key"},
};

INSTANTIATE_TEST_SUITE_P(Config, BadConfig, testing::ValuesIn(kBadCases),
                         [](const testing::TestParamInfo<BadCase>& info) {
                           return std::string(info.param.name);
                         });

TEST(Config, ErrorInAFileNamesThePath) {
  TempFile file("codec: json\nruntime:\n  timeout_ms: -1\n");
  try {
    load_config_file(file.path());
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), file.path());
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.column(), 3);
    EXPECT_EQ(e.key(), "runtime.timeout_ms");
    EXPECT_EQ(std::string(e.what()),
              file.path() +
                  ":3:3: runtime.timeout_ms: expected a positive integer (milliseconds), got '-1'");
  }
}

TEST(Config, MissingFile) {
  try {
    load_config_file("/nonexistent/switchboard.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), "/nonexistent/switchboard.yaml");
    EXPECT_EQ(e.line(), 0);
    EXPECT_EQ(std::string(e.what()),
              "/nonexistent/switchboard.yaml: cannot open: No such file or directory");
  }
}

TEST(Config, ErrorFormatLeavesOutWhatIsUnknown) {
  EXPECT_STREQ(ConfigError("f.yaml", Location{12, 5}, "a.b", "bad").what(),
               "f.yaml:12:5: a.b: bad");
  EXPECT_STREQ(ConfigError("f.yaml", std::nullopt, "a.b", "bad").what(), "f.yaml: a.b: bad");
  EXPECT_STREQ(ConfigError("f.yaml", Location{1, 1}, "", "bad").what(), "f.yaml:1:1: bad");
  EXPECT_STREQ(ConfigError("", std::nullopt, "", "bad").what(), "bad");
}

TEST(Config, TransportTypeForUrl) {
  EXPECT_EQ(transport_type_for_url("inproc://x"), "inproc");
  EXPECT_EQ(transport_type_for_url("tcp://127.0.0.1:7000"), "tcp_peer");
  EXPECT_EQ(transport_type_for_url("ws://h:80/p"), "websocket");
  EXPECT_EQ(transport_type_for_url("wss://h/p"), "websocket");
  EXPECT_EQ(transport_type_for_url("nats://127.0.0.1:4222"), "nats");
  EXPECT_EQ(transport_type_for_url("tls://127.0.0.1:4222"), "nats");
  EXPECT_EQ(transport_type_for_url("kafka://127.0.0.1:9092"), "kafka");
  EXPECT_EQ(transport_type_for_url("amqp://guest:guest@h:5672/"), "amqp");
  EXPECT_EQ(transport_type_for_url("amqps://h"), "amqp");
  EXPECT_EQ(transport_type_for_url("NATS://h"), "nats");  // schemes are case-insensitive
}

TEST(Config, TransportTypeForUnknownUrl) {
  try {
    transport_type_for_url("http://h");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "url");
    EXPECT_EQ(std::string(e.what()),
              "url: unknown scheme 'http://'; known: inproc://, tcp://, ws://, wss://, nats://, "
              "tls://, kafka://, amqp://, amqps://");
  }
  EXPECT_THROW(transport_type_for_url("127.0.0.1:4222"), ConfigError);
  EXPECT_THROW(transport_type_for_url("://h"), ConfigError);
}

TEST(Config, FromUrl) {
  Config c = config_from_url("nats://127.0.0.1:4222", {"math", "stats"});
  EXPECT_EQ(c.source, "<command line>");
  ASSERT_EQ(c.transports.size(), 1u);
  const TransportConfig& t = c.transports.at("default");
  EXPECT_EQ(t.instance, "default");
  EXPECT_EQ(t.type, "nats");
  EXPECT_EQ(t.url, "nats://127.0.0.1:4222");
  EXPECT_EQ(c.runtime.transport, "default");
  EXPECT_EQ(&c.runtime_transport(), &t);
  ASSERT_EQ(c.plugins.size(), 2u);
  EXPECT_EQ(c.plugins[0].name, "math");
  EXPECT_EQ(c.plugins[1].name, "stats");
  EXPECT_EQ(c.codec, "json");
  EXPECT_TRUE(c.bridges.empty());
}

TEST(Config, FromBadUrl) {
  try {
    config_from_url("localhost:4222", {});
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.key(), "--url");
    EXPECT_EQ(
        std::string(e.what()).rfind("<command line>: --url: 'localhost:4222' has no scheme", 0), 0u)
        << e.what();
  }
  EXPECT_THROW(config_from_url("inproc://x", {"math", "math"}), ConfigError);
  EXPECT_THROW(config_from_url("inproc://x", {""}), ConfigError);
}

TEST(Config, OptionErrorGetsTheLine) {
  Config c = load_config_file(fixture("all_keys.yaml"));
  auto rethrown = [&](const std::string& prefix, const std::string& key) {
    try {
      rethrow_with_location(c, prefix, OptionError(key, "is wrong"));
    } catch (const ConfigError& e) {
      return e;
    }
    return ConfigError("", std::nullopt, "", "");
  };
  ConfigError present = rethrown("transports.bus", "tls.ca_file");
  EXPECT_EQ(present.line(), 11);
  EXPECT_EQ(present.key(), "transports.bus.tls.ca_file");
  EXPECT_EQ(std::string(present.what()).find(fixture("all_keys.yaml") + ":11:"), 0u);
  EXPECT_NE(std::string(present.what()).find("transports.bus.tls.ca_file: is wrong"),
            std::string::npos);

  // A missing option points at its nearest written parent.
  ConfigError missing = rethrown("transports.bus", "brokers");
  EXPECT_EQ(missing.line(), 7);
  EXPECT_EQ(missing.key(), "transports.bus.brokers");
  ConfigError nested = rethrown("transports.bus", "tls.key_file");
  EXPECT_EQ(nested.line(), 11);
  EXPECT_EQ(nested.column(), 5);

  ConfigError whole = rethrown("plugins[1].options", "");
  EXPECT_EQ(whole.line(), 27);
  EXPECT_EQ(whole.key(), "plugins[1].options");

  ConfigError item = rethrown("plugins[1].options", "subjects[1]");
  EXPECT_EQ(item.line(), 29);
}

TEST(Config, OptionErrorWithoutLocations) {
  Config c = config_from_url("kafka://127.0.0.1:9092", {});
  try {
    rethrow_with_location(c, "transports.default", OptionError("brokers", "missing"));
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.line(), 0);
    EXPECT_STREQ(e.what(), "<command line>: transports.default.brokers: missing");
  }
}

}  // namespace
}  // namespace switchboard
