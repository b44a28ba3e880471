//===- WeightMethodDriver.cpp - One driver for every weight method --------===//
//
// See WeightMethodDriver.h.
//
//===----------------------------------------------------------------------===//

#include "passes/ptq/WeightMethodDriver.h"
#include "passes/ptq/WeightMethodPass.h"
#include "passes/LinearLayers.h"
#include "passes/SmoothFolding.h"
#include "passes/Passes.h"
#include "qnt/bench/Report.h"
#include "qnt/ParamStore.h"
#include "qnt/import/LlamaImporter.h"
#include "qnt/io/Safetensors.h"
#include "qnt/io/StatisticsFile.h"
#include "qnt/numerics/Equalization.h"
#include "qnt/support/Progress.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

#include <nlohmann/json.hpp>

#include <chrono>

using namespace mlir;
using namespace mlir::qnt;
namespace nx = ::qnt::numerics;
namespace io = ::qnt::io;

namespace {

/// A matmul whose weight can be quantized, and where the weight comes from.
struct WeightSite {
  linalg::MatmulOp matmul;
  /// True for transpose-B matmuls, whose weight operand is already [N, K].
  bool weightIsNK;
  /// The arith.constant or qnt.param producing the weight.
  Operation *source;
  std::string name;
};

std::optional<WeightSite> weightSiteOf(const LinearLayer &layer) {
  auto matmul = dyn_cast<linalg::MatmulOp>(layer.op);
  if (!matmul)
    return std::nullopt;
  bool weightIsNK = isa<linalg::MatmulTransposeBOp>(layer.op);
  if (!weightIsNK && matmul.hasUserDefinedMaps())
    return std::nullopt;
  Operation *source = layer.weight.getDefiningOp();
  if (!source)
    return std::nullopt;
  if (auto constant = dyn_cast<arith::ConstantOp>(source)) {
    auto dense = dyn_cast<DenseFPElementsAttr>(constant.getValue());
    if (!dense || dense.getType().getRank() != 2)
      return std::nullopt;
  } else if (!isa<ParamOp>(source)) {
    return std::nullopt;
  }
  return WeightSite{matmul, weightIsNK, source, layer.name};
}

/// The activation operand of the site's matmul.
Value inputOf(const WeightSite &site) {
  return linalg::MatmulOp(site.matmul).getInputs()[0];
}

std::vector<float> constantValues(arith::ConstantOp constant) {
  std::vector<float> values;
  for (APFloat v :
       cast<DenseFPElementsAttr>(constant.getValue()).getValues<APFloat>()) {
    bool losesInfo;
    v.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &losesInfo);
    values.push_back(v.convertToFloat());
  }
  return values;
}

std::vector<float> transposed(const std::vector<float> &m, int64_t rows,
                              int64_t cols) {
  std::vector<float> t(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      t[c * rows + r] = m[r * cols + c];
  return t;
}

io::DType toFileDType(nx::DType dtype) {
  switch (dtype) {
  case nx::DType::I8:
    return io::DType::I8;
  case nx::DType::I16:
    return io::DType::I16;
  case nx::DType::I32:
    return io::DType::I32;
  case nx::DType::F16:
    return io::DType::F16;
  case nx::DType::F32:
    return io::DType::F32;
  }
  llvm_unreachable("unknown dtype");
}

/// Builds the spec of the grid fields of `g` (format, bits, granularity,
/// group size, symmetric), or returns a message saying what is wrong.
std::string buildSpec(const WeightMethodConfig &g, nx::EncodingSpec &spec) {
  nx::Granularity granularity;
  if (g.granularity == "per-tensor")
    granularity = nx::Granularity::PerTensor;
  else if (g.granularity == "per-channel")
    granularity = nx::Granularity::PerChannel;
  else if (g.granularity == "per-group")
    granularity = nx::Granularity::PerGroup;
  else
    return "unknown granularity '" + g.granularity +
           "'; expected per-tensor, per-channel or per-group";
  int64_t group = 0;
  if (granularity == nx::Granularity::PerGroup) {
    if (g.groupSize <= 0)
      return "group-size must be positive, got " + std::to_string(g.groupSize);
    group = g.groupSize;
  } else if (g.groupSizeGiven) {
    return "group-size is only meaningful with granularity=per-group";
  }
  if (g.format == "int") {
    if (g.bits < 2 || g.bits > 8)
      return "bits must be in 2..8, got " + std::to_string(g.bits);
    spec = nx::UniformSpec{int(g.bits), g.symmetric, granularity, group,
                           g.scaleStorage};
    return "";
  }
  struct MinifloatFormat {
    const char *name;
    int exponent, mantissa;
    nx::MinifloatSpecial special;
  };
  static constexpr MinifloatFormat kFormats[] = {
      {"e2m1", 2, 1, nx::MinifloatSpecial::Finite},
      {"e3m2", 3, 2, nx::MinifloatSpecial::Finite},
      {"e2m3", 2, 3, nx::MinifloatSpecial::Finite},
      {"e4m3", 4, 3, nx::MinifloatSpecial::Ocp},
      {"e5m2", 5, 2, nx::MinifloatSpecial::Ocp},
      // FP3: three bits with the sign (the minifloat paper's smallest).
      {"e1m1", 1, 1, nx::MinifloatSpecial::Finite},
      {"e2m0", 2, 0, nx::MinifloatSpecial::Finite}};
  for (const MinifloatFormat &f : kFormats) {
    if (g.format != f.name)
      continue;
    if (g.bitsGiven)
      return "bits is implied by format=" + g.format + " and cannot be given";
    if (g.symmetricGiven)
      return "minifloat formats are symmetric; symmetric cannot be given "
             "with format=" +
             g.format;
    spec = nx::MinifloatSpec{f.exponent, f.mantissa, f.special, granularity,
                             group, g.scaleStorage};
    return "";
  }
  return "unknown format '" + g.format +
         "'; expected int, e2m1, e3m2, e2m3, e4m3, e5m2, e1m1 or e2m0";
}

/// The group size of a per-group uniform or minifloat spec, else 0.
int64_t groupSizeOf(const nx::EncodingSpec &spec) {
  if (auto *u = std::get_if<nx::UniformSpec>(&spec))
    return u->granularity == nx::Granularity::PerGroup ? u->groupSize : 0;
  if (auto *m = std::get_if<nx::MinifloatSpec>(&spec))
    return m->granularity == nx::Granularity::PerGroup ? m->groupSize : 0;
  return 0;
}

nx::EncodingSpec withPerChannelScales(nx::EncodingSpec spec) {
  if (auto *u = std::get_if<nx::UniformSpec>(&spec)) {
    u->granularity = nx::Granularity::PerChannel;
    u->groupSize = 0;
  } else if (auto *m = std::get_if<nx::MinifloatSpec>(&spec)) {
    m->granularity = nx::Granularity::PerChannel;
    m->groupSize = 0;
  }
  return spec;
}

/// One parsed override: layers matching `pattern` get `values`.
struct Override {
  std::string text;
  std::unique_ptr<llvm::Regex> pattern;
  std::vector<std::pair<std::string, std::string>> values;
};

bool parseBool(StringRef text, bool &value) {
  if (text == "1" || text == "true") {
    value = true;
    return true;
  }
  if (text == "0" || text == "false") {
    value = false;
    return true;
  }
  return false;
}

} // namespace

/// Inputs already divided by an input scale in this group: (input, scale)
/// -> the qnt.smooth result, so that layers sharing an input and a scale
/// share one qnt.smooth.
using SmoothedInputs =
    std::vector<std::pair<std::pair<Value, std::vector<float>>, Value>>;

struct WeightMethodDriver::Impl {
  ModuleOp module;
  WeightMethodConfig config;
  std::string methodName;
  WeightMethod method;
  GroupMethod groupMethod;
  PlanMethod planMethod;
  /// Planning mode: the options of each layer, in the order seen.
  std::vector<std::pair<std::string, std::vector<LayerOption>>> planned;
  std::vector<Override> overrides;
  std::map<std::string, WeightSite> sites;
  std::set<std::string> done;
  bool readsParams = false;
  ParamStore store;
  io::SafetensorsWriter writer;
  llvm::StringSet<> writtenParams;
  std::chrono::steady_clock::time_point start =
      std::chrono::steady_clock::now();

  InFlightDiagnostic error(Location loc) {
    return emitError(loc) << config.passName << ": ";
  }

  LogicalResult parseOverrides();
  FailureOr<LayerSettings> settingsFor(const WeightSite &site);
  /// A weight read and checked, ready for its method.
  struct Prepared {
    const WeightSite *site = nullptr;
    ParamOp param;
    /// The weight parameter's name (empty for a constant weight): kept
    /// apart because the parameter op is erased once the matmul is
    /// rewritten.
    std::string paramName;
    std::vector<float> values; ///< W[rows][cols], the N x K orientation
    int64_t rows = 0, cols = 0;
    LayerSettings settings;
    const nx::LayerStatistics *stats = nullptr;
    std::chrono::steady_clock::time_point begin;
    /// LoRC factors, when configured.
    std::optional<nx::LowRankFactors> lowRank;
  };
  /// The weight, its settings and their checks (no statistics).
  FailureOr<Prepared> readWeight(const WeightSite &site);
  /// readWeight, then the layer's statistics and their checks.
  FailureOr<Prepared> prepare(const WeightSite &site,
                              const StatisticsMap *stats);
  LogicalResult commit(const Prepared &p, const nx::MethodResult &result,
                       LayerReport &report, SmoothedInputs &smoothed);
  LogicalResult quantizeSite(const WeightSite &site,
                             const StatisticsMap *stats, LayerReport &report,
                             nx::MethodResult &result);
  LogicalResult quantizeGroup(ArrayRef<const WeightSite *> group,
                              const StatisticsMap *stats,
                              ModuleEvaluator *evaluator,
                              BlockTrainer *trainer,
                              std::vector<LayerReport> &reports,
                              std::vector<nx::MethodResult> &results);
  /// A component as a constant, or as a tensor `<param>.<prefix><name>` of
  /// the output file when the weight is a parameter.
  FailureOr<Value> materialize(OpBuilder &b, Location loc,
                               const nx::Component &component,
                               StringRef paramName, StringRef prefix = "");
  /// The tensor `name` of the output file.
  FailureOr<Value> materializeNamed(OpBuilder &b, Location loc,
                                    const nx::Component &component,
                                    const std::string &name);
  /// Returns the matmul now computing the layer (it may be rebuilt).
  Operation *rewrite(const WeightSite &site, const nx::MethodResult &result,
                     ArrayRef<Value> components, int64_t rows, int64_t cols,
                     SmoothedInputs &smoothed);
  /// Planning mode: chooses among the planned options and records each
  /// choice on its matmul (kLayerSettingsAttrName).
  LogicalResult applyPlan(std::vector<LayerReport> &reports);
  /// LoRC: factors of the error W - Q(W) (config.lorcRank), added to the
  /// effective weight in `result`.
  void compensate(Prepared &p, nx::MethodResult &result);
  /// acc + (x V) U^T after `matmul`, with the factors stored as configured.
  LogicalResult emitLowRank(const Prepared &p, Operation *matmul, Value input,
                            Location loc);
  /// Bias correction (config.biasCorrection): acc + E[x] (W - Q)^T after
  /// `matmul`, the effective weight being `result`'s (LoRC included).
  LogicalResult emitBiasCorrection(const Prepared &p,
                                   const nx::MethodResult &result,
                                   Operation *matmul, Location loc);
  /// Activation quantization (config.actBits): a qnt.fake_quant of
  /// `matmul`'s input, its run-time scale multiplied by `clip` (when not 1).
  void emitActivationQuant(Operation *matmul, float clip, Location loc);
};

LogicalResult WeightMethodDriver::Impl::parseOverrides() {
  for (const std::string &text : config.overrides) {
    SmallVector<StringRef> parts;
    StringRef(text).split(parts, ':');
    if (parts.size() < 2)
      return module.emitError()
             << config.passName << ": override '" << text
             << "' must be REGEX:key=value[:key=value...]";
    Override o;
    o.text = text;
    o.pattern = std::make_unique<llvm::Regex>(parts[0]);
    std::string regexError;
    if (!o.pattern->isValid(regexError))
      return module.emitError()
             << config.passName << ": override '" << text
             << "': invalid pattern: " << regexError;
    for (StringRef kv : llvm::drop_begin(parts)) {
      auto [key, value] = kv.split('=');
      if (key.empty() || value.empty() || !kv.contains('='))
        return module.emitError()
               << config.passName << ": override '" << text << "': '" << kv
               << "' is not key=value";
      o.values.emplace_back(key.str(), value.str());
    }
    overrides.push_back(std::move(o));
  }
  return success();
}

FailureOr<LayerSettings>
WeightMethodDriver::Impl::settingsFor(const WeightSite &site) {
  WeightMethodConfig g = config;
  LayerSettings settings;
  // Applies one key=value to the grid or the method options; false on a
  // bad value.
  auto apply = [&](const std::string &key, const std::string &value) {
    int64_t number;
    if (key == "bits") {
      if (StringRef(value).getAsInteger(10, number))
        return false;
      g.bits = number;
      g.bitsGiven = true;
    } else if (key == "group-size") {
      if (StringRef(value).getAsInteger(10, number))
        return false;
      g.groupSize = number;
      g.groupSizeGiven = true;
      if (g.granularity != "per-group" && number > 0)
        g.granularity = "per-group";
    } else if (key == "granularity") {
      g.granularity = value;
      if (value != "per-group")
        g.groupSizeGiven = false;
    } else if (key == "symmetric") {
      if (!parseBool(value, g.symmetric))
        return false;
      g.symmetricGiven = true;
    } else if (key == "format") {
      g.format = value;
    } else if (key == "scale-type") {
      if (value != "f32" && value != "f16")
        return false;
      g.scaleStorage =
          value == "f16" ? nx::ScaleStorage::F16 : nx::ScaleStorage::F32;
    } else {
      settings.methodOptions[key] = value;
    }
    return true;
  };
  for (const Override &o : overrides) {
    if (!o.pattern->match(site.name))
      continue;
    for (const auto &entry : o.values)
      if (!apply(entry.first, entry.second))
        return error(site.source->getLoc())
               << "override '" << o.text << "': bad value '" << entry.second
               << "' for " << entry.first;
  }
  // A precision plan (qnt-mixed-precision) on the matmul comes last.
  if (auto plan = linalg::MatmulOp(site.matmul)->getAttrOfType<StringAttr>(
          kLayerSettingsAttrName)) {
    SmallVector<StringRef> parts;
    plan.getValue().split(parts, ':', -1, /*KeepEmpty=*/false);
    for (StringRef kv : parts) {
      auto [key, value] = kv.split('=');
      if (!kv.contains('=') || !apply(key.str(), value.str()))
        return error(site.source->getLoc())
               << "layer '" << site.name << "': bad " << kLayerSettingsAttrName
               << " entry '" << kv << "'";
    }
  }
  std::string problem = buildSpec(g, settings.spec);
  if (!problem.empty())
    return error(site.source->getLoc()) << "layer '" << site.name
                                        << "': " << problem;
  return settings;
}

FailureOr<Value>
WeightMethodDriver::Impl::materialize(OpBuilder &b, Location loc,
                                      const nx::Component &component,
                                      StringRef paramName, StringRef prefix) {
  const nx::ComponentLayout &layout = component.layout;
  auto type = RankedTensorType::get(
      layout.shape, elementTypeOf(b.getContext(), layout.dtype));
  if (paramName.empty()) {
    ArrayRef<char> raw(reinterpret_cast<const char *>(component.bytes.data()),
                       component.bytes.size());
    return arith::ConstantOp::create(
               b, loc, DenseElementsAttr::getFromRawBuffer(type, raw))
        .getResult();
  }
  return materializeNamed(b, loc, component,
                          (paramName + "." + prefix + layout.name).str());
}

FailureOr<Value>
WeightMethodDriver::Impl::materializeNamed(OpBuilder &b, Location loc,
                                           const nx::Component &component,
                                           const std::string &name) {
  const nx::ComponentLayout &layout = component.layout;
  auto type = RankedTensorType::get(
      layout.shape, elementTypeOf(b.getContext(), layout.dtype));
  // A parameter shared by several matmuls (a weight read twice, or a
  // method's shared component) has the same bytes each time; store it once.
  std::string message;
  if (writtenParams.insert(name).second &&
      !writer.add(name, toFileDType(layout.dtype), layout.shape,
                  component.bytes.data(), component.bytes.size(), &message))
    return error(loc) << message;
  return ParamOp::create(b, loc, type, name).getResult();
}

/// x[:, perm] as a linalg.generic that gathers columns (K static).
static Value gatherColumns(OpBuilder &b, Location loc, Value x,
                           ArrayRef<int32_t> perm) {
  auto type = cast<RankedTensorType>(x.getType());
  SmallVector<Value> dynamicSizes;
  if (type.isDynamicDim(0))
    dynamicSizes.push_back(tensor::DimOp::create(b, loc, x, 0));
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(),
                                       type.getElementType(), dynamicSizes);
  auto permType =
      RankedTensorType::get({int64_t(perm.size())}, b.getIntegerType(32));
  Value permValues = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(permType, perm));
  MLIRContext *ctx = b.getContext();
  AffineMap column = AffineMap::get(2, 0, getAffineDimExpr(1, ctx));
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{type}, ValueRange{permValues}, ValueRange{init},
      ArrayRef<AffineMap>{column, identity},
      ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                    utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value row = linalg::IndexOp::create(nb, nloc, 0);
        Value col = arith::IndexCastOp::create(nb, nloc, nb.getIndexType(),
                                               args[0]);
        Value v = tensor::ExtractOp::create(nb, nloc, x, ValueRange{row, col});
        linalg::YieldOp::create(nb, nloc, v);
      });
  return generic.getResult(0);
}

/// x / s as a qnt.smooth with constant factors, shared by the layers of a
/// group that divide the same input by the same s.
static Value
smoothInput(OpBuilder &b, Location loc, Value x, ArrayRef<float> scale,
            SmoothedInputs &smoothed) {
  for (const auto &[key, value] : smoothed)
    if (key.first == x && ArrayRef<float>(key.second) == scale)
      return value;
  // Right after x, so that it dominates each layer of the group, whatever
  // their order.
  OpBuilder::InsertionGuard guard(b);
  if (Operation *def = x.getDefiningOp())
    b.setInsertionPointAfter(def);
  else
    b.setInsertionPointToStart(cast<BlockArgument>(x).getOwner());
  Type element = cast<RankedTensorType>(x.getType()).getElementType();
  auto type = RankedTensorType::get({int64_t(scale.size())}, b.getF32Type());
  Value factors = arith::ConstantOp::create(
      b, loc, DenseElementsAttr::get(type, scale));
  if (!element.isF32())
    factors = arith::TruncFOp::create(
        b, loc, RankedTensorType::get(type.getShape(), element), factors);
  Value result = SmoothOp::create(b, loc, x.getType(), x, factors);
  smoothed.push_back({{x, std::vector<float>(scale.begin(), scale.end())},
                      result});
  return result;
}

Operation *WeightMethodDriver::Impl::rewrite(const WeightSite &site,
                                             const nx::MethodResult &result,
                                             ArrayRef<Value> components,
                                             int64_t rows, int64_t cols,
                                             SmoothedInputs &smoothed) {
  linalg::MatmulOp matmul = site.matmul;
  Location loc = site.source->getLoc();
  auto weightType = cast<RankedTensorType>(matmul.getInputs()[1].getType());
  OpBuilder b(matmul);
  // The dequantized weight takes the activation's element type: a bf16
  // checkpoint's weights dequantize to the f32 the matmul computes in,
  // without a detour through bf16 rounding.
  Value input = matmul.getInputs()[0];
  Type computeType = cast<RankedTensorType>(input.getType()).getElementType();
  auto nkType = RankedTensorType::get({rows, cols}, computeType);
  Value dequant = DequantOp::create(
      b, loc, nkType, encodingFromSpec(b.getContext(), result.spec),
      components);
  if (!site.weightIsNK) {
    Value init =
        tensor::EmptyOp::create(b, loc, weightType.getShape(), computeType);
    dequant = linalg::TransposeOp::create(b, loc, dequant, init,
                                          ArrayRef<int64_t>{1, 0})
                  .getResult()[0];
  }
  if (!result.inputPermutation.empty())
    input = gatherColumns(b, loc, input, result.inputPermutation);
  if (!result.inputScale.empty())
    input = smoothInput(b, loc, input, result.inputScale, smoothed);
  Operation *final = matmul;
  if (computeType == weightType.getElementType() &&
      result.inputPermutation.empty() && result.inputScale.empty()) {
    matmul->setOperand(1, dequant);
  } else {
    // A new input (gathered or smoothed), or a bf16/f16 weight in an f32
    // matmul, whose body extends its weight argument: the matmul is rebuilt.
    SmallVector<Value> inputs = {input, dequant};
    linalg::MatmulOp rebuilt =
        site.weightIsNK
            ? linalg::MatmulTransposeBOp::create(b, matmul.getLoc(),
                                                 matmul->getResultTypes(),
                                                 inputs, matmul.getOutputs())
            : linalg::MatmulOp::create(b, matmul.getLoc(),
                                       matmul->getResultTypes(), inputs,
                                       matmul.getOutputs());
    matmul->replaceAllUsesWith(rebuilt);
    matmul->erase();
    final = rebuilt;
  }
  if (site.source->use_empty())
    site.source->erase();
  return final;
}

LogicalResult
WeightMethodDriver::Impl::applyPlan(std::vector<LayerReport> &reports) {
  std::vector<std::vector<LayerOption>> options;
  for (const auto &entry : planned)
    options.push_back(entry.second);
  std::vector<int> choice;
  try {
    choice = planMethod.choose(options);
  } catch (const std::exception &e) {
    return module.emitError(config.passName + ": ") << e.what();
  }
  if (choice.size() != planned.size())
    return module.emitError(config.passName + ": the plan has ")
           << choice.size() << " choices for " << planned.size()
           << " layers";
  for (auto [index, entry] : llvm::enumerate(planned)) {
    const WeightSite &site = sites.at(entry.first);
    const LayerOption &chosen = entry.second.at(choice[index]);
    linalg::MatmulOp(site.matmul)
        ->setAttr(kLayerSettingsAttrName,
                  StringAttr::get(module.getContext(), chosen.settings));
    LayerReport report;
    report.name = entry.first;
    report.method = methodName;
    report.encoding = chosen.encoding;
    report.rows = chosen.rows;
    report.cols = chosen.cols;
    report.bitsPerWeight = double(chosen.bits) / double(chosen.rows * chosen.cols);
    report.relativeError = chosen.relativeLoss;
    report.errorOnInputs = true;
    report.remarks.push_back("plan: " + chosen.settings);
    reports.push_back(std::move(report));
  }
  return success();
}

void WeightMethodDriver::Impl::compensate(Prepared &p,
                                          nx::MethodResult &result) {
  if (config.lorcRank <= 0)
    return;
  std::vector<float> error(p.values.size());
  for (size_t i = 0; i < error.size(); ++i)
    error[i] = p.values[i] - result.dequantized[i];
  nx::LowRankOptions options;
  options.rank = std::min({config.lorcRank, p.rows, p.cols});
  options.format = config.lorcFactors;
  p.lowRank = nx::lowRankCompensation(error.data(), p.rows, p.cols, options);
  for (int64_t n = 0; n < p.rows; ++n)
    for (int64_t k = 0; k < p.cols; ++k)
      result.dequantized[n * p.cols + k] +=
          float(nx::lowRankEntry(*p.lowRank, n, k));
}

LogicalResult WeightMethodDriver::Impl::emitLowRank(const Prepared &p,
                                                    Operation *matmul,
                                                    Value input,
                                                    Location loc) {
  // `loc` is the weight's: its op is gone once the matmul is rewritten.
  const nx::LowRankFactors &f = *p.lowRank;
  OpBuilder b(matmul->getContext());
  b.setInsertionPointAfter(matmul);
  // One factor ([rows, rank]) as the configured storage.
  auto factor = [&](StringRef name, int64_t rows,
                    const std::vector<float> &values,
                    const std::vector<int8_t> &codes,
                    const std::vector<float> &scales) -> FailureOr<Value> {
    auto f32Type = RankedTensorType::get({rows, f.rank}, b.getF32Type());
    if (f.format == nx::FactorFormat::Int8) {
      // Per-row symmetric int8 is the uniform 8-bit symmetric per-channel
      // encoding: the factor is a qnt.dequant like any weight.
      nx::UniformSpec spec;
      spec.bits = 8;
      spec.symmetric = true;
      spec.granularity = nx::Granularity::PerChannel;
      nx::QuantParams params;
      params.scales = scales;
      std::vector<float> exact(codes.size());
      for (size_t i = 0; i < codes.size(); ++i)
        exact[i] = float(codes[i]) * scales[i / f.rank];
      nx::EncodedMatrix encoded =
          nx::quantizeWithParams(spec, params, exact.data(), rows, f.rank);
      SmallVector<Value> components;
      for (const nx::Component &component : encoded.components) {
        FailureOr<Value> value =
            materialize(b, loc, component, p.paramName, name.str() + ".");
        if (failed(value))
          return failure();
        components.push_back(*value);
      }
      return DequantOp::create(b, loc, f32Type,
                               encodingFromSpec(b.getContext(), spec),
                               components)
          .getResult();
    }
    if (f.format == nx::FactorFormat::F16) {
      // Stored as f16, widened to f32 where it is used.
      std::vector<uint16_t> halves;
      for (float v : values) {
        llvm::APFloat half(v);
        bool lost;
        half.convert(llvm::APFloat::IEEEhalf(),
                     llvm::APFloat::rmNearestTiesToEven, &lost);
        halves.push_back(uint16_t(half.bitcastToAPInt().getZExtValue()));
      }
      auto halfType = RankedTensorType::get({rows, f.rank}, b.getF16Type());
      Value stored;
      if (p.paramName.empty()) {
        ArrayRef<char> raw(reinterpret_cast<const char *>(halves.data()),
                           halves.size() * sizeof(uint16_t));
        stored = arith::ConstantOp::create(
            b, loc, DenseElementsAttr::getFromRawBuffer(halfType, raw));
      } else {
        std::string paramName = p.paramName + "." + name.str();
        std::string message;
        if (writtenParams.insert(paramName).second &&
            !writer.add(paramName, io::DType::F16, {rows, f.rank},
                        halves.data(), halves.size() * sizeof(uint16_t),
                        &message))
          return error(loc) << message;
        stored = ParamOp::create(b, loc, halfType, paramName);
      }
      // Widened elementwise as a linalg.generic, which every pipeline
      // bufferizes (an arith.extf on tensors is not).
      Value init = tensor::EmptyOp::create(b, loc, f32Type.getShape(),
                                           b.getF32Type());
      AffineMap identity = AffineMap::getMultiDimIdentityMap(2, b.getContext());
      auto widen = linalg::GenericOp::create(
          b, loc, TypeRange{f32Type}, ValueRange{stored}, ValueRange{init},
          ArrayRef<AffineMap>{identity, identity},
          ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                        utils::IteratorType::parallel},
          [&](OpBuilder &nb, Location nloc, ValueRange args) {
            linalg::YieldOp::create(
                nb, nloc,
                arith::ExtFOp::create(nb, nloc, nb.getF32Type(), args[0])
                    .getResult());
          });
      return widen.getResult(0);
    }
    nx::Component component;
    component.layout.name = name.str();
    component.layout.shape = {rows, f.rank};
    component.layout.dtype = nx::DType::F32;
    const auto *bytes = reinterpret_cast<const uint8_t *>(values.data());
    component.bytes.assign(bytes, bytes + values.size() * sizeof(float));
    return materialize(b, loc, component, p.paramName, "");
  };
  FailureOr<Value> u = factor("lorc_u", p.rows, f.u, f.uCodes, f.uScales);
  if (failed(u))
    return failure();
  FailureOr<Value> v = factor("lorc_v", p.cols, f.v, f.vCodes, f.vScales);
  if (failed(v))
    return failure();
  Value acc = matmul->getResult(0);
  auto add = LowRankAddOp::create(b, loc, acc.getType(), acc, input, *u, *v);
  acc.replaceAllUsesExcept(add.getResult(), add);
  return success();
}

LogicalResult WeightMethodDriver::Impl::emitBiasCorrection(
    const Prepared &p, const nx::MethodResult &result, Operation *matmul,
    Location loc) {
  if (!p.stats || p.stats->count == 0 ||
      int64_t(p.stats->sum.size()) != p.cols)
    return error(loc) << "bias-correction needs the mean input of layer '"
                      << p.site->name << "'; "
                      << (config.stats.empty()
                              ? std::string("no statistics were given")
                              : "the statistics file '" + config.stats +
                                    "' has none (write it again with "
                                    "quant-calibrate)");
  std::vector<float> bias = nx::biasCorrection(
      p.values.data(), result.dequantized.data(), p.rows, p.cols,
      p.stats->mean());
  OpBuilder b(matmul->getContext());
  b.setInsertionPointAfter(matmul);
  nx::Component component;
  component.layout = {"bias_correction", nx::DType::F32, {p.rows}};
  const auto *bytes = reinterpret_cast<const uint8_t *>(bias.data());
  component.bytes.assign(bytes, bytes + bias.size() * sizeof(float));
  FailureOr<Value> stored = materialize(b, loc, component, p.paramName);
  if (failed(stored))
    return failure();
  // acc[m, n] + bias[n] as a linalg.generic, which every pipeline lowers.
  // The uses to redirect are taken first: the generic's init reads acc's
  // dynamic sizes, which must keep reading acc.
  Value acc = matmul->getResult(0);
  SmallVector<OpOperand *> uses;
  for (OpOperand &use : acc.getUses())
    uses.push_back(&use);
  auto accType = cast<RankedTensorType>(acc.getType());
  Value init = tensor::EmptyOp::create(b, loc, tensor::getMixedSizes(b, loc, acc),
                                       accType.getElementType());
  MLIRContext *ctx = b.getContext();
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
  AffineMap column = AffineMap::get(2, 0, getAffineDimExpr(1, ctx));
  auto add = linalg::GenericOp::create(
      b, loc, TypeRange{accType}, ValueRange{acc, *stored}, ValueRange{init},
      ArrayRef<AffineMap>{identity, column, identity},
      ArrayRef<utils::IteratorType>{utils::IteratorType::parallel,
                                    utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value shift = args[1];
        if (args[0].getType() != shift.getType())
          shift = arith::TruncFOp::create(nb, nloc, args[0].getType(), shift);
        linalg::YieldOp::create(
            nb, nloc, arith::AddFOp::create(nb, nloc, args[0], shift).getResult());
      });
  for (OpOperand *use : uses)
    use->set(add.getResult(0));
  return success();
}

void WeightMethodDriver::Impl::emitActivationQuant(Operation *matmul,
                                                   float clip, Location loc) {
  // The matmul's own input (after any smoothing or gather) is what the
  // deployed kernel would quantize.
  OpBuilder b(matmul);
  Value in = matmul->getOperand(0);
  auto granularity = config.actPerToken ? ActivationGranularity::per_token
                                        : ActivationGranularity::per_tensor;
  Value clipValue;
  if (clip != 1.0f) {
    auto type = RankedTensorType::get({1}, b.getF32Type());
    clipValue = arith::ConstantOp::create(
        b, loc, type, DenseElementsAttr::get(type, clip));
  }
  Value quantized = FakeQuantOp::create(
      b, loc, in.getType(), in, /*scale=*/Value(), /*noise=*/Value(), clipValue,
      b.getI64IntegerAttr(config.actBits),
      ActivationGranularityAttr::get(b.getContext(), granularity));
  matmul->setOperand(0, quantized);
}

FailureOr<WeightMethodDriver::Impl::Prepared>
WeightMethodDriver::Impl::readWeight(const WeightSite &site) {
  Prepared p;
  p.site = &site;
  p.begin = std::chrono::steady_clock::now();
  linalg::MatmulOp matmul = site.matmul;
  auto weightType = cast<RankedTensorType>(matmul.getInputs()[1].getType());
  Location loc = site.source->getLoc();
  p.param = dyn_cast<ParamOp>(site.source);
  if (p.param)
    p.paramName = p.param.getName().str();
  std::string quotedName = "'" + site.name + "'";

  if (p.param) {
    FailureOr<std::vector<float>> read =
        store.readAsF32(loc, p.param.getName(), weightType);
    if (failed(read))
      return failure();
    p.values = std::move(*read);
    // The float copy is all we need; let the kernel drop the mapped pages.
    store.releasePages(p.param.getName());
  } else {
    p.values = constantValues(cast<arith::ConstantOp>(site.source));
  }
  p.rows = weightType.getDimSize(0);
  p.cols = weightType.getDimSize(1);
  if (!site.weightIsNK) {
    p.values = transposed(p.values, p.rows, p.cols);
    std::swap(p.rows, p.cols);
  }
  int64_t rows = p.rows, cols = p.cols;

  FailureOr<LayerSettings> settings = settingsFor(site);
  if (failed(settings))
    return failure();
  p.settings = std::move(*settings);
  if (int64_t group = groupSizeOf(p.settings.spec);
      group > 0 && cols % group != 0) {
    if (config.indivisibleGroups == "error")
      return matmul.emitOpError()
             << config.passName << ": group size " << group
             << " does not divide K = " << cols << " of layer " << quotedName
             << " (indivisible-groups=error)";
    if (config.indivisibleGroups == "per-channel") {
      p.settings.spec = withPerChannelScales(p.settings.spec);
      mlir::emitRemark(loc) << config.passName << ": " << quotedName
                            << ": group size " << group
                            << " does not divide K = " << cols
                            << "; quantized per channel";
    }
  }
  std::string problem = nx::verifySpec(p.settings.spec, rows, cols);
  if (!problem.empty())
    return matmul.emitOpError()
           << config.passName << " cannot store its " << rows << "x" << cols
           << " weight " << quotedName << " as "
           << nx::describe(p.settings.spec) << ": " << problem;
  return p;
}

FailureOr<WeightMethodDriver::Impl::Prepared>
WeightMethodDriver::Impl::prepare(const WeightSite &site,
                                  const StatisticsMap *stats) {
  FailureOr<Prepared> read = readWeight(site);
  if (failed(read))
    return failure();
  Prepared &p = *read;
  Location loc = site.source->getLoc();
  std::string quotedName = "'" + site.name + "'";
  const int64_t cols = p.cols;
  if (stats) {
    auto it = stats->find(site.name);
    if (it != stats->end())
      p.stats = &it->second;
  }
  if (!p.stats && config.needsStatistics)
    return error(loc) << "no statistics for layer " << quotedName
                      << (config.stats.empty()
                              ? std::string(
                                    "; give stats=<file> from quant-calibrate")
                              : " in '" + config.stats + "'");
  if (p.stats && p.stats->channels != cols)
    return error(loc) << "the statistics of layer " << quotedName << " have "
                      << p.stats->channels << " input channels; its weight "
                      << "has K = " << cols;
  return p;
}

LogicalResult WeightMethodDriver::Impl::commit(const Prepared &p,
                                               const nx::MethodResult &result,
                                               LayerReport &report,
                                               SmoothedInputs &smoothed) {
  const WeightSite &site = *p.site;
  Location loc = site.source->getLoc();
  std::string quotedName = "'" + site.name + "'";
  for (const std::string &remark : result.remarks)
    mlir::emitRemark(loc) << config.passName << ": " << quotedName << ": "
                          << remark;
  if (!result.inputScale.empty() &&
      (!result.inputPermutation.empty() ||
       int64_t(result.inputScale.size()) != p.cols))
    return linalg::MatmulOp(site.matmul).emitOpError()
           << config.passName << ": the method returned an input scale of "
           << result.inputScale.size() << " entries for K = " << p.cols
           << (result.inputPermutation.empty() ? "" : " with a permutation");

  OpBuilder b(site.matmul);
  SmallVector<Value> components;
  // Shared components are stored once, as a parameter, and charged their
  // share instead of their size; a constant weight's components are
  // constants of its own, charged whole.
  double sharedBits = 0, chargedBits = 0;
  std::vector<const std::string *> sharedNames(
      result.encoded.components.size(), nullptr);
  for (const nx::MethodResult::SharedComponent &shared :
       result.sharedComponents) {
    if (shared.index >= sharedNames.size() || shared.name.empty())
      return linalg::MatmulOp(site.matmul).emitOpError()
             << config.passName << ": the method shared component "
             << shared.index << " of " << sharedNames.size();
    if (p.paramName.empty())
      continue;
    sharedNames[shared.index] = &shared.name;
    sharedBits += 8.0 * double(result.encoded.components[shared.index]
                                   .bytes.size());
    chargedBits += shared.chargedBits;
  }
  for (size_t i = 0; i < result.encoded.components.size(); ++i) {
    const nx::Component &component = result.encoded.components[i];
    FailureOr<Value> value =
        sharedNames[i] ? materializeNamed(b, loc, component, *sharedNames[i])
                       : materialize(b, loc, component, p.paramName);
    if (failed(value))
      return failure();
    components.push_back(*value);
  }

  report.name = site.name;
  report.method = methodName;
  report.encoding = nx::describe(result.spec);
  report.rows = p.rows;
  report.cols = p.cols;
  report.bitsPerWeight =
      nx::bitsPerWeight(result.spec, p.rows, p.cols) +
      (double(result.extraStorageBits) - sharedBits + chargedBits) /
          double(p.rows * p.cols);
  if (result.extraStorageBits > 0)
    report.encoding += " + input scale";
  for (size_t i = 0; i < sharedNames.size(); ++i)
    if (sharedNames[i])
      report.encoding +=
          " shared " + result.encoded.components[i].layout.name;
  report.remarks = result.remarks;
  if (p.stats && p.stats->count > 0 && p.stats->hessian.size()) {
    report.relativeError = nx::relativeOutputError(
        p.values.data(), result.dequantized.data(), p.rows, p.cols,
        p.stats->fullHessian());
    report.errorOnInputs = true;
  } else {
    report.relativeError = nx::relativeWeightError(
        p.values.data(), result.dequantized.data(), p.rows, p.cols);
  }
  if (config.biasCorrection) {
    report.bitsPerWeight += 32.0 / double(p.cols); // one f32 per row
    report.encoding += " + bias";
  }
  if (config.actBits > 0)
    report.encoding += " a" + std::to_string(config.actBits);
  if (config.actBits > 0 && result.activationClip != 1.0f)
    report.encoding +=
        llvm::formatv(" (clip {0:F3})", result.activationClip).str();
  if (p.lowRank) {
    report.bitsPerWeight +=
        double(nx::lowRankStorageBits(p.rows, p.cols, p.lowRank->rank,
                                      p.lowRank->format)) /
        double(p.rows * p.cols);
    report.encoding += " + lorc r" + std::to_string(p.lowRank->rank) +
                       (p.lowRank->format == nx::FactorFormat::Int8  ? " int8"
                        : p.lowRank->format == nx::FactorFormat::F16 ? " f16"
                                                                     : " f32");
  }
  // The correction reads the layer's own input, before any gather or
  // smoothing (its factors live in the original column order).
  Value input = inputOf(site);
  Operation *matmul = rewrite(site, result, components, p.rows, p.cols,
                              smoothed);
  // The plan has been followed.
  matmul->removeAttr(kLayerSettingsAttrName);
  if (config.actBits > 0)
    emitActivationQuant(matmul, result.activationClip, loc);
  // The bias goes first so that LoRC's add lands between the matmul and it.
  if (config.biasCorrection &&
      failed(emitBiasCorrection(p, result, matmul, loc)))
    return failure();
  if (p.lowRank && failed(emitLowRank(p, matmul, input, loc)))
    return failure();
  report.seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - p.begin)
                       .count();
  return success();
}

LogicalResult WeightMethodDriver::Impl::quantizeSite(
    const WeightSite &site, const StatisticsMap *stats, LayerReport &report,
    nx::MethodResult &result) {
  FailureOr<Prepared> p = prepare(site, stats);
  if (failed(p))
    return failure();
  nx::WeightProblem weightProblem{site.name, p->values.data(), p->rows,
                                  p->cols, p->stats};
  try {
    result = method(p->settings, weightProblem);
    compensate(*p, result);
  } catch (const std::exception &e) {
    return linalg::MatmulOp(site.matmul).emitOpError()
           << config.passName << " cannot quantize '" << site.name
           << "': " << e.what();
  }
  SmoothedInputs smoothed;
  return commit(*p, result, report, smoothed);
}

LogicalResult WeightMethodDriver::Impl::quantizeGroup(
    ArrayRef<const WeightSite *> group, const StatisticsMap *stats,
    ModuleEvaluator *evaluator, BlockTrainer *trainer,
    std::vector<LayerReport> &reports,
    std::vector<nx::MethodResult> &results) {
  std::vector<Prepared> prepared;
  for (const WeightSite *site : group) {
    FailureOr<Prepared> p = prepare(*site, stats);
    if (failed(p))
      return failure();
    prepared.push_back(std::move(*p));
  }
  std::vector<LayerSettings> settings;
  std::vector<nx::WeightProblem> problems;
  for (const Prepared &p : prepared) {
    settings.push_back(p.settings);
    problems.push_back({p.site->name, p.values.data(), p.rows, p.cols,
                        p.stats});
  }
  GroupContext context;
  context.trainer = trainer;
  // Foldable when the producer can absorb a scale and the group is all
  // that reads the input's values.
  Value input = inputOf(*group.front());
  std::optional<SmoothFoldSite> foldSite = findSmoothFoldSite(input);
  if (foldSite)
    context.channelClass.assign(foldSite->rowOfChannel.begin(),
                                foldSite->rowOfChannel.end());
  context.inputScaleFoldable =
      foldSite.has_value() &&
      llvm::all_of(input.getUsers(), [&](Operation *user) {
        return isa<tensor::DimOp>(user) ||
               llvm::any_of(group, [&](const WeightSite *site) {
                 return linalg::MatmulOp(site->matmul).getOperation() == user;
               });
      });
  if (evaluator)
    context.moduleLoss = [&](const std::vector<std::vector<float>> &weights) {
      // Candidates in, measure, the float weights back.
      bool bound = true;
      for (size_t i = 0; i < prepared.size() && bound; ++i)
        bound = succeeded(evaluator->bind(prepared[i].site->name, weights[i],
                                          prepared[i].rows, prepared[i].cols));
      FailureOr<double> loss =
          bound ? evaluator->loss() : FailureOr<double>(failure());
      for (size_t i = 0; i < prepared.size(); ++i)
        bound &= succeeded(evaluator->bind(prepared[i].site->name,
                                           prepared[i].values, prepared[i].rows,
                                           prepared[i].cols));
      if (!bound || failed(loss))
        throw std::runtime_error("the module it feeds could not be run");
      return *loss;
    };
  Operation *anchor = group.front()->matmul;
  try {
    results = groupMethod(settings, problems, context);
    if (results.size() == group.size())
      for (size_t i = 0; i < group.size(); ++i)
        compensate(prepared[i], results[i]);
  } catch (const std::exception &e) {
    std::string names;
    for (const WeightSite *site : group)
      names += (names.empty() ? "'" : ", '") + site->name + "'";
    return anchor->emitOpError()
           << config.passName << " cannot quantize " << names << ": "
           << e.what();
  }
  if (results.size() != group.size())
    return anchor->emitOpError()
           << config.passName << ": the method returned " << results.size()
           << " results for " << group.size() << " layers";
  SmoothedInputs smoothed;
  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - prepared[0].begin)
                       .count();
  for (size_t i = 0; i < group.size(); ++i) {
    LayerReport report;
    if (failed(commit(prepared[i], results[i], report, smoothed)))
      return failure();
    // The group was one computation; each layer gets its share.
    report.seconds = seconds / group.size();
    reports.push_back(std::move(report));
  }
  return success();
}

WeightMethodDriver::WeightMethodDriver(std::unique_ptr<Impl> impl)
    : impl(std::move(impl)) {}
WeightMethodDriver::~WeightMethodDriver() = default;

FailureOr<std::unique_ptr<WeightMethodDriver>>
WeightMethodDriver::create(ModuleOp module, WeightMethodConfig config,
                           std::string methodName, WeightMethod method) {
  auto impl = std::make_unique<Impl>();
  impl->method = std::move(method);
  return create(std::move(impl), module, std::move(config),
                std::move(methodName));
}

FailureOr<std::unique_ptr<WeightMethodDriver>>
WeightMethodDriver::create(ModuleOp module, WeightMethodConfig config,
                           std::string methodName, GroupMethod method) {
  auto impl = std::make_unique<Impl>();
  impl->groupMethod = std::move(method);
  return create(std::move(impl), module, std::move(config),
                std::move(methodName));
}

const WeightMethodConfig &WeightMethodDriver::config() const {
  return impl->config;
}

FailureOr<std::unique_ptr<WeightMethodDriver>>
WeightMethodDriver::create(ModuleOp module, WeightMethodConfig config,
                           std::string methodName, PlanMethod method) {
  auto impl = std::make_unique<Impl>();
  impl->planMethod = std::move(method);
  return create(std::move(impl), module, std::move(config),
                std::move(methodName));
}

bool WeightMethodDriver::plans() const {
  return bool(impl->planMethod.options);
}

bool WeightMethodDriver::quantizesGroups() const {
  return bool(impl->groupMethod);
}

ModuleEvaluator::~ModuleEvaluator() = default;
BlockTrainer::~BlockTrainer() = default;

FailureOr<std::unique_ptr<WeightMethodDriver>>
WeightMethodDriver::create(std::unique_ptr<Impl> impl, ModuleOp module,
                           WeightMethodConfig config, std::string methodName) {
  impl->module = module;
  impl->methodName = std::move(methodName);
  const std::string pass = config.passName;
  if (config.indivisibleGroups != "ragged" &&
      config.indivisibleGroups != "error" &&
      config.indivisibleGroups != "per-channel")
    return module.emitError(pass + ": unknown indivisible-groups '")
           << config.indivisibleGroups
           << "'; expected ragged, per-channel or error";
  if (config.biasCorrection)
    config.needsStatistics = true;
  if (config.actBits != 0 && (config.actBits < 2 || config.actBits > 16))
    return module.emitError(pass + ": act-bits must be 0 or in 2..16, got ")
           << config.actBits;
  if (config.lorcRank < 0)
    return module.emitError(pass + ": lorc-rank must be >= 0, got ")
           << config.lorcRank;
  nx::EncodingSpec checked;
  std::string problem = buildSpec(config, checked);
  if (!problem.empty())
    return module.emitError(pass + ": ") << problem;
  impl->config = std::move(config);
  if (failed(impl->parseOverrides()))
    return failure();
  std::unique_ptr<llvm::Regex> selection;
  if (!impl->config.layers.empty()) {
    selection = std::make_unique<llvm::Regex>(impl->config.layers);
    std::string regexError;
    if (!selection->isValid(regexError))
      return module.emitError(pass + ": invalid layers pattern '")
             << impl->config.layers << "': " << regexError;
  }

  // On an imported model the classifier (in @head) stays float unless asked
  // for, as in every reference tool.
  bool isModel = bool(module->getAttr(kModelAttrName));
  std::vector<std::string> names;
  module.walk([&](func::FuncOp func) {
    bool inHead = isModel && func.getSymName() == "head";
    for (const LinearLayer &layer : collectLinearLayers(func)) {
      std::optional<WeightSite> site = weightSiteOf(layer);
      if (!site)
        continue;
      if (inHead && !impl->config.quantizeHead)
        continue;
      if (selection && !selection->match(site->name))
        continue;
      if (impl->sites.count(site->name))
        continue; // a shared weight is one layer
      names.push_back(site->name);
      impl->sites.emplace(site->name, *site);
    }
  });
  if (!impl->config.layers.empty() && names.empty())
    return module.emitError(pass + ": layers pattern '")
           << impl->config.layers << "' selects no weight";

  impl->readsParams = llvm::any_of(impl->sites, [](const auto &entry) {
    return isa<ParamOp>(entry.second.source);
  });
  // A plan writes no weights.
  bool writesWeights = !impl->planMethod.options;
  if (impl->readsParams && writesWeights && impl->config.output.empty())
    return module.emitError(pass + ": weights come from qnt.param; give "
                                   "output=<file.safetensors> for the "
                                   "quantized parameters");
  if (impl->readsParams) {
    FailureOr<ParamStore> opened = ParamStore::open(module);
    if (failed(opened))
      return failure();
    impl->store = std::move(*opened);
    if (writesWeights && impl->store.isOpenFile(impl->config.output))
      return module.emitError(pass + ": output '")
             << impl->config.output << "' is one of the input parameter "
             << "files; quantized weights go to a new file";
    // Quantized components go to disk as they are produced, so that memory
    // holds one weight at a time whatever the model size.
    llvm::SmallString<256> dir(impl->config.output);
    llvm::sys::path::remove_filename(dir);
    std::string message;
    if (writesWeights &&
        !impl->writer.setSpillDirectory(dir.empty() ? "." : dir.str().str(),
                                        &message))
      return module.emitError(pass + ": ") << message;
  }
  auto driver =
      std::unique_ptr<WeightMethodDriver>(new WeightMethodDriver(std::move(impl)));
  driver->names = std::move(names);
  return driver;
}

LogicalResult WeightMethodDriver::quantize(
    ArrayRef<std::string> layers, const StatisticsMap *stats,
    const std::function<void(const std::string &, const nx::MethodResult &)>
        &onResult,
    ModuleEvaluator *evaluator, BlockTrainer *trainer) {
  std::vector<const WeightSite *> pending;
  for (const std::string &name : layers) {
    auto it = impl->sites.find(name);
    if (it == impl->sites.end())
      return impl->module.emitError(impl->config.passName + ": no layer '")
             << name << "' among the selected weights";
    if (impl->done.insert(name).second)
      pending.push_back(&it->second);
  }
  if (impl->planMethod.options) {
    for (const WeightSite *site : pending) {
      FailureOr<Impl::Prepared> p = impl->prepare(*site, stats);
      if (failed(p))
        return failure();
      nx::WeightProblem problem{site->name, p->values.data(), p->rows,
                                p->cols, p->stats};
      std::function<double(const std::vector<float> &)> moduleLoss;
      if (evaluator)
        moduleLoss = [&](const std::vector<float> &weight) {
          // The candidate in, measure, the float weight back.
          bool bound =
              succeeded(evaluator->bind(site->name, weight, p->rows, p->cols));
          FailureOr<double> loss =
              bound ? evaluator->loss() : FailureOr<double>(failure());
          bound &= succeeded(
              evaluator->bind(site->name, p->values, p->rows, p->cols));
          if (!bound || failed(loss))
            throw std::runtime_error("the module it feeds could not be run");
          return *loss;
        };
      try {
        impl->planned.push_back(
            {site->name,
             impl->planMethod.options(p->settings, problem, moduleLoss)});
      } catch (const std::exception &e) {
        return linalg::MatmulOp(site->matmul).emitOpError()
               << impl->config.passName << " cannot plan '" << site->name
               << "': " << e.what();
      }
      if (impl->planned.back().second.empty())
        return linalg::MatmulOp(site->matmul).emitOpError()
               << impl->config.passName << ": no option fits layer '"
               << site->name << "'";
    }
    return success();
  }
  if (!impl->groupMethod) {
    for (const WeightSite *site : pending) {
      LayerReport report;
      nx::MethodResult result;
      if (failed(impl->quantizeSite(*site, stats, report, result)))
        return failure();
      layerReports.push_back(std::move(report));
      if (onResult)
        onResult(site->name, result);
    }
    return success();
  }
  // Groups: the pending layers that share an input value, in order of
  // their first layer.
  std::vector<std::vector<const WeightSite *>> groups;
  for (const WeightSite *site : pending) {
    if (impl->config.groupsAreBlocks) {
      if (groups.empty())
        groups.emplace_back();
      groups.front().push_back(site);
      continue;
    }
    Value input = inputOf(*site);
    auto same = llvm::find_if(groups, [&](const auto &group) {
      return inputOf(*group.front()) == input;
    });
    if (same != groups.end())
      same->push_back(site);
    else
      groups.push_back({site});
  }
  for (const auto &group : groups) {
    std::vector<nx::MethodResult> results;
    if (failed(impl->quantizeGroup(group, stats, evaluator, trainer,
                                   layerReports, results)))
      return failure();
    if (onResult)
      for (size_t i = 0; i < group.size(); ++i)
        onResult(group[i]->name, results[i]);
  }
  return success();
}

GroupMethod
mlir::qnt::blockReconstructionMethod(ReconstructionOptions options) {
  return [options](ArrayRef<LayerSettings> settings,
                   ArrayRef<nx::WeightProblem> problems,
                   const GroupContext &context) {
    if (!context.trainer)
      throw std::invalid_argument(
          "it trains each transformer block on calibration data; run it "
          "block by block with quant-compile --recipe (docs/Recipes.md)");
    for (const LayerSettings &layer : settings) {
      if (!layer.methodOptions.empty())
        throw std::invalid_argument(
            "no per-layer option '" +
            layer.methodOptions.begin()->getKey().str() + "'");
      // (PTQ1.61 makes its own encoding.)
      if (options.method != LearnedRounding::SalientBinarization &&
          !std::holds_alternative<nx::UniformSpec>(layer.spec) &&
          !std::holds_alternative<nx::MinifloatSpec>(layer.spec))
        throw std::invalid_argument(
            "learned rounding supports integer and minifloat grids; " +
            nx::describe(layer.spec) + " is not one");
    }
    return context.trainer->train(settings, problems, options);
  };
}

nlohmann::json mlir::qnt::reportJson(const LayerReport &r) {
  return {{"name", r.name},
          {"method", r.method},
          {"encoding", r.encoding},
          {"rows", r.rows},
          {"cols", r.cols},
          {"bits_per_weight", r.bitsPerWeight},
          {"relative_error", r.relativeError},
          {"error_on_inputs", r.errorOnInputs},
          {"seconds", r.seconds},
          {"remarks", r.remarks}};
}

FailureOr<StatisticsMap> mlir::qnt::readStatistics(ModuleOp module,
                                                   StringRef passName,
                                                   StringRef path) {
  io::StatisticsFile file;
  std::string message;
  if (!io::readStatisticsFile(path.str(), file, &message))
    return module.emitError(passName + ": ") << message;
  return std::move(file.layers);
}

LogicalResult WeightMethodDriver::visitWeights(
    llvm::function_ref<LogicalResult(const LayerSettings &,
                                     const nx::WeightProblem &, Location)>
        visit) {
  for (const std::string &name : names) {
    const WeightSite &site = impl->sites.at(name);
    FailureOr<Impl::Prepared> p = impl->readWeight(site);
    if (failed(p))
      return failure();
    nx::WeightProblem problem{name, p->values.data(), p->rows, p->cols,
                              nullptr};
    if (failed(visit(p->settings, problem, site.source->getLoc())))
      return failure();
  }
  return success();
}

LogicalResult WeightMethodDriver::run() {
  StatisticsMap stats;
  bool haveStats = !impl->config.stats.empty();
  if (haveStats) {
    FailureOr<StatisticsMap> read = readStatistics(
        impl->module, impl->config.passName, impl->config.stats);
    if (failed(read))
      return failure();
    stats = std::move(*read);
  }
  // Progress is shown here, per layer; the sequential driver shows its own.
  std::unique_ptr<::qnt::Progress> progress;
  if (impl->config.verbose)
    progress = std::make_unique<::qnt::Progress>(impl->config.passName,
                                                 names.size());
  if (impl->groupMethod) {
    if (progress)
      progress->update(0, "groups of layers sharing an input");
    if (failed(quantize(names, haveStats ? &stats : nullptr)))
      return failure();
  } else {
    for (auto [index, name] : llvm::enumerate(names)) {
      if (progress)
        progress->update(index, name);
      if (failed(quantize(name, haveStats ? &stats : nullptr)))
        return failure();
    }
  }
  if (progress)
    progress->finish();
  return finish();
}

LogicalResult WeightMethodDriver::finish() {
  const WeightMethodConfig &config = impl->config;
  if (impl->planMethod.options && failed(impl->applyPlan(layerReports)))
    return failure();
  if (impl->readsParams && !impl->planMethod.options) {
    impl->writer.setMetadata("producer", "quant-mlir " + config.passName);
    std::string message;
    if (!impl->writer.write(config.output, &message))
      return impl->module.emitError(config.passName + ": ") << message;
    // Recorded absolute, like the importer's checkpoint paths, so that the
    // module runs from any directory.
    llvm::SmallString<256> recorded(config.output);
    llvm::sys::fs::make_absolute(recorded);
    llvm::sys::path::remove_dots(recorded, /*remove_dot_dot=*/true);
    appendParamFile(impl->module, recorded);
  }

  double seconds = std::chrono::duration<double>(
                       std::chrono::steady_clock::now() - impl->start)
                       .count();
  if (config.verbose && !layerReports.empty()) {
    llvm::errs() << llvm::formatv("{0}: {1} layers in {2:F2} s\n",
                                  config.passName, layerReports.size(),
                                  seconds);
    llvm::errs() << llvm::formatv("  {0,-40} {1,-22} {2,6} {3,11} {4,8}\n",
                                  "layer", "encoding", "bits/w", "rel. error",
                                  "time s");
    double weightedBits = 0, totalWeights = 0;
    for (const LayerReport &r : layerReports) {
      llvm::errs() << llvm::formatv(
          "  {0,-40} {1,-22} {2,6:F3} {3,11:E3}{4} {5,8:F3}\n", r.name,
          r.encoding, r.bitsPerWeight, r.relativeError,
          r.errorOnInputs ? " " : "w", r.seconds);
      weightedBits += r.bitsPerWeight * double(r.rows * r.cols);
      totalWeights += double(r.rows * r.cols);
    }
    llvm::errs() << llvm::formatv(
        "  {0:F3} bits/weight over {1} weights (rel. error: {2})\n",
        weightedBits / totalWeights, int64_t(totalWeights),
        impl->planMethod.options
            ? "predicted by the noise model, on the calibration inputs"
            : "on the calibration inputs; 'w': of the weights, no "
              "statistics");
  }
  if (!config.report.empty()) {
    nlohmann::json layers = nlohmann::json::array();
    for (const LayerReport &r : layerReports)
      layers.push_back(reportJson(r));
    nlohmann::json json = {{"pass", config.passName},
                           {"layers", layers},
                           {"seconds", seconds}};
    std::string message;
    if (!::qnt::bench::writeJsonAtomically(config.report, json, &message))
      return impl->module.emitError(config.passName + ": cannot write report '")
             << config.report << "': " << message;
  }
  return success();
}
mlir::qnt::ParamWritingPass::~ParamWritingPass() = default;
mlir::qnt::WeightMethodPass::~WeightMethodPass() = default;

FailureOr<size_t>
mlir::qnt::WeightMethodPass::quantizeModule(ModuleOp module) const {
  FailureOr<std::unique_ptr<WeightMethodDriver>> driver = createDriver(module);
  if (failed(driver) || failed((*driver)->run()))
    return failure();
  return (*driver)->reports().size();
}
