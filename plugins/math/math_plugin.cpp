// math: the first runtime plugin. topic "math", cmd add | sub | mul | div on
// numbers a and b; division by zero is a handler error.
#include <cmath>

#include "switchboard/plugin_abi.hpp"
#include "switchboard/runtime.hpp"

namespace switchboard {
namespace {

const Json kNumber = {{"type", "number"}, {"required", true}};

// Integral results stay integers on the wire (1 + 2 is 3, not 3.0), as a
// JavaScript peer would print them.
Json as_number(double value) {
  if (std::trunc(value) == value && std::fabs(value) < 9.0e15) {
    return static_cast<std::int64_t>(value);
  }
  return value;
}

double operand(const Call& c, const char* key) {
  return c.pattern().at(key).get<double>();
}

class MathPlugin final : public RuntimePlugin {
 public:
  std::string name() const override { return "math"; }
  std::string version() const override { return "1.0.0"; }

  void attach(Runtime& rt, const Json& options) override {
    std::string topic = options.value("topic", "math");
    auto command = [&](const char* cmd) {
      return Json{{"topic", topic}, {"cmd", cmd}, {"a", kNumber}, {"b", kNumber}};
    };
    rt.add(command("add"), [](Call& c) { return as_number(operand(c, "a") + operand(c, "b")); });
    rt.add(command("sub"), [](Call& c) { return as_number(operand(c, "a") - operand(c, "b")); });
    rt.add(command("mul"), [](Call& c) { return as_number(operand(c, "a") * operand(c, "b")); });
    rt.add(command("div"), [](Call& c) {
      double b = operand(c, "b");
      if (b == 0) throw Error("MathError", "division by zero", "DIVISION_BY_ZERO");
      return as_number(operand(c, "a") / b);
    });
  }
};

class MathFactory final : public RuntimePluginFactory {
 public:
  std::unique_ptr<RuntimePlugin> create() const override { return std::make_unique<MathPlugin>(); }
};

const MathFactory factory;

}  // namespace
}  // namespace switchboard

SWITCHBOARD_PLUGIN(SWITCHBOARD_PLUGIN_RUNTIME, "math", "1.0.0", switchboard::factory)
