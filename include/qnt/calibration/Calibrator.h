//===- Calibrator.h - Block-by-block calibration statistics -----*- C++ -*-===//
//
// The calibration driver (docs/Calibration.md): observes the input of every
// linear layer of an imported model, runs calibration sequences through the
// model one transformer block at a time, and accumulates per layer the
// per-input-channel absmax and mean |x|, the Hessian X^T X (in double) and
// the sample count. Running block by block lets a method feed each block
// the outputs of the already-quantized previous blocks (the quantized
// stream) or those of the float model (the float stream).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_CALIBRATION_CALIBRATOR_H
#define QNT_CALIBRATION_CALIBRATOR_H

#include "qnt/io/Llama.h"
#include "qnt/numerics/Statistics.h"
#include "qnt/runtime/ModelRunner.h"

#include "mlir/IR/BuiltinOps.h"

#include <map>
#include <string>
#include <vector>

namespace qnt::calibration {

/// The statistics of one linear layer's input activation x ([*, K]); the
/// accumulator lives in the IR-free numerics layer.
using LayerStatistics = ::qnt::numerics::LayerStatistics;

/// Statistics of every observed layer, by name (the layer's weight name).
class Statistics {
public:
  std::map<std::string, LayerStatistics> layers;
  std::map<std::string, std::string> metadata;

  /// Writes the statistics file (safetensors, format in
  /// docs/Calibration.md): per layer `<name>.absmax`, `<name>.mean_abs`
  /// (F32 [K]), `<name>.hessian` (F32 [K, K], the sum X^T X) and
  /// `<name>.count` (I64 scalar), atomically.
  bool write(const std::string &path, std::string *error) const;
};

enum class Stream {
  /// Block i's inputs are the outputs of the calibrated model's (possibly
  /// quantized) blocks 0..i-1.
  Quantized,
  /// Block i's inputs are the float model's block i-1 outputs.
  Float,
};

/// Cuts `documents` (token ids, BOS included) into `count` sequences of
/// `length` tokens: the documents are concatenated in order and split into
/// consecutive windows; fewer than `count` come back if the text is short.
std::vector<std::vector<int32_t>>
makeCalibrationSequences(const std::vector<std::vector<int32_t>> &documents,
                         int64_t count, int64_t length);

/// Cuts windows tokens[s : s + length] for each start offset s (the
/// reference protocol: no BOS added, each run from position 0). Fails
/// with a message on an offset whose window does not fit.
bool makeWindows(const std::vector<int32_t> &tokens,
                 const std::vector<int64_t> &starts, int64_t length,
                 std::vector<std::vector<int32_t>> &windows,
                 std::string *error);

/// Who observed one extra result of a block function: the layers that
/// share that input (q/k/v, gate/up, or one layer), and which statistics.
struct Observation {
  std::vector<std::string> names;
  bool absmax = false, meanAbs = false, hessian = false;
};

/// An imported model compiled with its observers exposed: every block (and
/// the head) returns, after its own results, the input activation of each
/// observed layer group, in program order. Shared by the calibration driver
/// and the sequential PTQ driver.
struct ObservedModel {
  mlir::OwningOpRef<mlir::ModuleOp> module;
  io::LlamaConfig config;
  /// Per block, then the head: who observed each extra result.
  std::vector<std::vector<Observation>> blocks;
  std::vector<Observation> head;
  std::unique_ptr<runtime::ModelRunner> runner;
};

/// Instruments a clone of `model` (qnt-insert-observers,
/// qnt-expose-observations) and compiles it; `model` is not modified.
mlir::FailureOr<ObservedModel> compileObservedModel(mlir::ModuleOp model);

/// Adds the observed activations of one call (`extra`, in the order of
/// `observations`) to `layers`, under each group's first layer name: only
/// those of `indices` when given, else all.
void accumulateObservations(
    std::map<std::string, LayerStatistics> &layers,
    const std::vector<Observation> &observations,
    const std::vector<runtime::HostTensor> &extra,
    llvm::ArrayRef<size_t> indices = {});

/// Gives every layer of a group that shared an observed input the
/// statistics accumulated under the group's first name (only the groups of
/// `indices` when given).
void copySharedStatistics(std::map<std::string, LayerStatistics> &layers,
                          const std::vector<Observation> &observations,
                          llvm::ArrayRef<size_t> indices = {});

/// Calibrates `model` (an imported model, float or quantized; not
/// modified) on `sequences`. With Stream::Float, `floatModel` (the float
/// model of the same checkpoint) supplies the block inputs. Reports on the
/// model's context and shows progress on a terminal.
mlir::FailureOr<Statistics>
calibrate(mlir::ModuleOp model, mlir::ModuleOp floatModel,
          const std::vector<std::vector<int32_t>> &sequences, Stream stream);

} // namespace qnt::calibration

#endif // QNT_CALIBRATION_CALIBRATOR_H
