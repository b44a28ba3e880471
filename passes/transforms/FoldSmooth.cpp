//===- FoldSmooth.cpp - Fold qnt.smooth into the producer -------*- C++ -*-===//
//
// Implements qnt-fold-smooth (Passes.td). Where a scale folds is decided by
// passes/SmoothFolding.h, the same rule the methods use when they choose to
// search a scale; this pass only rewrites the data.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/RewriteCheck.h"
#include "passes/SmoothFolding.h"
#include "passes/ptq/WeightMethodPass.h"
#include "qnt/ParamStore.h"
#include "qnt/io/Safetensors.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

namespace mlir::qnt {
#define GEN_PASS_DEF_QNTFOLDSMOOTH
#include "passes/Passes.h.inc"
} // namespace mlir::qnt

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// The f32 values of a constant smoothing vector, or failure.
FailureOr<std::vector<float>> factorValues(SmoothOp smooth) {
  auto constant = smooth.getFactors().getDefiningOp<arith::ConstantOp>();
  auto dense = constant ? dyn_cast<DenseFPElementsAttr>(constant.getValue())
                        : DenseFPElementsAttr();
  if (!dense)
    return failure();
  std::vector<float> values;
  for (const APFloat &v : dense.getValues<APFloat>())
    values.push_back(float(v.convertToDouble()));
  return values;
}

/// Rewrites float constants and parameters with new values: constants in
/// place, parameters as new tensors of one output file.
class DataRewriter {
public:
  DataRewriter(ModuleOp module, StringRef output)
      : module(module), output(output.str()) {}

  /// The f32 values of `source` (an arith.constant or qnt.param of f32).
  FailureOr<std::vector<float>> read(Operation *source) {
    auto type = cast<RankedTensorType>(source->getResult(0).getType());
    if (!type.getElementType().isF32())
      return source->emitOpError("qnt-fold-smooth: only f32 data can absorb "
                                 "a scale, not ")
             << type;
    if (auto constant = dyn_cast<arith::ConstantOp>(source)) {
      auto dense = cast<DenseFPElementsAttr>(constant.getValue());
      std::vector<float> values;
      for (const APFloat &v : dense.getValues<APFloat>())
        values.push_back(v.convertToFloat());
      return values;
    }
    auto param = cast<ParamOp>(source);
    if (output.empty())
      return param.emitOpError("qnt-fold-smooth: folding into parameter '")
             << param.getName()
             << "' writes a new parameter; give output=<file.safetensors>";
    if (failed(openStore()))
      return failure();
    return store->readAsF32(param.getLoc(), param.getName(), type);
  }

  /// A value like `source` holding `values`, created before `user`.
  FailureOr<Value> replacement(Operation *source, Operation *user,
                               const std::vector<float> &values) {
    auto type = cast<RankedTensorType>(source->getResult(0).getType());
    OpBuilder b(user);
    if (isa<arith::ConstantOp>(source))
      return arith::ConstantOp::create(
                 b, source->getLoc(),
                 DenseElementsAttr::get(type, llvm::ArrayRef<float>(values)))
          .getResult();
    auto param = cast<ParamOp>(source);
    std::string name = (param.getName() + ".folded").str();
    for (int i = 2; written.contains(name); ++i)
      name = (param.getName() + ".folded" + std::to_string(i)).str();
    written.insert(name);
    std::string message;
    if (!writer.add(name, ::qnt::io::DType::F32, type.getShape().vec(),
                    values.data(), values.size() * sizeof(float), &message))
      return param.emitOpError("qnt-fold-smooth: ") << message;
    return ParamOp::create(b, param.getLoc(), type, name).getResult();
  }

  /// Writes the new parameters, if any, and lists the file in the module.
  LogicalResult finish() {
    if (written.empty())
      return success();
    if (store && store->isOpenFile(output))
      return module.emitError("qnt-fold-smooth: output '")
             << output << "' is one of the input parameter files";
    writer.setMetadata("producer", "quant-mlir qnt-fold-smooth");
    std::string message;
    if (!writer.write(output, &message))
      return module.emitError("qnt-fold-smooth: ") << message;
    llvm::SmallString<256> recorded(output);
    llvm::sys::fs::make_absolute(recorded);
    llvm::sys::path::remove_dots(recorded, /*remove_dot_dot=*/true);
    appendParamFile(module, recorded);
    return success();
  }

private:
  LogicalResult openStore() {
    if (store)
      return success();
    FailureOr<ParamStore> opened = ParamStore::open(module);
    if (failed(opened))
      return failure();
    store = std::move(*opened);
    return success();
  }

  ModuleOp module;
  std::string output;
  std::optional<ParamStore> store;
  ::qnt::io::SafetensorsWriter writer;
  llvm::StringSet<> written;
};

/// gain / s on the normalization's gain operand.
LogicalResult foldIntoGain(const SmoothFoldSite &site,
                           ArrayRef<float> scale, DataRewriter &data) {
  Operation *source = site.gain->get().getDefiningOp();
  FailureOr<std::vector<float>> gain = data.read(source);
  if (failed(gain))
    return failure();
  if (gain->size() != scale.size())
    return linalg::GenericOp(site.norm).emitOpError("qnt-fold-smooth: the gain has ")
           << gain->size() << " channels, the smoothing vector "
           << scale.size();
  for (size_t k = 0; k < scale.size(); ++k)
    (*gain)[k] /= scale[k];
  FailureOr<Value> folded = data.replacement(source, site.norm, *gain);
  if (failed(folded))
    return failure();
  site.gain->set(*folded);
  if (source->use_empty())
    source->erase();
  return success();
}

/// Each row n of `values` ([N][cols]) divided by scale[n].
void divideRows(std::vector<float> &values, ArrayRef<float> scale) {
  int64_t cols = values.size() / scale.size();
  for (size_t n = 0; n < scale.size(); ++n)
    for (int64_t c = 0; c < cols; ++c)
      values[n * cols + c] /= scale[n];
}

/// W[n, :] / s[n] on the linear layer's weight: on the float data, or on
/// the per-row scales of its encoding.
LogicalResult foldIntoRows(const SmoothFoldSite &site, ArrayRef<float> scale,
                           DataRewriter &data) {
  linalg::MatmulOp matmul = site.matmul;
  Value weight = matmul.getInputs()[1];
  auto weightType = cast<RankedTensorType>(weight.getType());
  if (weightType.getDimSize(0) != int64_t(scale.size()))
    return matmul.emitOpError("qnt-fold-smooth: the weight has ")
           << weightType.getDimSize(0) << " rows, the smoothing vector "
           << scale.size() << " entries";
  Operation *def = weight.getDefiningOp();
  auto dequant = dyn_cast<DequantOp>(def);
  Operation *source = dequant ? dequant.getComponents()[1].getDefiningOp()
                              : def;
  FailureOr<std::vector<float>> values = data.read(source);
  if (failed(values))
    return failure();
  divideRows(*values, scale);
  FailureOr<Value> folded =
      data.replacement(source, dequant ? dequant.getOperation() : matmul,
                       *values);
  if (failed(folded))
    return failure();
  if (dequant) {
    // A fresh dequantization for this matmul, in case the old one has other
    // users.
    OpBuilder b(dequant);
    SmallVector<Value> components(dequant.getComponents());
    components[1] = *folded;
    Value rebuilt = DequantOp::create(b, dequant.getLoc(), dequant.getType(),
                                      dequant.getEncoding(), components);
    matmul->setOperand(1, rebuilt);
    if (dequant->use_empty())
      dequant->erase();
  } else {
    matmul->setOperand(1, *folded);
  }
  if (source->use_empty())
    source->erase();
  return success();
}

struct QntFoldSmoothPass
    : mlir::qnt::impl::QntFoldSmoothBase<QntFoldSmoothPass>,
      ParamWritingPass {
  using QntFoldSmoothBase::QntFoldSmoothBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (!(tolerance >= 0)) {
      module.emitError("qnt-fold-smooth: tolerance must be >= 0, got ")
          << double(tolerance);
      return signalPassFailure();
    }
    OwningOpRef<ModuleOp> before;
    if (verify) {
      if (!getRewriteChecker()) {
        module.emitError("qnt-fold-smooth: verify needs the CPU runtime, "
                         "which this program does not link");
        return signalPassFailure();
      }
      before = module.clone();
    }
    // The smoothed inputs, in order of their first smooth.
    SmallVector<Value> inputs;
    module.walk([&](SmoothOp smooth) {
      if (!llvm::is_contained(inputs, smooth.getInput()))
        inputs.push_back(smooth.getInput());
    });
    DataRewriter data(module, output);
    for (Value input : inputs)
      if (failed(foldInput(input, data)))
        return signalPassFailure();
    if (failed(data.finish()))
      return signalPassFailure();
    if (verify &&
        failed(getRewriteChecker()(*before, module, "qnt-fold-smooth",
                                   tolerance)))
      return signalPassFailure();
  }

  LogicalResult foldInput(Value input, DataRewriter &data) {
    SmallVector<SmoothOp> smooths;
    for (Operation *user : input.getUsers())
      if (auto smooth = dyn_cast<SmoothOp>(user);
          smooth && smooth.getInput() == input)
        smooths.push_back(smooth);
    SmoothOp first = smooths.front();
    FailureOr<std::vector<float>> scale = factorValues(first);
    if (failed(scale))
      return first.emitOpError(
          "qnt-fold-smooth: the smoothing factors are not a float constant");
    for (Operation *user : input.getUsers()) {
      if (isa<tensor::DimOp>(user))
        continue; // reads the shape only
      auto smooth = dyn_cast<SmoothOp>(user);
      FailureOr<std::vector<float>> other =
          smooth ? factorValues(smooth) : FailureOr<std::vector<float>>();
      if (!smooth || smooth.getInput() != input || failed(other) ||
          *other != *scale) {
        InFlightDiagnostic diag = first.emitOpError(
            "qnt-fold-smooth: cannot fold: the smoothed value has a user "
            "that does not divide it by the same factors");
        diag.attachNote(user->getLoc()) << "this user";
        return diag;
      }
    }
    std::string whyNot;
    std::optional<SmoothFoldSite> site = findSmoothFoldSite(input, &whyNot);
    if (!site)
      return first.emitOpError("qnt-fold-smooth: cannot fold: ") << whyNot;
    if (site->kind == SmoothFoldSite::Kind::Gain ? failed(foldIntoGain(
                                                       *site, *scale, data))
                                                 : failed(foldIntoRows(
                                                       *site, *scale, data)))
      return failure();
    for (SmoothOp smooth : smooths) {
      Operation *factors = smooth.getFactors().getDefiningOp();
      smooth.replaceAllUsesWith(input);
      smooth.erase();
      if (factors && factors->use_empty())
        factors->erase();
      ++numFolded;
    }
    return success();
  }
};

} // namespace
