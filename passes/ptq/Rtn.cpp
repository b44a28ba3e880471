//===- Rtn.cpp - Round-to-nearest weight quantization -----------*- C++ -*-===//
//
// Implements qnt-rtn. The pass is a thin adapter: it finds matmul weights
// (constants or qnt.param), hands them to numerics::quantizeRTN, and writes
// the encoded components back as constants or as tensors of a new
// safetensors file.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "qnt/ParamStore.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTRTN
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

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
};

/// Finds the quantizable weight of `op`, if any.
static std::optional<WeightSite> findWeightSite(linalg::MatmulOp op) {
  bool weightIsNK = isa<linalg::MatmulTransposeBOp>(op.getOperation());
  if (!weightIsNK && op.hasUserDefinedMaps())
    return std::nullopt;
  if (!op.hasPureTensorSemantics())
    return std::nullopt;
  Operation *source = op.getInputs()[1].getDefiningOp();
  if (!source)
    return std::nullopt;
  if (auto constant = dyn_cast<arith::ConstantOp>(source)) {
    auto dense = dyn_cast<DenseFPElementsAttr>(constant.getValue());
    if (!dense || dense.getType().getRank() != 2)
      return std::nullopt;
  } else if (!isa<ParamOp>(source)) {
    return std::nullopt;
  }
  return WeightSite{op, weightIsNK, source};
}

/// The float values of a constant weight, row-major as stored.
static std::vector<float> constantValues(arith::ConstantOp constant) {
  std::vector<float> values;
  for (APFloat v : cast<DenseFPElementsAttr>(constant.getValue())
                       .getValues<APFloat>()) {
    bool losesInfo;
    v.convert(APFloat::IEEEsingle(), APFloat::rmNearestTiesToEven, &losesInfo);
    values.push_back(v.convertToFloat());
  }
  return values;
}

static std::vector<float> transposed(const std::vector<float> &m,
                                     int64_t rows, int64_t cols) {
  std::vector<float> t(m.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      t[c * rows + r] = m[r * cols + c];
  return t;
}

static io::DType toFileDType(nx::DType dtype) {
  switch (dtype) {
  case nx::DType::I8:
    return io::DType::I8;
  case nx::DType::I16:
    return io::DType::I16;
  case nx::DType::I32:
    return io::DType::I32;
  case nx::DType::F32:
    return io::DType::F32;
  }
  llvm_unreachable("unknown dtype");
}

struct QntRtnPass : mlir::qnt::impl::QntRtnBase<QntRtnPass> {
  using QntRtnBase::QntRtnBase;

  void runOnOperation() override;

private:
  FailureOr<nx::EncodingSpec> buildSpec();
  LogicalResult quantize(const WeightSite &site, const nx::EncodingSpec &spec,
                         const ParamStore &store,
                         io::SafetensorsWriter &writer);
  /// Materializes one encoded component as a constant or, for weights read
  /// from parameter files, as a new parameter.
  FailureOr<Value> materialize(OpBuilder &b, Location loc,
                               const nx::Component &component,
                               ParamOp weightParam,
                               io::SafetensorsWriter &writer);

  /// Names added to the output file during the current run.
  llvm::StringSet<> writtenParams;
};

FailureOr<nx::EncodingSpec> QntRtnPass::buildSpec() {
  ModuleOp module = getOperation();
  if (indivisibleGroups != "error" && indivisibleGroups != "per-channel")
    return module.emitError("qnt-rtn: unknown indivisible-groups '")
           << indivisibleGroups << "'; expected error or per-channel";
  nx::Granularity granularityKind;
  if (granularity == "per-tensor")
    granularityKind = nx::Granularity::PerTensor;
  else if (granularity == "per-channel")
    granularityKind = nx::Granularity::PerChannel;
  else if (granularity == "per-group")
    granularityKind = nx::Granularity::PerGroup;
  else
    return module.emitError("qnt-rtn: unknown granularity '")
           << granularity << "'; expected per-tensor, per-channel or per-group";
  int64_t group = 0;
  if (granularityKind == nx::Granularity::PerGroup) {
    if (groupSize <= 0)
      return module.emitError("qnt-rtn: group-size must be positive, got ")
             << int64_t(groupSize);
    group = groupSize;
  } else if (groupSize.getNumOccurrences() > 0) {
    return module.emitError("qnt-rtn: group-size is only meaningful with "
                            "granularity=per-group");
  }

  if (format == "int") {
    if (bits < 2 || bits > 8)
      return module.emitError("qnt-rtn: bits must be in 2..8, got ")
             << int64_t(bits);
    return nx::EncodingSpec(
        nx::UniformSpec{int(bits), symmetric, granularityKind, group});
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
      {"e5m2", 5, 2, nx::MinifloatSpecial::Ocp}};
  for (const MinifloatFormat &f : kFormats) {
    if (format != f.name)
      continue;
    if (bits.getNumOccurrences() > 0)
      return module.emitError("qnt-rtn: bits is implied by format=")
             << format << " and cannot be given";
    if (symmetric.getNumOccurrences() > 0)
      return module.emitError("qnt-rtn: minifloat formats are symmetric; "
                              "symmetric cannot be given with format=")
             << format;
    return nx::EncodingSpec(nx::MinifloatSpec{f.exponent, f.mantissa,
                                              f.special, granularityKind,
                                              group});
  }
  return module.emitError("qnt-rtn: unknown format '")
         << format << "'; expected int, e2m1, e3m2, e2m3, e4m3 or e5m2";
}

FailureOr<Value> QntRtnPass::materialize(OpBuilder &b, Location loc,
                                         const nx::Component &component,
                                         ParamOp weightParam,
                                         io::SafetensorsWriter &writer) {
  const nx::ComponentLayout &layout = component.layout;
  auto type = RankedTensorType::get(
      layout.shape, elementTypeOf(b.getContext(), layout.dtype));
  if (!weightParam) {
    ArrayRef<char> raw(reinterpret_cast<const char *>(component.bytes.data()),
                       component.bytes.size());
    return arith::ConstantOp::create(
               b, loc, DenseElementsAttr::getFromRawBuffer(type, raw))
        .getResult();
  }
  std::string name = (weightParam.getName() + "." + layout.name).str();
  // A parameter shared by several matmuls quantizes to the same bytes;
  // store it once.
  std::string error;
  if (writtenParams.insert(name).second &&
      !writer.add(name, toFileDType(layout.dtype), layout.shape,
                  component.bytes.data(), component.bytes.size(), &error))
    return emitError(loc) << "qnt-rtn: " << error;
  return ParamOp::create(b, loc, type, name).getResult();
}

/// The group size of a per-group uniform or minifloat spec, else 0.
static int64_t groupSizeOf(const nx::EncodingSpec &spec) {
  if (auto *u = std::get_if<nx::UniformSpec>(&spec))
    return u->granularity == nx::Granularity::PerGroup ? u->groupSize : 0;
  if (auto *m = std::get_if<nx::MinifloatSpec>(&spec))
    return m->granularity == nx::Granularity::PerGroup ? m->groupSize : 0;
  return 0;
}

/// `spec` with one scale per output channel instead of per group.
static nx::EncodingSpec withPerChannelScales(nx::EncodingSpec spec) {
  if (auto *u = std::get_if<nx::UniformSpec>(&spec)) {
    u->granularity = nx::Granularity::PerChannel;
    u->groupSize = 0;
  } else if (auto *m = std::get_if<nx::MinifloatSpec>(&spec)) {
    m->granularity = nx::Granularity::PerChannel;
    m->groupSize = 0;
  }
  return spec;
}

LogicalResult QntRtnPass::quantize(const WeightSite &site,
                                   const nx::EncodingSpec &requestedSpec,
                                   const ParamStore &store,
                                   io::SafetensorsWriter &writer) {
  linalg::MatmulOp matmul = site.matmul;
  Value weight = matmul.getInputs()[1];
  auto weightType = cast<RankedTensorType>(weight.getType());
  Location loc = site.source->getLoc();
  auto param = dyn_cast<ParamOp>(site.source);

  std::vector<float> values;
  if (param) {
    FailureOr<std::vector<float>> read =
        store.readAsF32(loc, param.getName(), weightType);
    if (failed(read))
      return failure();
    values = std::move(*read);
    // The float copy is all we need; let the kernel drop the mapped pages.
    store.releasePages(param.getName());
  } else {
    values = constantValues(cast<arith::ConstantOp>(site.source));
  }
  int64_t rows = weightType.getDimSize(0), cols = weightType.getDimSize(1);
  if (!site.weightIsNK) {
    values = transposed(values, rows, cols);
    std::swap(rows, cols);
  }

  nx::EncodingSpec layerSpec = requestedSpec;
  if (int64_t group = groupSizeOf(requestedSpec);
      group > 0 && cols % group != 0 && indivisibleGroups == "per-channel") {
    layerSpec = withPerChannelScales(requestedSpec);
    mlir::emitRemark(loc) << "qnt-rtn: "
                          << (param ? "'" + param.getName().str() + "': "
                                    : std::string())
                          << "group size " << group
                          << " does not divide K = " << cols
                          << "; quantized per channel";
  }
  const nx::EncodingSpec &spec = layerSpec;
  std::string problem = nx::verifySpec(spec, rows, cols);
  if (!problem.empty())
    return matmul.emitOpError("qnt-rtn cannot store its ")
           << rows << "x" << cols << " weight "
           << (param ? "'" + param.getName().str() + "' " : std::string())
           << "as " << nx::describe(spec) << ": " << problem;
  // The numerics reject what they cannot quantize (NaN/Inf weights, ranges
  // whose scale overflows) by throwing; report it on the weight's user.
  nx::EncodedMatrix encoded;
  try {
    encoded = nx::quantizeRTN(spec, values.data(), rows, cols);
  } catch (const std::exception &e) {
    return matmul.emitOpError("qnt-rtn cannot quantize its weight: ")
           << e.what();
  }

  OpBuilder b(site.matmul);
  SmallVector<Value> components;
  for (const nx::Component &component : encoded.components) {
    FailureOr<Value> value = materialize(b, loc, component, param, writer);
    if (failed(value))
      return failure();
    components.push_back(*value);
  }
  // The dequantized weight takes the activation's element type: a bf16
  // checkpoint's weights dequantize to the f32 the matmul computes in,
  // without a detour through bf16 rounding.
  Type computeType =
      cast<RankedTensorType>(matmul.getInputs()[0].getType()).getElementType();
  auto nkType = RankedTensorType::get({rows, cols}, computeType);
  Value dequant = DequantOp::create(b, loc, nkType,
                                    encodingFromSpec(&getContext(), spec),
                                    components);
  if (!site.weightIsNK) {
    Value init = tensor::EmptyOp::create(b, loc, weightType.getShape(),
                                         computeType);
    dequant = linalg::TransposeOp::create(b, loc, dequant, init,
                                          ArrayRef<int64_t>{1, 0})
                  .getResult()[0];
  }
  if (computeType == weightType.getElementType()) {
    site.matmul->setOperand(1, dequant);
  } else {
    // A bf16/f16 weight in an f32 matmul: the matmul's body extends its
    // weight argument, so it is rebuilt for the f32 dequantized weight.
    SmallVector<Value> inputs = {matmul.getInputs()[0], dequant};
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
  }
  if (site.source->use_empty())
    site.source->erase();
  ++numQuantized;
  return success();
}

void QntRtnPass::runOnOperation() {
  ModuleOp module = getOperation();
  FailureOr<nx::EncodingSpec> spec = buildSpec();
  if (failed(spec))
    return signalPassFailure();

  SmallVector<WeightSite> sites;
  module.walk([&](linalg::MatmulOp op) {
    if (std::optional<WeightSite> site = findWeightSite(op))
      sites.push_back(*site);
  });
  bool readsParams = llvm::any_of(
      sites, [](const WeightSite &s) { return isa<ParamOp>(s.source); });
  if (readsParams && output.empty()) {
    module.emitError("qnt-rtn: weights come from qnt.param; give "
                     "output=<file.safetensors> for the quantized parameters");
    return signalPassFailure();
  }

  ParamStore store;
  if (readsParams) {
    FailureOr<ParamStore> opened = ParamStore::open(module);
    if (failed(opened))
      return signalPassFailure();
    store = std::move(*opened);
    if (store.isOpenFile(output)) {
      module.emitError("qnt-rtn: output '")
          << output << "' is one of the input parameter files; quantized "
          << "weights go to a new file";
      return signalPassFailure();
    }
  }

  io::SafetensorsWriter writer;
  if (readsParams) {
    // Quantized components go to disk as they are produced, so that memory
    // holds one weight at a time whatever the model size.
    llvm::SmallString<256> dir(output);
    llvm::sys::path::remove_filename(dir);
    std::string error;
    if (!writer.setSpillDirectory(dir.empty() ? "." : dir.str().str(),
                                  &error)) {
      module.emitError("qnt-rtn: ") << error;
      return signalPassFailure();
    }
  }
  writtenParams.clear();
  for (const WeightSite &site : sites)
    if (failed(quantize(site, *spec, store, writer)))
      return signalPassFailure();

  if (!readsParams)
    return;
  writer.setMetadata("producer", "quant-mlir qnt-rtn");
  std::string error;
  if (!writer.write(output, &error)) {
    module.emitError("qnt-rtn: ") << error;
    return signalPassFailure();
  }
  // Recorded absolute, like the importer's checkpoint paths, so that the
  // module runs from any directory.
  llvm::SmallString<256> recorded(output);
  llvm::sys::fs::make_absolute(recorded);
  llvm::sys::path::remove_dots(recorded, /*remove_dot_dot=*/true);
  appendParamFile(module, recorded);
}

} // namespace
