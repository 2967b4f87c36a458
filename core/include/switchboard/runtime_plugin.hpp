// Runtime plugins (Hemera's `use`): a bundle of adds, hooks and options with
// a name, a version and the plugins it depends on.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "switchboard/json.hpp"

namespace switchboard {

class Runtime;

class RuntimePlugin {
 public:
  virtual ~RuntimePlugin() = default;
  virtual std::string name() const = 0;
  virtual std::string version() const = 0;
  virtual std::vector<std::string> dependencies() const { return {}; }
  // Registers the plugin's adds and hooks. May throw Error for bad options.
  virtual void attach(Runtime& runtime, const Json& options) = 0;
};

class RuntimePluginFactory {
 public:
  virtual ~RuntimePluginFactory() = default;
  virtual std::unique_ptr<RuntimePlugin> create() const = 0;
};

}  // namespace switchboard
