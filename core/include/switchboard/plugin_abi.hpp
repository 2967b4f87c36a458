// The plugin ABI: what a transport, codec or runtime plugin exports.
//
// A plugin is a shared library (CMake MODULE, hidden visibility) exporting
// exactly one extern "C" symbol, SWITCHBOARD_PLUGIN_ENTRY_SYMBOL, that returns
// a pointer to a static SwitchboardPluginInfo. The host checks abi_version
// and toolchain before touching `factory`; factories hand out C++ objects, so
// host and plugin must share compiler and standard library ABI, which the
// toolchain tag records.
#pragma once

#include <cstdint>

// Bumped on any change to the plugin interfaces (Transport, Codec,
// RuntimePlugin, their factories, or this struct).
// 4: DurableDelivery::source_id().
#define SWITCHBOARD_PLUGIN_ABI_VERSION 4u

#define SWITCHBOARD_PLUGIN_ENTRY_SYMBOL "switchboard_plugin_entry"

#define SWITCHBOARD_STRINGIFY_IMPL(x) #x
#define SWITCHBOARD_STRINGIFY(x) SWITCHBOARD_STRINGIFY_IMPL(x)

// Compiler family and major version, C++ standard library and its ABI.
#if defined(__clang__)
#define SWITCHBOARD_COMPILER_TAG "clang-" SWITCHBOARD_STRINGIFY(__clang_major__)
#elif defined(__GNUC__)
#define SWITCHBOARD_COMPILER_TAG "gcc-" SWITCHBOARD_STRINGIFY(__GNUC__)
#else
#define SWITCHBOARD_COMPILER_TAG "unknown"
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
#define SWITCHBOARD_STDLIB_TAG "libstdc++-cxx11abi" SWITCHBOARD_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define SWITCHBOARD_STDLIB_TAG "libc++"
#else
#define SWITCHBOARD_STDLIB_TAG "unknown"
#endif
#define SWITCHBOARD_TOOLCHAIN_TAG SWITCHBOARD_COMPILER_TAG "/" SWITCHBOARD_STDLIB_TAG

extern "C" {

enum SwitchboardPluginKind : std::uint32_t {
  SWITCHBOARD_PLUGIN_TRANSPORT = 1,    // factory: const switchboard::TransportFactory*
  SWITCHBOARD_PLUGIN_CODEC = 2,        // factory: const switchboard::CodecFactory*
  SWITCHBOARD_PLUGIN_RUNTIME = 3,      // factory: const switchboard::RuntimePluginFactory*
  SWITCHBOARD_PLUGIN_EVENT_STORE = 4,  // factory: const switchboard::EventStoreFactory*
};

struct SwitchboardPluginInfo {
  std::uint32_t abi_version;  // SWITCHBOARD_PLUGIN_ABI_VERSION at build time
  std::uint32_t kind;         // SwitchboardPluginKind
  const char* name;           // registry key: "nats", "json", "math"
  const char* version;        // the plugin's own version, "1.0.0"
  const char* toolchain;      // SWITCHBOARD_TOOLCHAIN_TAG at build time
  const void* factory;        // borrowed; lives as long as the library is loaded
};

typedef const SwitchboardPluginInfo* (*SwitchboardPluginEntryFn)(void);
}

// Declares the entry function of a plugin with the given kind, name, version
// and factory object (a static object of the matching factory type).
#define SWITCHBOARD_PLUGIN(KIND, NAME, VERSION, FACTORY_OBJECT)                  \
  extern "C" __attribute__((visibility("default"))) const SwitchboardPluginInfo* \
  switchboard_plugin_entry(void) {                                               \
    static const SwitchboardPluginInfo info{SWITCHBOARD_PLUGIN_ABI_VERSION,      \
                                            KIND,                                \
                                            NAME,                                \
                                            VERSION,                             \
                                            SWITCHBOARD_TOOLCHAIN_TAG,           \
                                            &(FACTORY_OBJECT)};                  \
    return &info;                                                                \
  }
