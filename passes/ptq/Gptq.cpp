//===- Gptq.cpp - GPTQ weight quantization ----------------------*- C++ -*-===//
//
// Implements qnt-gptq: the weight-method driver with numerics::runGPTQ.
// GPTQ's own options may also be overridden per layer
// (overrides=".*w2.*:act-order=0").
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/Gptq.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringExtras.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTGPTQ
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

/// `defaults` with the per-layer GPTQ options of `settings` applied.
nx::GptqOptions layerOptions(nx::GptqOptions options,
                             const LayerSettings &settings) {
  for (const auto &entry : settings.methodOptions) {
    StringRef key = entry.getKey(), value = entry.getValue();
    auto bad = [&] {
      return std::invalid_argument("bad value '" + value.str() +
                                   "' for GPTQ option " + key.str());
    };
    auto flag = [&](bool &out) {
      if (value == "1" || value == "true")
        out = true;
      else if (value == "0" || value == "false")
        out = false;
      else
        throw bad();
    };
    if (key == "act-order") {
      flag(options.actOrder);
    } else if (key == "static-groups") {
      flag(options.staticGroups);
    } else if (key == "mse") {
      flag(options.mseSearch);
    } else if (key == "fresh-group-params") {
      flag(options.freshGroupParams);
    } else if (key == "block-size") {
      if (value.getAsInteger(10, options.blockSize))
        throw bad();
    } else if (key == "damp") {
      if (value.getAsDouble(options.percDamp))
        throw bad();
    } else {
      throw std::invalid_argument("unknown GPTQ option '" + key.str() +
                                  "' (act-order, static-groups, mse, "
                                  "block-size, damp)");
    }
  }
  return options;
}

struct QntGptqPass : mlir::qnt::impl::QntGptqBase<QntGptqPass>,
                     WeightMethodPass {
  using QntGptqBase::QntGptqBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    nx::GptqOptions defaults;
    defaults.percDamp = percDamp;
    defaults.blockSize = blockSize;
    defaults.actOrder = actOrder;
    defaults.staticGroups = staticGroups;
    defaults.mseSearch = mse;
    defaults.freshGroupParams = freshGroupParams;
    if (!(percDamp >= 0))
      return module.emitError("qnt-gptq: damp must be non-negative, got ")
             << double(percDamp);
    if (blockSize <= 0)
      return module.emitError("qnt-gptq: block-size must be positive, got ")
             << int64_t(blockSize);
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-gptq");
    config.needsStatistics = true;
    return WeightMethodDriver::create(
        module, std::move(config), "gptq",
        [defaults](const LayerSettings &settings,
                   const nx::WeightProblem &problem) {
          return nx::runGPTQ(settings.spec, layerOptions(defaults, settings),
                             problem);
        });
  }
  bool needsStatistics() const override { return true; }

  void runOnOperation() override {
    FailureOr<size_t> quantized = quantizeModule(getOperation());
    if (failed(quantized))
      return signalPassFailure();
    numQuantized = *quantized;
  }
};

} // namespace
