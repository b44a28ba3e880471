//===- BlockReconstruction.cpp - Learned rounding on a block's IR ---------===//
//
// See BlockReconstruction.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/BlockReconstruction.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/LinearLayers.h"
#include "passes/SmoothFolding.h"
#include "passes/autodiff/Adjoint.h"
#include "qnt/ParamStore.h"
#include "qnt/numerics/DistributionCorrection.h"
#include "qnt/numerics/Loss.h"
#include "qnt/numerics/Optimizer.h"
#include "qnt/numerics/Ptq161.h"
#include "qnt/support/Random.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>

using namespace mlir;
namespace nx = ::qnt::numerics;
using ::qnt::runtime::CompiledModule;
using ::qnt::runtime::HostTensor;
using mlir::qnt::LearnedRounding;
using mlir::qnt::ReconstructionOptions;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// The smallest learned activation clip ratio.
constexpr float kMinimumClip = 1e-3f;

/// The smallest PTQ1.61 column rescaling r2: it becomes the input scale
/// 1 / r2, which must be positive (bakeSalientBinarization).
constexpr float kMinimumColumnScale = 1e-3f;

/// AdaRound's rectified sigmoid stretch (LearnedRounding.h).
constexpr double kZeta = 1.1, kGamma = -0.1;

/// One layer's learnable quantizer: its fixed and trained tensors.
struct LearnableLayer {
  const nx::WeightProblem *problem = nullptr;
  /// The grid: integers (spec) or a minifloat format.
  const nx::UniformSpec *spec = nullptr;
  const nx::MinifloatSpec *minifloat = nullptr;
  /// The layer's matmul in the trained block.
  Operation *matmul = nullptr;
  int64_t rows = 0, cols = 0, groupSize = 0, groups = 0;
  mlir::qnt::LearnableWeightArgs args;
  /// The zero point z [N, G] as the quantizer clamps with it (-z..qmax-z).
  std::vector<float> zero;
  /// AdaRound's fixed scale s [N, G].
  std::vector<float> scale;
  /// Minifloat grids: AdaRound's grid points below and above W / s
  /// [N, K]; FlexRound's format.
  std::vector<float> lower, upper;
  mlir::qnt::MinifloatGrid grid;
  /// PTQ1.61: the starting point (mask, salient part, mu) and the
  /// learnable weight's fixed tensors.
  std::optional<nx::SalientBinarization> salient;
  nx::SalientBinarizationTensors binarization;
  /// The weight the starting point encodes: the layer's, or with error
  /// feedback the one each channel had when it was quantized.
  std::vector<float> encodedWeight;
  /// AQLM: the starting point, and the state whose codebooks Adam trains
  /// (when not shared) with their gradient.
  const mlir::qnt::CodebookStart *codebookStart = nullptr;
  nx::AdditiveCodes codes;
  std::vector<float> codebookGradient;
  /// The layer whose codebooks Adam trains for this one: itself, or the
  /// first layer of the block sharing them (codebookGradient is then the
  /// owner's sum over the sharing layers).
  size_t codebookOwner = 0;
  /// The trained tensors in the order of args.trainable: FlexRound d1
  /// [N, G], D2 [N, K], d3 [N]; AdaRound V [N, K]; PTQ1.61 alpha [N],
  /// r1 [N], r2 [K]; AQLM s [N] and, when its codebooks are trained, the
  /// unscaled words D [N, K] (recomputed from the codebooks, never a
  /// parameter itself).
  std::vector<std::vector<float>> trained;
  /// Where the layer's first trained tensor is among all layers'.
  size_t firstTrained = 0;

  bool trainsCodebooks() const {
    return codebookStart && codebookStart->trainCodebooks;
  }
  /// How many of `trained` have gradients (trainable arguments).
  size_t trainedTensors(LearnedRounding method) const {
    if (codebookStart)
      return trainsCodebooks() ? 2 : 1;
    return method == LearnedRounding::AdaRound ? 1 : 3;
  }

  int64_t groupOf(int64_t k) const { return k / groupSize; }
  double qmax() const { return double((int64_t(1) << spec->bits) - 1); }
};

/// Elements per group, 0 for one group per row; throws on what the
/// quantizers cannot express.
template <typename Spec>
int64_t groupSizeOf(const Spec &spec, const std::string &name) {
  switch (spec.granularity) {
  case nx::Granularity::PerGroup:
    return spec.groupSize;
  case nx::Granularity::PerChannel:
    return 0;
  case nx::Granularity::PerTensor:
    break;
  }
  throw std::invalid_argument("layer '" + name +
                              "': learned rounding needs per-channel or "
                              "per-group scales, not one per tensor");
}

/// AdaRound's V where h(V) = `fraction`.
float roundingVariable(double fraction) {
  return float(-std::log((kZeta - kGamma) / (fraction - kGamma) - 1));
}

/// The finite values of a minifloat format, ascending: the codec's
/// non-negative ones mirrored.
std::vector<float> minifloatGrid(const nx::MinifloatSpec &spec) {
  const std::vector<float> &positive = nx::minifloatValues(spec);
  std::vector<float> grid;
  for (auto v = positive.rbegin(); v + 1 != positive.rend(); ++v)
    grid.push_back(-*v);
  grid.insert(grid.end(), positive.begin(), positive.end());
  return grid;
}

/// AdaRound on a minifloat grid: round to nearest's scales, the grid points
/// next to each W / s, and V where h(V) is the position of W / s between
/// them.
void initializeMinifloat(LearnableLayer &layer, const nx::EncodingSpec &spec) {
  const nx::WeightProblem &p = *layer.problem;
  int64_t n = layer.rows, k = layer.cols, g = layer.groups;
  layer.scale = nx::rtnParams(spec, p.weight, p.rows, p.cols).scales;
  std::vector<float> grid = minifloatGrid(*layer.minifloat);
  layer.lower.resize(n * k);
  layer.upper.resize(n * k);
  std::vector<float> v(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      int64_t i = r * k + c;
      float x = p.weight[i] / layer.scale[r * g + layer.groupOf(c)];
      // Outside the grid both neighbours are its end.
      auto above = std::upper_bound(grid.begin(), grid.end(), x);
      float lo = above == grid.begin() ? grid.front() : *(above - 1);
      float hi = above == grid.end() || lo == x ? lo : *above;
      if (above == grid.begin())
        hi = lo;
      layer.lower[i] = lo;
      layer.upper[i] = hi;
      double fraction = hi > lo ? (double(x) - lo) / (double(hi) - lo) : 0.0;
      v[i] = roundingVariable(fraction);
    }
  layer.trained = {std::move(v)};
}

/// PTQ1.61's starting point: the mask from the layer's activation absmax,
/// alpha from the binarization, r1 = r2 = 1.
void initializeSalient(LearnableLayer &layer,
                       const ReconstructionOptions &options) {
  const nx::WeightProblem &p = *layer.problem;
  layer.salient =
      nx::initializePtq161(p, options.salientRatio, options.salientBits);
  layer.encodedWeight =
      options.salientErrorFeedback
          ? nx::compensateSalientBinarization(*layer.salient, p)
          : std::vector<float>(p.weight, p.weight + p.rows * p.cols);
  layer.binarization = nx::salientBinarizationTensors(
      *layer.salient, layer.encodedWeight.data(), p.rows, p.cols);
  layer.trained = {layer.binarization.alpha, std::vector<float>(p.rows, 1.0f),
                   std::vector<float>(p.cols, 1.0f)};
}

/// AQLM's starting point: the method's scales and unscaled words.
void initializeCodebook(LearnableLayer &layer,
                        const mlir::qnt::CodebookStart &start) {
  const nx::WeightProblem &p = *layer.problem;
  if (start.state.rows != p.rows || start.state.cols != p.cols)
    throw std::invalid_argument("layer '" + p.name +
                                "': the codebook starting point has another "
                                "shape than the weight");
  layer.codebookStart = &start;
  layer.codes = start.state;
  layer.trained = {layer.codes.scales};
  if (layer.trainsCodebooks())
    layer.trained.push_back(layer.codes.words());
}

/// Layers of the block that share codebooks train them as one: the first
/// of them owns the parameter Adam steps. Their starting codebooks must be
/// the same (the method fitted them once for the group).
void assignCodebookOwners(std::vector<LearnableLayer> &layers) {
  std::map<std::string, size_t> owners;
  for (size_t i = 0; i < layers.size(); ++i) {
    LearnableLayer &layer = layers[i];
    const std::string &shared = layer.codebookStart->sharedCodebooks;
    if (!layer.trainsCodebooks() || shared.empty())
      continue;
    auto [owner, inserted] = owners.emplace(shared, i);
    if (inserted)
      continue;
    if (layers[owner->second].codes.codebooks != layer.codes.codebooks)
      throw std::invalid_argument(
          "layer '" + layer.problem->name + "' shares the codebooks '" +
          shared + "' with '" + layers[owner->second].problem->name +
          "' but starts from other codebooks");
    layer.codebookOwner = owner->second;
  }
}

/// The trained AQLM state: the row scales as the encoding stores them (a
/// zero scale, which no encoding stores, the smallest normal float).
void storeCodebookScales(LearnableLayer &layer) {
  for (size_t n = 0; n < layer.codes.scales.size(); ++n) {
    float scale = layer.trained[0][n];
    layer.codes.scales[n] = nx::storedScale(
        scale == 0.0f ? std::numeric_limits<float>::min() : scale,
        layer.codes.spec.scaleStorage);
  }
}

/// The fine-tuned layer: the start's result (its shared components kept)
/// with the trained scales and codebooks, the codes unchanged.
nx::MethodResult bakeCodebook(const LearnableLayer &layer) {
  nx::MethodResult result = layer.codebookStart->result;
  nx::MethodResult trained = nx::codebookResult(layer.codes);
  result.encoded = std::move(trained.encoded);
  result.dequantized = std::move(trained.dequantized);
  return result;
}

/// Initializes `layer` from round to nearest's grid: FlexRound's d1 = log s
/// and D2 = d3 = 0, AdaRound's V where h(V) is the fractional part of W / s.
void initialize(LearnableLayer &layer, const nx::EncodingSpec &spec,
                LearnedRounding method) {
  if (layer.minifloat && method == LearnedRounding::AdaRound)
    return initializeMinifloat(layer, spec);
  if (layer.minifloat)
    layer.grid = mlir::qnt::minifloatGridOf(*layer.minifloat);
  const nx::WeightProblem &p = *layer.problem;
  nx::QuantParams grid = nx::rtnParams(spec, p.weight, p.rows, p.cols);
  int64_t n = layer.rows, k = layer.cols, g = layer.groups;
  // (A minifloat grid has no zero point.)
  if (layer.spec) {
    float symmetricZero = float(int64_t(1) << (layer.spec->bits - 1));
    layer.zero.resize(n * g);
    for (int64_t i = 0; i < n * g; ++i)
      layer.zero[i] = layer.spec->symmetric ? symmetricZero : grid.zeros[i];
  }
  if (method == LearnedRounding::FlexRound) {
    std::vector<float> d1(n * g);
    for (int64_t i = 0; i < n * g; ++i)
      d1[i] = std::log(grid.scales[i]);
    layer.trained = {std::move(d1), std::vector<float>(n * k, 0.0f),
                     std::vector<float>(n, 0.0f)};
    return;
  }
  layer.scale = grid.scales;
  std::vector<float> v(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      float x = p.weight[r * k + c] / layer.scale[r * g + layer.groupOf(c)];
      v[r * k + c] = roundingVariable(double(x) - std::floor(double(x)));
    }
  layer.trained = {std::move(v)};
}

/// The integer (relative to the zero point) the trained quantizer gives
/// element (r, c), as the IR computes it (float arithmetic), clamped; on a
/// minifloat grid, the grid point.
float learnedCode(const LearnableLayer &layer, LearnedRounding method,
                  int64_t r, int64_t c) {
  int64_t k = layer.cols, gi = r * layer.groups + layer.groupOf(c);
  // AdaRound: h(V) >= 1/2 exactly where V >= 0: round up there (V is
  // [N, K]; FlexRound's first tensor is d1 [N, G]).
  auto roundsUp = [&] { return layer.trained[0][r * k + c] >= 0; };
  if (layer.minifloat && method == LearnedRounding::AdaRound)
    return roundsUp() ? layer.upper[r * k + c] : layer.lower[r * k + c];
  float w = layer.problem->weight[r * k + c], q;
  if (method == LearnedRounding::FlexRound) {
    float exponent = (layer.trained[0][gi] + layer.trained[1][r * k + c]) +
                     layer.trained[2][r];
    if (layer.minifloat)
      return mlir::qnt::roundToMinifloatGrid(w / std::exp(exponent),
                                             layer.grid);
    q = nx::roundHalfEven(w / std::exp(exponent));
  } else {
    q = std::floor(w / layer.scale[gi]) + (roundsUp() ? 1.0f : 0.0f);
  }
  float z = layer.zero[gi];
  return std::clamp(q, -z, float(layer.qmax()) - z);
}

/// The trained quantizer as a standard encoding: the codes it rounds to
/// and its scales (FlexRound's exp(d1), AdaRound's s) and zero points.
nx::MethodResult bake(const LearnableLayer &layer, const nx::EncodingSpec &spec,
                      LearnedRounding method) {
  int64_t n = layer.rows, k = layer.cols, g = layer.groups;
  nx::QuantParams params;
  params.scales.resize(n * g);
  // The scales as the encoding stores them (f16/bf16 rounding), so that the
  // baked weights are the codes times what the model will read.
  nx::ScaleStorage storage =
      layer.spec ? layer.spec->scaleStorage : layer.minifloat->scaleStorage;
  for (int64_t i = 0; i < n * g; ++i)
    params.scales[i] = nx::storedScale(method == LearnedRounding::FlexRound
                                           ? std::exp(layer.trained[0][i])
                                           : layer.scale[i],
                                       storage);
  if (layer.spec && !layer.spec->symmetric)
    params.zeros = layer.zero;
  // The weight the quantizer computes lies on the grid: encoding it with
  // the same parameters recovers its codes.
  std::vector<float> learned(n * k);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      learned[r * k + c] = params.scales[r * g + layer.groupOf(c)] *
                           learnedCode(layer, method, r, c);
  nx::MethodResult result;
  result.spec = spec;
  result.encoded = nx::quantizeWithParams(spec, params, learned.data(), n, k);
  result.dequantized = nx::dequantize(spec, result.encoded);
  // How many rounding decisions training changed: codes other than the
  // nearest point of the (learned) grid.
  int64_t moved = 0;
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c) {
      int64_t gi = r * g + layer.groupOf(c);
      if (layer.minifloat && method == LearnedRounding::FlexRound) {
        float nearest = mlir::qnt::roundToMinifloatGrid(
            layer.problem->weight[r * k + c] / params.scales[gi], layer.grid);
        moved += nearest != learnedCode(layer, method, r, c);
        continue;
      }
      if (layer.minifloat) {
        int64_t i = r * k + c;
        float x = layer.problem->weight[i] / params.scales[gi];
        float nearest = x - layer.lower[i] <= layer.upper[i] - x
                            ? layer.lower[i]
                            : layer.upper[i];
        moved += nearest != learnedCode(layer, method, r, c);
        continue;
      }
      float z = layer.zero[gi];
      float nearest = std::clamp(
          nx::roundHalfEven(layer.problem->weight[r * k + c] /
                            params.scales[gi]),
          -z, float(layer.qmax()) - z);
      moved += nearest != learnedCode(layer, method, r, c);
    }
  result.remarks.push_back(
      llvm::formatv("{0:F2}% of the weights do not round to the nearest "
                    "point of the learned grid",
                    100.0 * double(moved) / double(n * k))
          .str());
  return result;
}

/// The trained layer as a standard encoding (PTQ1.61: #qnt.salient with
/// r2 as the input scale).
nx::MethodResult bakeLayer(const LearnableLayer &layer,
                           const nx::EncodingSpec &spec,
                           LearnedRounding method) {
  if (layer.codebookStart)
    return bakeCodebook(layer);
  if (method != LearnedRounding::SalientBinarization)
    return bake(layer, spec, method);
  return nx::bakeSalientBinarization(
      *layer.salient, layer.encodedWeight.data(), layer.rows, layer.cols,
      layer.trained[0], layer.trained[1], layer.trained[2]);
}

/// Reports on `loc` and throws: the caller (the weight-method driver)
/// names the layers.
[[noreturn]] void fail(Location loc, const Twine &message) {
  emitError(loc) << message;
  throw std::runtime_error(message.str());
}

/// The block function of `module` with the weights of `layers` turned into
/// trailing arguments and each made learnable; returns the trainable
/// arguments in order.
SmallVector<unsigned> writeQuantizers(func::FuncOp func,
                                      std::vector<LearnableLayer> &layers,
                                      LearnedRounding method) {
  Location loc = func.getLoc();
  SmallVector<mlir::qnt::LinearLayer> found =
      mlir::qnt::collectLinearLayers(func);
  // The weights become arguments firstWeight...; each quantizer then
  // appends its own, after them.
  unsigned firstWeight = func.getNumArguments();
  for (LearnableLayer &layer : layers) {
    const std::string &name = layer.problem->name;
    auto site = llvm::find_if(found, [&](const mlir::qnt::LinearLayer &l) {
      return l.name == name;
    });
    auto param = site == found.end() || !site->weight
                     ? nullptr
                     : site->weight.getDefiningOp<mlir::qnt::ParamOp>();
    if (!param)
      fail(loc, "block reconstruction: layer '" + name + "' is not a "
                    "parameter weight of @" + func.getSymName());
    // The driver hands over weights as [N, K]; only a transpose-B matmul
    // stores them so (a square plain matmul's would pass the shape check
    // transposed).
    if (!site->observable)
      fail(param.getLoc(), "block reconstruction: layer '" + name +
                               "' is not a transpose-B matmul's weight");
    auto type = dyn_cast<RankedTensorType>(param.getType());
    if (!type || type.getShape() != ArrayRef<int64_t>{layer.rows, layer.cols})
      fail(param.getLoc(), "block reconstruction: the weight of '" + name +
                               "' is not stored as [N, K] = [" +
                               Twine(layer.rows) + ", " + Twine(layer.cols) +
                               "] (a transpose-B matmul's)");
    layer.matmul = site->op;
    unsigned index = func.getNumArguments();
    if (failed(func.insertArgument(index, type, DictionaryAttr(),
                                   param.getLoc())))
      fail(loc, "block reconstruction: cannot add an argument");
    param.getResult().replaceAllUsesWith(func.getArgument(index));
    param.erase();
  }
  SmallVector<unsigned> trainable;
  for (auto [i, layer] : llvm::enumerate(layers)) {
    unsigned weightArg = firstWeight + i;
    if (method == LearnedRounding::SalientBinarization) {
      FailureOr<mlir::qnt::SalientBinarizationArgs> args =
          mlir::qnt::makeSalientBinarizationLearnable(func, weightArg);
      if (failed(args))
        throw std::runtime_error("the learnable binarization could not be "
                                 "built");
      trainable.append(args->trainable.begin(), args->trainable.end());
      continue;
    }
    if (method == LearnedRounding::AdditiveCodebook) {
      FailureOr<mlir::qnt::CodebookWeightArgs> args =
          mlir::qnt::makeCodebookWeightLearnable(func, weightArg);
      if (failed(args))
        throw std::runtime_error("the learnable codebook weight could not "
                                 "be built");
      trainable.push_back(args->scales);
      if (layer.trainsCodebooks())
        trainable.push_back(args->words);
      continue;
    }
    bool minifloat = layer.minifloat != nullptr;
    mlir::qnt::LearnableWeightSpec spec{
        method, layer.spec ? layer.spec->bits : 0, layer.groupSize,
        /*neighbourGrid=*/minifloat && method == LearnedRounding::AdaRound};
    if (minifloat && method == LearnedRounding::FlexRound)
      spec.minifloat = layer.grid;
    FailureOr<mlir::qnt::LearnableWeightArgs> args =
        mlir::qnt::makeWeightLearnable(func, weightArg, spec);
    if (failed(args))
      throw std::runtime_error("the learnable quantizer could not be built");
    layer.args = *args;
    trainable.append(args->trainable.begin(), args->trainable.end());
  }
  return trainable;
}

/// AQLM's norm gains: the layers whose input a normalization's gain
/// produces, grouped by that input (read by nothing else), and the argument
/// g [K] each group's weights are multiplied by column-wise.
struct InputGain {
  unsigned argument = 0;
  int64_t channels = 0;
  std::vector<size_t> layers;
  std::vector<float> values;
};

std::vector<InputGain> writeInputGains(func::FuncOp func,
                                       std::vector<LearnableLayer> &layers) {
  std::vector<std::pair<Value, InputGain>> groups;
  for (auto [i, layer] : llvm::enumerate(layers)) {
    Value input = layer.matmul->getOperand(0);
    auto same = llvm::find_if(groups, [&](const auto &g) {
      return g.first == input;
    });
    if (same == groups.end()) {
      groups.push_back({input, InputGain()});
      same = std::prev(groups.end());
    }
    same->second.layers.push_back(i);
  }
  std::vector<InputGain> gains;
  for (auto &[input, gain] : groups) {
    std::optional<mlir::qnt::SmoothFoldSite> site =
        mlir::qnt::findSmoothFoldSite(input);
    bool onlyTrained = llvm::all_of(input.getUsers(), [&](Operation *user) {
      return isa<tensor::DimOp>(user) ||
             llvm::any_of(gain.layers,
                          [&](size_t i) { return layers[i].matmul == user; });
    });
    if (!site || site->kind != mlir::qnt::SmoothFoldSite::Kind::Gain ||
        !onlyTrained)
      continue;
    gain.channels = layers[gain.layers.front()].cols;
    gain.argument = func.getNumArguments();
    auto type = RankedTensorType::get({gain.channels},
                                      Float32Type::get(func.getContext()));
    if (failed(func.insertArgument(gain.argument, type, DictionaryAttr(),
                                   input.getLoc())))
      fail(func.getLoc(), "block reconstruction: cannot add an argument");
    for (size_t i : gain.layers) {
      // W' = W diag(g): the weight operand of the transpose-B matmul.
      Operation *matmul = layers[i].matmul;
      Value weight = matmul->getOperand(1);
      auto weightType = cast<RankedTensorType>(weight.getType());
      OpBuilder b(matmul);
      Location loc = matmul->getLoc();
      MLIRContext *ctx = func.getContext();
      AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
      AffineMap columns = AffineMap::get(2, 0, {b.getAffineDimExpr(1)}, ctx);
      Value empty = tensor::EmptyOp::create(b, loc, weightType.getShape(),
                                            weightType.getElementType());
      SmallVector<utils::IteratorType> parallel(2,
                                                utils::IteratorType::parallel);
      Value scaled =
          linalg::GenericOp::create(
              b, loc, weightType,
              ValueRange{weight, func.getArgument(gain.argument)}, empty,
              ArrayRef<AffineMap>{identity, columns, identity}, parallel,
              [&](OpBuilder &nb, Location l, ValueRange a) {
                linalg::YieldOp::create(
                    nb, l, arith::MulFOp::create(nb, l, a[0], a[1]).getResult());
              })
              .getResult(0);
      matmul->setOperand(1, scaled);
    }
    gain.values.assign(gain.channels, 1.0f);
    gains.push_back(std::move(gain));
  }
  return gains;
}

/// The activation quantization the quantized model will run: a
/// qnt.fake_quant of each layer's input (options.activationBits), with a
/// clip ratio argument appended per layer when it is learned.
void writeActivationQuantizers(func::FuncOp func,
                               ArrayRef<LearnableLayer> layers,
                               const ReconstructionOptions &options) {
  if (options.activationBits == 0)
    return;
  bool learned = options.activationLearningRate > 0;
  auto clipType = RankedTensorType::get({1}, Float32Type::get(func.getContext()));
  auto granularity = options.activationPerToken
                         ? mlir::qnt::ActivationGranularity::per_token
                         : mlir::qnt::ActivationGranularity::per_tensor;
  for (const LearnableLayer &layer : layers) {
    Operation *matmul = layer.matmul;
    Value clip;
    if (learned) {
      unsigned index = func.getNumArguments();
      if (failed(func.insertArgument(index, clipType, DictionaryAttr(),
                                     matmul->getLoc())))
        fail(func.getLoc(), "block reconstruction: cannot add an argument");
      clip = func.getArgument(index);
    }
    OpBuilder b(matmul);
    Value in = matmul->getOperand(0);
    Value quantized = mlir::qnt::FakeQuantOp::create(
        b, matmul->getLoc(), in.getType(), in, /*scale=*/Value(),
        /*noise=*/Value(), clip, b.getI64IntegerAttr(options.activationBits),
        mlir::qnt::ActivationGranularityAttr::get(b.getContext(),
                                                  granularity));
    matmul->setOperand(0, quantized);
  }
}

} // namespace

namespace qnt::ptq {

BlockReconstructor::BlockReconstructor(ModuleOp model,
                                       std::string blockFunction,
                                       ReconstructionData data,
                                       ProgressFn progress)
    : model(model), blockFunction(std::move(blockFunction)),
      data(std::move(data)), progress(std::move(progress)) {}

std::vector<nx::MethodResult>
BlockReconstructor::train(ArrayRef<mlir::qnt::LayerSettings> settings,
                          ArrayRef<nx::WeightProblem> problems,
                          const ReconstructionOptions &options) {
  if (options.method == LearnedRounding::AdditiveCodebook)
    throw std::invalid_argument(
        "AQLM's fine-tuning starts from the method's codes "
        "(fineTuneCodebooks)");
  return run(settings, problems, {}, options);
}

std::vector<nx::MethodResult> BlockReconstructor::fineTuneCodebooks(
    ArrayRef<mlir::qnt::LayerSettings> settings,
    ArrayRef<nx::WeightProblem> problems,
    ArrayRef<mlir::qnt::CodebookStart> starts,
    const ReconstructionOptions &options) {
  if (options.method != LearnedRounding::AdditiveCodebook ||
      starts.size() != problems.size())
    throw std::invalid_argument(
        "codebook fine-tuning needs the AdditiveCodebook method and one "
        "starting point per layer");
  return run(settings, problems, starts, options);
}

std::vector<nx::MethodResult>
BlockReconstructor::run(ArrayRef<mlir::qnt::LayerSettings> settings,
                        ArrayRef<nx::WeightProblem> problems,
                        ArrayRef<mlir::qnt::CodebookStart> starts,
                        const ReconstructionOptions &options) {
  Clock::time_point start = Clock::now();
  last = ReconstructionReport();
  Location loc = model.getLoc();
  if (options.iterations < 0 || options.batchSequences < 1 ||
      !(options.learningRate > 0) || options.earlyStopPatience < 0)
    throw std::invalid_argument(
        "iterations must be >= 0, batch-sequences >= 1, lr > 0 and "
        "early-stop-patience >= 0");
  if (data.sequences == 0)
    fail(loc, "block reconstruction: no calibration sequences");
  bool predicting = options.predictionWeight > 0;
  bool mixing = options.quantizedInputProbability < 1;
  bool correcting = options.distributionCorrection;
  bool learnsClips =
      options.activationBits > 0 && options.activationLearningRate > 0;
  if (options.predictionWeight < 0 || !(options.temperature > 0) ||
      !(options.quantizedInputProbability >= 0 &&
        options.quantizedInputProbability <= 1) ||
      options.activationLearningRate < 0 ||
      (options.activationBits != 0 &&
       (options.activationBits < 2 || options.activationBits > 16)))
    throw std::invalid_argument(
        "prediction-weight must be >= 0, temperature > 0, "
        "quantized-input-probability in [0, 1], act-lr >= 0 and act-bits 0 "
        "or 2..16");
  if ((mixing || correcting) && !data.floatInput)
    fail(loc, "block reconstruction: input mixing and distribution "
              "correction need the float stream's block inputs");
  if (predicting && data.downstream.empty())
    fail(loc, "block reconstruction: the prediction difference needs the "
              "functions after the block");
  bool salient = options.method == LearnedRounding::SalientBinarization;
  bool codebook = options.method == LearnedRounding::AdditiveCodebook;
  if (salient && (mixing || correcting))
    throw std::invalid_argument(
        "PTQ1.61's block training has its own targets: it does not combine "
        "with input mixing or distribution correction");
  // (The model quantizes the smoothed input, x g, where the trainer would
  // scale the weight behind the input's quantizer.)
  if (codebook && options.trainNormGains && options.activationBits > 0)
    throw std::invalid_argument(
        "norm gains are trained without activation quantization; set "
        "finetune-norm-gains=false with act-bits");
  if (salient && !(options.rescaleLearningRate > 0))
    throw std::invalid_argument("the rescaling learning rate must be > 0");
  if (options.epochs < 0)
    throw std::invalid_argument("epochs must be >= 0");
  // The references count epochs over the calibration set.
  int64_t iterations =
      options.epochs > 0
          ? options.epochs *
                int64_t(llvm::divideCeil(data.sequences,
                                         uint64_t(options.batchSequences)))
          : options.iterations;
  last.predicted = predicting;
  last.corrected = correcting;

  // The layers' quantizers, initialized at round to nearest.
  std::vector<LearnableLayer> layers(problems.size());
  for (size_t i = 0; i < problems.size(); ++i) {
    LearnableLayer &layer = layers[i];
    layer.problem = &problems[i];
    layer.rows = problems[i].rows;
    layer.cols = problems[i].cols;
    if (salient) {
      initializeSalient(layer, options);
      continue;
    }
    if (codebook) {
      initializeCodebook(layer, starts[i]);
      layer.codebookOwner = i;
      continue;
    }
    layer.spec = std::get_if<nx::UniformSpec>(&settings[i].spec);
    layer.minifloat = std::get_if<nx::MinifloatSpec>(&settings[i].spec);
    if (!layer.spec && !layer.minifloat)
      throw std::invalid_argument(
          "learned rounding supports integer and minifloat grids");
    int64_t group = layer.spec ? groupSizeOf(*layer.spec, problems[i].name)
                               : groupSizeOf(*layer.minifloat,
                                             problems[i].name);
    layer.groupSize = group ? group : layer.cols;
    layer.groups = llvm::divideCeil(layer.cols, layer.groupSize);
    initialize(layer, settings[i].spec, options.method);
  }
  if (codebook)
    assignCodebookOwners(layers);

  // The block with its quantizers and its adjoint; the float copy of the
  // block (the corrected inputs' targets) and the rest of the float
  // network with its adjoints (the prediction difference), compiled.
  OwningOpRef<ModuleOp> module = model.clone();
  llvm::StringSet<> kept;
  kept.insert(blockFunction);
  if (predicting)
    for (const std::string &name : data.downstream)
      kept.insert(name);
  for (auto func : llvm::make_early_inc_range(module->getOps<func::FuncOp>()))
    if (!kept.contains(func.getSymName()))
      func.erase();
  auto func = module->lookupSymbol<func::FuncOp>(blockFunction);
  if (!func)
    fail(loc, "block reconstruction: the model has no function @" +
                  blockFunction);
  std::vector<std::string> entries = {blockFunction};
  std::string floatName = blockFunction + "_float";
  // (PTQ1.61's second target is the float block on the quantized stream.)
  if (correcting || salient) {
    auto copy = cast<func::FuncOp>(func->clone());
    copy.setSymName(floatName);
    module->getBody()->push_back(copy);
    entries.push_back(floatName);
  }
  SmallVector<unsigned> trainable =
      writeQuantizers(func, layers, options.method);
  std::vector<InputGain> gains;
  if (codebook && options.trainNormGains)
    gains = writeInputGains(func, layers);
  for (const InputGain &gain : gains)
    trainable.push_back(gain.argument);
  // One clip argument per layer after the quantizers' arguments.
  unsigned firstClip = func.getNumArguments();
  writeActivationQuantizers(func, layers, options);
  if (learnsClips)
    for (unsigned a = firstClip; a < func.getNumArguments(); ++a)
      trainable.push_back(a);
  std::string adjointName = blockFunction + "_adjoint";
  if (failed(mlir::qnt::buildAdjoint(func, trainable, adjointName)))
    throw std::runtime_error("the block's adjoint could not be built");
  entries.push_back(adjointName);
  if (predicting)
    for (const std::string &name : data.downstream) {
      auto next = module->lookupSymbol<func::FuncOp>(name);
      if (!next || next.getNumArguments() < 1)
        fail(loc, "block reconstruction: the model has no function @" + name);
      if (failed(mlir::qnt::buildAdjoint(next, {0}, name + "_adjoint")))
        throw std::runtime_error("the adjoint of @" + name +
                                 " could not be built");
      entries.push_back(name);
      entries.push_back(name + "_adjoint");
    }
  unsigned fixedInputs = func.getNumArguments();
  unsigned numResults = func.getNumResults();
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(*module);
  if (failed(store))
    throw std::runtime_error("the block's parameters could not be opened");
  FailureOr<std::unique_ptr<CompiledModule>> compiled =
      CompiledModule::compile(*module, entries);
  if (failed(compiled) || failed((*compiled)->bindParams(*store, loc)))
    throw std::runtime_error("the block and its adjoint could not be "
                             "compiled");
  CompiledModule &code = **compiled;
  const runtime::EntrySignature *signature = code.signature(blockFunction);
  last.compileSeconds = secondsSince(start);

  // The call's arguments: x, position 0 and empty caches (any other
  // non-parameter argument of the block is refused), then the weights, the
  // quantizers' tensors in argument order and the clip ratios.
  auto f32Type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float32Type::get(model.getContext()));
  };
  std::vector<HostTensor> tail; // weights, then each layer's added tensors
  for (const LearnableLayer &layer : layers)
    tail.emplace_back(f32Type({layer.rows, layer.cols}),
                      layer.problem->weight);
  // Where in `tail` each trained tensor is, in `trainable` order.
  std::vector<size_t> trainedIndices;
  auto addOwned = [&](ArrayRef<int64_t> shape, const std::vector<float> &v) {
    HostTensor t(f32Type(shape));
    std::copy(v.begin(), v.end(), t.f32());
    tail.push_back(std::move(t));
  };
  for (LearnableLayer &layer : layers) {
    size_t first = tail.size();
    int64_t n = layer.rows, k = layer.cols, g = layer.groups;
    if (codebook) {
      addOwned({n}, layer.trained[0]);
      addOwned({n, k}, layer.trainsCodebooks() ? layer.trained[1]
                                               : layer.codes.words());
    } else if (salient) {
      const nx::SalientBinarizationTensors &b = layer.binarization;
      addOwned({n}, layer.trained[0]);
      addOwned({n}, layer.trained[1]);
      addOwned({k}, layer.trained[2]);
      addOwned({n, k}, b.salientWeight);
      addOwned({n, k}, b.signs);
      addOwned({n}, b.offset);
      addOwned({k}, b.restMask);
    } else if (options.method == LearnedRounding::FlexRound) {
      addOwned({n, g}, layer.trained[0]);
      addOwned({n, k}, layer.trained[1]);
      addOwned({n}, layer.trained[2]);
      if (!layer.minifloat)
        addOwned({n, g}, layer.zero);
    } else if (layer.minifloat) {
      addOwned({n, k}, layer.trained[0]);
      addOwned({n, g}, layer.scale);
      addOwned({n, k}, layer.lower);
      addOwned({n, k}, layer.upper);
    } else {
      addOwned({n, k}, layer.trained[0]);
      addOwned({n, g}, layer.scale);
      addOwned({n, g}, layer.zero);
    }
    layer.firstTrained = trainedIndices.size();
    for (size_t i = 0; i < layer.trainedTensors(options.method); ++i)
      trainedIndices.push_back(first + i);
  }
  // The rounding tensors come first among the trained ones, AQLM's norm
  // gains next, the clip ratios (one per layer) after them.
  size_t firstGain = trainedIndices.size();
  for (const InputGain &gain : gains) {
    trainedIndices.push_back(tail.size());
    addOwned({gain.channels}, gain.values);
  }
  size_t roundingTensors = trainedIndices.size();
  if (learnsClips)
    for (size_t i = 0; i < layers.size(); ++i) {
      trainedIndices.push_back(tail.size());
      addOwned({1}, {1.0f});
    }
  // `tail` no longer grows: pointers into it stay valid.
  std::vector<HostTensor *> trainedTensors;
  for (size_t index : trainedIndices)
    trainedTensors.push_back(&tail[index]);
  size_t leading = signature->inputs.size() - tail.size();
  if (leading != 4 || fixedInputs != leading + tail.size() || numResults != 3)
    fail(loc, "block reconstruction: @" + blockFunction +
                  " does not have the imported block's signature (x, pos, "
                  "key cache, value cache) -> (x, key cache, value cache)");

  // An entry's types with the token dimension set.
  auto withTokens = [](ArrayRef<RankedTensorType> types, int64_t tokens) {
    SmallVector<RankedTensorType> set;
    for (RankedTensorType type : types) {
      SmallVector<int64_t> shape(type.getShape());
      for (int64_t &d : shape)
        if (ShapedType::isDynamic(d))
          d = tokens;
      set.push_back(RankedTensorType::get(shape, type.getElementType()));
    }
    return set;
  };
  // x, then zeros (position 0, empty caches) for an entry's other inputs;
  // the trained block's weights and quantizers follow when `withTail`.
  auto entryArgs = [&](const std::string &name, const HostTensor &x,
                       bool withTail) {
    const runtime::EntrySignature *entry = code.signature(name);
    int64_t tokens = x.getType().getDimSize(0);
    size_t count = entry->inputs.size() - (withTail ? tail.size() : 0);
    SmallVector<RankedTensorType> types =
        withTokens(ArrayRef(entry->inputs).take_front(count), tokens);
    // Copies: a compiled function may write into its argument buffers, and
    // the tensors may share their bytes with the calibration streams.
    std::vector<HostTensor> args;
    args.push_back(x.deepCopy());
    for (size_t i = 1; i < types.size(); ++i)
      args.emplace_back(types[i]);
    if (withTail)
      for (const HostTensor &t : tail)
        args.push_back(t.deepCopy());
    return args;
  };
  auto run = [&](const std::string &name, const std::vector<HostTensor> &args,
                 int64_t tokens, double &seconds) {
    std::vector<HostTensor> results;
    Clock::time_point begin = Clock::now();
    if (failed(code.call(name, args, results, loc,
                         withTokens(code.signature(name)->results, tokens))))
      throw std::runtime_error("@" + name + " could not be run");
    seconds += secondsSince(begin);
    return results;
  };
  auto tokensOf = [](const HostTensor &x) { return x.getType().getDimSize(0); };
  int64_t dim = signature->inputs[0].getDimSize(1);
  // The trained block's output on x.
  auto forward = [&](const HostTensor &x) {
    return std::move(run(blockFunction, entryArgs(blockFunction, x, true),
                         tokensOf(x), last.forwardSeconds)[0]);
  };
  // The gradients of the trained tensors for the output cotangent `dy`,
  // added with `weight` to `gradients`.
  std::vector<std::vector<float>> gradients;
  auto backward = [&](const HostTensor &x, HostTensor dy, float weight) {
    std::vector<HostTensor> args = entryArgs(blockFunction, x, true);
    SmallVector<RankedTensorType> types =
        withTokens(signature->results, tokensOf(x));
    args.push_back(std::move(dy));
    for (unsigned r = 1; r < numResults; ++r)
      args.emplace_back(types[r]);
    std::vector<HostTensor> grads;
    Clock::time_point begin = Clock::now();
    if (failed(code.call(adjointName, args, grads, loc)))
      throw std::runtime_error("the block's adjoint could not be run");
    last.adjointSeconds += secondsSince(begin);
    for (size_t i = 0; i < gradients.size(); ++i) {
      const float *g = grads[i].f32();
      for (size_t j = 0; j < gradients[i].size(); ++j)
        gradients[i][j] += weight * g[j];
    }
  };
  auto read = [&](const auto &source, size_t s) {
    FailureOr<HostTensor> tensor = source(s);
    if (failed(tensor))
      throw std::runtime_error("calibration data could not be read");
    return std::move(*tensor);
  };

  // The rest of the float network: logits from the block's output, the
  // inputs of its functions kept for the way back.
  auto predict = [&](const HostTensor &y, std::vector<HostTensor> *inputs) {
    HostTensor h = y;
    for (const std::string &name : data.downstream) {
      if (inputs)
        inputs->push_back(h);
      h = std::move(run(name, entryArgs(name, h, false), tokensOf(h),
                        last.predictionSeconds)[0]);
    }
    return h;
  };
  // The cotangent of the block's output from that of the logits.
  auto predictBackward = [&](const std::vector<HostTensor> &inputs,
                             HostTensor cotangent) {
    for (size_t j = data.downstream.size(); j-- > 0;) {
      const std::string &name = data.downstream[j];
      std::vector<HostTensor> args = entryArgs(name, inputs[j], false);
      SmallVector<RankedTensorType> types =
          withTokens(code.signature(name)->results, tokensOf(inputs[j]));
      args.push_back(std::move(cotangent));
      for (size_t r = 1; r < types.size(); ++r)
        args.emplace_back(types[r]);
      cotangent = std::move(run(name + "_adjoint", args, tokensOf(inputs[j]),
                                last.predictionSeconds)[0]);
    }
    return cotangent;
  };
  // The float model's logits per sequence (from the float block output),
  // kept while they fit 1 GiB.
  std::vector<std::optional<HostTensor>> floatLogits(data.sequences);
  int64_t keptLogitBytes = 0;
  auto floatLogitsOf = [&](size_t s) {
    if (floatLogits[s])
      return *floatLogits[s];
    HostTensor logits = predict(read(data.target, s), nullptr);
    if (keptLogitBytes + int64_t(logits.numBytes()) <= (int64_t(1) << 30)) {
      keptLogitBytes += logits.numBytes();
      floatLogits[s] = logits;
    }
    return logits;
  };
  // The prediction difference of the block's output y and, with
  // `cotangent`, its gradient (the KL's times predictionWeight).
  auto predictionDifference = [&](size_t s, const HostTensor &y,
                                  std::vector<HostTensor> *inputs,
                                  HostTensor *cotangent) {
    HostTensor logits = predict(y, inputs), target = floatLogitsOf(s);
    int64_t rows = tokensOf(logits), vocab = logits.getType().getDimSize(1);
    if (cotangent)
      *cotangent = HostTensor(logits.getType());
    double kl = nx::klDivergenceLoss(logits.f32(), target.f32(), rows, vocab,
                                     options.temperature,
                                     cotangent ? cotangent->f32() : nullptr);
    if (cotangent) {
      float *g = cotangent->f32();
      for (int64_t i = 0; i < rows * vocab; ++i)
        g[i] *= float(options.predictionWeight);
    }
    return kl;
  };

  // Distribution correction: the calibration set's per-channel statistics
  // of the float block input, then per sequence the corrected input and
  // the float block's output on it (kept: each is computed once).
  std::vector<float> populationMean, populationStd;
  if (correcting) {
    Clock::time_point begin = Clock::now();
    nx::ChannelStatistics statistics(dim);
    for (size_t s = 0; s < data.sequences; ++s) {
      HostTensor x = read(data.floatInput, s);
      statistics.add(x.f32(), tokensOf(x));
    }
    populationMean = statistics.mean();
    populationStd = statistics.standardDeviation();
    last.correctionSeconds += secondsSince(begin);
  }
  // Kept while they fit 1 GiB (both together), else recomputed.
  std::vector<std::optional<HostTensor>> correctedInputs(data.sequences),
      correctedTargets(data.sequences);
  int64_t keptCorrectionBytes = 0;
  auto keep = [&](std::optional<HostTensor> &slot, HostTensor tensor) {
    if (keptCorrectionBytes + int64_t(tensor.numBytes()) <=
        (int64_t(1) << 30)) {
      keptCorrectionBytes += tensor.numBytes();
      slot = tensor;
    }
    return tensor;
  };
  auto correctedInput = [&](size_t s) {
    if (!correctedInputs[s]) {
      Clock::time_point begin = Clock::now();
      HostTensor x = read(data.floatInput, s);
      nx::DistributionCorrectionOptions correction;
      correction.proximity = options.correctionProximity;
      correction.iterations = options.correctionIterations;
      correction.learningRate = options.correctionLearningRate;
      std::vector<float> corrected = nx::correctDistribution(
          x.f32(), tokensOf(x), dim, populationMean.data(),
          populationStd.data(), correction);
      HostTensor t(x.getType());
      std::copy(corrected.begin(), corrected.end(), t.f32());
      last.correctionSeconds += secondsSince(begin);
      return keep(correctedInputs[s], std::move(t));
    }
    return *correctedInputs[s];
  };
  // The float block's output on the input `inputOf(s)`, kept in `slot`
  // under the cap; its time added to `seconds`.
  auto floatBlockOutput = [&](std::optional<HostTensor> &slot,
                              const auto &inputOf, size_t s,
                              double &seconds) {
    if (slot)
      return *slot;
    HostTensor x = inputOf(s);
    return keep(slot, std::move(run(floatName, entryArgs(floatName, x, false),
                                    tokensOf(x), seconds)[0]));
  };
  // The squared error's target for sequence s.
  auto targetOf = [&](size_t s) {
    if (!correcting)
      return read(data.target, s);
    return floatBlockOutput(correctedTargets[s], correctedInput, s,
                            last.correctionSeconds);
  };
  // QDrop: the quantized-stream input with each element replaced by the
  // (corrected) float one with probability 1 - quantizedInputProbability.
  ::qnt::Xoshiro256 dropRandom(
      ::qnt::hashCombine(options.seed, 0x71647270ULL));
  auto mixedInput = [&](size_t s, const HostTensor &quantized) {
    HostTensor other =
        correcting ? correctedInput(s) : read(data.floatInput, s);
    HostTensor mixed = quantized.deepCopy();
    float *m = mixed.f32();
    const float *f = other.f32();
    for (int64_t i = 0; i < mixed.numElements(); ++i)
      if (dropRandom.uniform() >= options.quantizedInputProbability)
        m[i] = f[i];
    return mixed;
  };

  // PTQ1.61's second target: the float block's output on the
  // quantized-stream input (kept under the same cap).
  std::vector<std::optional<HostTensor>> quantizedInputTargets(
      data.sequences);
  auto quantizedInput = [&](size_t s) { return read(data.input, s); };
  auto quantizedInputTarget = [&](size_t s) {
    return floatBlockOutput(quantizedInputTargets[s], quantizedInput, s,
                            last.targetSeconds);
  };
  // The block loss of output y of sequence s against `target` and, with
  // `gradient`, dL/dy. FlexRound and AdaRound: the squared error summed
  // over features and averaged over tokens. PTQ1.61: the reference's
  // MSE (mean over elements) and -log |mean row cosine| against `target`
  // and against the float block's output on the quantized-stream input.
  std::vector<float> termGradient;
  auto blockLoss = [&](size_t s, const HostTensor &y, const HostTensor &target,
                       float *gradient) {
    if (y.getType() != target.getType())
      fail(loc, "block reconstruction: the block's output does not have "
                "the target's shape");
    int64_t tokens = tokensOf(y);
    if (!salient)
      return nx::mseLoss(y.f32(), target.f32(), tokens, dim,
                         nx::Reduction::RowSumMean, gradient);
    HostTensor second = quantizedInputTarget(s);
    size_t count = size_t(tokens * dim);
    if (gradient)
      std::fill(gradient, gradient + count, 0.0f);
    termGradient.resize(count);
    float *term = gradient ? termGradient.data() : nullptr;
    auto addTerm = [&](double value) {
      if (gradient)
        for (size_t i = 0; i < count; ++i)
          gradient[i] += termGradient[i];
      return value;
    };
    double loss = 0;
    const HostTensor *targets[] = {&target, &second};
    for (const HostTensor *t : targets) {
      loss += addTerm(nx::mseLoss(y.f32(), t->f32(), tokens, dim,
                                  nx::Reduction::Mean, term));
      loss += addTerm(
          nx::negLogCosineLoss(y.f32(), t->f32(), tokens, dim, term));
    }
    return loss;
  };

  // The loss of one sequence's quantized-stream input against the float
  // block's output.
  auto sequenceLoss = [&](size_t s, HostTensor *output) {
    HostTensor y = forward(read(data.input, s));
    double loss = blockLoss(s, y, read(data.target, s), nullptr);
    if (output)
      *output = std::move(y);
    return loss;
  };
  size_t evaluated = options.evaluationSequences > 0
                         ? std::min<size_t>(options.evaluationSequences,
                                            data.sequences)
                         : data.sequences;
  // The mean loss (and prediction difference) over the evaluated
  // sequences; its calls count as evaluation, not as training steps.
  auto evaluate = [&](double &loss, double &prediction) {
    Clock::time_point begin = Clock::now();
    double forwardBefore = last.forwardSeconds,
           predictionBefore = last.predictionSeconds;
    loss = prediction = 0;
    for (size_t s = 0; s < evaluated; ++s) {
      HostTensor y;
      loss += sequenceLoss(s, &y) / double(evaluated);
      if (predicting)
        prediction += predictionDifference(s, y, nullptr, nullptr) /
                      double(evaluated);
    }
    last.forwardSeconds = forwardBefore;
    last.predictionSeconds = predictionBefore;
    last.evaluationSeconds += secondsSince(begin);
  };
  // AdaRound's soft rounding starts at h(V) = the fractional part, that is
  // at the float weight: its loss at round to nearest is that of the hard
  // rounding (h(+-10) is exactly 1 or 0), as it is measured at the end.
  auto hardenRounding = [&](bool hard) {
    if (options.method != LearnedRounding::AdaRound)
      return;
    size_t t = 0;
    for (LearnableLayer &layer : layers) {
      float *values = tail[trainedIndices[t++]].f32();
      const std::vector<float> &v = layer.trained[0];
      for (size_t j = 0; j < v.size(); ++j)
        values[j] = !hard ? v[j] : v[j] >= 0 ? 10.0f : -10.0f;
    }
  };
  hardenRounding(true);
  evaluate(last.initialLoss, last.initialPrediction);
  hardenRounding(false);

  // Adam on the trained tensors, their gradients averaged over a batch;
  // the clip ratios at their own learning rate.
  std::vector<nx::Parameter> parameters;
  for (HostTensor *t : trainedTensors) {
    gradients.emplace_back(t->numElements());
    parameters.push_back({"", t->f32(), nullptr, t->numElements()});
    last.trainableElements += t->numElements();
  }
  // `gradients` may have moved while it grew.
  for (size_t i = 0; i < parameters.size(); ++i)
    parameters[i].gradient = gradients[i].data();
  nx::AdamOptions adam, clipAdam;
  adam.learningRate = options.learningRate;
  clipAdam.learningRate = options.activationLearningRate;
  std::vector<nx::ParameterGroup> groups;
  if (salient) {
    // PTQ1.61: alpha at its learning rate, r1 and r2 at theirs.
    nx::AdamOptions rescale;
    rescale.learningRate = options.rescaleLearningRate;
    std::vector<nx::Parameter> scales, rescaling;
    for (size_t i = 0; i < roundingTensors; ++i)
      (i % 3 == 0 ? scales : rescaling).push_back(parameters[i]);
    groups.push_back({"binarization scales", adam, std::move(scales)});
    groups.push_back({"rescaling", rescale, std::move(rescaling)});
  } else if (codebook) {
    // AQLM: the row scales, and the codebooks through their words' gradient
    // (the words themselves are recomputed, not stepped).
    std::vector<nx::Parameter> scales, books;
    last.trainableElements = 0;
    for (LearnableLayer &layer : layers) {
      scales.push_back(parameters[layer.firstTrained]);
      last.trainableElements += scales.back().size;
      if (!layer.trainsCodebooks() || &layers[layer.codebookOwner] != &layer)
        continue;
      layer.codebookGradient.assign(layer.codes.codebooks.size(), 0.0f);
      books.push_back({"", layer.codes.codebooks.data(),
                       layer.codebookGradient.data(),
                       int64_t(layer.codes.codebooks.size())});
      last.trainableElements += books.back().size;
    }
    for (size_t i = firstGain; i < roundingTensors; ++i) {
      scales.push_back(parameters[i]);
      last.trainableElements += parameters[i].size;
    }
    groups.push_back({"row scales and norm gains", adam, std::move(scales)});
    if (!books.empty())
      groups.push_back({"codebooks", adam, std::move(books)});
  } else {
    groups.push_back(
        {"quantizers", adam,
         std::vector<nx::Parameter>(parameters.begin(),
                                    parameters.begin() + roundingTensors)});
  }
  if (learnsClips)
    groups.push_back(
        {"activation clips", clipAdam,
         std::vector<nx::Parameter>(parameters.begin() + roundingTensors,
                                    parameters.end())});
  nx::Adam optimizer(std::move(groups));
  last.optimizerStateBytes = optimizer.stateBytes();
  nx::Schedule schedule;
  // (PTQ1.61's reference keeps its learning rates constant.)
  schedule.kind =
      salient ? nx::Schedule::Kind::Constant : nx::Schedule::Kind::Cosine;
  schedule.totalSteps = std::max<int64_t>(iterations, 1);

  ::qnt::Xoshiro256 random(::qnt::hashCombine(options.seed, 0x626c6f636bULL));
  std::vector<size_t> order(data.sequences);
  for (size_t s = 0; s < order.size(); ++s)
    order[s] = s;
  size_t next = order.size();
  int64_t window = std::max<int64_t>(1, iterations / 50);
  double windowSum = 0, bestWindow = INFINITY, running = last.initialLoss;
  int64_t windowsWithoutGain = 0;
  float batchWeight = 1.0f / float(options.batchSequences);
  for (int64_t step = 0; step < iterations; ++step) {
    Clock::time_point stepStart = Clock::now();
    for (std::vector<float> &g : gradients)
      std::fill(g.begin(), g.end(), 0.0f);
    double loss = 0;
    for (int64_t b = 0; b < options.batchSequences; ++b) {
      if (next == order.size()) {
        random.shuffle(order);
        next = 0;
      }
      size_t s = order[next++];
      // The local squared error on the (mixed) input.
      HostTensor quantized = read(data.input, s);
      HostTensor x = mixing ? mixedInput(s, quantized) : quantized;
      HostTensor y = forward(x);
      HostTensor cotangent(y.getType());
      loss += blockLoss(s, y, targetOf(s), cotangent.f32()) * batchWeight;
      backward(x, std::move(cotangent), batchWeight);
      if (!predicting)
        continue;
      // The prediction difference of the output on the quantized input,
      // its gradient carried back through the rest of the float network.
      HostTensor pure = mixing ? forward(quantized) : y;
      std::vector<HostTensor> inputs;
      HostTensor logitsCotangent;
      loss += options.predictionWeight *
              predictionDifference(s, pure, &inputs, &logitsCotangent) *
              batchWeight;
      backward(quantized,
               predictBackward(inputs, std::move(logitsCotangent)),
               batchWeight);
    }
    if (options.method == LearnedRounding::AdaRound &&
        step >= int64_t(options.warmup * double(iterations))) {
      double beta =
          nx::annealedBeta(step + 1, iterations, options.betaStart,
                           options.betaEnd, options.warmup);
      std::vector<float> regularizer;
      for (size_t i = 0; i < roundingTensors; ++i) {
        regularizer.resize(gradients[i].size());
        loss += options.roundingWeight *
                nx::adaRoundRegularizer(trainedTensors[i]->f32(),
                                        trainedTensors[i]->numElements(), beta,
                                        regularizer.data());
        for (size_t j = 0; j < regularizer.size(); ++j)
          gradients[i][j] += float(options.roundingWeight) * regularizer[j];
      }
    }
    // A shared codebook's gradient is the sum of its layers' (each word is
    // in every sharing layer's weight).
    for (LearnableLayer &layer : layers)
      if (layer.trainsCodebooks() && &layers[layer.codebookOwner] == &layer)
        std::fill(layer.codebookGradient.begin(),
                  layer.codebookGradient.end(), 0.0f);
    for (LearnableLayer &layer : layers)
      if (layer.trainsCodebooks()) {
        std::vector<float> books = nx::codebookGradient(
            layer.codes, gradients[layer.firstTrained + 1].data());
        std::vector<float> &sum = layers[layer.codebookOwner].codebookGradient;
        for (size_t j = 0; j < books.size(); ++j)
          sum[j] += books[j];
      }
    optimizer.step(schedule.factor(step));
    for (LearnableLayer &layer : layers)
      if (layer.trainsCodebooks()) {
        layer.codes.codebooks = layers[layer.codebookOwner].codes.codebooks;
        std::vector<float> words = layer.codes.words();
        std::copy(words.begin(), words.end(),
                  trainedTensors[layer.firstTrained + 1]->f32());
      }
    // A clip ratio at or below 0 would divide by zero or flip the grid.
    for (size_t i = roundingTensors; i < trainedTensors.size(); ++i)
      trainedTensors[i]->f32()[0] =
          std::max(trainedTensors[i]->f32()[0], kMinimumClip);
    // AQLM's norm gains stay positive (they become input scales 1 / g).
    for (size_t i = firstGain; i < roundingTensors; ++i) {
      float *g = trainedTensors[i]->f32();
      for (int64_t j = 0; j < trainedTensors[i]->numElements(); ++j)
        g[j] = std::max(g[j], kMinimumColumnScale);
    }
    // PTQ1.61's column scales r2 (every layer's third tensor) stay positive.
    if (salient)
      for (size_t i = 2; i < roundingTensors; i += 3) {
        float *r2 = trainedTensors[i]->f32();
        for (int64_t j = 0; j < trainedTensors[i]->numElements(); ++j)
          r2[j] = std::max(r2[j], kMinimumColumnScale);
      }
    last.iterations = step + 1;
    last.stepSeconds.push_back(secondsSince(stepStart));
    running = step == 0 ? loss : 0.95 * running + 0.05 * loss;
    if (progress)
      progress(step + 1, iterations, running);
    windowSum += loss;
    if ((step + 1) % window == 0) {
      double mean = windowSum / double(window);
      windowSum = 0;
      if (mean < bestWindow * (1 - options.earlyStopTolerance)) {
        bestWindow = mean;
        windowsWithoutGain = 0;
      } else if (options.earlyStopPatience > 0 &&
                 ++windowsWithoutGain >= options.earlyStopPatience) {
        last.stoppedEarly = true;
        break;
      }
    }
  }

  // The tensors the optimizer updated, back into the layers; the final
  // loss is that of the baked rounding (AdaRound's soft rounding made hard:
  // h(+-10) is exactly 1 or 0).
  size_t t = 0;
  for (LearnableLayer &layer : layers)
    for (std::vector<float> &trained : layer.trained) {
      const float *values = trainedTensors[t++]->f32();
      std::copy(values, values + trained.size(), trained.begin());
    }
  for (size_t i = 0; i < gains.size(); ++i) {
    const float *values = trainedTensors[firstGain + i]->f32();
    std::copy(values, values + gains[i].channels, gains[i].values.begin());
  }
  hardenRounding(true);
  // AQLM: the scales as stored, in the block that measures the final loss.
  auto setCodebookTensors = [&] {
    for (LearnableLayer &layer : layers) {
      const std::vector<float> &s = layer.codes.scales;
      std::copy(s.begin(), s.end(), trainedTensors[layer.firstTrained]->f32());
      if (layer.trainsCodebooks()) {
        std::vector<float> words = layer.codes.words();
        std::copy(words.begin(), words.end(),
                  trainedTensors[layer.firstTrained + 1]->f32());
      }
    }
  };
  if (codebook) {
    for (LearnableLayer &layer : layers)
      storeCodebookScales(layer);
    setCodebookTensors();
  }
  evaluate(last.finalLoss, last.finalPrediction);
  // Fine-tuning keeps the method's result when it did not improve on it
  // (the step size was too large for this block).
  bool keptStart = codebook && !(last.finalLoss < last.initialLoss);
  if (keptStart) {
    for (LearnableLayer &layer : layers)
      layer.codes = layer.codebookStart->state;
    setCodebookTensors();
    for (size_t i = 0; i < gains.size(); ++i) {
      std::fill(gains[i].values.begin(), gains[i].values.end(), 1.0f);
      std::fill_n(trainedTensors[firstGain + i]->f32(), gains[i].channels,
                  1.0f);
    }
    for (size_t i = roundingTensors; i < trainedTensors.size(); ++i)
      trainedTensors[i]->f32()[0] = 1.0f; // the clip ratios' start
    last.finalLoss = last.initialLoss;
    last.finalPrediction = last.initialPrediction;
  }
  // The next block's quantized-stream inputs, as the trained block (its
  // activation quantization included) computes them.
  if (data.output)
    for (size_t s = 0; s < data.sequences; ++s)
      if (failed(data.output(s, forward(read(data.input, s)))))
        throw std::runtime_error("the block's outputs could not be stored");
  std::vector<nx::MethodResult> results;
  for (size_t i = 0; i < layers.size(); ++i) {
    results.push_back(bakeLayer(layers[i], settings[i].spec, options.method));
    if (learnsClips)
      results.back().activationClip =
          trainedTensors[roundingTensors + i]->f32()[0];
  }
  // AQLM's norm gains: each layer's input scale 1 / g, and the effective
  // weight W^ diag(g) that the quantized stream runs.
  for (const InputGain &gain : gains) {
    if (llvm::all_of(gain.values, [](float g) { return g == 1.0f; }))
      continue;
    for (size_t i : gain.layers) {
      nx::MethodResult &result = results[i];
      result.inputScale.resize(gain.channels);
      for (int64_t k = 0; k < gain.channels; ++k)
        result.inputScale[k] = 1.0f / gain.values[k];
      for (int64_t r = 0; r < layers[i].rows; ++r)
        for (int64_t k = 0; k < gain.channels; ++k)
          result.dequantized[r * gain.channels + k] *= gain.values[k];
    }
  }
  const char *startName = salient    ? "the starting point"
                          : codebook ? "the method's codes"
                                     : "round to nearest";
  results.front().remarks.push_back(
      llvm::formatv("block loss {0:E3} at {4}, {1:E3} after {2} "
                    "iterations{3}",
                    last.initialLoss, last.finalLoss, last.iterations,
                    last.stoppedEarly ? " (stopped early)" : "", startName)
          .str());
  if (keptStart)
    results.front().remarks.push_back(
        "training did not lower the block loss: the method's result is kept");
  if (predicting)
    results.front().remarks.push_back(
        llvm::formatv("prediction difference {0:E3} at {2}, {1:E3} after "
                      "training",
                      last.initialPrediction, last.finalPrediction, startName)
            .str());
  last.seconds = secondsSince(start);
  return results;
}

} // namespace qnt::ptq
