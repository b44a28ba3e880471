//===- WeightMethodPass.h - Weight-method passes as drivers -----*- C++ -*-===//
//
// Every weight-method pass (qnt-rtn, qnt-gptq, ...) also implements this
// interface, so that the sequential block driver can take a pass parsed
// from a pipeline string (its options checked by MLIR's option parser) and
// run its method block by block with the statistics it captures, instead
// of running the pass on the whole module at once.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PTQ_WEIGHTMETHODPASS_H
#define QNT_PASSES_PTQ_WEIGHTMETHODPASS_H

#include "passes/ptq/WeightMethodDriver.h"

namespace mlir::qnt {

/// A pass that writes new parameters into the file its `output` option
/// names (the weight methods, qnt-fold-smooth): quant-compile points that
/// option into its output directory.
class ParamWritingPass {
public:
  virtual ~ParamWritingPass();
};

class WeightMethodPass : public ParamWritingPass {
public:
  virtual ~WeightMethodPass();
  /// The driver for this pass's options on `module`.
  virtual FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const = 0;
  /// True if the method needs input statistics (a Hessian).
  virtual bool needsStatistics() const = 0;

  /// What every weight-method pass's runOnOperation does: creates the
  /// driver and runs it on the whole module. Returns the number of weights
  /// quantized.
  FailureOr<size_t> quantizeModule(ModuleOp module) const;
};

} // namespace mlir::qnt

#endif // QNT_PASSES_PTQ_WEIGHTMETHODPASS_H
