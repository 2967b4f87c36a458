#include "switchboard/plugin_host.hpp"

#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "switchboard/config.hpp"

namespace switchboard {
namespace {

namespace fs = std::filesystem;

const std::string kFixtureDir = SWITCHBOARD_FIXTURE_PLUGIN_DIR;
const std::string kDuplicateDir = SWITCHBOARD_FIXTURE_DUP_DIR;

std::string fixture(const std::string& name) {
  return kFixtureDir + "/libswitchboard-" + name + ".so";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Runs `f` and returns the PluginError it throws; fails the test otherwise.
PluginError refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const PluginError& e) {
    return e;
  }
  ADD_FAILURE() << "expected a PluginError";
  return PluginError("", "");
}

// Whether the dynamic loader still has this file mapped (RTLD_NOLOAD never
// loads; it only answers with a new reference, dropped at once).
bool is_loaded(const std::string& path) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  dlclose(handle);
  return true;
}

// Sets or unsets SWITCHBOARD_PLUGIN_PATH for one test, then restores it.
class PluginPathEnv {
 public:
  explicit PluginPathEnv(const char* value) {
    if (const char* old = std::getenv("SWITCHBOARD_PLUGIN_PATH")) saved_ = old;
    if (value != nullptr) {
      setenv("SWITCHBOARD_PLUGIN_PATH", value, 1);
    } else {
      unsetenv("SWITCHBOARD_PLUGIN_PATH");
    }
  }
  ~PluginPathEnv() {
    if (saved_) {
      setenv("SWITCHBOARD_PLUGIN_PATH", saved_->c_str(), 1);
    } else {
      unsetenv("SWITCHBOARD_PLUGIN_PATH");
    }
  }

 private:
  std::optional<std::string> saved_;
};

// A fresh directory holding a copy of one fixture plugin.
class PluginCopyDir {
 public:
  explicit PluginCopyDir(std::string name = "fixture_good") : name_(std::move(name)) {
    static std::atomic<int> counter{0};
    dir_ = fs::temp_directory_path() / ("switchboard-plugin-test-" + std::to_string(getpid()) +
                                        "-" + std::to_string(counter++));
    fs::create_directories(dir_);
    fs::copy_file(fixture(name_), file());
  }
  ~PluginCopyDir() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string dir() const { return dir_.string(); }
  std::string file() const { return (dir_ / ("libswitchboard-" + name_ + ".so")).string(); }

 private:
  std::string name_;
  fs::path dir_;
};

fs::path exe_dir() {
  return fs::read_symlink("/proc/self/exe").parent_path();
}

PluginHost fixture_host() {
  return PluginHost::with_search_path({kFixtureDir});
}

TEST(PluginHostTest, KindNames) {
  EXPECT_STREQ(to_string(SWITCHBOARD_PLUGIN_TRANSPORT), "transport");
  EXPECT_STREQ(to_string(SWITCHBOARD_PLUGIN_CODEC), "codec");
  EXPECT_STREQ(to_string(SWITCHBOARD_PLUGIN_RUNTIME), "plugin");
  EXPECT_STREQ(to_string(static_cast<SwitchboardPluginKind>(42)), "unknown");
}

TEST(PluginHostTest, LoadsGoodCodecAndCreatesIt) {
  auto host = fixture_host();
  const PluginDescriptor& d = host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good");
  EXPECT_EQ(d.name, "fixture_good");
  EXPECT_EQ(d.version, "1.2.3");
  EXPECT_EQ(d.kind, SWITCHBOARD_PLUGIN_CODEC);
  EXPECT_EQ(d.abi_version, SWITCHBOARD_PLUGIN_ABI_VERSION);
  EXPECT_EQ(d.toolchain, SWITCHBOARD_TOOLCHAIN_TAG);
  EXPECT_FALSE(d.builtin);
  EXPECT_TRUE(fs::equivalent(d.path, fixture("fixture_good")));

  auto codec = host.create_codec("fixture_good");
  ASSERT_NE(codec, nullptr);
  EXPECT_EQ(codec->name(), "fixture_good");
  EXPECT_EQ(codec->encode(Json{{"a", 1}}), R"({"a":1})");
  Json out;
  std::string error;
  EXPECT_FALSE(codec->decode(R"({"b":2})", out, error));
  EXPECT_EQ(out, (Json{{"b", 2}}));
}

TEST(PluginHostTest, CreatesTransportAndRuntimePlugin) {
  auto host = fixture_host();
  asio::io_context io;
  TransportConfig config;
  config.instance = "bus";
  config.type = "fixture_transport";
  auto transport = host.create_transport(config, TransportContext{io.get_executor()});
  ASSERT_NE(transport, nullptr);
  EXPECT_EQ(transport->type(), "fixture_transport");
  EXPECT_FALSE(transport->connect());

  auto plugin = host.create_runtime_plugin("fixture_runtime");
  ASSERT_NE(plugin, nullptr);
  EXPECT_EQ(plugin->name(), "fixture_runtime");
  EXPECT_EQ(host.load(SWITCHBOARD_PLUGIN_RUNTIME, "fixture_runtime").version, "0.0.1");
}

TEST(PluginHostTest, LoadingTheSameFileTwiceReturnsTheSamePlugin) {
  auto host = fixture_host();
  const PluginDescriptor& first = host.load_file(fixture("fixture_good"));
  const PluginDescriptor& again = host.load_file(fixture("fixture_good"));
  const PluginDescriptor& by_name = host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good");
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(&first, &by_name);
  EXPECT_EQ(host.loaded().size(), 1u);
}

TEST(PluginHostTest, ObjectsKeepTheLibraryLoadedAfterTheHostIsGone) {
  // A file of its own, so that no other host in this process holds it open.
  // The runtime fixture, because glibc never unloads a library with
  // STB_GNU_UNIQUE symbols, which the codec's standard library use creates.
  PluginCopyDir copy("fixture_runtime");
  std::shared_ptr<RuntimePlugin> plugin;
  {
    auto host = PluginHost::with_search_path({copy.dir()});
    plugin = host.create_runtime_plugin("fixture_runtime");
  }
  ASSERT_TRUE(is_loaded(copy.file()));
  EXPECT_EQ(plugin->name(), "fixture_runtime");
  EXPECT_EQ(plugin->version(), "0.0.1");
  plugin.reset();
  // Never unmapped (RTLD_NODELETE): handlers queued on an executor may still
  // hold plugin code after the last object is gone.
  EXPECT_TRUE(is_loaded(copy.file())) << "a plugin stays mapped until exit";
}

TEST(PluginHostTest, CodecOutlivesTheHost) {
  std::shared_ptr<Codec> codec;
  {
    auto host = fixture_host();
    codec = host.create_codec("fixture_good");
  }
  EXPECT_EQ(codec->encode(Json::array({1, 2})), "[1,2]");
  EXPECT_TRUE(codec->sniff("{}"));
}

TEST(PluginHostTest, RefusedFileIsNotLeftLoaded) {
  auto host = fixture_host();
  refusal([&] { host.load_file(fixture("fixture_wrong_toolchain")); });
  EXPECT_FALSE(is_loaded(fixture("fixture_wrong_toolchain")));
}

TEST(PluginHostTest, RefusesMissingFile) {
  auto host = fixture_host();
  const std::string path = "/nonexistent/dir/libswitchboard-nothing.so";
  auto e = refusal([&] { host.load_file(path); });
  EXPECT_EQ(e.path(), path);
  EXPECT_EQ(e.reason(), "file not found");
  EXPECT_EQ(std::string(e.what()), "plugin file '" + path + "': file not found");
  EXPECT_EQ(e.kind(), errc::plugin_error);
}

TEST(PluginHostTest, RefusesUnknownNameListingTheDirectoriesSearched) {
  auto host = PluginHost::with_search_path({kFixtureDir, "/nonexistent/plugins"});
  auto e = refusal([&] { host.load(SWITCHBOARD_PLUGIN_CODEC, "nothing"); });
  EXPECT_EQ(e.path(), "libswitchboard-nothing.so");
  EXPECT_TRUE(contains(e.reason(), "codec 'nothing' not found")) << e.what();
  EXPECT_TRUE(contains(e.reason(), kFixtureDir)) << e.what();
  EXPECT_TRUE(contains(e.reason(), "/nonexistent/plugins")) << e.what();
}

TEST(PluginHostTest, RefusesNameThatIsAPath) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load(SWITCHBOARD_PLUGIN_CODEC, "../plugins/fixture_good"); });
  EXPECT_TRUE(contains(e.what(), "invalid codec name")) << e.what();
}

TEST(PluginHostTest, RefusesAFileThatIsNotASharedLibrary) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("garbage")); });
  EXPECT_EQ(e.path(), fixture("garbage"));
  EXPECT_TRUE(contains(e.what(), fixture("garbage"))) << e.what();
  // The reason quotes dlerror(), e.g. "invalid ELF header" or "file too short".
  EXPECT_TRUE(contains(e.reason(), "cannot be loaded: ")) << e.what();
  EXPECT_GT(e.reason().size(), std::string("cannot be loaded: ").size());
}

TEST(PluginHostTest, RefusesMissingEntrySymbol) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_no_entry")); });
  EXPECT_EQ(e.path(), fixture("fixture_no_entry"));
  EXPECT_TRUE(contains(e.reason(), "no entry symbol 'switchboard_plugin_entry'")) << e.what();
  EXPECT_TRUE(contains(e.reason(), "undefined symbol")) << "dlerror() text: " << e.what();
}

TEST(PluginHostTest, RefusesNullInfo) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_null_info")); });
  EXPECT_EQ(e.path(), fixture("fixture_null_info"));
  EXPECT_EQ(e.reason(), "entry 'switchboard_plugin_entry' returned null");
}

TEST(PluginHostTest, RefusesWrongAbiVersion) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_wrong_abi")); });
  EXPECT_EQ(std::string(e.what()), "plugin file '" + fixture("fixture_wrong_abi") +
                                       "': ABI version 7, this host needs " +
                                       std::to_string(SWITCHBOARD_PLUGIN_ABI_VERSION));
}

TEST(PluginHostTest, RefusesWrongToolchainTag) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_wrong_toolchain")); });
  EXPECT_EQ(e.path(), fixture("fixture_wrong_toolchain"));
  EXPECT_EQ(e.reason(), std::string("toolchain 'bogus-99/libnothing', this host was built with '") +
                            SWITCHBOARD_TOOLCHAIN_TAG + "'");
}

TEST(PluginHostTest, RefusesUnknownKind) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_unknown_kind")); });
  EXPECT_EQ(e.path(), fixture("fixture_unknown_kind"));
  EXPECT_TRUE(contains(e.reason(), "unknown kind 42")) << e.what();
}

TEST(PluginHostTest, RefusesNullName) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_null_name")); });
  EXPECT_EQ(e.path(), fixture("fixture_null_name"));
  EXPECT_TRUE(contains(e.reason(), "no name")) << e.what();
}

TEST(PluginHostTest, RefusesNullFactory) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load_file(fixture("fixture_null_factory")); });
  EXPECT_EQ(e.path(), fixture("fixture_null_factory"));
  EXPECT_EQ(e.reason(), "codec 'fixture_null_factory' has a null factory");
}

TEST(PluginHostTest, RefusesDuplicateNameNamingBothFiles) {
  auto host = fixture_host();
  host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good");
  const std::string duplicate = kDuplicateDir + "/libswitchboard-fixture_good.so";
  auto e = refusal([&] { host.load_file(duplicate); });
  EXPECT_EQ(e.path(), duplicate);
  EXPECT_EQ(e.reason(), "duplicate codec 'fixture_good': already loaded from '" +
                            fixture("fixture_good") + "'");
  // The first one is still the registered one.
  EXPECT_EQ(host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good").version, "1.2.3");
}

TEST(PluginHostTest, RefusesFileDeclaringAnotherKind) {
  auto host = fixture_host();
  auto e = refusal([&] { host.load(SWITCHBOARD_PLUGIN_TRANSPORT, "fixture_good"); });
  EXPECT_EQ(e.path(), fixture("fixture_good"));
  EXPECT_EQ(e.reason(), "declares codec 'fixture_good', expected transport 'fixture_good'");
}

TEST(PluginHostTest, FactoryExceptionBecomesPluginError) {
  auto host = fixture_host();
  auto e = refusal([&] { host.create_codec("fixture_throwing"); });
  EXPECT_EQ(e.path(), fixture("fixture_throwing"));
  EXPECT_EQ(e.reason(),
            "codec 'fixture_throwing': factory failed: option 'level' must be a number");
}

TEST(PluginHostTest, FactoryOptionErrorKeepsItsKeyAndOutlivesTheLibrary) {
  PluginCopyDir copy("fixture_throwing");
  std::optional<OptionError> caught;
  try {
    auto host = PluginHost::with_search_path({copy.dir()});
    host.create_codec("fixture_throwing", Json{{"level", "high"}});
  } catch (const OptionError& e) {
    caught = e;
  }
  ASSERT_TRUE(caught.has_value());
  // The library is gone; the copy the host made must not need it.
  EXPECT_FALSE(is_loaded(copy.file()));
  EXPECT_EQ(caught->key, "level");
  EXPECT_STREQ(caught->what(), "must be a number");
}

TEST(PluginHostTest, FactoryReturningNullIsRefused) {
  auto host = PluginHost::with_search_path({kDuplicateDir});
  auto e = refusal([&] { host.create_codec("fixture_good"); });
  EXPECT_EQ(e.reason(), "codec 'fixture_good': factory returned null");
}

TEST(PluginHostTest, SearchPathIsConfigThenEnvironmentThenBinaryDirectory) {
  PluginPathEnv env("/env/one::/env/two");
  PluginHost host({"/config/one", "/config/two"});
  const fs::path bin = exe_dir();
  const std::vector<std::string> expected = {
      "/config/one",
      "/config/two",
      "/env/one",
      "/env/two",
      (bin / ".." / "lib" / "switchboard").lexically_normal().string(),
      (bin / "lib" / "switchboard").lexically_normal().string(),
  };
  EXPECT_EQ(host.search_path(), expected);
}

TEST(PluginHostTest, ConfigPathWinsOverEnvironment) {
  PluginCopyDir config_dir;
  PluginCopyDir env_dir;
  PluginPathEnv env(env_dir.dir().c_str());
  PluginHost host({config_dir.dir()});
  EXPECT_TRUE(
      fs::equivalent(host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good").path, config_dir.file()));
}

TEST(PluginHostTest, EnvironmentWinsOverBinaryDirectory) {
  PluginCopyDir env_dir;
  PluginPathEnv env(env_dir.dir().c_str());
  PluginHost host;
  EXPECT_TRUE(
      fs::equivalent(host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good").path, env_dir.file()));
}

TEST(PluginHostTest, FallsBackToTheDirectoryNextToTheBinary) {
  // <exe dir>/lib/switchboard: nothing else in the build tree uses it.
  const fs::path dir = exe_dir() / "lib" / "switchboard";
  const fs::path file = dir / "libswitchboard-fixture_good.so";
  fs::create_directories(dir);
  fs::copy_file(fixture("fixture_good"), file, fs::copy_options::overwrite_existing);
  struct Cleanup {
    fs::path file;
    ~Cleanup() {
      std::error_code ec;
      fs::remove(file, ec);
      fs::remove(file.parent_path(), ec);  // only if empty
      fs::remove(file.parent_path().parent_path(), ec);
    }
  } cleanup{file};

  PluginPathEnv env(nullptr);
  PluginHost host;
  EXPECT_TRUE(fs::equivalent(host.load(SWITCHBOARD_PLUGIN_CODEC, "fixture_good").path, file));
  EXPECT_EQ(host.create_codec("fixture_good")->encode(Json(1)), "1");
}

TEST(PluginHostTest, DiscoverListsGoodPluginsAndReportsEveryRefusal) {
  auto host = PluginHost::with_search_path({kFixtureDir, "/nonexistent/plugins", kDuplicateDir});
  std::vector<std::string> problems;
  std::vector<PluginDescriptor> found;
  ASSERT_NO_THROW(found = host.discover(&problems));

  std::vector<std::string> names;
  for (const auto& d : found) names.push_back(std::string(to_string(d.kind)) + ":" + d.name);
  std::sort(names.begin(), names.end());
  const std::vector<std::string> expected_names = {"codec:fixture_good", "codec:fixture_throwing",
                                                   "plugin:fixture_runtime",
                                                   "transport:fixture_transport"};
  EXPECT_EQ(names, expected_names);

  const std::vector<std::pair<std::string, std::string>> expected_problems = {
      {fixture("garbage"), "cannot be loaded"},
      {fixture("fixture_no_entry"), "no entry symbol"},
      {fixture("fixture_null_info"), "returned null"},
      {fixture("fixture_wrong_abi"), "ABI version 7"},
      {fixture("fixture_wrong_toolchain"), "toolchain 'bogus-99/libnothing'"},
      {fixture("fixture_unknown_kind"), "unknown kind 42"},
      {fixture("fixture_null_name"), "no name"},
      {fixture("fixture_null_factory"), "null factory"},
      {kDuplicateDir + "/libswitchboard-fixture_good.so", "duplicate codec 'fixture_good'"},
  };
  EXPECT_EQ(problems.size(), expected_problems.size());
  for (const auto& [file, reason] : expected_problems) {
    bool reported = std::any_of(problems.begin(), problems.end(), [&](const std::string& p) {
      return contains(p, "'" + file + "'") && contains(p, reason);
    });
    EXPECT_TRUE(reported) << "no problem naming " << file << " with '" << reason << "'";
  }

  // Discovering again finds the same plugins, not duplicates of themselves.
  EXPECT_EQ(host.discover().size(), found.size());
}

class BuiltinCodec final : public Codec {
 public:
  const std::string& name() const override { return name_; }
  const std::string& content_type() const override { return name_; }
  std::string encode(const Json& value) const override { return "builtin"; }
  std::error_code decode(std::string_view, Json&, std::string&) const override { return {}; }
  bool sniff(std::string_view) const override { return false; }

 private:
  std::string name_ = "builtin";
};

class BuiltinCodecFactory final : public CodecFactory {
 public:
  std::unique_ptr<Codec> create(const Json&) const override {
    return std::make_unique<BuiltinCodec>();
  }
};

TEST(PluginHostTest, BuiltinsShareTheRegistryWithFiles) {
  static const BuiltinCodecFactory factory;
  auto host = fixture_host();
  const PluginDescriptor& d = host.register_builtin("builtin", "2.0.0", factory);
  EXPECT_TRUE(d.builtin);
  EXPECT_TRUE(d.path.empty());
  EXPECT_EQ(&host.load(SWITCHBOARD_PLUGIN_CODEC, "builtin"), &d);
  EXPECT_EQ(host.create_codec("builtin")->encode(nullptr), "builtin");

  // A built-in takes the name: a file claiming it later is a duplicate.
  host.register_builtin("fixture_good", "0.0.0", factory);
  auto e = refusal([&] { host.load_file(fixture("fixture_good")); });
  EXPECT_EQ(e.reason(), "duplicate codec 'fixture_good': already registered as a built-in");

  auto again = refusal([&] { host.register_builtin("builtin", "2.0.0", factory); });
  EXPECT_TRUE(contains(again.what(), "duplicate codec 'builtin'")) << again.what();
  auto null_factory =
      refusal([&] { host.register_builtin(SWITCHBOARD_PLUGIN_CODEC, "nothing", "1", nullptr); });
  EXPECT_TRUE(contains(null_factory.what(), "null factory")) << null_factory.what();
}

}  // namespace
}  // namespace switchboard
