//===- BlockReconstruction.cpp - Learned rounding on a block's IR ---------===//
//
// See BlockReconstruction.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/ptq/BlockReconstruction.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/LinearLayers.h"
#include "passes/autodiff/Adjoint.h"
#include "qnt/ParamStore.h"
#include "qnt/numerics/Loss.h"
#include "qnt/numerics/Optimizer.h"
#include "qnt/support/Random.h"

#include "llvm/Support/FormatVariadic.h"

#include <chrono>
#include <cmath>
#include <cstring>
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

/// AdaRound's rectified sigmoid stretch (LearnedRounding.h).
constexpr double kZeta = 1.1, kGamma = -0.1;

/// One layer's learnable quantizer: its fixed and trained tensors.
struct LearnableLayer {
  const nx::WeightProblem *problem = nullptr;
  const nx::UniformSpec *spec = nullptr;
  int64_t rows = 0, cols = 0, groupSize = 0, groups = 0;
  mlir::qnt::LearnableWeightArgs args;
  /// The zero point z [N, G] as the quantizer clamps with it (-z..qmax-z).
  std::vector<float> zero;
  /// AdaRound's fixed scale s [N, G].
  std::vector<float> scale;
  /// The trained tensors in the order of args.trainable: FlexRound d1
  /// [N, G], D2 [N, K], d3 [N]; AdaRound V [N, K].
  std::vector<std::vector<float>> trained;

  int64_t groupOf(int64_t k) const { return k / groupSize; }
  double qmax() const { return double((int64_t(1) << spec->bits) - 1); }
};

/// Elements per group, 0 for one group per row; throws on what the
/// quantizers cannot express.
int64_t groupSizeOf(const nx::UniformSpec &spec, const std::string &name) {
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

/// Initializes `layer` from round to nearest's grid: FlexRound's d1 = log s
/// and D2 = d3 = 0, AdaRound's V where h(V) is the fractional part of W / s.
void initialize(LearnableLayer &layer, const nx::EncodingSpec &spec,
                LearnedRounding method) {
  const nx::WeightProblem &p = *layer.problem;
  nx::QuantParams grid = nx::rtnParams(spec, p.weight, p.rows, p.cols);
  int64_t n = layer.rows, k = layer.cols, g = layer.groups;
  float symmetricZero = float(int64_t(1) << (layer.spec->bits - 1));
  layer.zero.resize(n * g);
  for (int64_t i = 0; i < n * g; ++i)
    layer.zero[i] = layer.spec->symmetric ? symmetricZero : grid.zeros[i];
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
      double rest = double(x) - std::floor(double(x));
      v[r * k + c] = float(-std::log((kZeta - kGamma) / (rest - kGamma) - 1));
    }
  layer.trained = {std::move(v)};
}

/// The integer (relative to the zero point) the trained quantizer gives
/// element (r, c), as the IR computes it (float arithmetic), clamped.
float learnedCode(const LearnableLayer &layer, LearnedRounding method,
                  int64_t r, int64_t c) {
  int64_t k = layer.cols, gi = r * layer.groups + layer.groupOf(c);
  float w = layer.problem->weight[r * k + c], q;
  if (method == LearnedRounding::FlexRound) {
    float exponent = (layer.trained[0][gi] + layer.trained[1][r * k + c]) +
                     layer.trained[2][r];
    q = nx::roundHalfEven(w / std::exp(exponent));
  } else {
    // h(V) >= 1/2 exactly where V >= 0: round up there.
    q = std::floor(w / layer.scale[gi]) +
        (layer.trained[0][r * k + c] >= 0 ? 1.0f : 0.0f);
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
  for (int64_t i = 0; i < n * g; ++i)
    params.scales[i] = method == LearnedRounding::FlexRound
                           ? std::exp(layer.trained[0][i])
                           : layer.scale[i];
  if (!layer.spec->symmetric)
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
    mlir::qnt::LearnableWeightSpec spec{method, layer.spec->bits,
                                        layer.groupSize};
    FailureOr<mlir::qnt::LearnableWeightArgs> args =
        mlir::qnt::makeWeightLearnable(func, weightArg, spec);
    if (failed(args))
      throw std::runtime_error("the learnable quantizer could not be built");
    layer.args = *args;
    trainable.append(args->trainable.begin(), args->trainable.end());
  }
  return trainable;
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

  // The layers' quantizers, initialized at round to nearest.
  std::vector<LearnableLayer> layers(problems.size());
  for (size_t i = 0; i < problems.size(); ++i) {
    LearnableLayer &layer = layers[i];
    layer.problem = &problems[i];
    layer.spec = std::get_if<nx::UniformSpec>(&settings[i].spec);
    if (!layer.spec)
      throw std::invalid_argument("learned rounding supports integer grids");
    layer.rows = problems[i].rows;
    layer.cols = problems[i].cols;
    int64_t group = groupSizeOf(*layer.spec, problems[i].name);
    layer.groupSize = group ? group : layer.cols;
    layer.groups = llvm::divideCeil(layer.cols, layer.groupSize);
    initialize(layer, settings[i].spec, options.method);
  }

  // The block with its quantizers, and its adjoint, compiled.
  OwningOpRef<ModuleOp> module = model.clone();
  for (auto func : llvm::make_early_inc_range(module->getOps<func::FuncOp>()))
    if (func.getSymName() != blockFunction)
      func.erase();
  auto func = module->lookupSymbol<func::FuncOp>(blockFunction);
  if (!func)
    fail(loc, "block reconstruction: the model has no function @" +
                  blockFunction);
  SmallVector<unsigned> trainable =
      writeQuantizers(func, layers, options.method);
  std::string adjointName = blockFunction + "_adjoint";
  if (failed(mlir::qnt::buildAdjoint(func, trainable, adjointName)))
    throw std::runtime_error("the block's adjoint could not be built");
  unsigned fixedInputs = func.getNumArguments();
  unsigned numResults = func.getNumResults();
  FailureOr<mlir::qnt::ParamStore> store = mlir::qnt::ParamStore::open(*module);
  if (failed(store))
    throw std::runtime_error("the block's parameters could not be opened");
  FailureOr<std::unique_ptr<CompiledModule>> compiled =
      CompiledModule::compile(*module, {blockFunction, adjointName});
  if (failed(compiled) || failed((*compiled)->bindParams(*store, loc)))
    throw std::runtime_error("the block and its adjoint could not be "
                             "compiled");
  CompiledModule &code = **compiled;
  const runtime::EntrySignature *signature = code.signature(blockFunction);
  last.compileSeconds = secondsSince(start);

  // The call's arguments: x, position 0 and empty caches (any other
  // non-parameter argument of the block is refused), then the weights and
  // the quantizers' tensors in argument order.
  auto f32Type = [&](ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, Float32Type::get(model.getContext()));
  };
  std::vector<HostTensor> tail; // weights, then each layer's added tensors
  for (const LearnableLayer &layer : layers)
    tail.emplace_back(f32Type({layer.rows, layer.cols}),
                      layer.problem->weight);
  // Where in `tail` each trained tensor is, in `trainable` order.
  std::vector<size_t> trainedIndices;
  for (LearnableLayer &layer : layers) {
    size_t first = tail.size();
    auto addOwned = [&](ArrayRef<int64_t> shape, const std::vector<float> &v) {
      HostTensor t(f32Type(shape));
      std::copy(v.begin(), v.end(), t.f32());
      tail.push_back(std::move(t));
    };
    int64_t n = layer.rows, k = layer.cols, g = layer.groups;
    if (options.method == LearnedRounding::FlexRound) {
      addOwned({n, g}, layer.trained[0]);
      addOwned({n, k}, layer.trained[1]);
      addOwned({n}, layer.trained[2]);
      addOwned({n, g}, layer.zero);
    } else {
      addOwned({n, k}, layer.trained[0]);
      addOwned({n, g}, layer.scale);
      addOwned({n, g}, layer.zero);
    }
    size_t count = options.method == LearnedRounding::FlexRound ? 3 : 1;
    for (size_t i = 0; i < count; ++i)
      trainedIndices.push_back(first + i);
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

  int64_t dim = 0;
  auto callArgs = [&](const HostTensor &x) {
    int64_t tokens = x.getType().getDimSize(0);
    dim = x.getType().getDimSize(1);
    // Copies: a compiled function may write into its argument buffers, and
    // `x` may share its bytes with the calibration stream.
    auto copyOf = [](const HostTensor &t) {
      HostTensor copy(t.getType());
      std::memcpy(copy.data(), t.data(), t.numBytes());
      return copy;
    };
    std::vector<HostTensor> args;
    args.push_back(copyOf(x));
    args.emplace_back(signature->inputs[1]); // pos = 0
    for (int i = 2; i < 4; ++i)
      args.emplace_back(
          f32Type({tokens, signature->inputs[i].getDimSize(1)}));
    for (const HostTensor &t : tail)
      args.push_back(copyOf(t));
    return args;
  };
  auto resultTypes = [&](int64_t tokens) {
    SmallVector<RankedTensorType> types;
    for (RankedTensorType type : signature->results) {
      SmallVector<int64_t> shape(type.getShape());
      for (int64_t &d : shape)
        if (ShapedType::isDynamic(d))
          d = tokens;
      types.push_back(RankedTensorType::get(shape, type.getElementType()));
    }
    return types;
  };
  auto forward = [&](const HostTensor &x, HostTensor &y) {
    std::vector<HostTensor> results;
    Clock::time_point begin = Clock::now();
    if (failed(code.call(blockFunction, callArgs(x), results, loc,
                         resultTypes(x.getType().getDimSize(0)))))
      throw std::runtime_error("the block could not be run");
    last.forwardSeconds += secondsSince(begin);
    y = std::move(results[0]);
  };
  auto read = [&](const auto &source, size_t s) {
    FailureOr<HostTensor> tensor = source(s);
    if (failed(tensor))
      throw std::runtime_error("calibration data could not be read");
    return std::move(*tensor);
  };
  // The reconstruction loss of one sequence, and its gradient.
  auto sequenceLoss = [&](size_t s, HostTensor *gradient) {
    HostTensor x = read(data.input, s), target = read(data.target, s), y;
    forward(x, y);
    if (y.getType() != target.getType())
      fail(loc, "block reconstruction: the block's output does not have "
                "the target's shape");
    int64_t tokens = y.getType().getDimSize(0);
    if (gradient)
      *gradient = HostTensor(y.getType());
    return nx::mseLoss(y.f32(), target.f32(), tokens, dim,
                       nx::Reduction::RowSumMean,
                       gradient ? gradient->f32() : nullptr);
  };
  size_t evaluated = options.evaluationSequences > 0
                         ? std::min<size_t>(options.evaluationSequences,
                                            data.sequences)
                         : data.sequences;
  // (Its forward calls count as evaluation, not as training steps.)
  auto datasetLoss = [&] {
    Clock::time_point begin = Clock::now();
    double forwardBefore = last.forwardSeconds, sum = 0;
    for (size_t s = 0; s < evaluated; ++s)
      sum += sequenceLoss(s, nullptr);
    last.forwardSeconds = forwardBefore;
    last.evaluationSeconds += secondsSince(begin);
    return sum / double(evaluated);
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
  last.initialLoss = datasetLoss();
  hardenRounding(false);

  // Adam on the trained tensors, their gradients averaged over a batch.
  std::vector<std::vector<float>> gradients;
  std::vector<nx::Parameter> parameters;
  for (HostTensor *t : trainedTensors) {
    gradients.emplace_back(t->numElements());
    parameters.push_back({"", t->f32(), gradients.back().data(),
                          t->numElements()});
    last.trainableElements += t->numElements();
  }
  // `gradients` may have moved while it grew.
  for (size_t i = 0; i < parameters.size(); ++i)
    parameters[i].gradient = gradients[i].data();
  nx::AdamOptions adam;
  adam.learningRate = options.learningRate;
  nx::Adam optimizer({{"quantizers", adam, parameters}});
  last.optimizerStateBytes = optimizer.stateBytes();
  nx::Schedule schedule;
  schedule.kind = nx::Schedule::Kind::Cosine;
  schedule.totalSteps = std::max<int64_t>(options.iterations, 1);

  ::qnt::Xoshiro256 random(::qnt::hashCombine(options.seed, 0x626c6f636bULL));
  std::vector<size_t> order(data.sequences);
  for (size_t s = 0; s < order.size(); ++s)
    order[s] = s;
  size_t next = order.size();
  int64_t window = std::max<int64_t>(1, options.iterations / 50);
  double windowSum = 0, bestWindow = INFINITY, running = last.initialLoss;
  int64_t windowsWithoutGain = 0;
  for (int64_t step = 0; step < options.iterations; ++step) {
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
      HostTensor cotangent;
      loss += sequenceLoss(s, &cotangent) / double(options.batchSequences);
      // The adjoint: the arguments, then one cotangent per result (zero
      // for the caches).
      HostTensor x = read(data.input, s);
      std::vector<HostTensor> args = callArgs(x);
      SmallVector<RankedTensorType> types =
          resultTypes(x.getType().getDimSize(0));
      args.push_back(std::move(cotangent));
      for (unsigned r = 1; r < numResults; ++r)
        args.emplace_back(types[r]);
      std::vector<HostTensor> grads;
      Clock::time_point begin = Clock::now();
      if (failed(code.call(adjointName, args, grads, loc)))
        throw std::runtime_error("the block's adjoint could not be run");
      last.adjointSeconds += secondsSince(begin);
      float weight = 1.0f / float(options.batchSequences);
      for (size_t i = 0; i < gradients.size(); ++i) {
        const float *g = grads[i].f32();
        for (size_t j = 0; j < gradients[i].size(); ++j)
          gradients[i][j] += weight * g[j];
      }
    }
    if (options.method == LearnedRounding::AdaRound &&
        step >= int64_t(options.warmup * double(options.iterations))) {
      double beta =
          nx::annealedBeta(step + 1, options.iterations, options.betaStart,
                           options.betaEnd, options.warmup);
      std::vector<float> regularizer;
      for (size_t i = 0; i < trainedTensors.size(); ++i) {
        regularizer.resize(gradients[i].size());
        loss += options.roundingWeight *
                nx::adaRoundRegularizer(trainedTensors[i]->f32(),
                                        trainedTensors[i]->numElements(), beta,
                                        regularizer.data());
        for (size_t j = 0; j < regularizer.size(); ++j)
          gradients[i][j] += float(options.roundingWeight) * regularizer[j];
      }
    }
    optimizer.step(schedule.factor(step));
    last.iterations = step + 1;
    last.stepSeconds.push_back(secondsSince(stepStart));
    running = step == 0 ? loss : 0.95 * running + 0.05 * loss;
    if (progress)
      progress(step + 1, options.iterations, running);
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
  hardenRounding(true);
  last.finalLoss = datasetLoss();
  std::vector<nx::MethodResult> results;
  for (size_t i = 0; i < layers.size(); ++i)
    results.push_back(bake(layers[i], settings[i].spec, options.method));
  results.front().remarks.push_back(
      llvm::formatv("block loss {0:E3} at round to nearest, {1:E3} after {2} "
                    "iterations{3}",
                    last.initialLoss, last.finalLoss, last.iterations,
                    last.stoppedEarly ? " (stopped early)" : "")
          .str());
  last.seconds = secondsSince(start);
  return results;
}

} // namespace qnt::ptq
