//===- Aqlm.cpp - AQLM additive-codebook quantization -----------*- C++ -*-===//
//
// Implements qnt-aqlm: the weight-method driver with numerics::runAqlm (or,
// for shared codebooks, runAqlmWithCodebooks) per layer, and with
// finetune-epochs the sequential driver's block trainer on top
// (BlockTrainer::fineTuneCodebooks). The codebook configuration and AQLM's
// options may be overridden per layer (overrides=".*w2.*:in-group-size=4").
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/numerics/Aqlm.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Regex.h"

#include <map>

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTAQLM
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;

namespace {

/// The codebook configuration and AQLM options of one layer.
struct AqlmSettings {
  nx::CodebookSpec spec;
  nx::AqlmOptions options;
};

/// `defaults` with the per-layer options of `settings` applied.
AqlmSettings layerSettings(AqlmSettings s, const LayerSettings &settings) {
  // scale-type is the driver's own option (pass-wide and per layer): it
  // arrives in the layer's grid spec (integer, or minifloat with format=).
  if (const auto *grid = std::get_if<nx::UniformSpec>(&settings.spec))
    s.spec.scaleStorage = grid->scaleStorage;
  else if (const auto *mini = std::get_if<nx::MinifloatSpec>(&settings.spec))
    s.spec.scaleStorage = mini->scaleStorage;
  for (const auto &entry : settings.methodOptions) {
    StringRef key = entry.getKey(), value = entry.getValue();
    auto integer = [&](auto &out) {
      int64_t parsed;
      // Every option is small and positive; the numerics check the rest.
      if (value.getAsInteger(10, parsed) || parsed < 1 || parsed > (1 << 20))
        throw std::invalid_argument("bad value '" + value.str() +
                                    "' for AQLM option " + key.str());
      out = decltype(out + 0)(parsed);
    };
    if (key == "codebooks")
      integer(s.spec.numCodebooks);
    else if (key == "code-bits")
      integer(s.spec.codeBits);
    else if (key == "in-group-size")
      integer(s.spec.groupSize);
    else if (key == "beam-size")
      integer(s.options.beamSize);
    else
      throw std::invalid_argument("unknown AQLM option '" + key.str() +
                                  "' (codebooks, code-bits, in-group-size, "
                                  "beam-size)");
  }
  return s;
}

/// The sharing group of layer `name`, "" when it shares with no other:
/// for a decoder layer "<prefix>layers.<n>.<kind>.weight", its block
/// "<prefix>layers.<n>" or its kind "<kind>"; any other layer shares only
/// model-wide.
std::string sharingGroup(CodebookSharing sharing, StringRef name) {
  if (sharing == CodebookSharing::None)
    return "";
  if (sharing == CodebookSharing::Model)
    return "model";
  static const llvm::Regex decoderLayer("^(.*layers\\.[0-9]+)\\.(.+)$");
  SmallVector<StringRef, 3> parts;
  if (!decoderLayer.match(name, &parts))
    return "";
  if (sharing == CodebookSharing::Block)
    return parts[1].str();
  StringRef kind = parts[2];
  kind.consume_back(".weight");
  return kind.str();
}

/// One set of shared codebooks: fitted before any of its layers is
/// quantized, from all of them.
struct SharedCodebooks {
  nx::CodebookSpec spec;
  std::string firstLayer;
  /// The parameter they are stored as.
  std::string paramName;
  std::unique_ptr<nx::SharedCodebookFit> fit;
  std::vector<float> codebooks;
  int64_t numWeights = 0;
};

bool sameConfiguration(const nx::CodebookSpec &a, const nx::CodebookSpec &b) {
  return a.numCodebooks == b.numCodebooks && a.codeBits == b.codeBits &&
         a.groupSize == b.groupSize;
}

/// Fits every sharing group's codebooks from the selected layers' float
/// weights; errors on a layer whose configuration differs from its group's.
LogicalResult fitSharedCodebooks(
    ModuleOp module, WeightMethodDriver &driver, CodebookSharing sharing,
    const AqlmSettings &defaults,
    std::map<std::string, SharedCodebooks> &groups) {
  LogicalResult visited = driver.visitWeights(
      [&](const LayerSettings &settings, const nx::WeightProblem &problem,
          Location loc) -> LogicalResult {
        std::string key = sharingGroup(sharing, problem.name);
        if (key.empty())
          return success();
        AqlmSettings s;
        try {
          s = layerSettings(defaults, settings);
        } catch (const std::invalid_argument &e) {
          return emitError(loc) << "qnt-aqlm: layer '" << problem.name
                                << "': " << e.what();
        }
        SharedCodebooks &group = groups[key];
        if (!group.fit) {
          group.spec = s.spec;
          group.firstLayer = problem.name;
          group.fit = std::make_unique<nx::SharedCodebookFit>(s.spec);
        } else if (!sameConfiguration(group.spec, s.spec)) {
          return emitError(loc)
                 << "qnt-aqlm: layer '" << problem.name << "' ("
                 << nx::describe(s.spec) << ") cannot share codebooks with '"
                 << group.firstLayer << "' (" << nx::describe(group.spec)
                 << "): layers that share codebooks need the same codebooks, "
                    "code-bits and in-group-size";
        }
        try {
          group.fit->add(problem.weight, problem.rows, problem.cols);
        } catch (const std::invalid_argument &e) {
          return emitError(loc) << "qnt-aqlm: layer '" << problem.name
                                << "': " << e.what();
        }
        return success();
      });
  if (failed(visited))
    return failure();
  // Parameter names no earlier step used (a second step sharing
  // codebooks must not read the first one's).
  llvm::StringSet<> taken;
  module.walk([&](ParamOp param) { taken.insert(param.getName()); });
  for (auto &[key, group] : groups) {
    std::string base =
        key == "model" ? "aqlm.codebooks" : "aqlm.codebooks." + key;
    group.paramName = base;
    for (int suffix = 1; taken.contains(group.paramName); ++suffix)
      group.paramName = base + "." + std::to_string(suffix);
    taken.insert(group.paramName);
    group.codebooks = group.fit->fit(defaults.options.kmeansIterations,
                                     defaults.options.seed);
    group.numWeights = group.fit->numWeights();
    group.fit.reset();
  }
  return success();
}

using SharedCodebookMap = std::map<std::string, SharedCodebooks>;

/// One layer's AQLM: its own codebooks, or its sharing group's (then
/// stored once, the layer charged its share).
CodebookStart quantizeLayer(const AqlmSettings &defaults,
                            const SharedCodebookMap &groups,
                            CodebookSharing sharing,
                            const LayerSettings &settings,
                            const nx::WeightProblem &problem) {
  AqlmSettings s = layerSettings(defaults, settings);
  std::string key = sharingGroup(sharing, problem.name);
  CodebookStart start;
  if (key.empty()) {
    start.state = nx::runAqlm(s.spec, problem, s.options);
    start.result = nx::codebookResult(start.state);
    return start;
  }
  const SharedCodebooks &group = groups.at(key);
  start.state =
      nx::runAqlmWithCodebooks(s.spec, group.codebooks, problem, s.options);
  start.result = nx::codebookResult(start.state);
  // Component 1 is the codebooks (componentLayout's order).
  double bits = 8.0 * double(start.result.encoded.components[1].bytes.size());
  start.result.sharedComponents.push_back(
      {1, group.paramName,
       bits * double(problem.rows * problem.cols) / double(group.numWeights)});
  // Codebooks shared within a block are fine-tuned with it, as one
  // parameter for its layers; with model or kind sharing other blocks
  // already run them, so they stay as fitted.
  start.trainCodebooks = sharing == CodebookSharing::Block;
  if (start.trainCodebooks)
    start.sharedCodebooks = group.paramName;
  return start;
}

struct QntAqlmPass : mlir::qnt::impl::QntAqlmBase<QntAqlmPass>,
                     WeightMethodPass {
  using QntAqlmBase::QntAqlmBase;

  FailureOr<std::unique_ptr<WeightMethodDriver>>
  createDriver(ModuleOp module) const override {
    AqlmSettings defaults;
    defaults.spec.numCodebooks = numCodebooks;
    defaults.spec.codeBits = codeBits;
    defaults.spec.groupSize = inGroupSize;
    defaults.options.beamSize = beamSize;
    defaults.options.kmeansIterations = kmeansIterations;
    defaults.options.maxEpochs = maxEpochs;
    defaults.options.codebookUpdate.steps = adamSteps;
    defaults.options.codebookUpdate.learningRate = learningRate;
    defaults.options.relativeTolerance = relativeTolerance;
    defaults.options.seed = seed;
    if (beamSize < 1 || kmeansIterations < 0 || maxEpochs < 0 ||
        adamSteps < 0 || !(learningRate > 0) || !(relativeTolerance >= 0))
      return module.emitError(
          "qnt-aqlm: beam-size must be >= 1, kmeans-iterations, max-epochs "
          "and adam-steps >= 0, lr > 0 and relative-tolerance >= 0");
    if (finetuneEpochs < 0 || !(finetuneLearningRate > 0) ||
        finetuneBatchSequences < 1)
      return module.emitError("qnt-aqlm: finetune-epochs must be >= 0, "
                              "finetune-lr > 0 and finetune-batch-sequences "
                              ">= 1");
    WeightMethodConfig config = QNT_WEIGHT_METHOD_CONFIG("qnt-aqlm");
    if (finetuneEpochs > 0 && finetuneNormGains && config.actBits > 0)
      return module.emitError(
          "qnt-aqlm: the norm gains are fine-tuned without activation "
          "quantization (the model quantizes the smoothed input); set "
          "finetune-norm-gains=false with act-bits");
    config.needsStatistics = true;
    // Filled once the driver has found the layers, before any is quantized.
    auto groups = std::make_shared<SharedCodebookMap>();
    CodebookSharing sharing = shareCodebooks;
    FailureOr<std::unique_ptr<WeightMethodDriver>> driver = failure();
    if (finetuneEpochs > 0) {
      config.groupsAreBlocks = true;
      ReconstructionOptions options;
      options.method = LearnedRounding::AdditiveCodebook;
      options.epochs = finetuneEpochs;
      options.learningRate = finetuneLearningRate;
      options.batchSequences = finetuneBatchSequences;
      options.seed = seed;
      options.trainNormGains = finetuneNormGains;
      options.activationBits = config.actBits;
      options.activationPerToken = config.actPerToken;
      driver = WeightMethodDriver::create(
          module, std::move(config), "aqlm",
          [defaults, groups, sharing,
           options](ArrayRef<LayerSettings> settings,
                    ArrayRef<nx::WeightProblem> problems,
                    const GroupContext &context) {
            if (!context.trainer)
              throw std::invalid_argument(
                  "finetune-epochs trains each transformer block on "
                  "calibration data; run it block by block with "
                  "quant-compile --recipe (docs/Recipes.md)");
            std::vector<CodebookStart> starts;
            for (size_t i = 0; i < problems.size(); ++i)
              starts.push_back(quantizeLayer(defaults, *groups, sharing,
                                             settings[i], problems[i]));
            return context.trainer->fineTuneCodebooks(settings, problems,
                                                      starts, options);
          });
    } else {
      driver = WeightMethodDriver::create(
          module, std::move(config), "aqlm",
          [defaults, groups, sharing](const LayerSettings &settings,
                                      const nx::WeightProblem &problem) {
            return quantizeLayer(defaults, *groups, sharing, settings,
                                 problem)
                .result;
          });
    }
    if (failed(driver) || sharing == CodebookSharing::None)
      return driver;
    if (failed(
            fitSharedCodebooks(module, **driver, sharing, defaults, *groups)))
      return failure();
    return driver;
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
