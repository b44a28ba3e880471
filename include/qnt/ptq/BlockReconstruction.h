//===- BlockReconstruction.h - Learned rounding on a block's IR -*- C++ -*-===//
//
// The trainer behind qnt-flexround, qnt-adaround, qnt-pdquant, qnt-ptq161
// and qnt-aqlm's fine-tuning (block reconstruction, ../shared/docs/
// ALGORITHMS.md §5, §7, §9, §10 and §15). For one transformer block it
//  1. clones the block's function from the imported model and turns the
//     weights of the layers to train into arguments;
//  2. writes each one's learnable quantizer into the IR
//     (makeWeightLearnable) and builds the adjoint of the whole block with
//     respect to the quantizers' parameters (buildAdjoint);
//  3. compiles both with the CPU pipeline (the same kernels as inference);
//  4. runs Adam: per step, the forward on a calibration sequence's block
//     input (quantized stream), the squared error against the float block's
//     output (float stream) summed over features and averaged over tokens
//     (PTQ1.61: its reference's four terms, ReconstructionOptions),
//     then the adjoint with that error's gradient as the cotangent of the
//     block's output (zero for its key and value caches);
//  5. bakes the learned quantizers into standard encodings (codes, scales,
//     zero points; PTQ1.61's #qnt.salient and input scale): nothing
//     learned remains at run time.
// There is no second model of the block: what is differentiated is the IR
// that the quantized model runs, with the quantizer in front of each
// weight.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PTQ_BLOCKRECONSTRUCTION_H
#define QNT_PTQ_BLOCKRECONSTRUCTION_H

#include "passes/ptq/WeightMethodDriver.h"
#include "qnt/runtime/CpuJit.h"

#include <functional>

namespace qnt::ptq {

/// The training data of one block, per calibration sequence.
struct ReconstructionData {
  size_t sequences = 0;
  /// The block's input on the quantized stream ([T, dim]).
  std::function<mlir::FailureOr<runtime::HostTensor>(size_t)> input;
  /// The float block's output on the float stream ([T, dim]).
  std::function<mlir::FailureOr<runtime::HostTensor>(size_t)> target;
  /// The block's input on the float stream; needed for QDrop's mixing and
  /// the distribution correction (ReconstructionOptions).
  std::function<mlir::FailureOr<runtime::HostTensor>(size_t)> floatInput;
  /// Where the trained block's outputs on the quantized stream go (the
  /// next block's inputs), when the caller wants them from the trainer:
  /// they include its activation quantization, which the caller's runner
  /// does not model.
  std::function<mlir::LogicalResult(size_t, const runtime::HostTensor &)>
      output;
  /// The functions after the block, in order: the later blocks, then the
  /// head; needed for the prediction difference.
  std::vector<std::string> downstream;
};

/// What training one block did.
struct ReconstructionReport {
  int64_t iterations = 0;
  bool stoppedEarly = false;
  /// The loss over every calibration sequence at the start (the
  /// quantizers' initialization: round to nearest) and at the end.
  double initialLoss = 0, finalLoss = 0;
  /// With the prediction difference: KL(float || quantized) of the model's
  /// output distributions at the training temperature, over the same
  /// sequences, at the start and at the end.
  double initialPrediction = 0, finalPrediction = 0;
  /// Whether the prediction difference and the distribution correction
  /// were part of the objective.
  bool predicted = false, corrected = false;
  /// Building and compiling the block and its adjoint; the forward calls
  /// and the adjoint calls (which recompute the forward) of the steps; the
  /// loss measurements before and after.
  double compileSeconds = 0, forwardSeconds = 0, adjointSeconds = 0,
         evaluationSeconds = 0;
  /// The rest of the network's forward and adjoint calls (the prediction
  /// difference); the distribution correction and its targets.
  double predictionSeconds = 0, correctionSeconds = 0;
  /// PTQ1.61's second target: the float block on the quantized-stream
  /// inputs.
  double targetSeconds = 0;
  double seconds = 0;
  /// Each step's seconds (its forward and adjoint calls, the optimizer).
  std::vector<double> stepSeconds;
  /// Trainable elements and the optimizer's state bytes.
  int64_t trainableElements = 0, optimizerStateBytes = 0;
};

class BlockReconstructor : public mlir::qnt::BlockTrainer {
public:
  /// Progress: (iteration, iterations, running loss).
  using ProgressFn = std::function<void(int64_t, int64_t, double)>;

  /// Trains layers of function `blockFunction` of `model`: an imported
  /// model, not lowered, whose parameters hold the float weights (it is
  /// cloned, never changed).
  BlockReconstructor(mlir::ModuleOp model, std::string blockFunction,
                     ReconstructionData data, ProgressFn progress = {});

  std::vector<numerics::MethodResult>
  train(llvm::ArrayRef<mlir::qnt::LayerSettings> settings,
        llvm::ArrayRef<numerics::WeightProblem> problems,
        const mlir::qnt::ReconstructionOptions &options) override;

  std::vector<numerics::MethodResult>
  fineTuneCodebooks(llvm::ArrayRef<mlir::qnt::LayerSettings> settings,
                    llvm::ArrayRef<numerics::WeightProblem> problems,
                    llvm::ArrayRef<mlir::qnt::CodebookStart> starts,
                    const mlir::qnt::ReconstructionOptions &options) override;

  /// The last train() call's report.
  const ReconstructionReport &report() const { return last; }

private:
  /// train() and fineTuneCodebooks(): `starts` is empty unless the method
  /// is AdditiveCodebook.
  std::vector<numerics::MethodResult>
  run(llvm::ArrayRef<mlir::qnt::LayerSettings> settings,
      llvm::ArrayRef<numerics::WeightProblem> problems,
      llvm::ArrayRef<mlir::qnt::CodebookStart> starts,
      const mlir::qnt::ReconstructionOptions &options);

  mlir::ModuleOp model;
  std::string blockFunction;
  ReconstructionData data;
  ProgressFn progress;
  ReconstructionReport last;
};

} // namespace qnt::ptq

#endif // QNT_PTQ_BLOCKRECONSTRUCTION_H
