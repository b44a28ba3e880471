//===- Rtn.cpp - Round-to-nearest weight quantization -----------*- C++ -*-===//
//
// Implements qnt-rtn: the weight-method driver with numerics::runRTN.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTRTN
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

struct QntRtnPass : mlir::qnt::impl::QntRtnBase<QntRtnPass>,
                    WeightMethodPass {
  using QntRtnBase::QntRtnBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    return WeightMethodDriver::create(
        module, QNT_WEIGHT_METHOD_CONFIG("qnt-rtn"), "rtn",
        [](const LayerSettings &settings, const nx::WeightProblem &problem) {
          if (!settings.methodOptions.empty())
            throw std::invalid_argument(
                "qnt-rtn has no option '" +
                settings.methodOptions.begin()->getKey().str() + "'");
          return nx::runRTN(settings.spec, problem);
        });
  }
  // Bias correction needs the input means; RTN itself is data-free.
  bool needsStatistics() const override { return biasCorrection; }

  void runOnOperation() override {
    FailureOr<size_t> quantized = quantizeModule(getOperation());
    if (failed(quantized))
      return signalPassFailure();
    numQuantized = *quantized;
  }
};

} // namespace
