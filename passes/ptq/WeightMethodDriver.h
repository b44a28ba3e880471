//===- WeightMethodDriver.h - One driver for every weight method -*- C++ -*-===//
//
// The pass side of a weight PTQ method (docs/HowTo/AddPTQAlgorithm.md). A
// method is an IR-free function (lib/numerics) from a float weight and its
// input statistics to an encoded weight; this driver does everything else:
//  - finds the weight sites: linalg.matmul (plain [K, N] or transpose-B
//    [N, K] weights) fed by an arith.constant or a qnt.param;
//  - names each layer (passes/LinearLayers.h, the names of the statistics
//    file) and selects layers (default: every layer, or on an imported model
//    the decoder blocks' linears, with the classifier left float unless
//    quantize-head; `layers=<regex>` otherwise);
//  - applies per-layer overrides ("REGEX:bits=8:group-size=64:act-order=0");
//  - maps each layer to its statistics (a `stats=` file, or statistics that
//    the sequential block driver passes in), with located errors for missing
//    or mismatched ones;
//  - calls the method, writes the components (constants, or tensors of a new
//    safetensors file, never an input file), rewrites the matmul onto
//    qnt.dequant (and an input gather for permuted storage);
//  - shows progress and ends with a per-layer report (method, encoding,
//    bits/weight including scales, relative output error on the calibration
//    inputs, time), also as JSON with `report=<file>`.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_PTQ_WEIGHTMETHODDRIVER_H
#define QNT_PASSES_PTQ_WEIGHTMETHODDRIVER_H

#include "passes/ptq/LearnedRounding.h"
#include "qnt/numerics/Aqlm.h"
#include "qnt/numerics/LowRank.h"
#include "qnt/numerics/Method.h"

#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/StringMap.h"

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mlir::qnt {

/// The options every weight-method pass has (Passes.td:
/// QntWeightMethodOptions), as plain values.
struct WeightMethodConfig {
  /// "qnt-gptq": prefixes every message.
  std::string passName;
  std::string format = "int";
  int64_t bits = 4;
  bool bitsGiven = false;
  std::string granularity = "per-group";
  int64_t groupSize = 128;
  bool groupSizeGiven = false;
  bool symmetric = false;
  bool symmetricGiven = false;
  ::qnt::numerics::ScaleStorage scaleStorage =
      ::qnt::numerics::ScaleStorage::F32;
  /// ragged | per-channel | error.
  std::string indivisibleGroups = "ragged";
  std::string output;
  std::string layers;
  bool quantizeHead = false;
  std::vector<std::string> overrides;
  std::string stats;
  std::string report;
  /// The method cannot run without input statistics.
  bool needsStatistics = false;
  /// Shows progress and prints the per-layer table on stderr.
  bool verbose = true;
  /// Group methods: calibration sequences the module loss runs on (0: all).
  int64_t moduleLossSequences = 0;
  /// LoRC after the method: rank (0: none) and storage of the factors.
  int64_t lorcRank = 0;
  ::qnt::numerics::FactorFormat lorcFactors =
      ::qnt::numerics::FactorFormat::Int8;
  /// Adds E[x] (W - Q)^T after each quantized matmul (needs input means).
  bool biasCorrection = false;
  /// Group methods: the layers of one quantize() call form one group (a
  /// block, for block reconstruction) instead of the layers sharing an
  /// input.
  bool groupsAreBlocks = false;
  /// Block reconstruction: the trainer reads the float stream's block
  /// inputs (QDrop's mixing, PD-Quant's distribution correction).
  bool reconstructionReadsFloatInputs = false;
  /// Activation fake-quantization of each quantized layer's input (0: none)
  /// and its scale granularity (an ActivationGranularity value).
  int64_t actBits = 0;
  bool actPerToken = true;
};

/// The WeightMethodConfig of the weight-method pass whose member function
/// this is used in (its ODS options include QntWeightMethodOptions, which are
/// protected members of the generated base, hence a macro).
#define QNT_WEIGHT_METHOD_CONFIG(PASS_NAME)                                   \
  ([&] {                                                                       \
    ::mlir::qnt::WeightMethodConfig c;                                         \
    c.passName = PASS_NAME;                                                    \
    c.format = format;                                                         \
    c.bits = bits;                                                             \
    c.bitsGiven = bits.getNumOccurrences() > 0;                                \
    c.granularity = granularity;                                               \
    c.groupSize = groupSize;                                                   \
    c.groupSizeGiven = groupSize.getNumOccurrences() > 0;                      \
    c.symmetric = symmetric;                                                   \
    c.symmetricGiven = symmetric.getNumOccurrences() > 0;                      \
    c.scaleStorage = scaleType;                                                \
    c.indivisibleGroups = indivisibleGroups;                                   \
    c.output = output;                                                         \
    c.layers = layers;                                                         \
    c.quantizeHead = quantizeHead;                                             \
    c.overrides.assign(overrides.begin(), overrides.end());                    \
    c.stats = stats;                                                           \
    c.report = report;                                                         \
    c.verbose = verbose;                                                       \
    c.lorcRank = lorcRank;                                                     \
    c.lorcFactors = lorcFactors;                                               \
    c.biasCorrection = biasCorrection;                                         \
    c.actBits = actBits;                                                       \
    c.actPerToken =                                                            \
        actGranularity == ::mlir::qnt::ActivationGranularity::per_token;      \
    return c;                                                                  \
  }())

/// The ReconstructionOptions of the block-reconstruction pass (qnt-flexround,
/// qnt-adaround, qnt-pdquant) whose member function this is used in: the
/// shared QntReconstructionOptions and `lr`, the activation quantization of
/// WeightMethodConfig `config`.
#define QNT_RECONSTRUCTION_OPTIONS(METHOD, CONFIG)                             \
  ([&] {                                                                       \
    ::mlir::qnt::ReconstructionOptions o;                                      \
    o.method = METHOD;                                                         \
    o.iterations = iterations;                                                 \
    o.learningRate = learningRate;                                             \
    o.batchSequences = batchSequences;                                         \
    o.seed = seed;                                                             \
    o.earlyStopPatience = earlyStopPatience;                                   \
    o.earlyStopTolerance = earlyStopTolerance;                                 \
    o.activationBits = (CONFIG).actBits;                                       \
    o.activationPerToken = (CONFIG).actPerToken;                               \
    return o;                                                                  \
  }())

/// What one layer is quantized with, after overrides.
struct LayerSettings {
  ::qnt::numerics::EncodingSpec spec;
  /// Override keys the driver does not know, for the method to read
  /// ("act-order" -> "0").
  llvm::StringMap<std::string> methodOptions;
};

/// The method: throws std::invalid_argument on what it cannot do; the
/// driver reports the message on the layer.
using WeightMethod = std::function<::qnt::numerics::MethodResult(
    const LayerSettings &, const ::qnt::numerics::WeightProblem &)>;

/// Where AQLM's block fine-tuning starts for one layer: the layer's
/// additive codes as its method left them.
struct CodebookStart {
  ::qnt::numerics::AdditiveCodes state;
  /// The method's result for `state` (its shared components are kept).
  ::qnt::numerics::MethodResult result;
  /// False when the codebooks are shared beyond the block: other blocks
  /// already run them, so only the row scales are trained.
  bool trainCodebooks = true;
  /// Codebooks shared by several layers of this block only (the parameter
  /// they are stored as): trained as one, with the layers' gradients
  /// summed. Empty for a layer's own codebooks.
  std::string sharedCodebooks;
};

/// Trains the quantization of one block's layers together on the block's
/// output (block reconstruction: FlexRound, AdaRound). The sequential
/// driver implements it with the block's IR, its inputs on the quantized
/// stream and the float block's outputs on the float stream.
class BlockTrainer {
public:
  virtual ~BlockTrainer();
  /// One result per layer (standard encodings, nothing learned left).
  /// Throws std::runtime_error when training cannot run (the diagnostic is
  /// already reported) and std::invalid_argument on what it cannot do.
  virtual std::vector<::qnt::numerics::MethodResult>
  train(llvm::ArrayRef<LayerSettings> settings,
        llvm::ArrayRef<::qnt::numerics::WeightProblem> problems,
        const ReconstructionOptions &options) = 0;
  /// AQLM's block fine-tuning (LearnedRounding::AdditiveCodebook): from
  /// `starts` (one per layer), the codes frozen, trains the row scales and
  /// the codebooks that are not shared; the same results and errors as
  /// train().
  virtual std::vector<::qnt::numerics::MethodResult>
  fineTuneCodebooks(llvm::ArrayRef<LayerSettings> settings,
                    llvm::ArrayRef<::qnt::numerics::WeightProblem> problems,
                    llvm::ArrayRef<CodebookStart> starts,
                    const ReconstructionOptions &options) = 0;
};

/// What a group method may use besides the weights and their statistics.
struct GroupContext {
  /// The mean squared error of the output of the module the group feeds,
  /// with candidate effective weights ([N][K] f32, one per layer in group
  /// order) in place of the group's weights; empty where no model runs
  /// (quant-opt with stats=). Throws std::runtime_error when the module
  /// cannot run (the diagnostic is already reported).
  std::function<double(const std::vector<std::vector<float>> &)> moduleLoss;
  /// A per-channel scale of the group's input folds exactly into the op
  /// that produces it (passes/SmoothFolding.h).
  bool inputScaleFoldable = false;
  /// Empty, or per input channel the producer row it folds into: channels
  /// sharing a row must share a scale (heads of one KV group).
  std::vector<int64_t> channelClass;
  /// Block reconstruction (WeightMethodConfig::groupsAreBlocks): trains the
  /// group, a whole block; null where no model runs (quant-opt).
  BlockTrainer *trainer = nullptr;
};

/// A method that quantizes the layers sharing one input together (AWQ:
/// one input scale for q, k and v). Returns one result per layer.
using GroupMethod = std::function<std::vector<::qnt::numerics::MethodResult>(
    llvm::ArrayRef<LayerSettings>,
    llvm::ArrayRef<::qnt::numerics::WeightProblem>, const GroupContext &)>;

/// Runs the module that a group of layers feeds (the sequential driver runs
/// the transformer block), so that group methods can measure candidates.
class ModuleEvaluator {
public:
  virtual ~ModuleEvaluator();
  /// Binds a [rows][cols] (N x K) f32 weight in place of layer `name`'s.
  virtual LogicalResult bind(const std::string &name,
                             const std::vector<float> &weight, int64_t rows,
                             int64_t cols) = 0;
  /// The mean squared error of the module's outputs against its reference
  /// outputs (the float module's), with what is bound now.
  virtual FailureOr<double> loss() = 0;
};

/// The attribute a precision plan (qnt-mixed-precision) puts on a layer's
/// matmul: overrides "key=value:key=value" that every weight method applies
/// after its own options and `overrides`.
inline constexpr llvm::StringLiteral kLayerSettingsAttrName =
    "qnt.layer_settings";

/// One way a planning method could store a layer.
struct LayerOption {
  /// As kLayerSettingsAttrName holds it ("bits=3:group-size=32").
  std::string settings;
  std::string encoding; ///< for the report
  int64_t rows = 0, cols = 0;
  int64_t bits = 0;     ///< storage, every component counted
  double loss = 0;      ///< predicted loss
  double relativeLoss = 0; ///< loss relative to the layer's output energy
};

/// A planning method (qnt-mixed-precision): `options` lists each layer's
/// options as its statistics arrive; `choose` picks one per layer (in the
/// order the layers were seen) once every layer has been seen. The driver
/// records the choices on the matmuls and rewrites no weight.
struct PlanMethod {
  /// The last argument measures a candidate effective weight ([N][K]) on
  /// the output of the module the layer feeds (as GroupContext::moduleLoss;
  /// empty without a model to run).
  std::function<std::vector<LayerOption>(
      const LayerSettings &, const ::qnt::numerics::WeightProblem &,
      const std::function<double(const std::vector<float> &)> &)>
      options;
  std::function<std::vector<int>(
      const std::vector<std::vector<LayerOption>> &)>
      choose;
};

/// One row of the report.
struct LayerReport {
  std::string name, method, encoding;
  int64_t rows = 0, cols = 0;
  double bitsPerWeight = 0;
  /// ||X(W - Q)^T||^2 / ||X W^T||^2 on the calibration inputs, or the
  /// relative weight error when no statistics were given.
  double relativeError = 0;
  bool errorOnInputs = false;
  double seconds = 0;
  std::vector<std::string> remarks;
};

using StatisticsMap = std::map<std::string, ::qnt::numerics::LayerStatistics>;

class WeightMethodDriver {
public:
  /// Validates the options and collects the selected weight sites; reports
  /// on `module`.
  static FailureOr<std::unique_ptr<WeightMethodDriver>>
  create(ModuleOp module, WeightMethodConfig config, std::string methodName,
         WeightMethod method);
  /// The same for a group method.
  static FailureOr<std::unique_ptr<WeightMethodDriver>>
  create(ModuleOp module, WeightMethodConfig config, std::string methodName,
         GroupMethod method);
  /// The same for a planning method.
  static FailureOr<std::unique_ptr<WeightMethodDriver>>
  create(ModuleOp module, WeightMethodConfig config, std::string methodName,
         PlanMethod method);
  ~WeightMethodDriver();

  /// The selected layers, in IR order.
  const std::vector<std::string> &layerNames() const { return names; }

  /// Quantizes the named layers (each once) with `stats` (may be null for
  /// data-free methods) and rewrites their matmuls. `onResult` sees each
  /// result (the sequential driver binds `dequantized` for the quantized
  /// stream). A group method is called once per set of these layers that
  /// share an input, with `evaluator` (may be null) behind its module loss.
  LogicalResult
  quantize(llvm::ArrayRef<std::string> layers, const StatisticsMap *stats,
           const std::function<void(const std::string &,
                                    const ::qnt::numerics::MethodResult &)>
               &onResult = {},
           ModuleEvaluator *evaluator = nullptr,
           BlockTrainer *trainer = nullptr);

  /// Calls `visit` with the settings and the float weight (N x K, without
  /// statistics) of every selected layer, in IR order, one at a time, for
  /// methods whose state spans layers (AQLM's shared codebooks); stops at
  /// the first failure. `visit` reports its own errors at the location it
  /// gets (the weight's).
  LogicalResult
  visitWeights(llvm::function_ref<LogicalResult(
                   const LayerSettings &, const ::qnt::numerics::WeightProblem &,
                   Location)>
                   visit);

  /// True for group methods.
  bool quantizesGroups() const;
  /// True for planning methods.
  bool plans() const;

  const WeightMethodConfig &config() const;

  /// Everything a pass does: reads `stats=` if given, quantizes every
  /// selected layer, then finish().
  LogicalResult run();

  /// Writes the output parameter file (if weights came from parameters),
  /// the report, and prints the summary.
  LogicalResult finish();

  const std::vector<LayerReport> &reports() const { return layerReports; }

private:
  struct Impl;
  explicit WeightMethodDriver(std::unique_ptr<Impl> impl);
  static FailureOr<std::unique_ptr<WeightMethodDriver>>
  create(std::unique_ptr<Impl> impl, ModuleOp module,
         WeightMethodConfig config, std::string methodName);
  std::unique_ptr<Impl> impl;
  std::vector<std::string> names;
  std::vector<LayerReport> layerReports;
};

/// The group method of a block-reconstruction pass (qnt-flexround,
/// qnt-adaround; with WeightMethodConfig::groupsAreBlocks): hands each
/// block's layers to the sequential driver's trainer with `options`, and
/// without one (quant-opt) fails saying where the method runs.
GroupMethod blockReconstructionMethod(ReconstructionOptions options);

/// One row of the report as JSON (report=, quant-compile's report.json).
nlohmann::json reportJson(const LayerReport &report);

/// Reads a statistics file for `passName`, reporting on `module`.
FailureOr<StatisticsMap> readStatistics(ModuleOp module, StringRef passName,
                                        StringRef path);

} // namespace mlir::qnt

#endif // QNT_PASSES_PTQ_WEIGHTMETHODDRIVER_H
