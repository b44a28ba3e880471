//===- SmoothFolding.cpp - Where a per-channel input scale folds ----------===//

#include "passes/SmoothFolding.h"
#include "dialects/qnt/QntDialect.h"

#include "mlir/Dialect/Arith/IR/Arith.h"

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
  auto generic = dyn_cast<linalg::GenericOp>(def);
  if (!generic || generic->getNumResults() != 1 ||
      generic.getNumDpsInits() != 1 ||
      generic.getNumParallelLoops() != generic.getNumLoops() ||
      !generic.getIndexingMapsArray().back().isIdentity()) {
    fail(whyNot, "the input is produced neither by a linear layer nor by an "
                 "elementwise product (a normalization gain, a gated unit)");
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
