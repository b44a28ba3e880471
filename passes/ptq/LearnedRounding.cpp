//===- LearnedRounding.cpp - Learnable weight quantizers in the IR --------===//
//
// See LearnedRounding.h. The quantizer is one linalg.generic over the
// weight viewed as [N, G, g] (expand_shape), so that per-group parameters
// are indexed by projected permutations and the adjoint handles them
// without gathers.
//
//===----------------------------------------------------------------------===//

#include "passes/ptq/LearnedRounding.h"

#include "qnt/numerics/Encoding.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// AdaRound's h(V) = clamp(sigmoid(V) (zeta - gamma) + gamma, 0, 1).
Value rectifiedSigmoid(OpBuilder &b, Location loc, Value v) {
  auto constant = [&](double c) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(c)).getResult();
  };
  const double zeta = 1.1, gamma = -0.1;
  Value sigmoid = arith::DivFOp::create(
      b, loc, constant(1),
      arith::AddFOp::create(
          b, loc, constant(1),
          math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, v))));
  Value stretched = arith::AddFOp::create(
      b, loc, arith::MulFOp::create(b, loc, sigmoid, constant(zeta - gamma)),
      constant(gamma));
  return arith::MinimumFOp::create(
      b, loc, arith::MaximumFOp::create(b, loc, stretched, constant(0)),
      constant(1));
}

/// The largest binade exponent of `grid` (2^e <= maxValue).
int maxExponent(const MinifloatGrid &grid) {
  return int(std::floor(std::log2(grid.maxValue)));
}

/// Whether a tie between 2^e and 2^(e+1) of a format without mantissa
/// bits goes down: ties go to the even code, as the minifloat codec rounds,
/// and the code of 2^e is e - minExponent + 1.
bool tieGoesDown(const MinifloatGrid &grid, int e) {
  return grid.mantissaBits == 0 && (e - grid.minExponent) % 2 != 0;
}

/// Q(y): the step of |y|'s binade chosen by comparisons (a select chain,
/// constant between binade edges), y rounded to it as the minifloat codec
/// rounds, clamped to the grid.
Value roundToGrid(OpBuilder &b, Location loc, const MinifloatGrid &grid,
                  Value y) {
  auto constant = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)).getResult();
  };
  auto flag = [&](bool v) {
    return arith::ConstantOp::create(b, loc, b.getBoolAttr(v)).getResult();
  };
  Value magnitude = math::AbsFOp::create(b, loc, y);
  Value step = constant(std::ldexp(1.0, grid.minExponent - grid.mantissaBits));
  Value downOnTie = flag(false);
  for (int e = grid.minExponent + 1; e <= maxExponent(grid); ++e) {
    Value inBinade = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGE,
                                           magnitude,
                                           constant(std::ldexp(1.0, e)));
    step = arith::SelectOp::create(
        b, loc, inBinade, constant(std::ldexp(1.0, e - grid.mantissaBits)),
        step);
    if (grid.mantissaBits == 0)
      downOnTie = arith::SelectOp::create(b, loc, inBinade,
                                          flag(tieGoesDown(grid, e)), downOnTie);
  }
  Value steps = arith::DivFOp::create(b, loc, y, step);
  Value code = math::RoundEvenOp::create(b, loc, steps);
  if (grid.mantissaBits == 0) {
    // Without mantissa bits round-half-even on y / step always rounds a tie
    // (|y / step| = 1.5) up; the codec goes to the even code.
    Value tie = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OEQ,
                                      math::AbsFOp::create(b, loc, steps),
                                      constant(1.5));
    Value positive = arith::CmpFOp::create(b, loc, arith::CmpFPredicate::OGT,
                                           steps, constant(0));
    code = arith::SelectOp::create(
        b, loc, arith::AndIOp::create(b, loc, tie, downOnTie),
        arith::SelectOp::create(b, loc, positive, constant(1), constant(-1)),
        code);
  }
  Value rounded = arith::MulFOp::create(b, loc, code, step);
  return arith::MinimumFOp::create(
      b, loc, arith::MaximumFOp::create(b, loc, rounded, constant(-grid.maxValue)),
      constant(grid.maxValue));
}

/// The body: the quantized element from the weight `w`, the element-wise
/// parameter `e` (D2 or V), the group's `g` (d1 or s) and zero point `z`,
/// and for FlexRound the row's `r` (d3).
Value quantizedElement(OpBuilder &b, Location loc,
                       const LearnableWeightSpec &spec, Value w, Value e,
                       Value g, Value z, Value r) {
  auto constant = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v)).getResult();
  };
  if (spec.minifloat) {
    // FlexRound on a minifloat grid: no zero point.
    Value exponent = arith::AddFOp::create(
        b, loc, arith::AddFOp::create(b, loc, g, e), r);
    Value divided = arith::DivFOp::create(
        b, loc, w, math::ExpOp::create(b, loc, exponent));
    return arith::MulFOp::create(b, loc, math::ExpOp::create(b, loc, g),
                                 roundToGrid(b, loc, *spec.minifloat, divided));
  }
  double qmax = double((int64_t(1) << spec.bits) - 1);
  Value lo = arith::NegFOp::create(b, loc, z);
  Value hi = arith::SubFOp::create(b, loc, constant(qmax), z);
  auto clamp = [&](Value q) {
    return arith::MinimumFOp::create(
               b, loc, arith::MaximumFOp::create(b, loc, q, lo), hi)
        .getResult();
  };
  if (spec.method == LearnedRounding::FlexRound) {
    Value exponent = arith::AddFOp::create(
        b, loc, arith::AddFOp::create(b, loc, g, e), r);
    Value divisor = math::ExpOp::create(b, loc, exponent);
    Value q = math::RoundEvenOp::create(
        b, loc, arith::DivFOp::create(b, loc, w, divisor));
    return arith::MulFOp::create(b, loc, math::ExpOp::create(b, loc, g),
                                 clamp(q));
  }
  Value h = rectifiedSigmoid(b, loc, e);
  Value floor =
      math::FloorOp::create(b, loc, arith::DivFOp::create(b, loc, w, g));
  return arith::MulFOp::create(
      b, loc, g, clamp(arith::AddFOp::create(b, loc, floor, h)));
}

/// AdaRound between the grid points `lower` and `upper` of scale `g`.
Value neighbourElement(OpBuilder &b, Location loc, Value v, Value g,
                       Value lower, Value upper) {
  Value step = arith::SubFOp::create(b, loc, upper, lower);
  Value point = arith::AddFOp::create(
      b, loc, lower,
      arith::MulFOp::create(b, loc, rectifiedSigmoid(b, loc, v), step));
  return arith::MulFOp::create(b, loc, g, point);
}

/// The type of argument `weightArg` of `func`, which a learnable weight
/// replaces: a static f32 [N, K] tensor; a located error otherwise.
FailureOr<RankedTensorType> learnableWeightType(func::FuncOp func,
                                                unsigned weightArg) {
  if (weightArg >= func.getNumArguments())
    return func.emitOpError() << "has no argument #" << weightArg;
  Value weight = func.getArgument(weightArg);
  auto type = dyn_cast<RankedTensorType>(weight.getType());
  if (!type || type.getRank() != 2 || !type.hasStaticShape() ||
      !type.getElementType().isF32())
    return emitError(weight.getLoc())
           << "a learnable weight must be a static f32 [N, K] tensor, got "
           << weight.getType();
  return type;
}

/// Appends arguments of `types` to `func`; returns the index of the first.
FailureOr<unsigned> appendArguments(func::FuncOp func, ArrayRef<Type> types,
                                    Location loc) {
  unsigned first = func.getNumArguments();
  for (auto [i, t] : llvm::enumerate(types))
    if (failed(func.insertArgument(first + i, t, DictionaryAttr(), loc)))
      return failure();
  return first;
}

} // namespace

FailureOr<LearnableWeightArgs>
mlir::qnt::makeWeightLearnable(func::FuncOp func, unsigned weightArg,
                               const LearnableWeightSpec &spec) {
  FailureOr<RankedTensorType> weightType =
      learnableWeightType(func, weightArg);
  if (failed(weightType))
    return failure();
  Value weight = func.getArgument(weightArg);
  RankedTensorType type = *weightType;
  if (spec.neighbourGrid && spec.method != LearnedRounding::AdaRound)
    return emitError(weight.getLoc())
           << "a neighbour grid is learned by AdaRound only";
  if (spec.minifloat && spec.method != LearnedRounding::FlexRound)
    return emitError(weight.getLoc())
           << "a minifloat rounding grid is learned by FlexRound only (AdaRound "
              "takes a neighbour grid)";
  if (spec.minifloat &&
      !(spec.minifloat->maxValue > 0 && std::isfinite(spec.minifloat->maxValue) &&
        spec.minifloat->mantissaBits >= 0 &&
        spec.minifloat->minExponent - spec.minifloat->mantissaBits >= -149))
    return emitError(weight.getLoc())
           << "a minifloat rounding grid needs a positive finite largest "
              "value, mantissa bits >= 0 and a subnormal step of at least "
              "2^-149";
  if (!spec.neighbourGrid && !spec.minifloat &&
      (spec.bits < 1 || spec.bits > 8))
    return emitError(weight.getLoc())
           << "learnable weights have 1 to 8 bits, got " << spec.bits;
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  int64_t groupSize = spec.groupSize ? spec.groupSize : cols;
  if (groupSize < 1)
    return emitError(weight.getLoc())
           << "group size " << spec.groupSize << " is not positive";
  // Ragged groups: the last group of a row is shorter; the computation
  // runs on the weight padded with zeros to whole groups.
  int64_t groups = llvm::divideCeil(cols, groupSize);
  int64_t paddedCols = groups * groupSize;

  MLIRContext *ctx = func.getContext();
  Type f32 = Float32Type::get(ctx);
  auto groupType = RankedTensorType::get({rows, groups}, f32);
  auto rowType = RankedTensorType::get({rows}, f32);
  Location loc = weight.getLoc();
  bool flex = spec.method == LearnedRounding::FlexRound;
  bool neighbours = spec.neighbourGrid;
  bool minifloat = spec.minifloat.has_value();
  // New arguments: the trainable ones, then the fixed ones.
  SmallVector<Type> added;
  if (flex && minifloat)
    added = {groupType, type, rowType};
  else if (flex)
    added = {groupType, type, rowType, groupType};
  else if (neighbours)
    added = {type, groupType, type, type};
  else
    added = {type, groupType, groupType};
  LearnableWeightArgs args;
  FailureOr<unsigned> appended = appendArguments(func, added, loc);
  if (failed(appended))
    return failure();
  unsigned first = *appended;
  auto arg = [&](unsigned i) { return func.getArgument(first + i); };
  if (flex) {
    args.trainable = {first, first + 1, first + 2};
    if (!minifloat)
      args.zeroPoint = first + 3;
  } else if (neighbours) {
    args.trainable = {first};
    args.scale = first + 1;
    args.lower = first + 2;
    args.upper = first + 3;
  } else {
    args.trainable = {first};
    args.scale = first + 1;
    args.zeroPoint = first + 2;
  }

  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  auto viewType = RankedTensorType::get({rows, groups, groupSize}, f32);
  auto paddedType = RankedTensorType::get({rows, paddedCols}, f32);
  SmallVector<ReassociationIndices> split = {{0}, {1, 2}};
  SmallVector<OpFoldResult> origin = {b.getIndexAttr(0), b.getIndexAttr(0)},
                            sizes = {b.getIndexAttr(rows),
                                     b.getIndexAttr(cols)},
                            unit = {b.getIndexAttr(1), b.getIndexAttr(1)};
  Value zeros;
  if (paddedCols != cols) {
    Value empty = tensor::EmptyOp::create(b, loc, paddedType.getShape(), f32);
    Value zero =
        arith::ConstantOp::create(b, loc, b.getF32FloatAttr(0)).getResult();
    zeros = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  }
  // `reader` receives the op that reads `v` (kept off the replacement).
  auto grouped = [&](Value v, Operation **reader = nullptr) {
    if (zeros) {
      auto padded =
          tensor::InsertSliceOp::create(b, loc, v, zeros, origin, sizes, unit);
      if (reader)
        *reader = padded;
      v = padded;
    }
    auto view = tensor::ExpandShapeOp::create(b, loc, viewType, v, split);
    if (reader && !zeros)
      *reader = view;
    return view.getResult();
  };
  Operation *weightReader = nullptr;
  Value wView = grouped(weight, &weightReader);
  Value elementwise = grouped(flex ? arg(1) : arg(0));
  Value perGroup = flex ? arg(0) : arg(1);
  auto map = [&](ArrayRef<unsigned> dims) {
    SmallVector<AffineExpr> exprs;
    for (unsigned d : dims)
      exprs.push_back(b.getAffineDimExpr(d));
    return AffineMap::get(3, 0, exprs, ctx);
  };
  SmallVector<Value> inputs = {wView, elementwise, perGroup};
  SmallVector<AffineMap> maps = {map({0, 1, 2}), map({0, 1, 2}), map({0, 1})};
  if (neighbours) {
    // The weight only fixes L and U; it stays an input so that its reader
    // is the one the replacement skips.
    inputs.append({grouped(arg(2)), grouped(arg(3))});
    maps.append({map({0, 1, 2}), map({0, 1, 2})});
  } else if (!minifloat) {
    inputs.push_back(flex ? arg(3) : arg(2));
    maps.push_back(map({0, 1}));
  }
  if (flex) {
    inputs.push_back(arg(2));
    maps.push_back(map({0}));
  }
  maps.push_back(map({0, 1, 2}));
  Value empty = tensor::EmptyOp::create(b, loc, viewType.getShape(), f32);
  SmallVector<utils::IteratorType> parallel(3, utils::IteratorType::parallel);
  Value quantized =
      linalg::GenericOp::create(
          b, loc, viewType, inputs, empty, maps, parallel,
          [&](OpBuilder &nb, Location l, ValueRange a) {
            linalg::YieldOp::create(
                nb, l,
                neighbours ? neighbourElement(nb, l, a[1], a[2], a[3], a[4])
                : minifloat
                    ? quantizedElement(nb, l, spec, a[0], a[1], a[2], Value(),
                                       a[3])
                    : quantizedElement(nb, l, spec, a[0], a[1], a[2], a[3],
                                       flex ? a[4] : Value()));
          })
          .getResult(0);
  Value learnable =
      tensor::CollapseShapeOp::create(b, loc, paddedType, quantized, split);
  if (zeros)
    learnable = tensor::ExtractSliceOp::create(b, loc, type, learnable, origin,
                                               sizes, unit);
  weight.replaceAllUsesExcept(learnable, weightReader);
  return args;
}

FailureOr<SalientBinarizationArgs>
mlir::qnt::makeSalientBinarizationLearnable(func::FuncOp func,
                                            unsigned weightArg) {
  FailureOr<RankedTensorType> weightType =
      learnableWeightType(func, weightArg);
  if (failed(weightType))
    return failure();
  Value weight = func.getArgument(weightArg);
  RankedTensorType type = *weightType;
  int64_t rows = type.getDimSize(0), cols = type.getDimSize(1);
  Type f32 = Float32Type::get(func.getContext());
  auto rowType = RankedTensorType::get({rows}, f32);
  auto colType = RankedTensorType::get({cols}, f32);
  Location loc = weight.getLoc();
  // alpha, r1, r2 (trainable), then Wsal, S, mu, m (fixed).
  SmallVector<Type> added = {rowType, rowType, colType, type,
                             type,    rowType, colType};
  FailureOr<unsigned> appended = appendArguments(func, added, loc);
  if (failed(appended))
    return failure();
  unsigned first = *appended;
  SalientBinarizationArgs args;
  args.trainable = {first, first + 1, first + 2};
  args.salientWeight = first + 3;
  args.signs = first + 4;
  args.offset = first + 5;
  args.restMask = first + 6;
  auto arg = [&](unsigned i) { return func.getArgument(first + i); };

  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  MLIRContext *ctx = func.getContext();
  auto map = [&](ArrayRef<unsigned> dims) {
    SmallVector<AffineExpr> exprs;
    for (unsigned d : dims)
      exprs.push_back(b.getAffineDimExpr(d));
    return AffineMap::get(2, 0, exprs, ctx);
  };
  SmallVector<Value> inputs = {arg(0), arg(1), arg(2), arg(3),
                               arg(4), arg(5), arg(6)};
  SmallVector<AffineMap> maps = {map({0}),    map({0}),    map({1}),
                                 map({0, 1}), map({0, 1}), map({0}),
                                 map({1}),    map({0, 1})};
  Value empty = tensor::EmptyOp::create(b, loc, type.getShape(), f32);
  SmallVector<utils::IteratorType> parallel(2, utils::IteratorType::parallel);
  Value learnable =
      linalg::GenericOp::create(
          b, loc, type, inputs, empty, maps, parallel,
          [&](OpBuilder &nb, Location l, ValueRange a) {
            // a: alpha, r1, r2, Wsal, S, mu, m.
            Value binary = arith::AddFOp::create(
                nb, l, arith::MulFOp::create(nb, l, a[0], a[4]),
                arith::MulFOp::create(nb, l, a[5], a[6]));
            Value rescaled = arith::MulFOp::create(
                nb, l, arith::MulFOp::create(nb, l, a[1], a[2]), binary);
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, a[3], rescaled).getResult());
          })
          .getResult(0);
  weight.replaceAllUsesWith(learnable);
  return args;
}

FailureOr<CodebookWeightArgs>
mlir::qnt::makeCodebookWeightLearnable(func::FuncOp func, unsigned weightArg) {
  FailureOr<RankedTensorType> weightType =
      learnableWeightType(func, weightArg);
  if (failed(weightType))
    return failure();
  Value weight = func.getArgument(weightArg);
  RankedTensorType type = *weightType;
  auto rowType = RankedTensorType::get({type.getDimSize(0)},
                                       Float32Type::get(func.getContext()));
  Location loc = weight.getLoc();
  FailureOr<unsigned> first =
      appendArguments(func, {rowType, type}, loc);
  if (failed(first))
    return failure();
  CodebookWeightArgs args{*first, *first + 1};

  OpBuilder b = OpBuilder::atBlockBegin(&func.getBody().front());
  MLIRContext *ctx = func.getContext();
  AffineMap rows = AffineMap::get(2, 0, {b.getAffineDimExpr(0)}, ctx);
  AffineMap identity = AffineMap::getMultiDimIdentityMap(2, ctx);
  Value empty =
      tensor::EmptyOp::create(b, loc, type.getShape(), type.getElementType());
  SmallVector<utils::IteratorType> parallel(2, utils::IteratorType::parallel);
  Value learnable =
      linalg::GenericOp::create(
          b, loc, type,
          ValueRange{func.getArgument(args.scales),
                     func.getArgument(args.words)},
          empty, ArrayRef<AffineMap>{rows, identity, identity}, parallel,
          [&](OpBuilder &nb, Location l, ValueRange a) {
            linalg::YieldOp::create(
                nb, l, arith::MulFOp::create(nb, l, a[0], a[1]).getResult());
          })
          .getResult(0);
  weight.replaceAllUsesWith(learnable);
  return args;
}

float mlir::qnt::roundToMinifloatGrid(float y, const MinifloatGrid &grid) {
  // As roundToGrid: the same comparisons, division and products in float.
  float magnitude = std::fabs(y);
  float step = float(std::ldexp(1.0, grid.minExponent - grid.mantissaBits));
  bool downOnTie = false;
  const int top = maxExponent(grid);
  for (int e = grid.minExponent + 1; e <= top; ++e)
    if (magnitude >= float(std::ldexp(1.0, e))) {
      step = float(std::ldexp(1.0, e - grid.mantissaBits));
      downOnTie = tieGoesDown(grid, e);
    }
  float steps = y / step;
  float code = downOnTie && std::fabs(steps) == 1.5f
                   ? (steps > 0 ? 1.0f : -1.0f)
                   : ::qnt::numerics::roundHalfEven(steps);
  float max = float(grid.maxValue);
  return std::min(std::max(code * step, -max), max);
}

MinifloatGrid mlir::qnt::minifloatGridOf(const ::qnt::numerics::MinifloatSpec &spec) {
  namespace nx = ::qnt::numerics;
  // The smallest positive value (code 1) is the subnormal step
  // 2^(minExponent - M).
  float smallest = nx::minifloatValues(spec)[1];
  MinifloatGrid grid;
  grid.mantissaBits = spec.mantissaBits;
  grid.minExponent = int(std::lround(std::log2(smallest))) + spec.mantissaBits;
  grid.maxValue = nx::minifloatMax(spec);
  return grid;
}
