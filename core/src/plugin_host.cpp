#include "switchboard/plugin_host.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <string_view>
#include <system_error>
#include <utility>

#include "switchboard/config.hpp"

namespace switchboard {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kFilePrefix = "libswitchboard-";
constexpr std::string_view kFileSuffix = ".so";
constexpr std::uint32_t kKindCount = 4;

// One dlopen handle. Shared by the registry and by every object made from
// the library, so dlclose runs only once nothing can call into it.
class Library {
 public:
  Library(void* handle, std::string path) : handle_(handle), path_(std::move(path)) {}
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() { dlclose(handle_); }

  // Keeps the code mapped until exit (RTLD_NODELETE), once an object made
  // from it exists: handlers a transport posted to an executor can outlive
  // the transport (the io_context destroys them after the App is gone), and
  // destroying one runs plugin code. A library that was only listed or
  // refused still unloads.
  void pin() {
    if (pinned_.exchange(true)) return;
    if (void* again = dlopen(path_.c_str(), RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) {
      dlclose(again);  // the flag stays; the count goes back
    }
  }

 private:
  void* handle_;
  std::string path_;
  std::atomic<bool> pinned_{false};
};

struct Entry {
  PluginDescriptor descriptor;
  const void* factory = nullptr;
  std::shared_ptr<Library> library;  // null for built-ins
};

bool valid_kind(std::uint32_t kind) {
  return kind >= SWITCHBOARD_PLUGIN_TRANSPORT && kind <= SWITCHBOARD_PLUGIN_EVENT_STORE;
}

std::string describe(SwitchboardPluginKind kind, const std::string& name) {
  return std::string(to_string(kind)) + " '" + name + "'";
}

// dlerror() text, without the "<path>: " it usually starts with, since
// every message already names the file.
std::string dl_error_text(const std::string& path) {
  const char* text = dlerror();
  if (text == nullptr) return "no detail from dlerror()";
  std::string_view view(text);
  if (view.starts_with(path) && view.substr(path.size()).starts_with(": ")) {
    view.remove_prefix(path.size() + 2);
  }
  return std::string(view);
}

std::string in_quotes(const std::string& text) {
  return "'" + text + "'";
}

std::string file_name_for(const std::string& name) {
  return std::string(kFilePrefix) + name + std::string(kFileSuffix);
}

bool is_plugin_file_name(std::string_view file) {
  return file.size() > kFilePrefix.size() + kFileSuffix.size() && file.starts_with(kFilePrefix) &&
         file.ends_with(kFileSuffix);
}

void append_unique(std::vector<std::string>& dirs, std::string dir) {
  if (dir.empty()) return;
  if (std::find(dirs.begin(), dirs.end(), dir) == dirs.end()) dirs.push_back(std::move(dir));
}

std::vector<std::string> default_search_path(std::vector<std::string> config_paths) {
  std::vector<std::string> dirs;
  for (auto& dir : config_paths) append_unique(dirs, std::move(dir));
  if (const char* env = std::getenv("SWITCHBOARD_PLUGIN_PATH")) {
    std::string_view rest(env);
    for (;;) {
      auto colon = rest.find(':');
      append_unique(dirs, std::string(rest.substr(0, colon)));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  // The binary's own location, not the working directory, so that the build
  // tree (build/bin -> build/lib/switchboard) and an install tree (bin ->
  // lib/switchboard) both work from anywhere.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path bin = exe.parent_path();
    append_unique(dirs, (bin / ".." / "lib" / "switchboard").lexically_normal().string());
    append_unique(dirs, (bin / "lib" / "switchboard").lexically_normal().string());
  }
  return dirs;
}

// Wraps an object so that its deleter holds the library: the destructor is
// plugin code, so the library may be closed only after it has run.
template <class T>
std::shared_ptr<T> keep_loaded(std::unique_ptr<T> object, std::shared_ptr<Library> library) {
  if (!library) return std::shared_ptr<T>(std::move(object));
  library->pin();
  return std::shared_ptr<T>(object.release(), [library = std::move(library)](T* p) mutable {
    delete p;
    library.reset();
  });
}

}  // namespace

const char* to_string(SwitchboardPluginKind kind) noexcept {
  switch (kind) {
    case SWITCHBOARD_PLUGIN_TRANSPORT:
      return "transport";
    case SWITCHBOARD_PLUGIN_CODEC:
      return "codec";
    case SWITCHBOARD_PLUGIN_RUNTIME:
      return "plugin";
    case SWITCHBOARD_PLUGIN_EVENT_STORE:
      return "event-store";
  }
  return "unknown";
}

PluginError::PluginError(std::string path, std::string reason)
    : Error(errc::plugin_error, path.empty() ? reason : "plugin file '" + path + "': " + reason),
      path_(std::move(path)),
      reason_(std::move(reason)) {}

struct PluginHost::Impl {
  std::vector<std::string> search_path;
  mutable std::mutex mutex;
  std::array<std::map<std::string, Entry>, kKindCount> registry;  // per kind, by name
  std::map<std::string, const Entry*> by_file;                    // canonical path -> entry

  std::map<std::string, Entry>& registry_of(SwitchboardPluginKind kind) {
    return registry[kind - SWITCHBOARD_PLUGIN_TRANSPORT];
  }

  // Each member below expects `mutex` to be held.

  const Entry& add(Entry entry, const std::string& file_key) {
    auto& entries = registry_of(entry.descriptor.kind);
    auto it = entries.find(entry.descriptor.name);
    if (it != entries.end()) {
      const PluginDescriptor& existing = it->second.descriptor;
      std::string where = existing.builtin ? "already registered as a built-in"
                                           : "already loaded from " + in_quotes(existing.path);
      throw PluginError(
          entry.descriptor.path,
          "duplicate " + describe(entry.descriptor.kind, entry.descriptor.name) + ": " + where);
    }
    std::string name = entry.descriptor.name;
    const Entry& added = entries.emplace(std::move(name), std::move(entry)).first->second;
    if (!file_key.empty()) by_file[file_key] = &added;
    return added;
  }

  const Entry& load_file(const std::string& path_text) {
    std::error_code ec;
    fs::path path = fs::absolute(path_text, ec);
    if (ec) path = path_text;
    path = path.lexically_normal();
    const std::string shown = path.string();

    auto status = fs::status(path, ec);
    if (!fs::exists(status)) throw PluginError(shown, "file not found");
    if (!fs::is_regular_file(status)) throw PluginError(shown, "not a regular file");

    // Keyed by the canonical path, so a symlink to a loaded file is the
    // same plugin, not a duplicate.
    std::string key = fs::canonical(path, ec).string();
    if (ec) key = shown;
    if (auto it = by_file.find(key); it != by_file.end()) return *it->second;

    // A path with a slash, so dlopen never searches LD_LIBRARY_PATH.
    dlerror();
    void* handle = dlopen(shown.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) throw PluginError(shown, "cannot be loaded: " + dl_error_text(shown));
    // From here every refusal closes the library when `library` goes away.
    auto library = std::make_shared<Library>(handle, shown);

    dlerror();
    void* symbol = dlsym(handle, SWITCHBOARD_PLUGIN_ENTRY_SYMBOL);
    if (symbol == nullptr) {
      throw PluginError(shown, std::string("no entry symbol '") + SWITCHBOARD_PLUGIN_ENTRY_SYMBOL +
                                   "' (" + dl_error_text(shown) + ")");
    }
    auto entry_fn = reinterpret_cast<SwitchboardPluginEntryFn>(symbol);

    const SwitchboardPluginInfo* info = nullptr;
    try {
      info = entry_fn();
    } catch (...) {
      throw PluginError(
          shown, std::string("entry '") + SWITCHBOARD_PLUGIN_ENTRY_SYMBOL + "' threw an exception");
    }
    if (info == nullptr) {
      throw PluginError(
          shown, std::string("entry '") + SWITCHBOARD_PLUGIN_ENTRY_SYMBOL + "' returned null");
    }
    // abi_version is the only field whose place every version agrees on;
    // nothing else is read until it matches.
    if (info->abi_version != SWITCHBOARD_PLUGIN_ABI_VERSION) {
      throw PluginError(shown, "ABI version " + std::to_string(info->abi_version) +
                                   ", this host needs " +
                                   std::to_string(SWITCHBOARD_PLUGIN_ABI_VERSION));
    }
    if (info->toolchain == nullptr) throw PluginError(shown, "no toolchain tag (null)");
    if (std::strcmp(info->toolchain, SWITCHBOARD_TOOLCHAIN_TAG) != 0) {
      throw PluginError(shown, "toolchain " + in_quotes(info->toolchain) +
                                   ", this host was built with " +
                                   in_quotes(SWITCHBOARD_TOOLCHAIN_TAG));
    }
    if (!valid_kind(info->kind)) {
      throw PluginError(shown, "unknown kind " + std::to_string(info->kind) +
                                   " (expected 1 transport, 2 codec, 3 plugin or 4 event-store)");
    }
    auto kind = static_cast<SwitchboardPluginKind>(info->kind);
    if (info->name == nullptr || *info->name == '\0') {
      throw PluginError(shown, std::string("no name (") + to_string(kind) + " with " +
                                   (info->name == nullptr ? "a null" : "an empty") + " name)");
    }
    if (info->factory == nullptr) {
      throw PluginError(shown, describe(kind, info->name) + " has a null factory");
    }

    Entry entry;
    entry.descriptor.path = shown;
    entry.descriptor.name = info->name;
    entry.descriptor.version = info->version != nullptr ? info->version : "";
    entry.descriptor.toolchain = info->toolchain;
    entry.descriptor.abi_version = info->abi_version;
    entry.descriptor.kind = kind;
    entry.factory = info->factory;
    entry.library = std::move(library);
    return add(std::move(entry), key);
  }

  const Entry& load(SwitchboardPluginKind kind, const std::string& name) {
    if (!valid_kind(kind)) {
      throw PluginError("", "cannot load " + in_quotes(name) + ": unknown kind " +
                                std::to_string(static_cast<std::uint32_t>(kind)));
    }
    // The name becomes part of a path; keep it from leaving the directory.
    if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
      throw PluginError("", "invalid " + std::string(to_string(kind)) + " name " + in_quotes(name));
    }
    auto& entries = registry_of(kind);
    if (auto it = entries.find(name); it != entries.end()) return it->second;

    const std::string file = file_name_for(name);
    for (const auto& dir : search_path) {
      std::error_code ec;
      fs::path candidate = fs::path(dir) / file;
      if (!fs::exists(candidate, ec)) continue;
      const Entry& entry = load_file(candidate.string());
      const PluginDescriptor& d = entry.descriptor;
      if (d.kind != kind || d.name != name) {
        throw PluginError(
            d.path, "declares " + describe(d.kind, d.name) + ", expected " + describe(kind, name));
      }
      return entry;
    }

    std::string searched;
    for (const auto& dir : search_path) searched += (searched.empty() ? "" : ", ") + dir;
    if (searched.empty()) searched = "(no directories)";
    throw PluginError(file, describe(kind, name) + " not found; searched " + searched +
                                " (add a directory with plugin_path in config or "
                                "SWITCHBOARD_PLUGIN_PATH)");
  }

  // What an object needs from the registry, copied out under the lock.
  struct Resolved {
    PluginDescriptor descriptor;
    const void* factory = nullptr;
    std::shared_ptr<Library> library;
  };

  Resolved resolve(SwitchboardPluginKind kind, const std::string& name) {
    std::lock_guard lock(mutex);
    const Entry& entry = load(kind, name);
    return {entry.descriptor, entry.factory, entry.library};
  }
};

namespace {

// Runs a factory. An OptionError is rethrown as a copy made here, keeping
// its key so that the caller can point at the config line; anything else
// becomes a PluginError naming the plugin. Neither keeps the original: its
// type may be plugin code (a vtable in the library), and the caught
// exception can outlive the library.
template <class T, class Create>
std::shared_ptr<T> create_object(const PluginDescriptor& d, std::shared_ptr<Library> library,
                                 const std::string& context, Create&& create) {
  std::string who = describe(d.kind, d.name) + context;
  std::unique_ptr<T> object;
  try {
    object = create();
  } catch (const OptionError& e) {
    throw OptionError(e.key, e.what());
  } catch (const std::exception& e) {
    throw PluginError(d.path, who + ": factory failed: " + e.what());
  } catch (...) {
    throw PluginError(d.path, who + ": factory failed with a non-standard exception");
  }
  if (!object) throw PluginError(d.path, who + ": factory returned null");
  return keep_loaded(std::move(object), std::move(library));
}

}  // namespace

PluginHost::PluginHost(std::vector<std::string> config_paths) : impl_(std::make_unique<Impl>()) {
  impl_->search_path = default_search_path(std::move(config_paths));
}

PluginHost::PluginHost(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PluginHost PluginHost::with_search_path(std::vector<std::string> dirs) {
  auto impl = std::make_unique<Impl>();
  for (auto& dir : dirs) append_unique(impl->search_path, std::move(dir));
  return PluginHost(std::move(impl));
}

PluginHost::PluginHost(PluginHost&&) noexcept = default;
PluginHost& PluginHost::operator=(PluginHost&&) noexcept = default;
PluginHost::~PluginHost() = default;

const std::vector<std::string>& PluginHost::search_path() const {
  return impl_->search_path;
}

const PluginDescriptor& PluginHost::load(SwitchboardPluginKind kind, const std::string& name) {
  std::lock_guard lock(impl_->mutex);
  return impl_->load(kind, name).descriptor;
}

const PluginDescriptor& PluginHost::load_file(const std::string& path) {
  std::lock_guard lock(impl_->mutex);
  return impl_->load_file(path).descriptor;
}

std::vector<PluginDescriptor> PluginHost::discover(std::vector<std::string>* problems) {
  auto report = [&](std::string text) {
    if (problems != nullptr) problems->push_back(std::move(text));
  };
  std::lock_guard lock(impl_->mutex);
  std::vector<PluginDescriptor> found;
  std::vector<const Entry*> seen;
  for (const auto& dir : impl_->search_path) {
    std::error_code ec;
    std::vector<std::string> files;
    fs::directory_iterator it(dir, ec);
    // A directory that does not exist is normal (the exe-relative ones
    // often do not); one that exists but cannot be read is worth saying.
    if (ec) {
      if (ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory) {
        report("plugin directory " + in_quotes(dir) + ": " + ec.message());
      }
      continue;
    }
    for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
      std::string file = it->path().filename().string();
      if (is_plugin_file_name(file)) files.push_back((fs::path(dir) / file).string());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      try {
        const Entry& entry = impl_->load_file(file);
        if (std::find(seen.begin(), seen.end(), &entry) != seen.end()) continue;
        seen.push_back(&entry);
        found.push_back(entry.descriptor);
      } catch (const PluginError& e) {
        report(e.what());
      } catch (const std::exception& e) {
        report("plugin file " + in_quotes(file) + ": " + e.what());
      }
    }
  }
  return found;
}

std::vector<PluginDescriptor> PluginHost::loaded() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<PluginDescriptor> all;
  for (const auto& entries : impl_->registry) {
    for (const auto& [name, entry] : entries) all.push_back(entry.descriptor);
  }
  return all;
}

const PluginDescriptor& PluginHost::register_builtin(SwitchboardPluginKind kind, std::string name,
                                                     std::string version, const void* factory) {
  if (!valid_kind(kind)) {
    throw PluginError("", "built-in " + in_quotes(name) + ": unknown kind " +
                              std::to_string(static_cast<std::uint32_t>(kind)));
  }
  if (name.empty()) throw PluginError("", std::string("built-in ") + to_string(kind) + ": no name");
  if (factory == nullptr)
    throw PluginError("", "built-in " + describe(kind, name) + ": null factory");
  Entry entry;
  entry.descriptor.name = std::move(name);
  entry.descriptor.version = std::move(version);
  entry.descriptor.toolchain = SWITCHBOARD_TOOLCHAIN_TAG;
  entry.descriptor.abi_version = SWITCHBOARD_PLUGIN_ABI_VERSION;
  entry.descriptor.kind = kind;
  entry.descriptor.builtin = true;
  entry.factory = factory;
  std::lock_guard lock(impl_->mutex);
  return impl_->add(std::move(entry), "").descriptor;
}

const PluginDescriptor& PluginHost::register_builtin(std::string name, std::string version,
                                                     const TransportFactory& factory) {
  return register_builtin(SWITCHBOARD_PLUGIN_TRANSPORT, std::move(name), std::move(version),
                          &factory);
}

const PluginDescriptor& PluginHost::register_builtin(std::string name, std::string version,
                                                     const CodecFactory& factory) {
  return register_builtin(SWITCHBOARD_PLUGIN_CODEC, std::move(name), std::move(version), &factory);
}

const PluginDescriptor& PluginHost::register_builtin(std::string name, std::string version,
                                                     const EventStoreFactory& factory) {
  return register_builtin(SWITCHBOARD_PLUGIN_EVENT_STORE, std::move(name), std::move(version),
                          &factory);
}

const PluginDescriptor& PluginHost::register_builtin(std::string name, std::string version,
                                                     const RuntimePluginFactory& factory) {
  return register_builtin(SWITCHBOARD_PLUGIN_RUNTIME, std::move(name), std::move(version),
                          &factory);
}

std::shared_ptr<Transport> PluginHost::create_transport(const TransportConfig& config,
                                                        const TransportContext& context) {
  auto r = impl_->resolve(SWITCHBOARD_PLUGIN_TRANSPORT, config.type);
  const auto* factory = static_cast<const TransportFactory*>(r.factory);
  std::string instance =
      config.instance.empty() ? "" : " (instance " + in_quotes(config.instance) + ")";
  return create_object<Transport>(r.descriptor, std::move(r.library), instance,
                                  [&] { return factory->create(config, context); });
}

std::shared_ptr<Codec> PluginHost::create_codec(const std::string& name, const Json& options) {
  auto r = impl_->resolve(SWITCHBOARD_PLUGIN_CODEC, name);
  const auto* factory = static_cast<const CodecFactory*>(r.factory);
  return create_object<Codec>(r.descriptor, std::move(r.library), "",
                              [&] { return factory->create(options); });
}

std::shared_ptr<RuntimePlugin> PluginHost::create_runtime_plugin(const std::string& name) {
  auto r = impl_->resolve(SWITCHBOARD_PLUGIN_RUNTIME, name);
  const auto* factory = static_cast<const RuntimePluginFactory*>(r.factory);
  return create_object<RuntimePlugin>(r.descriptor, std::move(r.library), "",
                                      [&] { return factory->create(); });
}

std::shared_ptr<EventStore> PluginHost::create_event_store(const std::string& name,
                                                           const EventStoreConfig& config) {
  auto r = impl_->resolve(SWITCHBOARD_PLUGIN_EVENT_STORE, name);
  const auto* factory = static_cast<const EventStoreFactory*>(r.factory);
  std::string where = " (log " + in_quotes(config.location) + ")";
  return create_object<EventStore>(r.descriptor, std::move(r.library), where,
                                   [&] { return factory->open(config); });
}

}  // namespace switchboard
