//===- Calibrator.cpp - Block-by-block calibration statistics -------------===//
//
// See Calibrator.h. The observed activations come back from the compiled
// blocks as extra results (qnt-insert-observers, qnt-expose-observations);
// the statistics are accumulated here, on the host, in double precision.
//
//===----------------------------------------------------------------------===//

#include "qnt/calibration/Calibrator.h"
#include "passes/Passes.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/StatisticsFile.h"
#include "qnt/runtime/ModelRunner.h"
#include "qnt/support/Progress.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace ::qnt::calibration;
namespace calibration = ::qnt::calibration;
using ::qnt::runtime::HostTensor;
using ::qnt::runtime::ModelRunner;

//===----------------------------------------------------------------------===//
// Statistics file
//===----------------------------------------------------------------------===//

bool Statistics::write(const std::string &path, std::string *error) const {
  ::qnt::io::StatisticsFile file{layers, metadata};
  return ::qnt::io::writeStatisticsFile(path, file, error);
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

bool calibration::makeWindows(const std::vector<int32_t> &tokens,
                              const std::vector<int64_t> &starts,
                              int64_t length,
                              std::vector<std::vector<int32_t>> &windows,
                              std::string *error) {
  windows.clear();
  if (length <= 0) {
    *error = "window length must be positive";
    return false;
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t s = starts[i];
    if (s < 0 || s + length > int64_t(tokens.size())) {
      *error = "window " + std::to_string(i) + " starts at " +
               std::to_string(s) + "; a window of " + std::to_string(length) +
               " tokens must lie in the " + std::to_string(tokens.size()) +
               " tokens";
      return false;
    }
    windows.emplace_back(tokens.begin() + s, tokens.begin() + s + length);
  }
  return true;
}

std::vector<std::vector<int32_t>> calibration::makeCalibrationSequences(
    const std::vector<std::vector<int32_t>> &documents, int64_t count,
    int64_t length) {
  std::vector<std::vector<int32_t>> sequences;
  if (count <= 0 || length <= 0)
    return sequences;
  std::vector<int32_t> current;
  for (const std::vector<int32_t> &doc : documents)
    for (int32_t token : doc) {
      current.push_back(token);
      if (int64_t(current.size()) == length) {
        sequences.push_back(std::move(current));
        current.clear();
        if (int64_t(sequences.size()) == count)
          return sequences;
      }
    }
  return sequences;
}

namespace {

/// Reads the qnt.observed attribute of `name` in `module`.
std::vector<Observation> readObservations(ModuleOp module, StringRef name) {
  std::vector<Observation> result;
  auto func = module.lookupSymbol<func::FuncOp>(name);
  auto observed =
      func ? func->getAttrOfType<ArrayAttr>("qnt.observed") : ArrayAttr();
  if (!observed)
    return result;
  for (auto entry : observed.getAsRange<DictionaryAttr>()) {
    Observation o;
    for (auto n : entry.getAs<ArrayAttr>("names").getAsValueRange<StringAttr>())
      o.names.push_back(n.str());
    for (auto s : entry.getAs<ArrayAttr>("stats").getAsValueRange<StringAttr>()) {
      o.absmax |= s == "absmax";
      o.meanAbs |= s == "mean_abs";
      o.hessian |= s == "hessian";
    }
    result.push_back(std::move(o));
  }
  return result;
}

/// A clone of `model` whose functions return their observed activations.
OwningOpRef<ModuleOp> instrumentModel(ModuleOp model) {
  OwningOpRef<ModuleOp> observed = model.clone();
  PassManager pm(model.getContext());
  pm.addNestedPass<func::FuncOp>(mlir::qnt::createQntInsertObservers());
  pm.addPass(mlir::qnt::createQntExposeObservations());
  if (failed(pm.run(*observed)))
    return nullptr;
  return observed;
}

/// `indices`, or every index of `observations` when it is empty.
SmallVector<size_t> selected(const std::vector<Observation> &observations,
                             ArrayRef<size_t> indices) {
  if (!indices.empty())
    return SmallVector<size_t>(indices.begin(), indices.end());
  SmallVector<size_t> all(observations.size());
  for (size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  return all;
}

} // namespace

FailureOr<ObservedModel> calibration::compileObservedModel(ModuleOp model) {
  ObservedModel observed;
  observed.module = instrumentModel(model);
  if (!observed.module)
    return failure();
  FailureOr<::qnt::io::LlamaConfig> config =
      mlir::qnt::readModelConfig(*observed.module);
  if (failed(config))
    return failure();
  observed.config = *config;
  // The attributes are read before compiling lowers the module.
  for (int64_t layer = 0; layer < config->nLayers; ++layer)
    observed.blocks.push_back(readObservations(
        *observed.module, mlir::qnt::blockFunctionName(layer)));
  observed.head = readObservations(*observed.module, "head");
  FailureOr<std::unique_ptr<ModelRunner>> runner =
      ModelRunner::create(*observed.module);
  if (failed(runner))
    return failure();
  observed.runner = std::move(*runner);
  return observed;
}

void calibration::accumulateObservations(
    std::map<std::string, LayerStatistics> &layers,
    const std::vector<Observation> &observations,
    const std::vector<HostTensor> &extra, ArrayRef<size_t> indices) {
  for (size_t index : selected(observations, indices)) {
    const Observation &observation = observations[index];
    const HostTensor &tensor = extra[index];
    int64_t channels = tensor.getType().getShape().back();
    int64_t rows = tensor.numElements() / std::max<int64_t>(channels, 1);
    // Layers sharing an input (q/k/v, gate/up) share statistics: they are
    // accumulated once, under the first name, and copied at the end.
    LayerStatistics &layer = layers[observation.names.front()];
    layer.channels = channels;
    layer.wantsAbsmax = observation.absmax;
    layer.wantsMeanAbs = observation.meanAbs;
    layer.wantsHessian = observation.hessian;
    layer.accumulate(tensor.f32(), rows);
  }
}

void calibration::copySharedStatistics(
    std::map<std::string, LayerStatistics> &layers,
    const std::vector<Observation> &observations, ArrayRef<size_t> indices) {
  for (size_t index : selected(observations, indices)) {
    const std::vector<std::string> &names = observations[index].names;
    for (size_t i = 1; i < names.size(); ++i)
      layers[names[i]] = layers[names.front()];
  }
}

FailureOr<Statistics>
calibration::calibrate(ModuleOp model, ModuleOp floatModel,
                            const std::vector<std::vector<int32_t>> &sequences,
                            Stream stream) {
  if (stream == Stream::Float && !floatModel)
    return model.emitError("calibration on the float stream needs the float "
                           "model");
  if (sequences.empty())
    return model.emitError("no calibration sequences");
  FailureOr<ObservedModel> observed = compileObservedModel(model);
  if (failed(observed))
    return failure();
  const ::qnt::io::LlamaConfig *config = &observed->config;
  ModelRunner *runner = observed->runner.get();
  OwningOpRef<ModuleOp> floatClone;
  std::unique_ptr<ModelRunner> floatRunner;
  if (stream == Stream::Float) {
    floatClone = floatModel.clone();
    FailureOr<std::unique_ptr<ModelRunner>> created =
        ModelRunner::create(*floatClone);
    if (failed(created))
      return failure();
    floatRunner = std::move(*created);
  }
  ModelRunner &streamRunner = floatRunner ? *floatRunner : *runner;

  int64_t numSequences = sequences.size();
  int64_t steps = numSequences * (config->nLayers + 2);
  ::qnt::Progress progress("calibration", steps);
  int64_t done = 0;
  std::vector<HostTensor> inputs(numSequences);
  for (int64_t s = 0; s < numSequences; ++s) {
    if (failed(streamRunner.embed(sequences[s], inputs[s])))
      return failure();
    progress.update(++done, "embedding");
  }

  Statistics stats;
  std::vector<HostTensor> extra;
  for (int64_t layer = 0; layer < config->nLayers; ++layer) {
    for (int64_t s = 0; s < numSequences; ++s) {
      // The calibrated block sees this block's input from the chosen
      // stream; on the quantized stream its output is the next input.
      HostTensor x = inputs[s];
      if (failed(runner->block(layer, x, /*pos=*/0, &extra)))
        return failure();
      accumulateObservations(stats.layers, observed->blocks[layer], extra);
      if (floatRunner) {
        if (failed(floatRunner->block(layer, inputs[s], /*pos=*/0)))
          return failure();
      } else {
        inputs[s] = x;
      }
      progress.update(++done, llvm::formatv("block {0}", layer).str());
    }
  }
  for (int64_t s = 0; s < numSequences; ++s) {
    HostTensor logits;
    if (failed(runner->head(inputs[s], logits, &extra)))
      return failure();
    accumulateObservations(stats.layers, observed->head, extra);
    progress.update(++done, "head");
  }
  progress.finish();
  for (const std::vector<Observation> &observations : observed->blocks)
    copySharedStatistics(stats.layers, observations);
  copySharedStatistics(stats.layers, observed->head);

  int64_t tokens = 0;
  for (const auto &sequence : sequences)
    tokens += sequence.size();
  stats.metadata["sequences"] = std::to_string(numSequences);
  stats.metadata["sequence_length"] = std::to_string(sequences.front().size());
  stats.metadata["tokens"] = std::to_string(tokens);
  stats.metadata["stream"] = stream == Stream::Float ? "float" : "quantized";
  stats.metadata["seconds"] = llvm::formatv("{0:F3}", progress.seconds()).str();
  return stats;
}
