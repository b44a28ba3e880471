//===- SequentialDriver.cpp - Block-by-block PTQ on captured inputs -------===//
//
// See SequentialDriver.h. The model is instrumented once (observers exposed
// as extra block results) and compiled once; quantized weights are bound in
// place of the float ones as each group is done.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/SequentialDriver.h"
#include "qnt/runtime/ModelRunner.h"
#include "qnt/support/Progress.h"

#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <set>

using namespace mlir;
using namespace ::qnt::ptq;
namespace calibration = ::qnt::calibration;
namespace nx = ::qnt::numerics;
using ::qnt::runtime::HostTensor;
using ::qnt::runtime::ModelRunner;

namespace {

/// Layers quantized together on one capture, and which extra results of
/// the block function hold their inputs.
struct LayerGroup {
  std::vector<std::string> layers;
  std::vector<size_t> observations;
};

std::vector<LayerGroup>
groupsOf(const std::vector<calibration::Observation> &observations,
         const std::set<std::string> &selected, bool trueSequential) {
  std::vector<LayerGroup> groups;
  for (size_t i = 0; i < observations.size(); ++i) {
    LayerGroup group;
    for (const std::string &name : observations[i].names)
      if (selected.count(name))
        group.layers.push_back(name);
    if (group.layers.empty())
      continue;
    group.observations.push_back(i);
    if (!trueSequential && !groups.empty()) {
      groups.front().layers.insert(groups.front().layers.end(),
                                   group.layers.begin(), group.layers.end());
      groups.front().observations.push_back(i);
    } else {
      groups.push_back(std::move(group));
    }
  }
  return groups;
}

/// The dequantized weight as a tensor of the bound parameter's type.
FailureOr<HostTensor> weightTensor(ModelRunner &runner, ModuleOp model,
                                   const std::string &name,
                                   const nx::MethodResult &result) {
  RankedTensorType type = runner.paramType(name);
  if (!type)
    return model.emitError("sequential PTQ: layer '")
           << name << "' is not a parameter of the compiled blocks";
  int64_t rows = result.encoded.rows, cols = result.encoded.cols;
  if (!type.getElementType().isF32() || type.getRank() != 2)
    return model.emitError("sequential PTQ: parameter '")
           << name << "' is bound as " << type
           << "; the quantized stream needs f32 weights";
  HostTensor tensor(type);
  float *out = tensor.f32();
  if (type.getDimSize(0) == rows && type.getDimSize(1) == cols) {
    std::copy(result.dequantized.begin(), result.dequantized.end(), out);
  } else if (type.getDimSize(0) == cols && type.getDimSize(1) == rows) {
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        out[k * rows + n] = result.dequantized[n * cols + k];
  } else {
    return model.emitError("sequential PTQ: parameter '")
           << name << "' has type " << type << ", not a " << rows << "x"
           << cols << " weight";
  }
  return tensor;
}

} // namespace

namespace qnt::ptq {

FailureOr<SequentialSummary>
runSequential(ModuleOp model, mlir::qnt::WeightMethodDriver &driver,
                        const std::vector<std::vector<int32_t>> &sequences,
                        const SequentialOptions &options) {
  if (sequences.empty())
    return model.emitError("sequential PTQ: no calibration sequences");
  // The clone is taken before the driver rewrites `model`: it runs the
  // float weights, which are then replaced one group at a time.
  FailureOr<calibration::ObservedModel> observed =
      calibration::compileObservedModel(model);
  if (failed(observed))
    return failure();
  const ::qnt::io::LlamaConfig &config = observed->config;
  const auto &blockObservations = observed->blocks;
  ModelRunner &runner = *observed->runner;

  std::set<std::string> selected(driver.layerNames().begin(),
                                 driver.layerNames().end());
  std::vector<std::vector<LayerGroup>> blockGroups;
  int64_t steps = 0;
  for (const auto &observations : blockObservations) {
    blockGroups.push_back(
        groupsOf(observations, selected, options.trueSequential));
    steps += blockGroups.back().size() + 1;
  }

  SequentialSummary summary;
  summary.sequences = sequences.size();
  summary.blockExecutions.assign(config.nLayers, 0);
  ::qnt::Progress progress("sequential ptq", steps);
  int64_t done = 0;
  std::vector<HostTensor> inputs(sequences.size());
  for (size_t s = 0; s < sequences.size(); ++s) {
    if (failed(runner.embed(sequences[s], inputs[s])))
      return failure();
    summary.tokens += sequences[s].size();
  }

  std::vector<HostTensor> extra;
  for (int64_t layer = 0; layer < config.nLayers; ++layer) {
    auto runBlock = [&](HostTensor &x, std::vector<HostTensor> *results) {
      ++summary.blockExecutions[layer];
      return runner.block(layer, x, /*pos=*/0, results);
    };
    // On the float stream the next block sees this block's float outputs,
    // computed before any of its weights change.
    std::vector<HostTensor> floatOutputs;
    if (options.stream == calibration::Stream::Float)
      for (const HostTensor &input : inputs) {
        HostTensor x = input;
        if (failed(runBlock(x, nullptr)))
          return failure();
        floatOutputs.push_back(x);
      }
    for (const LayerGroup &group : blockGroups[layer]) {
      progress.update(done++, llvm::formatv("block {0}: {1}", layer,
                                            group.layers.front())
                                  .str());
      mlir::qnt::StatisticsMap stats;
      for (const HostTensor &input : inputs) {
        HostTensor x = input;
        if (failed(runBlock(x, &extra)))
          return failure();
        calibration::accumulateObservations(stats, blockObservations[layer],
                                            extra, group.observations);
      }
      calibration::copySharedStatistics(stats, blockObservations[layer],
                                        group.observations);
      LogicalResult bound = success();
      if (failed(driver.quantize(
              group.layers, &stats,
              [&](const std::string &name, const nx::MethodResult &result) {
                FailureOr<HostTensor> tensor =
                    weightTensor(runner, model, name, result);
                if (failed(tensor) ||
                    failed(runner.rebindParam(name, std::move(*tensor))))
                  bound = failure();
              })) ||
          failed(bound))
        return failure();
    }
    progress.update(done++, llvm::formatv("block {0}: outputs", layer).str());
    if (options.stream == calibration::Stream::Float) {
      inputs = std::move(floatOutputs);
    } else {
      for (HostTensor &x : inputs)
        if (failed(runBlock(x, nullptr)))
          return failure();
    }
  }
  progress.finish();
  summary.seconds = progress.seconds();
  if (failed(driver.finish()))
    return failure();
  return summary;
}

} // namespace qnt::ptq
