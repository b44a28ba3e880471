//===- SequentialDriver.h - Block-by-block PTQ on captured inputs -*- C++ -*-===//
//
// Runs a weight method over an imported model one transformer block at a
// time, as the reference GPTQ does (ALGORITHMS.md §0): block i's inputs are
// the outputs of blocks 0..i-1 as already processed (quantized stream) or of
// the float model (float stream). Inside a block, layers are processed in
// the order of their observed inputs ("true-sequential": q,k,v | o |
// gate,up | down on LLaMA): the inputs of each group are re-captured after
// the groups before it were quantized. Every run is a call of the compiled
// block function itself, with the quantized weights bound in place of the
// float ones: there is no second, hand-written model.
//
// Cost: block i is run (groups + 1) times per sequence on the quantized
// stream, once on the float stream, whatever i is; group methods add their
// module-loss runs. Block-reconstruction methods (WeightMethodConfig::
// groupsAreBlocks) quantize a block's layers together: the block is run
// twice per sequence on the quantized stream and once on the float stream
// (its outputs are the targets), plus the training steps
// (BlockReconstruction.h).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PTQ_SEQUENTIALDRIVER_H
#define QNT_PTQ_SEQUENTIALDRIVER_H

#include "passes/ptq/WeightMethodDriver.h"
#include "qnt/ptq/BlockReconstruction.h"
#include "qnt/calibration/Calibrator.h"

namespace qnt::ptq {

struct SequentialOptions {
  /// Quantized: each capture runs the weights quantized so far. Float: no
  /// quantized weight is ever bound; every input, within a block too, comes
  /// from the float model (AWQ's protocol).
  calibration::Stream stream = calibration::Stream::Quantized;
  /// Re-capture inputs after each group of layers sharing an input; when
  /// false, a block's layers are all quantized on one capture.
  bool trueSequential = true;
  /// Block inputs larger than this many bytes are kept in a temporary file
  /// instead of memory (a 7B shape with 128 x 2048 tokens holds ~4 GB of
  /// them); negative means no limit.
  int64_t memoryBudgetBytes = -1;
};

struct SequentialSummary {
  /// Block function calls per block (all sequences together).
  std::vector<int64_t> blockExecutions;
  int64_t sequences = 0, tokens = 0;
  /// Block reconstruction: what training each block did.
  std::vector<ReconstructionReport> reconstructions;
  /// The block inputs went to a temporary file.
  bool spilled = false;
  double seconds = 0;
};

/// Quantizes the layers `driver` selected in `model` (the module the driver
/// rewrites) block by block on `sequences` and calls driver.finish().
/// Reports on the module's context; shows progress on a terminal.
mlir::FailureOr<SequentialSummary>
runSequential(mlir::ModuleOp model, mlir::qnt::WeightMethodDriver &driver,
              const std::vector<std::vector<int32_t>> &sequences,
              const SequentialOptions &options);

} // namespace qnt::ptq

#endif // QNT_PTQ_SEQUENTIALDRIVER_H
