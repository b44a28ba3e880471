//===- SmoothFolding.cpp - Where a per-channel input scale folds ----------===//

#include "passes/SmoothFolding.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/ParamRewriter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// The leaves of the tree of arith.mulf ops rooted at `v` (the yielded
/// value) whose inner products have no other use: scaling a leaf scales the
/// root and nothing else.
void productFactors(Value v, SmallVectorImpl<Value> &factors,
                    bool root = true) {
  auto mul = v.getDefiningOp<arith::MulFOp>();
  if (mul && (root || v.hasOneUse())) {
    productFactors(mul.getLhs(), factors, false);
    productFactors(mul.getRhs(), factors, false);
    return;
  }
  factors.push_back(v);
}

bool fail(std::string *whyNot, const char *reason) {
  if (whyNot)
    *whyNot = reason;
  return false;
}

/// A weight whose rows can be rescaled in place: a float constant or
/// parameter, or a dequantization whose encoding multiplies each row by a
/// per-row (or per-row-and-group) scale and adds nothing else.
bool weightRowsFoldable(linalg::MatmulOp matmul, std::string *whyNot) {
  if (!isa<linalg::MatmulTransposeBOp>(matmul.getOperation()))
    return fail(whyNot, "the producing matmul's weight is not [N, K]");
  Value weight = matmul.getInputs()[1];
  Operation *def = weight.getDefiningOp();
  if (!def)
    return fail(whyNot, "the producing matmul's weight is a function argument");
  if (isa<arith::ConstantOp, ParamOp>(def))
    return true;
  auto dequant = dyn_cast<DequantOp>(def);
  if (!dequant)
    return fail(whyNot, "the producing matmul's weight is neither a "
                        "constant, a parameter nor a qnt.dequant");
  ::qnt::numerics::EncodingSpec spec = dequant.getEncoding().toSpec();
  bool scaledRows =
      (std::holds_alternative<::qnt::numerics::UniformSpec>(spec) &&
       std::get<::qnt::numerics::UniformSpec>(spec).granularity !=
           ::qnt::numerics::Granularity::PerTensor) ||
      (std::holds_alternative<::qnt::numerics::MinifloatSpec>(spec) &&
       std::get<::qnt::numerics::MinifloatSpec>(spec).granularity !=
           ::qnt::numerics::Granularity::PerTensor);
  if (!scaledRows)
    return fail(whyNot, "the producing matmul's weight encoding has no "
                        "per-row scales to fold into");
  Operation *scales = dequant.getComponents()[1].getDefiningOp();
  if (!scales || !isa<arith::ConstantOp, ParamOp>(scales))
    return fail(whyNot, "the producing matmul's weight scales are neither a "
                        "constant nor a parameter");
  return true;
}

/// The matmul producing `v` when its rows can absorb the scale.
std::optional<SmoothFoldSite> linearSite(Value v, std::string *whyNot) {
  auto matmul = v.getDefiningOp<linalg::MatmulOp>();
  if (!matmul) {
    fail(whyNot, "the factor is not produced by a linear layer");
    return std::nullopt;
  }
  if (!weightRowsFoldable(matmul, whyNot))
    return std::nullopt;
  SmoothFoldSite site{SmoothFoldSite::Kind::WeightRows, {}, nullptr, matmul};
  return site;
}

/// True if every dimension of `type` but the first (the tokens) is static.
bool staticTrailingDims(RankedTensorType type) {
  return llvm::none_of(type.getShape().drop_front(), ShapedType::isDynamic);
}

/// The operand of `generic` whose block argument is `arg`, or null.
OpOperand *operandOf(linalg::GenericOp generic, Value arg) {
  auto blockArg = dyn_cast<BlockArgument>(arg);
  if (!blockArg || blockArg.getOwner() != &generic.getRegion().front())
    return nullptr;
  return &generic->getOpOperand(blockArg.getArgNumber());
}

/// True if `v` is a linalg.fill of 0.0 (an accumulator that starts empty).
bool isZeroFill(Value v) {
  auto fill = v.getDefiningOp<linalg::FillOp>();
  if (!fill)
    return false;
  auto constant = fill.getInputs()[0].getDefiningOp<arith::ConstantFloatOp>();
  return constant && constant.value().isZero();
}

/// The single-use linear chain from a value projection's matmul to the
/// attention's V operand: V = expand_shape(extract_slice(insert_slice(P into
/// cache))) with full rows, so that V's trailing dimensions, flattened, are
/// P's columns. Returns P's matmul.
linalg::MatmulOp valueProjection(Value v, std::string *whyNot) {
  auto expand = v.getDefiningOp<tensor::ExpandShapeOp>();
  if (!expand || !v.hasOneUse() ||
      expand.getReassociationIndices().front().size() != 1) {
    fail(whyNot, "attention's values are not an expand_shape of a value "
                 "projection's rows");
    return {};
  }
  Operation *consumer = expand;
  Value src = expand.getSrc();
  if (auto extract = src.getDefiningOp<tensor::ExtractSliceOp>()) {
    if (!src.hasOneUse() || extract.getSourceType().getRank() != 2 ||
        !extract.hasUnitStride() || extract.getStaticOffsets()[1] != 0 ||
        extract.getStaticSizes()[1] != extract.getSourceType().getDimSize(1)) {
      fail(whyNot, "attention's values are a partial slice of the cache");
      return {};
    }
    consumer = extract;
    src = extract.getSource();
  }
  if (auto insert = src.getDefiningOp<tensor::InsertSliceOp>()) {
    // The KV cache: rows this block wrote on earlier calls, with the same
    // weights, and the rows it writes now.
    if (!src.hasOneUse() || !isa<BlockArgument>(insert.getDest()) ||
        insert.getDestType().getRank() != 2 || !insert.hasUnitStride() ||
        insert.getStaticOffsets()[1] != 0 ||
        insert.getStaticSizes()[1] != insert.getDestType().getDimSize(1)) {
      fail(whyNot, "attention's values come from a cache update that is not "
                   "a full-row insert into a block argument");
      return {};
    }
    consumer = insert;
    src = insert.getSource();
  }
  auto matmul = src.getDefiningOp<linalg::MatmulOp>();
  if (!matmul) {
    fail(whyNot, "attention's values are not produced by a linear layer");
    return {};
  }
  // Besides the path into attention, the projection may only be returned
  // (the new cache rows, which the caller stores and feeds back here).
  for (Operation *user : src.getUsers())
    if (user != consumer && !isa<func::ReturnOp, tensor::DimOp>(user)) {
      fail(whyNot, "the value projection has another user");
      return {};
    }
  return matmul;
}

/// Attention's output `value` = collapse_shape(sum_t p * V): the value
/// projection whose rows fold a scale, with the row each output channel
/// reads.
std::optional<SmoothFoldSite> attentionSite(tensor::CollapseShapeOp collapse,
                                            std::string *whyNot) {
  auto reject = [&](const char *reason) -> std::optional<SmoothFoldSite> {
    fail(whyNot, reason);
    return std::nullopt;
  };
  RankedTensorType srcType = collapse.getSrcType();
  auto reassociation = collapse.getReassociationIndices();
  if (collapse.getResultType().getRank() != 2 || reassociation.size() != 2 ||
      reassociation.front().size() != 1 || !staticTrailingDims(srcType))
    return reject("the input is a reshape that does not flatten static "
                "trailing dimensions");
  auto generic = collapse.getSrc().getDefiningOp<linalg::GenericOp>();
  if (!generic || !collapse.getSrc().hasOneUse() ||
      generic.getNumDpsInits() != 1 || !isZeroFill(generic.getDpsInits()[0]))
    return reject("the input is a reshape of something other than a "
                "zero-initialized contraction (attention's P V)");
  // The body must accumulate out + (factors) * v with v one operand's
  // element: linear in that operand.
  Block &body = generic.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  auto add = yield.getValues()[0].getDefiningOp<arith::AddFOp>();
  Value out = body.getArguments().back();
  if (!add || (add.getLhs() != out && add.getRhs() != out))
    return reject("the contraction does not accumulate a sum");
  Value term = add.getLhs() == out ? add.getRhs() : add.getLhs();
  SmallVector<Value> factors;
  productFactors(term, factors);
  int64_t numLoops = generic.getNumLoops();
  AffineMap outMap = generic.getIndexingMapsArray().back();
  if (!outMap.isProjectedPermutation() ||
      outMap.getNumResults() != srcType.getRank())
    return reject("the contraction's output is not indexed by loops");
  std::string reason =
      "no operand of the contraction is attention's values";
  for (Value factor : factors) {
    OpOperand *operand = operandOf(generic, factor);
    if (!operand || !cast<BlockArgument>(factor).hasOneUse() ||
        operand->getOperandNumber() >= generic.getNumDpsInputs())
      continue;
    AffineMap vMap = generic.getMatchingIndexingMap(operand);
    auto vType = dyn_cast<RankedTensorType>(operand->get().getType());
    if (!vType || !vMap.isProjectedPermutation() ||
        vMap.getNumResults() != vType.getRank() || vType.getRank() < 2 ||
        !staticTrailingDims(vType))
      continue;
    // Each value channel (V's trailing dimensions) must be fixed by the
    // output channel (the output's trailing dimensions).
    SmallVector<int64_t> outPosOfLoop(numLoops, -1);
    for (unsigned r = 1; r < outMap.getNumResults(); ++r)
      outPosOfLoop[outMap.getDimPosition(r)] = r;
    bool determined = true;
    for (unsigned r = 1; r < vMap.getNumResults(); ++r)
      determined &= outPosOfLoop[vMap.getDimPosition(r)] >= 0;
    if (!determined) {
      reason = "a value channel is not fixed by the output channel";
      continue;
    }
    std::string why;
    linalg::MatmulOp projection = valueProjection(operand->get(), &why);
    if (!projection) {
      reason = why;
      continue;
    }
    if (!weightRowsFoldable(projection, &why)) {
      reason = why;
      continue;
    }
    // Channel c of the flattened output -> its index tuple -> V's tuple ->
    // V's flattened trailing index = the projection's row.
    ArrayRef<int64_t> outShape = srcType.getShape().drop_front();
    ArrayRef<int64_t> vShape = vType.getShape().drop_front();
    int64_t channels = 1;
    for (int64_t d : outShape)
      channels *= d;
    SmallVector<int64_t> rowOfChannel(channels);
    SmallVector<int64_t> index(outShape.size());
    for (int64_t c = 0; c < channels; ++c) {
      for (int64_t i = int64_t(outShape.size()) - 1, rest = c; i >= 0; --i) {
        index[i] = rest % outShape[i];
        rest /= outShape[i];
      }
      int64_t row = 0;
      for (unsigned r = 1; r < vMap.getNumResults(); ++r)
        row = row * vShape[r - 1] +
              index[outPosOfLoop[vMap.getDimPosition(r)] - 1];
      rowOfChannel[c] = row;
    }
    SmoothFoldSite site{SmoothFoldSite::Kind::WeightRows, {}, nullptr,
                        projection, std::move(rowOfChannel)};
    return site;
  }
  return reject(reason.c_str());
}

} // namespace

std::optional<SmoothFoldSite>
mlir::qnt::findSmoothFoldSite(Value value, std::string *whyNot) {
  Operation *def = value.getDefiningOp();
  if (!def) {
    fail(whyNot, "the input is a function argument");
    return std::nullopt;
  }
  if (isa<linalg::MatmulOp>(def))
    return linearSite(value, whyNot);
  if (auto collapse = dyn_cast<tensor::CollapseShapeOp>(def))
    return attentionSite(collapse, whyNot);
  auto generic = dyn_cast<linalg::GenericOp>(def);
  if (!generic || generic->getNumResults() != 1 ||
      generic.getNumDpsInits() != 1 ||
      generic.getNumParallelLoops() != generic.getNumLoops() ||
      !generic.getIndexingMapsArray().back().isIdentity()) {
    fail(whyNot, "the input is produced neither by a linear layer, an "
                 "elementwise product (a normalization gain, a gated unit) "
                 "nor attention");
    return std::nullopt;
  }
  Block &body = generic.getRegion().front();
  auto yield = cast<linalg::YieldOp>(body.getTerminator());
  SmallVector<Value> factors;
  productFactors(yield.getValues()[0], factors);
  int64_t rank = generic.getNumLoops();
  std::string reason = "no operand of the producing elementwise op scales its "
                       "output channels as a factor of its result";
  for (Value factor : factors) {
    auto arg = dyn_cast<BlockArgument>(factor);
    if (!arg || arg.getOwner() != &body || !arg.hasOneUse() ||
        arg.getArgNumber() >= generic.getNumDpsInputs())
      continue;
    OpOperand *operand = generic.getDpsInputOperand(arg.getArgNumber());
    AffineMap map = generic.getMatchingIndexingMap(operand);
    // A gain: a vector indexed by the last loop.
    if (map.getNumResults() == 1 &&
        map.getResult(0) == getAffineDimExpr(rank - 1, generic.getContext())) {
      Operation *source = operand->get().getDefiningOp();
      if (source && isa<arith::ConstantOp, ParamOp>(source))
        return SmoothFoldSite{SmoothFoldSite::Kind::Gain, generic, operand,
                              {}};
      reason = "the normalization gain is neither a constant nor a parameter";
      continue;
    }
    // A gated unit's linear factor, used only here.
    if (map.isIdentity() && operand->get().hasOneUse()) {
      std::string why;
      if (std::optional<SmoothFoldSite> site =
              linearSite(operand->get(), &why))
        return site;
      reason = why;
    }
  }
  fail(whyNot, reason.c_str());
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Folding
//===----------------------------------------------------------------------===//

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

/// gain / s on the normalization's gain operand.
LogicalResult foldIntoGain(const SmoothFoldSite &site, ArrayRef<float> scale,
                           ParamRewriter &data) {
  Operation *source = site.gain->get().getDefiningOp();
  FailureOr<std::vector<float>> gain = data.read(source);
  if (failed(gain))
    return failure();
  if (gain->size() != scale.size())
    return linalg::GenericOp(site.norm).emitOpError()
           << data.getPassName() << ": the gain has " << gain->size()
           << " channels, the smoothing vector " << scale.size();
  for (size_t k = 0; k < scale.size(); ++k)
    (*gain)[k] /= scale[k];
  FailureOr<Value> folded =
      data.replacement(source, site.norm, *gain, ".folded");
  if (failed(folded))
    return failure();
  site.gain->set(*folded);
  if (source->use_empty())
    source->erase();
  return success();
}

/// The scale of each weight row: `scale` itself, or gathered through
/// `rowOfChannel` (every channel reading a row must carry the same factor;
/// rows no channel reads keep 1).
FailureOr<std::vector<float>> rowScales(const SmoothFoldSite &site,
                                        ArrayRef<float> scale, int64_t rows,
                                        SmoothOp smooth,
                                        const ParamRewriter &data) {
  if (site.rowOfChannel.empty()) {
    if (rows != int64_t(scale.size()))
      return smooth.emitOpError()
             << data.getPassName() << ": the producing weight has " << rows
             << " rows, the smoothing vector " << scale.size() << " entries";
    return std::vector<float>(scale.begin(), scale.end());
  }
  if (site.rowOfChannel.size() != scale.size())
    return smooth.emitOpError()
           << data.getPassName() << ": the value has "
           << site.rowOfChannel.size() << " channels, the smoothing vector "
           << scale.size() << " entries";
  std::vector<float> perRow(rows, 0.0f);
  std::vector<int64_t> firstChannel(rows, -1);
  for (auto [channel, row] : llvm::enumerate(site.rowOfChannel)) {
    if (row < 0 || row >= rows)
      return smooth.emitOpError()
             << data.getPassName() << ": channel " << channel
             << " reads weight row " << row << " of " << rows;
    if (firstChannel[row] < 0) {
      firstChannel[row] = channel;
      perRow[row] = scale[channel];
    } else if (perRow[row] != scale[channel]) {
      return smooth.emitOpError()
             << data.getPassName() << ": cannot fold: channels "
             << firstChannel[row] << " and " << channel
             << " read the same value row " << row
             << " (attention heads sharing a KV head) but are divided by "
                "different factors";
    }
  }
  for (int64_t row = 0; row < rows; ++row)
    if (firstChannel[row] < 0)
      perRow[row] = 1.0f;
  return perRow;
}

/// W[n, :] / s[n] on the linear layer's weight: on the float data, or on
/// the per-row scales of its encoding.
LogicalResult foldIntoRows(const SmoothFoldSite &site, ArrayRef<float> scale,
                           SmoothOp smooth, ParamRewriter &data) {
  linalg::MatmulOp matmul = site.matmul;
  Value weight = matmul.getInputs()[1];
  auto weightType = cast<RankedTensorType>(weight.getType());
  FailureOr<std::vector<float>> perRow =
      rowScales(site, scale, weightType.getDimSize(0), smooth, data);
  if (failed(perRow))
    return failure();
  Operation *def = weight.getDefiningOp();
  auto dequant = dyn_cast<DequantOp>(def);
  Operation *source =
      dequant ? dequant.getComponents()[1].getDefiningOp() : def;
  FailureOr<std::vector<float>> values = data.read(source);
  if (failed(values))
    return failure();
  int64_t cols = values->size() / perRow->size();
  for (size_t n = 0; n < perRow->size(); ++n)
    for (int64_t c = 0; c < cols; ++c)
      (*values)[n * cols + c] /= (*perRow)[n];
  FailureOr<Value> folded = data.replacement(
      source, dequant ? dequant.getOperation() : matmul, *values, ".folded");
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

} // namespace

FailureOr<int64_t> mlir::qnt::foldSmoothedInput(Value input,
                                                ParamRewriter &data) {
  SmallVector<SmoothOp> smooths;
  for (Operation *user : input.getUsers())
    if (auto smooth = dyn_cast<SmoothOp>(user);
        smooth && smooth.getInput() == input)
      smooths.push_back(smooth);
  if (smooths.empty())
    return int64_t(0);
  SmoothOp first = smooths.front();
  FailureOr<std::vector<float>> scale = factorValues(first);
  if (failed(scale))
    return first.emitOpError() << data.getPassName()
                               << ": cannot fold: the smoothing factors are "
                                  "not a float constant";
  for (Operation *user : input.getUsers()) {
    if (isa<tensor::DimOp>(user))
      continue; // reads the shape only
    auto smooth = dyn_cast<SmoothOp>(user);
    FailureOr<std::vector<float>> other =
        smooth ? factorValues(smooth) : FailureOr<std::vector<float>>();
    if (!smooth || smooth.getInput() != input || failed(other) ||
        *other != *scale) {
      InFlightDiagnostic diag = first.emitOpError()
                                << data.getPassName()
                                << ": cannot fold: the smoothed value has a "
                                   "user that does not divide it by the same "
                                   "factors";
      diag.attachNote(user->getLoc()) << "this user";
      return diag;
    }
  }
  std::string whyNot;
  std::optional<SmoothFoldSite> site = findSmoothFoldSite(input, &whyNot);
  if (!site)
    return first.emitOpError()
           << data.getPassName() << ": cannot fold: " << whyNot;
  if (site->kind == SmoothFoldSite::Kind::Gain
          ? failed(foldIntoGain(*site, *scale, data))
          : failed(foldIntoRows(*site, *scale, first, data)))
    return failure();
  for (SmoothOp smooth : smooths) {
    Operation *factors = smooth.getFactors().getDefiningOp();
    smooth.replaceAllUsesWith(input);
    smooth.erase();
    if (factors && factors->use_empty())
      factors->erase();
  }
  return int64_t(smooths.size());
}
