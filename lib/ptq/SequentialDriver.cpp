//===- SequentialDriver.cpp - Block-by-block PTQ on captured inputs -------===//
//
// See SequentialDriver.h. The model is instrumented once (observers exposed
// as extra block results) and compiled once; quantized weights are bound in
// place of the float ones as each group is done.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/SequentialDriver.h"
#include "dialects/qnt/QntDialect.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/ptq/BlockReconstruction.h"
#include "passes/LinearLayers.h"
#include "qnt/runtime/ModelRunner.h"
#include "qnt/support/Progress.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"

#include <unistd.h>

#include <map>
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

/// The block inputs of every sequence, in memory or, beyond the memory
/// budget, in an unlinked temporary file (one slot per sequence, read and
/// written whole: a block pass streams over the sequences in order).
class BlockInputs {
public:
  /// Keeps `count` tensors; spills to disk when `spill`.
  static FailureOr<BlockInputs> create(ModuleOp model, size_t count,
                                       bool spill) {
    BlockInputs inputs;
    inputs.loc = model.getLoc();
    inputs.types.resize(count);
    inputs.offsets.resize(count, -1);
    if (!spill) {
      inputs.memory.resize(count);
      return inputs;
    }
    llvm::SmallString<256> path;
    if (std::error_code ec = llvm::sys::fs::createTemporaryFile(
            "qnt-block-inputs", "bin", inputs.fd, path))
      return model.emitError("sequential PTQ: cannot create a file for the "
                             "block inputs: ")
             << ec.message();
    // Unlinked at once: the space is freed when the file is closed, even
    // if the process dies.
    llvm::sys::fs::remove(path);
    return inputs;
  }
  BlockInputs() = default;
  BlockInputs(BlockInputs &&other) { *this = std::move(other); }
  BlockInputs &operator=(BlockInputs &&other) {
    std::swap(fd, other.fd);
    std::swap(loc, other.loc);
    std::swap(memory, other.memory);
    std::swap(types, other.types);
    std::swap(offsets, other.offsets);
    std::swap(end, other.end);
    return *this;
  }
  ~BlockInputs() {
    if (fd >= 0)
      ::close(fd);
  }

  size_t size() const { return types.size(); }

  FailureOr<HostTensor> get(size_t s) const {
    if (fd < 0)
      return memory[s];
    HostTensor tensor(types[s]);
    if (::pread(fd, tensor.data(), tensor.numBytes(), offsets[s]) !=
        tensor.numBytes())
      return emitError(loc) << "sequential PTQ: cannot read block inputs "
                               "back from the spill file";
    return tensor;
  }

  LogicalResult set(size_t s, const HostTensor &tensor) {
    types[s] = tensor.getType();
    if (fd < 0) {
      memory[s] = tensor;
      return success();
    }
    // Every sequence keeps its slot (its size does not change).
    if (offsets[s] < 0) {
      offsets[s] = end;
      end += tensor.numBytes();
    }
    if (::pwrite(fd, tensor.data(), tensor.numBytes(), offsets[s]) !=
        tensor.numBytes())
      return emitError(loc) << "sequential PTQ: cannot write block inputs "
                               "to the spill file (disk full?)";
    return success();
  }

private:
  int fd = -1;
  Location loc = UnknownLoc();
  std::vector<HostTensor> memory;
  std::vector<RankedTensorType> types;
  std::vector<int64_t> offsets;
  int64_t end = 0;
};

/// Makes the weights of `layers` f32 parameters (read widened from the same
/// files) where they are bf16/f16, so that the compiled blocks can run the
/// f32 dequantized weights that the quantized model computes with.
void widenWeights(ModuleOp module, const std::set<std::string> &layers) {
  module.walk([&](func::FuncOp func) {
    for (const mlir::qnt::LinearLayer &layer :
         mlir::qnt::collectLinearLayers(func)) {
      auto matmul = dyn_cast<linalg::MatmulOp>(layer.op);
      auto param = layer.weight ? layer.weight.getDefiningOp<mlir::qnt::ParamOp>()
                                : nullptr;
      if (!matmul || !param || !layers.count(layer.name))
        continue;
      auto type = cast<RankedTensorType>(param.getType());
      if (type.getElementType().isF32())
        continue;
      OpBuilder b(matmul);
      Value wide = mlir::qnt::ParamOp::create(
          b, param.getLoc(), type.clone(b.getF32Type()), param.getName());
      SmallVector<Value> inputs = {matmul.getInputs()[0], wide};
      Operation *rebuilt =
          isa<linalg::MatmulTransposeBOp>(layer.op)
              ? linalg::MatmulTransposeBOp::create(b, matmul.getLoc(),
                                                   matmul->getResultTypes(),
                                                   inputs, matmul.getOutputs())
                    .getOperation()
              : linalg::MatmulOp::create(b, matmul.getLoc(),
                                         matmul->getResultTypes(), inputs,
                                         matmul.getOutputs())
                    .getOperation();
      matmul->replaceAllUsesWith(rebuilt);
      matmul->erase();
      if (param->use_empty())
        param->erase();
    }
  });
}

/// A [rows][cols] f32 weight as a tensor of the bound parameter's type
/// ([rows, cols], or [cols, rows] for a plain matmul's weight).
FailureOr<HostTensor> weightTensor(ModelRunner &runner, ModuleOp model,
                                   const std::string &name,
                                   const std::vector<float> &weight,
                                   int64_t rows, int64_t cols) {
  RankedTensorType type = runner.paramType(name);
  if (!type)
    return model.emitError("sequential PTQ: layer '")
           << name << "' is not a parameter of the compiled blocks";
  if (!type.getElementType().isF32() || type.getRank() != 2)
    return model.emitError("sequential PTQ: parameter '")
           << name << "' is bound as " << type
           << "; the quantized stream needs f32 weights";
  HostTensor tensor(type);
  float *out = tensor.f32();
  if (type.getDimSize(0) == rows && type.getDimSize(1) == cols) {
    std::copy(weight.begin(), weight.end(), out);
  } else if (type.getDimSize(0) == cols && type.getDimSize(1) == rows) {
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        out[k * rows + n] = weight[n * cols + k];
  } else {
    return model.emitError("sequential PTQ: parameter '")
           << name << "' has type " << type << ", not a " << rows << "x"
           << cols << " weight";
  }
  return tensor;
}

/// Binds a layer's weight under the name of the parameter it reads: an
/// exact rewrite before the method (qnt-equalize) gives the parameter a new
/// name, while the layer keeps its own (the statistics are keyed by it).
class WeightBinder {
public:
  WeightBinder(ModelRunner &runner, ModuleOp model, ModuleOp streamModel)
      : runner(runner), model(model) {
    streamModel.walk([&](func::FuncOp func) {
      for (const mlir::qnt::LinearLayer &layer :
           mlir::qnt::collectLinearLayers(func))
        if (auto param = layer.weight
                             ? layer.weight.getDefiningOp<mlir::qnt::ParamOp>()
                             : nullptr)
          paramOf[layer.name] = param.getName().str();
    });
  }

  LogicalResult bind(const std::string &layer, const std::vector<float> &weight,
                     int64_t rows, int64_t cols) {
    auto it = paramOf.find(layer);
    const std::string &name = it == paramOf.end() ? layer : it->second;
    FailureOr<HostTensor> tensor =
        weightTensor(runner, model, name, weight, rows, cols);
    if (failed(tensor))
      return failure();
    return runner.rebindParam(name, std::move(*tensor));
  }

private:
  ModelRunner &runner;
  ModuleOp model;
  std::map<std::string, std::string> paramOf;
};

/// The module loss of group methods: the block's output on some of its
/// inputs, against the block's output with the weights bound when it was
/// created (the float ones).
class BlockEvaluator : public mlir::qnt::ModuleEvaluator {
public:
  BlockEvaluator(ModelRunner &runner, WeightBinder &binder, int64_t layer,
                 int64_t &executions)
      : runner(runner), binder(binder), layer(layer), executions(executions) {}

  /// Takes `inputs` and computes the reference outputs on them.
  LogicalResult setInputs(std::vector<HostTensor> blockInputs) {
    inputs = std::move(blockInputs);
    references.clear();
    for (const HostTensor &input : inputs) {
      HostTensor x = input;
      ++executions;
      if (failed(runner.block(layer, x, /*pos=*/0, nullptr)))
        return failure();
      references.push_back(std::move(x));
    }
    return success();
  }

  LogicalResult bind(const std::string &name, const std::vector<float> &weight,
                     int64_t rows, int64_t cols) override {
    return binder.bind(name, weight, rows, cols);
  }

  FailureOr<double> loss() override {
    double sum = 0;
    int64_t count = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      HostTensor x = inputs[i];
      ++executions;
      if (failed(runner.block(layer, x, /*pos=*/0, nullptr)))
        return failure();
      const float *out = x.f32(), *ref = references[i].f32();
      int64_t n = references[i].numElements();
      for (int64_t j = 0; j < n; ++j) {
        double d = double(out[j]) - double(ref[j]);
        sum += d * d;
      }
      count += n;
    }
    return count ? sum / double(count) : 0.0;
  }

private:
  ModelRunner &runner;
  WeightBinder &binder;
  int64_t layer;
  int64_t &executions;
  std::vector<HostTensor> inputs, references;
};

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
  std::set<std::string> selected(driver.layerNames().begin(),
                                 driver.layerNames().end());
  OwningOpRef<ModuleOp> streamModel = model.clone();
  widenWeights(*streamModel, selected);
  // Block reconstruction trains on the blocks' IR as imported, with the
  // float weights (the stream model is lowered when compiled).
  bool reconstruct = driver.config().groupsAreBlocks;
  if (reconstruct && options.stream == calibration::Stream::Float)
    return model.emitError(driver.config().passName)
           << ": block reconstruction takes the block inputs from the "
              "quantized stream (and its targets from the float one); the "
              "recipe's stream must be 'quantized'";
  OwningOpRef<ModuleOp> trainingModel;
  if (reconstruct)
    trainingModel = streamModel->clone();
  FailureOr<calibration::ObservedModel> observed =
      calibration::compileObservedModel(*streamModel);
  if (failed(observed))
    return failure();
  const ::qnt::io::LlamaConfig &config = observed->config;
  const auto &blockObservations = observed->blocks;
  ModelRunner &runner = *observed->runner;
  WeightBinder binder(runner, model, *streamModel);

  std::vector<std::vector<LayerGroup>> blockGroups;
  int64_t steps = 0;
  for (const auto &observations : blockObservations) {
    blockGroups.push_back(
        groupsOf(observations, selected, options.trueSequential));
    steps += reconstruct ? 1 : blockGroups.back().size() + 1;
  }

  SequentialSummary summary;
  summary.sequences = sequences.size();
  summary.blockExecutions.assign(config.nLayers, 0);
  ::qnt::Progress progress("sequential ptq", steps);
  int64_t done = 0;
  for (const auto &sequence : sequences)
    summary.tokens += sequence.size();
  // Block inputs (and, on the float stream, the float outputs next to
  // them) are spilled when they do not fit the budget.
  // (A trainer that reads the float block inputs keeps a third stream.)
  int64_t streams =
      reconstruct && driver.config().reconstructionReadsFloatInputs ? 3
      : options.stream == calibration::Stream::Float || reconstruct ? 2
                                                                     : 1;
  int64_t inputBytes =
      summary.tokens * config.dim * int64_t(sizeof(float)) * streams;
  summary.spilled = options.memoryBudgetBytes >= 0 &&
                    inputBytes > options.memoryBudgetBytes;
  FailureOr<BlockInputs> inputs =
      BlockInputs::create(model, sequences.size(), summary.spilled);
  if (failed(inputs))
    return failure();
  for (size_t s = 0; s < sequences.size(); ++s) {
    HostTensor x;
    if (failed(runner.embed(sequences[s], x)) || failed(inputs->set(s, x)))
      return failure();
  }
  // Block reconstruction: the float stream next to the quantized one.
  BlockInputs floatStream;
  if (reconstruct) {
    FailureOr<BlockInputs> created =
        BlockInputs::create(model, sequences.size(), summary.spilled);
    if (failed(created))
      return failure();
    floatStream = std::move(*created);
    for (size_t s = 0; s < sequences.size(); ++s) {
      FailureOr<HostTensor> x = inputs->get(s);
      if (failed(x))
        return failure();
      // Its own bytes: the blocks run on each stream in place.
      if (failed(floatStream.set(s, x->deepCopy())))
        return failure();
    }
  }

  std::vector<HostTensor> extra;
  for (int64_t layer = 0; layer < config.nLayers; ++layer) {
    auto runBlock = [&](HostTensor &x, std::vector<HostTensor> *results) {
      ++summary.blockExecutions[layer];
      return runner.block(layer, x, /*pos=*/0, results);
    };
    // Block reconstruction: the float block's outputs on the float stream
    // are the targets (and the next block's float inputs); the statistics
    // of the block's layers on the quantized stream feed the report; the
    // trainer quantizes all the block's layers at once.
    // The block's outputs on the quantized stream, its weights as bound.
    auto runOutputs = [&]() -> LogicalResult {
      progress.update(done++, llvm::formatv("block {0}: outputs", layer).str());
      for (size_t s = 0; s < inputs->size(); ++s) {
        FailureOr<HostTensor> x = inputs->get(s);
        if (failed(x) || failed(runBlock(*x, nullptr)) ||
            failed(inputs->set(s, *x)))
          return failure();
      }
      return success();
    };
    auto reconstructBlock = [&](int64_t layer) -> LogicalResult {
      progress.update(done, llvm::formatv("block {0}: targets", layer).str());
      mlir::qnt::StatisticsMap stats;
      std::vector<size_t> observed;
      std::vector<std::string> layers;
      for (const LayerGroup &group : blockGroups[layer]) {
        observed.insert(observed.end(), group.observations.begin(),
                        group.observations.end());
        layers.insert(layers.end(), group.layers.begin(), group.layers.end());
      }
      // The float block inputs, for a trainer that reads them.
      bool keepFloatInputs =
          driver.config().reconstructionReadsFloatInputs && !layers.empty();
      BlockInputs floatInputs;
      if (keepFloatInputs) {
        FailureOr<BlockInputs> created =
            BlockInputs::create(model, inputs->size(), summary.spilled);
        if (failed(created))
          return failure();
        floatInputs = std::move(*created);
      }
      for (size_t s = 0; s < inputs->size(); ++s) {
        FailureOr<HostTensor> target = floatStream.get(s);
        if (succeeded(target) && keepFloatInputs &&
            failed(floatInputs.set(s, target->deepCopy())))
          return failure();
        FailureOr<HostTensor> x = inputs->get(s);
        if (failed(target) || failed(runBlock(*target, nullptr)) ||
            failed(floatStream.set(s, *target)) || failed(x) ||
            failed(runBlock(*x, &extra)))
          return failure();
        calibration::accumulateObservations(stats, blockObservations[layer],
                                            extra, observed);
      }
      calibration::copySharedStatistics(stats, blockObservations[layer],
                                        observed);
      // A block none of whose layers is selected is only run.
      if (layers.empty())
        return runOutputs();
      ReconstructionData data;
      data.sequences = inputs->size();
      data.input = [&](size_t s) { return inputs->get(s); };
      data.target = [&](size_t s) { return floatStream.get(s); };
      if (keepFloatInputs)
        data.floatInput = [&](size_t s) { return floatInputs.get(s); };
      // With activation quantization the next block's inputs come from the
      // trainer (the runner does not quantize activations).
      bool trainerOutputs = driver.config().actBits > 0;
      // The trainer's block has no LoRC term: the stream would not be the
      // model's.
      if (trainerOutputs && driver.config().lorcRank > 0)
        return model.emitError(driver.config().passName)
               << ": block reconstruction with act-bits does not combine "
                  "with lorc-rank (the trained block the next inputs come "
                  "from has no low-rank term)";
      if (trainerOutputs)
        data.output = [&](size_t s, const HostTensor &y) {
          return inputs->set(s, y);
        };
      for (int64_t later = layer + 1; later < config.nLayers; ++later)
        data.downstream.push_back(mlir::qnt::blockFunctionName(later));
      data.downstream.push_back("head");
      std::string label = llvm::formatv("block {0}/{1}", layer + 1,
                                        config.nLayers);
      std::unique_ptr<::qnt::Progress> training;
      BlockReconstructor trainer(
          *trainingModel, mlir::qnt::blockFunctionName(layer), std::move(data),
          [&](int64_t iteration, int64_t iterations, double loss) {
            if (!training)
              training = std::make_unique<::qnt::Progress>(
                  driver.config().passName + " " + label, iterations);
            training->update(iteration,
                             llvm::formatv("loss {0:E3}", loss).str());
          });
      LogicalResult bound = success();
      if (failed(driver.quantize(
              layers, &stats,
              [&](const std::string &name, const nx::MethodResult &result) {
                if (succeeded(bound) &&
                    failed(binder.bind(name, result.dequantized,
                                       result.encoded.rows,
                                       result.encoded.cols)))
                  bound = failure();
              },
              /*evaluator=*/nullptr, &trainer)) ||
          failed(bound))
        return failure();
      if (training)
        training->finish();
      const ReconstructionReport &r = trainer.report();
      summary.reconstructions.push_back(r);
      llvm::errs() << llvm::formatv(
            "{0}: {1}: loss {2:E3} -> {3:E3} in {4} iterations{5}, {6:F1} s "
            "(compile {7:F1}, forward {8:F1}, adjoint {9:F1}",
            driver.config().passName, label, r.initialLoss, r.finalLoss,
            r.iterations, r.stoppedEarly ? " (stopped early)" : "",
            r.seconds, r.compileSeconds, r.forwardSeconds, r.adjointSeconds);
      if (r.predicted)
        llvm::errs() << llvm::formatv(
            ", rest of the network {0:F1}; prediction difference {1:E3} -> "
            "{2:E3}",
            r.predictionSeconds, r.initialPrediction, r.finalPrediction);
      if (r.corrected)
        llvm::errs() << llvm::formatv(", correction {0:F1}",
                                      r.correctionSeconds);
      llvm::errs() << ")\n";
      if (trainerOutputs) {
        // The trainer ran the block once per sequence for them.
        summary.blockExecutions[layer] += inputs->size();
        progress.update(done++,
                        llvm::formatv("block {0}: outputs", layer).str());
        return success();
      }
      return runOutputs();
    };
    // On the float stream nothing quantized is ever bound, so one pass
    // captures every group's statistics and the block's float outputs,
    // which the next block sees.
    BlockInputs floatOutputs;
    mlir::qnt::StatisticsMap floatStats;
    if (options.stream == calibration::Stream::Float) {
      FailureOr<BlockInputs> created =
          BlockInputs::create(model, inputs->size(), summary.spilled);
      if (failed(created))
        return failure();
      floatOutputs = std::move(*created);
      std::vector<size_t> observed;
      for (const LayerGroup &group : blockGroups[layer])
        observed.insert(observed.end(), group.observations.begin(),
                        group.observations.end());
      progress.update(done, llvm::formatv("block {0}: capture", layer).str());
      for (size_t s = 0; s < inputs->size(); ++s) {
        FailureOr<HostTensor> x = inputs->get(s);
        if (failed(x) || failed(runBlock(*x, &extra)) ||
            failed(floatOutputs.set(s, *x)))
          return failure();
        calibration::accumulateObservations(
            floatStats, blockObservations[layer], extra, observed);
      }
      calibration::copySharedStatistics(floatStats, blockObservations[layer],
                                        observed);
    }
    if (reconstruct) {
      if (failed(reconstructBlock(layer)))
        return failure();
      continue;
    }
    // Group methods measure their candidates on the block's output.
    std::unique_ptr<BlockEvaluator> evaluator;
    if (driver.quantizesGroups() || driver.plans()) {
      evaluator = std::make_unique<BlockEvaluator>(
          runner, binder, layer, summary.blockExecutions[layer]);
      int64_t wanted = driver.config().moduleLossSequences;
      size_t count = wanted > 0 ? std::min<size_t>(wanted, inputs->size())
                                : inputs->size();
      std::vector<HostTensor> lossInputs;
      for (size_t s = 0; s < count; ++s) {
        FailureOr<HostTensor> x = inputs->get(s);
        if (failed(x))
          return failure();
        lossInputs.push_back(std::move(*x));
      }
      if (failed(evaluator->setInputs(std::move(lossInputs))))
        return failure();
    }
    for (const LayerGroup &group : blockGroups[layer]) {
      progress.update(done++, llvm::formatv("block {0}: {1}", layer,
                                            group.layers.front())
                                  .str());
      mlir::qnt::StatisticsMap groupStats;
      if (options.stream != calibration::Stream::Float) {
        for (size_t s = 0; s < inputs->size(); ++s) {
          FailureOr<HostTensor> x = inputs->get(s);
          if (failed(x) || failed(runBlock(*x, &extra)))
            return failure();
          calibration::accumulateObservations(
              groupStats, blockObservations[layer], extra, group.observations);
        }
        calibration::copySharedStatistics(
            groupStats, blockObservations[layer], group.observations);
      }
      const mlir::qnt::StatisticsMap &stats =
          options.stream == calibration::Stream::Float ? floatStats
                                                       : groupStats;
      LogicalResult bound = success();
      if (failed(driver.quantize(
              group.layers, &stats,
              [&](const std::string &name, const nx::MethodResult &result) {
                if (failed(bound))
                  return;
                // On the float stream every input comes from the float
                // model: the quantized weights are not bound.
                if (options.stream == calibration::Stream::Float)
                  return;
                if (failed(binder.bind(name, result.dequantized,
                                       result.encoded.rows,
                                       result.encoded.cols)))
                  bound = failure();
              },
              evaluator.get())) ||
          failed(bound))
        return failure();
    }
    progress.update(done++, llvm::formatv("block {0}: outputs", layer).str());
    if (options.stream == calibration::Stream::Float) {
      *inputs = std::move(floatOutputs);
    } else {
      for (size_t s = 0; s < inputs->size(); ++s) {
        FailureOr<HostTensor> x = inputs->get(s);
        if (failed(x) || failed(runBlock(*x, nullptr)) ||
            failed(inputs->set(s, *x)))
          return failure();
      }
    }
  }
  progress.finish();
  summary.seconds = progress.seconds();
  if (failed(driver.finish()))
    return failure();
  return summary;
}

} // namespace qnt::ptq
