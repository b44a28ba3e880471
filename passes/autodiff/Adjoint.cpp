//===- Adjoint.cpp - Reverse-mode differentiation of tensor functions -----===//
//
// See Adjoint.h. The builder clones the forward into the adjoint function
// (the primal), finds the values that depend on the differentiated
// arguments (activity analysis), and walks the forward ops backwards,
// emitting each op's vector-Jacobian product after the primal and summing
// the contributions of a value's uses.
//
//===----------------------------------------------------------------------===//

#include "passes/autodiff/Adjoint.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"
#include "mlir/Transforms/RegionUtils.h"
#include "llvm/ADT/ScopeExit.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace mlir::qnt;

bool mlir::qnt::isDifferentiableType(Type type) {
  auto tensor = dyn_cast<RankedTensorType>(type);
  return tensor && isa<FloatType>(tensor.getElementType());
}

static bool isFloatLike(Type type) {
  if (auto shaped = dyn_cast<ShapedType>(type))
    type = shaped.getElementType();
  return isa<FloatType>(type);
}

/// Erases the ops of `block` whose results are unused and that have no
/// effect: the parts of a cloned forward body the reverse does not read.
static void eraseDeadOps(Block &block) {
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(block)))
    if (isOpTriviallyDead(&op))
      op.erase();
}

namespace {

//===----------------------------------------------------------------------===//
// Scalar rules (bodies of linalg.generic)
//===----------------------------------------------------------------------===//

/// Emits the reverse of one scalar op: given the adjoint `g` of its result,
/// calls `addTo(operandIndex, contribution)` for each float operand.
/// `mapped` gives the primal (recomputed) value of an original operand or
/// result. Fails for ops without a rule.
LogicalResult
reverseScalar(OpBuilder &b, Operation *op, Value g,
              function_ref<Value(Value)> mapped,
              function_ref<void(unsigned, Value)> addTo) {
  Location loc = op->getLoc();
  auto operand = [&](unsigned i) { return mapped(op->getOperand(i)); };
  Value result = op->getNumResults() ? mapped(op->getResult(0)) : Value();
  auto mul = [&](Value x, Value y) {
    return arith::MulFOp::create(b, loc, x, y).getResult();
  };
  auto div = [&](Value x, Value y) {
    return arith::DivFOp::create(b, loc, x, y).getResult();
  };
  auto neg = [&](Value x) { return arith::NegFOp::create(b, loc, x).getResult(); };
  auto constant = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getFloatAttr(g.getType(), v))
        .getResult();
  };
  // The branch a maximum or minimum took: the first operand where `pick`,
  // or (maxnumf, minnumf) where the second is NaN and so was not returned.
  auto choose = [&](arith::CmpFPredicate pick, bool nanIgnoring) {
    Value first = arith::CmpFOp::create(b, loc, pick, operand(0), operand(1));
    if (nanIgnoring)
      first = arith::OrIOp::create(
          b, loc, first,
          arith::CmpFOp::create(b, loc, arith::CmpFPredicate::UNO, operand(1),
                                operand(1)));
    Value zero = constant(0);
    addTo(0, arith::SelectOp::create(b, loc, first, g, zero));
    addTo(1, arith::SelectOp::create(b, loc, first, zero, g));
  };

  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case<arith::AddFOp>([&](auto) {
        addTo(0, g);
        addTo(1, g);
        return success();
      })
      .Case<arith::SubFOp>([&](auto) {
        addTo(0, g);
        addTo(1, neg(g));
        return success();
      })
      .Case<arith::MulFOp>([&](auto) {
        addTo(0, mul(g, operand(1)));
        addTo(1, mul(g, operand(0)));
        return success();
      })
      .Case<arith::DivFOp>([&](auto) {
        // d(a/b) = da / b - (a/b) db / b.
        Value gOverB = div(g, operand(1));
        addTo(0, gOverB);
        addTo(1, neg(mul(gOverB, result)));
        return success();
      })
      .Case<arith::NegFOp>([&](auto) {
        addTo(0, neg(g));
        return success();
      })
      .Case<arith::MaximumFOp, arith::MaxNumFOp>([&](Operation *max) {
        choose(arith::CmpFPredicate::OGE, isa<arith::MaxNumFOp>(max));
        return success();
      })
      .Case<arith::MinimumFOp, arith::MinNumFOp>([&](Operation *min) {
        choose(arith::CmpFPredicate::OLE, isa<arith::MinNumFOp>(min));
        return success();
      })
      .Case<arith::SelectOp>([&](arith::SelectOp select) {
        Value zero = constant(0);
        Value condition = mapped(select.getCondition());
        addTo(1, arith::SelectOp::create(b, loc, condition, g, zero));
        addTo(2, arith::SelectOp::create(b, loc, condition, zero, g));
        return success();
      })
      .Case<arith::ExtFOp>([&](arith::ExtFOp ext) {
        addTo(0, arith::TruncFOp::create(b, loc, ext.getIn().getType(), g));
        return success();
      })
      .Case<arith::TruncFOp>([&](arith::TruncFOp trunc) {
        addTo(0, arith::ExtFOp::create(b, loc, trunc.getIn().getType(), g));
        return success();
      })
      .Case<math::ExpOp>([&](auto) {
        addTo(0, mul(g, result));
        return success();
      })
      .Case<math::LogOp>([&](auto) {
        addTo(0, div(g, operand(0)));
        return success();
      })
      .Case<math::SqrtOp>([&](auto) {
        // d sqrt(a) = da / (2 sqrt(a)).
        addTo(0, div(mul(g, constant(0.5)), result));
        return success();
      })
      .Case<math::RsqrtOp>([&](auto) {
        // d a^(-1/2) = -a^(-3/2) / 2 da.
        Value cube = mul(result, mul(result, result));
        addTo(0, mul(g, mul(cube, constant(-0.5))));
        return success();
      })
      .Case<math::TanhOp>([&](auto) {
        Value one = constant(1);
        addTo(0, mul(g, arith::SubFOp::create(b, loc, one,
                                              mul(result, result))));
        return success();
      })
      .Case<math::SinOp>([&](auto) {
        addTo(0, mul(g, math::CosOp::create(b, loc, operand(0))));
        return success();
      })
      .Case<math::CosOp>([&](auto) {
        addTo(0, neg(mul(g, math::SinOp::create(b, loc, operand(0)))));
        return success();
      })
      .Case<math::PowFOp>([&](auto) {
        // d a^c = c a^(c-1) da + a^c log(a) dc.
        Value base = operand(0), exponent = operand(1);
        Value lower = math::PowFOp::create(
            b, loc, base, arith::SubFOp::create(b, loc, exponent, constant(1)));
        addTo(0, mul(g, mul(exponent, lower)));
        addTo(1, mul(g, mul(result, math::LogOp::create(b, loc, base))));
        return success();
      })
      .Case<math::AbsFOp>([&](auto) {
        // sign(a), 0 at 0.
        Value zero = constant(0);
        Value positive = arith::CmpFOp::create(
            b, loc, arith::CmpFPredicate::OGT, operand(0), zero);
        Value negative = arith::CmpFOp::create(
            b, loc, arith::CmpFPredicate::OLT, operand(0), zero);
        Value sign = arith::SelectOp::create(
            b, loc, positive, constant(1),
            arith::SelectOp::create(b, loc, negative, constant(-1), zero));
        addTo(0, mul(g, sign));
        return success();
      })
      .Case<math::FmaOp>([&](auto) {
        addTo(0, mul(g, operand(1)));
        addTo(1, mul(g, operand(0)));
        addTo(2, g);
        return success();
      })
      .Case<math::RoundEvenOp, math::RoundOp, math::FloorOp, math::CeilOp>(
          [&](auto) {
            addTo(0, g); // straight-through
            return success();
          })
      .Default([&](Operation *) {
        return op->emitOpError("has no adjoint rule (qnt-differentiate "
                               "supports the ops listed in "
                               "docs/Autodiff.md)");
      });
}

//===----------------------------------------------------------------------===//
// The builder
//===----------------------------------------------------------------------===//

/// How an output of a linalg op combines its element across iterations.
enum class Combiner {
  None,    ///< no reduction: the init is only read (or not at all)
  Sum,     ///< acc + h
  Extremum ///< max or min of acc and h
};

struct OutputRole {
  Combiner combiner = Combiner::None;
  /// The value combined into the accumulator (Sum, Extremum), else the
  /// yielded value.
  Value contribution;
  /// Body ops that only combine (not cloned into gradient bodies).
  SmallVector<Operation *, 2> combineOps;
};

/// What the rules for one linalg.generic share, found once per generic.
struct GenericFacts {
  linalg::GenericOp generic;
  /// The forward results whose cotangents are read: a named op's, not those
  /// of its temporary generic form.
  ValueRange results;
  SmallVector<OutputRole> roles;
  /// Per maximum or minimum with a cotangent: how many elements reach it.
  SmallVector<Value> ties;
  /// Values defined outside the body and used in it.
  SetVector<Value> captured;
  /// Every output's combine ops.
  DenseSet<Operation *> combineOps;
};

class AdjointBuilder {
public:
  AdjointBuilder(func::FuncOp primal, func::FuncOp adjoint)
      : primal(primal), adjoint(adjoint), b(adjoint.getContext()) {}

  LogicalResult build(ArrayRef<unsigned> wrt);

private:
  bool isVaried(Value original) const { return varied.contains(original); }
  Value mapped(Value original) const { return primalMap.lookup(original); }
  SmallVector<OpFoldResult> mappedFoldResults(ArrayRef<OpFoldResult> list) {
    SmallVector<OpFoldResult> result;
    for (OpFoldResult item : list)
      result.push_back(isa<Value>(item) ? OpFoldResult(mapped(cast<Value>(item)))
                                        : item);
    return result;
  }

  void accumulate(Value original, Value contribution);
  Value zerosLike(Location loc, Value tensor);
  Value add(Location loc, Value x, Value y);

  LogicalResult reverse(Operation *op);
  LogicalResult reverseLinalg(linalg::LinalgOp op);
  LogicalResult reverseGeneric(linalg::GenericOp generic, ValueRange results,
                               Operation *original);
  FailureOr<OutputRole> classifyOutput(linalg::GenericOp generic,
                                       unsigned output, Operation *original);
  /// The cotangent of `target` (a block argument, or a scalar captured
  /// by the body) summed into a tensor indexed by `outMap`, shaped like
  /// `like` (rank 0 when null).
  Value gradientGeneric(const GenericFacts &facts, Value target,
                        AffineMap outMap, Value like, LogicalResult &status);
  Value tieCount(const GenericFacts &facts, unsigned output);
  Value scatterGradient(const GenericFacts &facts, Value source,
                        Operation *original, LogicalResult &status);
  bool reachesACotangent(const GenericFacts &facts,
                         const DenseSet<Value> &dependent) const;
  IRMapping bodyMapping(const GenericFacts &facts, ValueRange inputs) const;
  void appendInputs(const GenericFacts &facts, SmallVectorImpl<Value> &ins,
                    SmallVectorImpl<AffineMap> &maps) const;
  SmallVector<Operation *> cloneForwardBody(OpBuilder &nb,
                                            const GenericFacts &facts,
                                            IRMapping &bodyMap) const;
  FailureOr<DenseMap<Value, Value>>
  reverseBody(OpBuilder &nb, Location l, const GenericFacts &facts,
              IRMapping &bodyMap, ArrayRef<Value> seeds,
              ArrayRef<Value> finals, ArrayRef<Value> ties,
              const DenseSet<Value> &dependent);
  LogicalResult reverseQntMatmul(MatmulOp matmul);

  func::FuncOp primal, adjoint;
  OpBuilder b;
  IRMapping primalMap;
  DenseSet<Value> varied;
  /// Adjoints of original values, in the adjoint function.
  DenseMap<Value, Value> adjoints;
};

/// The values of `func` that depend on its arguments `wrt` (float ones:
/// integers and indices carry no gradient).
static DenseSet<Value> variedValues(func::FuncOp func, ArrayRef<unsigned> wrt) {
  DenseSet<Value> varied;
  for (unsigned i : wrt)
    varied.insert(func.getArgument(i));
  for (Operation &op : func.getBody().front()) {
    bool depends = llvm::any_of(op.getOperands(),
                                [&](Value v) { return varied.contains(v); });
    if (!depends && op.getNumRegions()) {
      SetVector<Value> captured;
      getUsedValuesDefinedAbove(op.getRegions(), captured);
      depends =
          llvm::any_of(captured, [&](Value v) { return varied.contains(v); });
    }
    if (depends)
      for (Value result : op.getResults())
        if (isFloatLike(result.getType()))
          varied.insert(result);
  }
  return varied;
}

void AdjointBuilder::accumulate(Value original, Value contribution) {
  auto [it, inserted] = adjoints.try_emplace(original, contribution);
  if (!inserted)
    it->second = add(contribution.getLoc(), it->second, contribution);
}

Value AdjointBuilder::zerosLike(Location loc, Value tensor) {
  auto type = cast<RankedTensorType>(tensor.getType());
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(tensor::DimOp::create(b, loc, tensor, d));
  Value empty = tensor::EmptyOp::create(b, loc, type.getShape(),
                                        type.getElementType(), dynamicSizes);
  Value zero = arith::ConstantOp::create(
      b, loc, b.getZeroAttr(type.getElementType()));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

Value AdjointBuilder::add(Location loc, Value x, Value y) {
  if (!isa<RankedTensorType>(x.getType()))
    return arith::AddFOp::create(b, loc, x, y);
  auto type = cast<RankedTensorType>(x.getType());
  AffineMap identity = b.getMultiDimIdentityMap(type.getRank());
  SmallVector<utils::IteratorType> parallel(type.getRank(),
                                            utils::IteratorType::parallel);
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      dynamicSizes.push_back(tensor::DimOp::create(b, loc, x, d));
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(),
                                       type.getElementType(), dynamicSizes);
  return linalg::GenericOp::create(
             b, loc, type, ValueRange{x, y}, init,
             {identity, identity, identity}, parallel,
             [](OpBuilder &nb, Location l, ValueRange args) {
               linalg::YieldOp::create(
                   nb, l, arith::AddFOp::create(nb, l, args[0], args[1])
                              .getResult());
             })
      .getResult(0);
}

LogicalResult AdjointBuilder::build(ArrayRef<unsigned> wrt) {
  Block &body = adjoint.getBody().front();
  b.setInsertionPointToStart(&body);
  for (unsigned i = 0; i < primal.getNumArguments(); ++i)
    primalMap.map(primal.getArgument(i), body.getArgument(i));
  auto ret = cast<func::ReturnOp>(primal.getBody().front().getTerminator());
  // The primal: the forward again (recompute policy).
  for (Operation &op : primal.getBody().front().without_terminator())
    b.clone(op, primalMap);
  varied = variedValues(primal, wrt);
  // Seeds: each result's cotangent.
  unsigned numArgs = primal.getNumArguments();
  for (auto [i, value] : llvm::enumerate(ret.getOperands()))
    if (isVaried(value))
      accumulate(value, body.getArgument(numArgs + i));
  // The reverse sweep.
  SmallVector<Operation *> ops;
  for (Operation &op : primal.getBody().front().without_terminator())
    ops.push_back(&op);
  for (Operation *op : llvm::reverse(ops))
    if (failed(reverse(op)))
      return failure();
  SmallVector<Value> gradients;
  for (unsigned i : wrt) {
    Value argument = primal.getArgument(i);
    Value gradient = adjoints.lookup(argument);
    gradients.push_back(gradient ? gradient
                                 : zerosLike(ret.getLoc(), mapped(argument)));
  }
  func::ReturnOp::create(b, ret.getLoc(), gradients);
  // The primal ops no gradient reads (the forward's last ops, typically).
  eraseDeadOps(body);
  return success();
}

LogicalResult AdjointBuilder::reverse(Operation *op) {
  // Nothing to do where no result carries a gradient.
  if (llvm::none_of(op->getResults(),
                    [&](Value r) { return adjoints.count(r); }))
    return success();
  if (auto linalgOp = dyn_cast<linalg::LinalgOp>(op))
    return reverseLinalg(linalgOp);
  if (auto matmul = dyn_cast<MatmulOp>(op))
    return reverseQntMatmul(matmul);
  if (auto observe = dyn_cast<ObserveOp>(op)) {
    // Calibration statistics do not change the value.
    accumulate(observe.getInput(), adjoints.lookup(observe.getResult()));
    return success();
  }
  Location loc = op->getLoc();
  Value g = adjoints.lookup(op->getResult(0));
  auto sourceNeeds = [&](Value source) { return isVaried(source); };
  // Scalar arithmetic between tensors (a scale read from a tensor, say):
  // the same rules as in bodies.
  if (op->getDialect() &&
      isa<arith::ArithDialect, math::MathDialect>(op->getDialect()) &&
      op->getNumResults() == 1 && isa<FloatType>(g.getType()))
    return reverseScalar(
        b, op, g, [&](Value v) { return primalMap.lookupOrDefault(v); },
        [&](unsigned i, Value contribution) {
          if (isVaried(op->getOperand(i)))
            accumulate(op->getOperand(i), contribution);
        });
  return TypeSwitch<Operation *, LogicalResult>(op)
      .Case<tensor::ExpandShapeOp>([&](tensor::ExpandShapeOp expand) {
        if (sourceNeeds(expand.getSrc()))
          accumulate(expand.getSrc(),
                     tensor::CollapseShapeOp::create(
                         b, loc, expand.getSrcType(), g,
                         expand.getReassociationIndices()));
        return success();
      })
      .Case<tensor::CollapseShapeOp>([&](tensor::CollapseShapeOp collapse) {
        if (sourceNeeds(collapse.getSrc())) {
          Value source = mapped(collapse.getSrc());
          accumulate(collapse.getSrc(),
                     tensor::ExpandShapeOp::create(
                         b, loc, collapse.getSrcType(), g,
                         collapse.getReassociationIndices(),
                         tensor::getMixedSizes(b, loc, source)));
        }
        return success();
      })
      .Case<tensor::ExtractSliceOp>([&](tensor::ExtractSliceOp slice) {
        if (!sourceNeeds(slice.getSource()))
          return success();
        Value zeros = zerosLike(loc, mapped(slice.getSource()));
        accumulate(slice.getSource(),
                   tensor::InsertSliceOp::create(
                       b, loc, g, zeros, mappedFoldResults(slice.getMixedOffsets()),
                       mappedFoldResults(slice.getMixedSizes()),
                       mappedFoldResults(slice.getMixedStrides())));
        return success();
      })
      .Case<tensor::InsertSliceOp>([&](tensor::InsertSliceOp insert) {
        auto offsets = mappedFoldResults(insert.getMixedOffsets());
        auto sizes = mappedFoldResults(insert.getMixedSizes());
        auto strides = mappedFoldResults(insert.getMixedStrides());
        if (sourceNeeds(insert.getSource()))
          accumulate(insert.getSource(),
                     tensor::ExtractSliceOp::create(b, loc,
                                                    insert.getSourceType(), g,
                                                    offsets, sizes, strides));
        if (sourceNeeds(insert.getDest())) {
          // The inserted window of the destination is overwritten.
          Value zeros = zerosLike(loc, mapped(insert.getSource()));
          accumulate(insert.getDest(),
                     tensor::InsertSliceOp::create(b, loc, zeros, g, offsets,
                                                   sizes, strides));
        }
        return success();
      })
      .Case<tensor::ExtractOp>([&](tensor::ExtractOp extract) {
        // An element read: its cotangent at that index of a zero tensor.
        if (sourceNeeds(extract.getTensor())) {
          SmallVector<Value> indices;
          for (Value index : extract.getIndices())
            indices.push_back(primalMap.lookupOrDefault(index));
          Value zeros = zerosLike(loc, mapped(extract.getTensor()));
          accumulate(extract.getTensor(),
                     tensor::InsertOp::create(b, loc, g, zeros, indices));
        }
        return success();
      })
      .Case<tensor::CastOp>([&](tensor::CastOp cast) {
        if (sourceNeeds(cast.getSource()))
          accumulate(cast.getSource(),
                     tensor::CastOp::create(b, loc, cast.getSource().getType(),
                                            g));
        return success();
      })
      .Default([&](Operation *) {
        return op->emitOpError(
            "has no adjoint rule, and its result depends on a differentiated "
            "argument (qnt-differentiate supports the ops listed in "
            "docs/Autodiff.md)");
      });
}


//===----------------------------------------------------------------------===//
// linalg
//===----------------------------------------------------------------------===//

/// Body values that depend on `roots` (within the body, through its ops).
static DenseSet<Value> dependentValues(Block &body, ArrayRef<Value> roots) {
  DenseSet<Value> dependent(roots.begin(), roots.end());
  for (Operation &op : body.without_terminator())
    if (llvm::any_of(op.getOperands(),
                     [&](Value v) { return dependent.contains(v); }))
      for (Value r : op.getResults())
        dependent.insert(r);
  return dependent;
}

LogicalResult AdjointBuilder::reverseLinalg(linalg::LinalgOp op) {
  if (auto generic = dyn_cast<linalg::GenericOp>(op.getOperation()))
    return reverseGeneric(generic, op->getResults(), op);
  // A named op is read through its generic form, built next to it in the
  // forward function and erased once its adjoint is emitted: the primal
  // keeps the named op (and so its fast kernel).
  IRRewriter rewriter(op.getContext());
  rewriter.setInsertionPoint(op);
  auto clone = cast<linalg::LinalgOp>(rewriter.clone(*op));
  FailureOr<linalg::GenericOp> generic =
      linalg::generalizeNamedOp(rewriter, clone);
  if (failed(generic)) {
    rewriter.eraseOp(clone);
    return op->emitOpError("has no generic form to differentiate");
  }
  LogicalResult status = reverseGeneric(*generic, op->getResults(), op);
  rewriter.eraseOp(*generic);
  return status;
}

FailureOr<OutputRole> AdjointBuilder::classifyOutput(linalg::GenericOp generic,
                                                     unsigned output,
                                                     Operation *original) {
  Block &body = generic.getRegion().front();
  Value yielded = body.getTerminator()->getOperand(output);
  BlockArgument acc = body.getArgument(generic.getNumDpsInputs() + output);
  OutputRole role;
  role.contribution = yielded;
  if (generic.getNumReductionLoops() == 0)
    return role;
  auto other = [&](Operation *op) -> Value {
    if (op->getNumOperands() != 2 || !acc.hasOneUse())
      return {};
    if (op->getOperand(0) == acc && op->getOperand(1) != acc)
      return op->getOperand(1);
    if (op->getOperand(1) == acc && op->getOperand(0) != acc)
      return op->getOperand(0);
    return {};
  };
  Operation *combine = yielded.getDefiningOp();
  if (combine && combine->getBlock() == &body) {
    if (isa<arith::AddFOp>(combine)) {
      if (Value h = other(combine))
        return OutputRole{Combiner::Sum, h, {combine}};
    } else if (isa<arith::MaximumFOp, arith::MaxNumFOp, arith::MinimumFOp,
                   arith::MinNumFOp>(combine)) {
      if (Value h = other(combine))
        return OutputRole{Combiner::Extremum, h, {combine}};
    } else if (auto select = dyn_cast<arith::SelectOp>(combine)) {
      // select(cmpf(h, acc), h, acc) in either order: a maximum or minimum.
      auto compare = select.getCondition().getDefiningOp<arith::CmpFOp>();
      Value t = select.getTrueValue(), f = select.getFalseValue();
      Value h = t == acc ? f : t;
      bool shape = (t == acc) != (f == acc) && compare &&
                   compare->getBlock() == &body && compare->hasOneUse() &&
                   llvm::is_contained(compare->getOperands(), acc) &&
                   llvm::is_contained(compare->getOperands(), h) &&
                   llvm::range_size(acc.getUses()) == 2;
      if (shape)
        return OutputRole{Combiner::Extremum, h, {compare, select}};
    }
  }
  return original->emitOpError()
         << "reduces output #" << output
         << " with a combiner other than a sum, a maximum or a minimum; it "
            "has no adjoint rule";
}

LogicalResult AdjointBuilder::reverseGeneric(linalg::GenericOp generic,
                                             ValueRange results,
                                             Operation *original) {
  for (AffineMap map : generic.getIndexingMapsArray())
    if (!map.isProjectedPermutation())
      return original->emitOpError()
             << "has the indexing map " << AffineMapAttr::get(map)
             << ", which is not a projected permutation; its adjoint would "
                "need a scatter";
  GenericFacts facts{generic, results};
  SmallVector<OutputRole> &roles = facts.roles;
  for (unsigned j = 0; j < generic.getNumDpsInits(); ++j) {
    FailureOr<OutputRole> role = classifyOutput(generic, j, original);
    if (failed(role))
      return failure();
    roles.push_back(*role);
    facts.combineOps.insert(role->combineOps.begin(), role->combineOps.end());
  }
  getUsedValuesDefinedAbove(generic.getRegion(), facts.captured);
  // A reduced value must not read an accumulator: its combine op (not
  // reversed) would hide that dependence.
  Block &body = generic.getRegion().front();
  SmallVector<Value> accumulators;
  for (unsigned j = 0; j < roles.size(); ++j)
    if (roles[j].combiner != Combiner::None)
      accumulators.push_back(body.getArgument(generic.getNumDpsInputs() + j));
  DenseSet<Value> fromAccumulators = dependentValues(body, accumulators);
  for (unsigned j = 0; j < roles.size(); ++j)
    if (roles[j].combiner != Combiner::None &&
        fromAccumulators.contains(roles[j].contribution))
      return original->emitOpError()
             << "reduces into output #" << j
             << " a value that reads an accumulator; it has no adjoint rule";
  facts.ties.resize(roles.size());
  for (unsigned j = 0; j < roles.size(); ++j)
    if (roles[j].combiner == Combiner::Extremum && adjoints.count(results[j]))
      facts.ties[j] = tieCount(facts, j);
  // A sum's init is added once to the result.
  for (unsigned j = 0; j < roles.size(); ++j) {
    Value init = generic.getDpsInitOperand(j)->get();
    Value g = adjoints.lookup(results[j]);
    if (!g || !isVaried(init) || roles[j].combiner == Combiner::None)
      continue;
    if (roles[j].combiner == Combiner::Extremum)
      return original->emitOpError()
             << "takes the maximum or minimum into output #" << j
             << " starting from a differentiated init; its adjoint is not "
                "supported";
    accumulate(init, g);
  }
  // A scalar used at every iteration (captured, or linalg.fill's value):
  // its cotangent is the sum over all of them, a generic reducing into a
  // rank-0 tensor.
  auto accumulateSum = [&](Value value, Value target, AffineMap map) {
    LogicalResult status = success();
    Value sum = gradientGeneric(facts, target, map, Value(), status);
    if (sum)
      accumulate(value, tensor::ExtractOp::create(b, generic.getLoc(), sum,
                                                  ValueRange{}));
    return status;
  };
  // Tensors read inside the body (gathers): their adjoint is a scatter.
  for (Value value : facts.captured) {
    if (!isVaried(value))
      continue;
    if (!isa<RankedTensorType>(value.getType())) {
      if (failed(accumulateSum(value, value,
                               AffineMap::get(generic.getNumLoops(), 0, {},
                                              generic.getContext()))))
        return failure();
      continue;
    }
    LogicalResult status = success();
    Value gradient = scatterGradient(facts, value, original, status);
    if (failed(status))
      return failure();
    if (gradient)
      accumulate(value, gradient);
  }
  for (OpOperand &operand : generic->getOpOperands()) {
    Value value = operand.get();
    if (!isVaried(value))
      continue;
    if (generic.isDpsInit(&operand)) {
      unsigned j = operand.getOperandNumber() - generic.getNumDpsInputs();
      if (roles[j].combiner != Combiner::None ||
          generic.getMatchingBlockArgument(&operand).use_empty())
        continue;
    }
    BlockArgument target = generic.getMatchingBlockArgument(&operand);
    AffineMap map = generic.getMatchingIndexingMap(&operand);
    if (!isa<ShapedType>(value.getType())) {
      if (failed(accumulateSum(value, target, map)))
        return failure();
      continue;
    }
    LogicalResult status = success();
    Value gradient = gradientGeneric(facts, target, map, value, status);
    if (failed(status))
      return failure();
    if (gradient)
      accumulate(value, gradient);
  }
  return success();
}

/// Loop sizes of `generic` over the values that replace its operands.
static SmallVector<Value> loopSizes(OpBuilder &b, Location loc,
                                    linalg::GenericOp generic,
                                    function_ref<Value(Value)> mapped) {
  SmallVector<Value> sizes(generic.getNumLoops());
  for (OpOperand &operand : generic->getOpOperands()) {
    auto type = dyn_cast<RankedTensorType>(operand.get().getType());
    if (!type)
      continue;
    AffineMap map = generic.getMatchingIndexingMap(&operand);
    for (unsigned r = 0; r < map.getNumResults(); ++r) {
      unsigned d = map.getDimPosition(r);
      if (sizes[d])
        continue;
      sizes[d] = type.isDynamicDim(r)
                     ? tensor::DimOp::create(b, loc, mapped(operand.get()), r)
                           .getResult()
                     : arith::ConstantIndexOp::create(b, loc,
                                                      type.getDimSize(r))
                           .getResult();
    }
  }
  return sizes;
}

bool AdjointBuilder::reachesACotangent(const GenericFacts &facts,
                                       const DenseSet<Value> &dependent) const {
  for (auto [result, role] : llvm::zip(facts.results, facts.roles))
    if (adjoints.count(result) && dependent.contains(role.contribution))
      return true;
  return false;
}

IRMapping AdjointBuilder::bodyMapping(const GenericFacts &facts,
                                      ValueRange inputs) const {
  IRMapping bodyMap;
  for (Value value : facts.captured)
    bodyMap.map(value, mapped(value));
  linalg::GenericOp generic = facts.generic; // op handles are not const
  Block &body = generic.getRegion().front();
  for (auto [i, input] : llvm::enumerate(inputs))
    bodyMap.map(body.getArgument(i), input);
  return bodyMap;
}

void AdjointBuilder::appendInputs(const GenericFacts &facts,
                                  SmallVectorImpl<Value> &ins,
                                  SmallVectorImpl<AffineMap> &maps) const {
  linalg::GenericOp generic = facts.generic;
  for (OpOperand *input : generic.getDpsInputOperands()) {
    ins.push_back(mapped(input->get()));
    maps.push_back(generic.getMatchingIndexingMap(input));
  }
}

/// Clones the forward body's ops but the combine ops (accumulators are read
/// only by those) and those whose result `bodyMap` already gives; returns
/// the original ops cloned, in order.
SmallVector<Operation *>
AdjointBuilder::cloneForwardBody(OpBuilder &nb, const GenericFacts &facts,
                                 IRMapping &bodyMap) const {
  SmallVector<Operation *> ops;
  linalg::GenericOp generic = facts.generic;
  for (Operation &op : generic.getRegion().front().without_terminator())
    if (!facts.combineOps.contains(&op) &&
        (op.getNumResults() == 0 || !bodyMap.contains(op.getResult(0)))) {
      nb.clone(op, bodyMap);
      ops.push_back(&op);
    }
  return ops;
}

FailureOr<DenseMap<Value, Value>> AdjointBuilder::reverseBody(
    OpBuilder &nb, Location l, const GenericFacts &facts, IRMapping &bodyMap,
    ArrayRef<Value> seeds, ArrayRef<Value> finals, ArrayRef<Value> ties,
    const DenseSet<Value> &dependent) {
  ArrayRef<OutputRole> roles = facts.roles;
  SmallVector<Operation *> ops = cloneForwardBody(nb, facts, bodyMap);
  auto primalOf = [&](Value v) { return bodyMap.lookupOrDefault(v); };
  DenseMap<Value, Value> scalarAdjoints;
  auto addAdjoint = [&](Value original, Value contribution) {
    if (!dependent.contains(original))
      return;
    auto [it, inserted] = scalarAdjoints.try_emplace(original, contribution);
    if (!inserted)
      it->second = arith::AddFOp::create(nb, l, it->second, contribution);
  };
  for (unsigned j = 0; j < seeds.size(); ++j) {
    if (!seeds[j])
      continue;
    Value seed = seeds[j];
    if (roles[j].combiner == Combiner::Extremum) {
      // The gradient of a maximum is shared by the elements equal to it
      // (as torch's amax): each gets the cotangent over their count.
      Value chosen =
          arith::CmpFOp::create(nb, l, arith::CmpFPredicate::OEQ,
                                primalOf(roles[j].contribution), finals[j]);
      Value zero =
          arith::ConstantOp::create(nb, l, nb.getZeroAttr(seed.getType()));
      Value share = arith::DivFOp::create(nb, l, seed, ties[j]);
      seed = arith::SelectOp::create(nb, l, chosen, share, zero);
    }
    addAdjoint(roles[j].contribution, seed);
  }
  for (Operation *op : llvm::reverse(ops)) {
    // A gather's cotangent is scattered by the caller.
    if (op->getNumResults() != 1 || isa<tensor::ExtractOp>(op))
      continue;
    Value g = scalarAdjoints.lookup(op->getResult(0));
    if (!g)
      continue;
    if (failed(reverseScalar(nb, op, g, primalOf,
                             [&](unsigned i, Value contribution) {
                               addAdjoint(op->getOperand(i), contribution);
                             })))
      return failure();
  }
  return scalarAdjoints;
}

/// `value` converted to the float type `type`.
static Value convertFloat(OpBuilder &b, Location loc, Value value, Type type) {
  if (value.getType() == type)
    return value;
  unsigned from = value.getType().getIntOrFloatBitWidth();
  if (from == type.getIntOrFloatBitWidth()) // f16 <-> bf16, through f32
    value = arith::ExtFOp::create(b, loc, b.getF32Type(), value);
  if (value.getType().getIntOrFloatBitWidth() > type.getIntOrFloatBitWidth())
    return arith::TruncFOp::create(b, loc, type, value);
  return arith::ExtFOp::create(b, loc, type, value);
}

Value AdjointBuilder::tieCount(const GenericFacts &facts, unsigned output) {
  linalg::GenericOp generic = facts.generic;
  const unsigned numInputs = generic.getNumDpsInputs();
  Location loc = generic.getLoc();
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  appendInputs(facts, ins, maps);
  AffineMap outMap =
      generic.getMatchingIndexingMap(generic.getDpsInitOperand(output));
  Value final = mapped(facts.results[output]);
  ins.push_back(final);
  maps.append({outMap, outMap});
  Value init = zerosLike(loc, final);
  Type elementType = getElementTypeOrSelf(init.getType());
  auto count = linalg::GenericOp::create(
      b, loc, init.getType(), ins, init, maps,
      generic.getIteratorTypesArray(),
      [&](OpBuilder &nb, Location l, ValueRange args) {
        IRMapping bodyMap = bodyMapping(facts, args.take_front(numInputs));
        cloneForwardBody(nb, facts, bodyMap);
        Value equal = arith::CmpFOp::create(
            nb, l, arith::CmpFPredicate::OEQ,
            bodyMap.lookupOrDefault(facts.roles[output].contribution),
            args[numInputs]);
        Value one =
            arith::ConstantOp::create(nb, l, nb.getFloatAttr(elementType, 1));
        Value zero =
            arith::ConstantOp::create(nb, l, nb.getZeroAttr(elementType));
        linalg::YieldOp::create(
            nb, l,
            arith::AddFOp::create(
                nb, l, args.back(),
                arith::SelectOp::create(nb, l, equal, one, zero))
                .getResult());
      });
  eraseDeadOps(count.getRegion().front());
  return count.getResult(0);
}

Value AdjointBuilder::gradientGeneric(const GenericFacts &facts, Value target,
                                      AffineMap outMap, Value like,
                                      LogicalResult &status) {
  linalg::GenericOp generic = facts.generic;
  ValueRange results = facts.results;
  ArrayRef<OutputRole> roles = facts.roles;
  Block &body = generic.getRegion().front();
  const unsigned numInputs = generic.getNumDpsInputs();
  const unsigned numOutputs = generic.getNumDpsInits();
  DenseSet<Value> dependent = dependentValues(body, {target});
  if (!reachesACotangent(facts, dependent))
    return {};

  Location loc = generic.getLoc();
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  appendInputs(facts, ins, maps);
  // Per output: where its init (read as a value), its final value (for a
  // maximum) and its cotangent are among the new inputs; -1 if absent.
  SmallVector<int> initArg(numOutputs, -1), finalArg(numOutputs, -1),
      tieArg(numOutputs, -1), seedArg(numOutputs, -1);
  for (unsigned j = 0; j < numOutputs; ++j) {
    OpOperand *init = generic.getDpsInitOperand(j);
    AffineMap map = generic.getMatchingIndexingMap(init);
    auto append = [&](int &index, Value value) {
      index = int(ins.size());
      ins.push_back(value);
      maps.push_back(map);
    };
    bool hasSeed = adjoints.count(results[j]);
    if (roles[j].combiner == Combiner::None &&
        !generic.getMatchingBlockArgument(init).use_empty())
      append(initArg[j], mapped(init->get()));
    if (roles[j].combiner == Combiner::Extremum && hasSeed) {
      append(finalArg[j], mapped(results[j]));
      append(tieArg[j], facts.ties[j]);
    }
    if (hasSeed)
      append(seedArg[j], adjoints.lookup(results[j]));
  }
  maps.push_back(outMap);
  SmallVector<utils::IteratorType> iterators;
  for (unsigned d = 0; d < generic.getNumLoops(); ++d)
    iterators.push_back(outMap.isFunctionOfDim(d)
                            ? utils::IteratorType::parallel
                            : utils::IteratorType::reduction);
  // Zeros shaped like the operand, or a rank-0 tensor for a scalar.
  Type elementType = getElementTypeOrSelf(target.getType());
  Value init;
  if (like) {
    init = zerosLike(loc, mapped(like));
  } else {
    Value empty = tensor::EmptyOp::create(b, loc, ArrayRef<int64_t>{},
                                          elementType);
    Value zero = arith::ConstantOp::create(b, loc, b.getZeroAttr(elementType));
    init = linalg::FillOp::create(b, loc, zero, empty).getResult(0);
  }

  auto gradientOp = linalg::GenericOp::create(
      b, loc, init.getType(), ins, init, maps, iterators,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        IRMapping bodyMap = bodyMapping(facts, args.take_front(numInputs));
        SmallVector<Value> seeds(numOutputs), finals(numOutputs),
            tieCounts(numOutputs);
        for (unsigned j = 0; j < numOutputs; ++j) {
          BlockArgument acc = body.getArgument(numInputs + j);
          if (initArg[j] >= 0)
            bodyMap.map(acc, args[initArg[j]]);
          if (finalArg[j] >= 0) {
            finals[j] = args[finalArg[j]];
            tieCounts[j] = args[tieArg[j]];
          }
          if (seedArg[j] >= 0)
            seeds[j] = args[seedArg[j]];
        }
        FailureOr<DenseMap<Value, Value>> scalarAdjoints = reverseBody(
            nb, l, facts, bodyMap, seeds, finals, tieCounts, dependent);
        Value contribution;
        if (failed(scalarAdjoints))
          status = failure();
        else
          contribution = scalarAdjoints->lookup(target);
        if (!contribution)
          contribution =
              arith::ConstantOp::create(nb, l, nb.getZeroAttr(elementType));
        contribution = convertFloat(nb, l, contribution, elementType);
        linalg::YieldOp::create(
            nb, l,
            arith::AddFOp::create(nb, l, args.back(), contribution).getResult());
      });
  if (failed(status)) {
    gradientOp.erase();
    return {};
  }
  eraseDeadOps(gradientOp.getRegion().front());
  return gradientOp.getResult(0);
}

Value AdjointBuilder::scatterGradient(const GenericFacts &facts, Value source,
                                      Operation *original,
                                      LogicalResult &status) {
  linalg::GenericOp generic = facts.generic;
  ValueRange results = facts.results;
  ArrayRef<OutputRole> roles = facts.roles;
  Block &body = generic.getRegion().front();
  const unsigned numInputs = generic.getNumDpsInputs();
  const unsigned numOutputs = generic.getNumDpsInits();
  SmallVector<tensor::ExtractOp> gathers;
  SmallVector<Value> roots;
  for (Operation &op : body.without_terminator())
    if (auto extract = dyn_cast<tensor::ExtractOp>(op);
        extract && extract.getTensor() == source) {
      gathers.push_back(extract);
      roots.push_back(extract.getResult());
    }
  // Reading shapes carries no gradient; producing new float values would.
  for (OpOperand &use : source.getUses())
    if (generic->isProperAncestor(use.getOwner()) &&
        !isa<tensor::ExtractOp>(use.getOwner()) &&
        llvm::any_of(use.getOwner()->getResultTypes(), isFloatLike)) {
      status = original->emitOpError(
          "uses a differentiated tensor inside its body other than by "
          "tensor.extract; it has no adjoint rule");
      return {};
    }
  DenseSet<Value> dependent = dependentValues(body, roots);
  if (!reachesACotangent(facts, dependent))
    return {};

  // A gather's adjoint is a scatter-add, which no linalg op expresses: a
  // sequential loop nest over the generic's iterations, on tensors.
  Location loc = generic.getLoc();
  SmallVector<Value> upper =
      loopSizes(b, loc, generic, [&](Value v) { return mapped(v); });
  Value zeroIndex = arith::ConstantIndexOp::create(b, loc, 0);
  Value oneIndex = arith::ConstantIndexOp::create(b, loc, 1);
  SmallVector<Value> lower(upper.size(), zeroIndex),
      steps(upper.size(), oneIndex);
  Value gradient = zerosLike(loc, mapped(source));
  scf::LoopNest nest = scf::buildLoopNest(
      b, loc, lower, upper, steps, ValueRange{gradient},
      [&](OpBuilder &nb, Location l, ValueRange ivs,
          ValueRange iterArgs) -> scf::ValueVector {
        auto elementAt = [&](Value tensor, AffineMap map) {
          SmallVector<Value> indices;
          for (unsigned r = 0; r < map.getNumResults(); ++r)
            indices.push_back(ivs[map.getDimPosition(r)]);
          return tensor::ExtractOp::create(nb, l, tensor, indices).getResult();
        };
        SmallVector<Value> inputElements;
        for (OpOperand *input : generic.getDpsInputOperands())
          inputElements.push_back(
              isa<ShapedType>(input->get().getType())
                  ? elementAt(mapped(input->get()),
                              generic.getMatchingIndexingMap(input))
                  : mapped(input->get()));
        IRMapping bodyMap = bodyMapping(facts, inputElements);
        for (Operation &op : body.without_terminator())
          if (auto index = dyn_cast<linalg::IndexOp>(op))
            bodyMap.map(index.getResult(), ivs[index.getDim()]);
        SmallVector<Value> seeds(numOutputs), finals(numOutputs),
            tieCounts(numOutputs);
        for (unsigned j = 0; j < numOutputs; ++j) {
          OpOperand *init = generic.getDpsInitOperand(j);
          AffineMap map = generic.getMatchingIndexingMap(init);
          BlockArgument acc = body.getArgument(numInputs + j);
          bool hasSeed = adjoints.count(results[j]);
          if (roles[j].combiner == Combiner::None && !acc.use_empty())
            bodyMap.map(acc, elementAt(mapped(init->get()), map));
          if (roles[j].combiner == Combiner::Extremum && hasSeed) {
            finals[j] = elementAt(mapped(results[j]), map);
            tieCounts[j] = elementAt(facts.ties[j], map);
          }
          if (hasSeed)
            seeds[j] = elementAt(adjoints.lookup(results[j]), map);
        }
        FailureOr<DenseMap<Value, Value>> scalarAdjoints = reverseBody(
            nb, l, facts, bodyMap, seeds, finals, tieCounts, dependent);
        Value acc = iterArgs[0];
        if (failed(scalarAdjoints)) {
          status = failure();
          return {acc};
        }
        for (tensor::ExtractOp gather : gathers) {
          Value g = scalarAdjoints->lookup(gather.getResult());
          if (!g)
            continue;
          SmallVector<Value> indices;
          for (Value index : gather.getIndices())
            indices.push_back(bodyMap.lookupOrDefault(index));
          Value old = tensor::ExtractOp::create(nb, l, acc, indices);
          Value sum = arith::AddFOp::create(nb, l, old, g);
          acc = tensor::InsertOp::create(nb, l, sum, acc, indices);
        }
        return {acc};
      });
  // Without loops (a rank-0 generic) the body was built in place.
  if (failed(status)) {
    if (!nest.loops.empty())
      nest.loops.front().erase();
    return {};
  }
  if (!nest.loops.empty())
    eraseDeadOps(*nest.loops.back().getBody());
  return nest.results.front();
}

//===----------------------------------------------------------------------===//
// qnt
//===----------------------------------------------------------------------===//

LogicalResult AdjointBuilder::reverseQntMatmul(MatmulOp matmul) {
  for (Value component : matmul.getComponents())
    if (isVaried(component))
      return matmul.emitOpError(
          "has a differentiated storage component; quantized storage is not "
          "differentiable (differentiate a float weight through "
          "qnt.fake_quant instead)");
  Value input = matmul.getInput();
  if (!isVaried(input))
    return success();
  auto inputType = cast<RankedTensorType>(input.getType());
  if (inputType.getRank() != 2 || !inputType.getElementType().isF32())
    return matmul.emitOpError(
        "is differentiated only for a rank-2 f32 activation");
  Location loc = matmul.getLoc();
  // dx = dy W: the weight dequantized (a transposed product has no fused
  // kernel), then a plain matmul.
  SmallVector<Value> components;
  for (Value component : matmul.getComponents())
    components.push_back(mapped(component));
  auto weightType =
      RankedTensorType::get(matmul.getWeightShape(), b.getF32Type());
  Value weight = DequantOp::create(b, loc, weightType, matmul.getEncoding(),
                                   components);
  Value g = adjoints.lookup(matmul.getResult());
  Value dx = linalg::MatmulOp::create(b, loc, TypeRange{inputType},
                                      ValueRange{g, weight},
                                      ValueRange{zerosLike(loc, mapped(input))})
                 .getResult(0);
  accumulate(input, dx);
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Entry point
//===----------------------------------------------------------------------===//

FailureOr<func::FuncOp> mlir::qnt::buildAdjoint(func::FuncOp func,
                                                ArrayRef<unsigned> wrt,
                                                StringRef name) {
  if (func.isExternal())
    return func.emitOpError("has no body to differentiate");
  if (!func.getBody().hasOneBlock())
    return func.emitOpError("has more than one block; only straight-line "
                            "functions are differentiated");
  if (wrt.empty())
    return func.emitOpError("is differentiated with respect to no argument");
  FunctionType type = func.getFunctionType();
  SmallVector<Type> gradientTypes;
  for (auto [position, i] : llvm::enumerate(wrt)) {
    if (i >= func.getNumArguments())
      return func.emitOpError() << "has no argument #" << i << " (it has "
                                << func.getNumArguments() << ")";
    if (llvm::is_contained(wrt.take_front(position), i))
      return func.emitOpError() << "is differentiated twice with respect to "
                                   "argument #"
                                << i;
    if (!isDifferentiableType(type.getInput(i)))
      return emitError(func.getArgument(i).getLoc())
             << "argument #" << i << " of '" << func.getSymName()
             << "' has type " << type.getInput(i)
             << ", which is not differentiable (a float tensor is required)";
    gradientTypes.push_back(type.getInput(i));
  }
  for (auto [i, result] : llvm::enumerate(type.getResults()))
    if (!isDifferentiableType(result))
      return func.emitOpError()
             << "has result #" << i << " of type " << result
             << ", which cannot take a cotangent (a float tensor is "
                "required)";
  if (SymbolTable::lookupNearestSymbolFrom(func, StringAttr::get(
                                                     func.getContext(), name)))
    return func.emitOpError() << "cannot be differentiated into '" << name
                              << "': a symbol of that name exists";
  SmallVector<Type> adjointInputs(type.getInputs());
  llvm::append_range(adjointInputs, type.getResults());
  OpBuilder builder(func);
  builder.setInsertionPointAfter(func);
  auto adjoint = func::FuncOp::create(
      builder, func.getLoc(), name,
      builder.getFunctionType(adjointInputs, gradientTypes));
  adjoint.setVisibility(func.getVisibility());
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    adjoint.setArgAttrs(i, func.getArgAttrDict(i));
  adjoint.addEntryBlock();
  // Differentiated from a copy in which the qnt ops on differentiated
  // values are lowered to their reference linalg, so that their gradients
  // are those of their executable definitions (qnt-lower-to-linalg). A
  // qnt.matmul keeps its fused form (and its own rule) when only its
  // activation is differentiated.
  func::FuncOp work = func.clone();
  llvm::scope_exit eraseWork([&] { work.erase(); });
  DenseSet<Value> varied = variedValues(work, wrt);
  auto anyVaried = [&](ValueRange values) {
    return llvm::any_of(values, [&](Value v) { return varied.contains(v); });
  };
  DenseSet<Operation *> toLower;
  for (Operation &op : work.getBody().front()) {
    if (auto matmul = dyn_cast<MatmulOp>(op)) {
      // The fused form's own rule covers rank-2 f32 activations.
      auto input = cast<RankedTensorType>(matmul.getInput().getType());
      bool ownRule = input.getRank() == 2 && input.getElementType().isF32();
      if (anyVaried(matmul.getComponents()) ||
          (!ownRule && varied.contains(matmul.getInput())))
        toLower.insert(&op);
    } else if (isa<DequantOp, SmoothOp, LowRankAddOp, FakeQuantOp>(op) &&
               anyVaried(op.getOperands())) {
      toLower.insert(&op);
    }
  }
  if (!toLower.empty() &&
      failed(lowerQntOpsToLinalg(
          work, [&](Operation *op) { return toLower.contains(op); }))) {
    adjoint.erase();
    return failure();
  }
  AdjointBuilder adjointBuilder(work, adjoint);
  if (failed(adjointBuilder.build(wrt))) {
    adjoint.erase();
    return failure();
  }
  return adjoint;
}
