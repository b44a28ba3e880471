//===- LlamaImporter.cpp - LLaMA checkpoints to func/linalg/qnt IR -------===//
//
// See LlamaImporter.h. The block is spelled with linalg.generic ops on
// tensors whose maps are projected permutations (heads are split with
// expand_shape rather than with compound index maps), so that every
// generic lowers through the upstream linalg-to-loops path and stays
// analyzable by later tiling/vectorization work.
//
//===----------------------------------------------------------------------===//

#include "qnt/import/LlamaImporter.h"
#include "dialects/qnt/QntDialect.h"
#include "passes/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "qnt/ParamStore.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::qnt;
namespace io = ::qnt::io;
using io::TensorRole;

std::string mlir::qnt::blockFunctionName(int64_t layer) {
  return "block" + std::to_string(layer);
}

void mlir::qnt::loadImportDialects(MLIRContext *context) {
  context->loadDialect<arith::ArithDialect, func::FuncDialect,
                       linalg::LinalgDialect, math::MathDialect,
                       tensor::TensorDialect, QntDialect>();
}

namespace {

constexpr int64_t kDyn = ShapedType::kDynamic;

/// Builds the functions of one model. Values named `x` are [T, width] f32
/// activations; T is dynamic.
class ModelBuilder {
public:
  ModelBuilder(OpBuilder &b, const io::LlamaCheckpoint &ckpt)
      : b(b), ckpt(ckpt), c(ckpt.config()), f32(b.getF32Type()) {}

  void buildEmbed(ModuleOp module);
  void buildBlock(ModuleOp module, int64_t layer);
  void buildHead(ModuleOp module);

private:
  // Function scaffolding.
  func::FuncOp startFunction(ModuleOp module, StringRef name,
                             TypeRange inputs, TypeRange results);
  Location nameLoc(const Twine &name) {
    return NameLoc::get(b.getStringAttr(name), funcLoc);
  }

  // Tensors and shapes.
  RankedTensorType act(int64_t width) {
    return RankedTensorType::get({kDyn, width}, f32);
  }
  Value param(TensorRole role, int64_t layer);
  Value rowsOf(Value x) { return tensor::DimOp::create(b, loc, x, 0); }
  Value empty(ArrayRef<int64_t> shape, Value rows, Type type = {}) {
    SmallVector<Value> dynamic;
    for (int64_t d : shape)
      if (d == kDyn)
        dynamic.push_back(rows);
    return tensor::EmptyOp::create(
        b, loc, RankedTensorType::get(shape, type ? type : f32), dynamic);
  }
  Value filled(ArrayRef<int64_t> shape, Value rows, double value) {
    Value init = empty(shape, rows);
    Value scalar = arith::ConstantOp::create(b, loc, b.getF32FloatAttr(value));
    return linalg::FillOp::create(b, loc, scalar, init).getResult(0);
  }
  Value constF32(OpBuilder &nb, double v) {
    return arith::ConstantOp::create(nb, loc, nb.getF32FloatAttr(v));
  }
  Value constIndex(OpBuilder &nb, int64_t v) {
    return arith::ConstantIndexOp::create(nb, loc, v);
  }
  Value toF32(OpBuilder &nb, Value v) {
    if (v.getType() == f32)
      return v;
    return arith::ExtFOp::create(nb, loc, f32, v);
  }
  Value indexToF32(OpBuilder &nb, Value index) {
    Value i64 = arith::IndexCastOp::create(nb, loc, nb.getI64Type(), index);
    return arith::SIToFPOp::create(nb, loc, f32, i64);
  }
  SmallVector<utils::IteratorType> parallel(int64_t n) {
    return SmallVector<utils::IteratorType>(n, utils::IteratorType::parallel);
  }
  AffineMap dims(unsigned numDims, ArrayRef<unsigned> results) {
    SmallVector<AffineExpr> exprs;
    for (unsigned d : results)
      exprs.push_back(b.getAffineDimExpr(d));
    return AffineMap::get(numDims, 0, exprs, b.getContext());
  }

  // Layers.
  Value rmsNorm(Value x, Value weight);
  Value linear(Value x, Value weight, int64_t outWidth);
  Value rope(Value x, Value pos, int64_t numHeads);
  Value attention(Value q, Value keys, Value values, Value pos, Value rows);
  Value add(Value x, Value y);
  Value swiGlu(Value gate, Value up);

  OpBuilder &b;
  const io::LlamaCheckpoint &ckpt;
  const io::LlamaConfig &c;
  Type f32;
  Location loc = UnknownLoc::get(b.getContext());
  Location funcLoc = UnknownLoc::get(b.getContext());
};

func::FuncOp ModelBuilder::startFunction(ModuleOp module, StringRef name,
                                         TypeRange inputs, TypeRange results) {
  b.setInsertionPointToEnd(module.getBody());
  funcLoc = NameLoc::get(b.getStringAttr(name),
                         FileLineColLoc::get(b.getContext(),
                                             ckpt.files().front()->path(), 0,
                                             0));
  loc = funcLoc;
  auto func = func::FuncOp::create(b, loc, name,
                                   b.getFunctionType(inputs, results));
  b.setInsertionPointToStart(func.addEntryBlock());
  return func;
}

Value ModelBuilder::param(TensorRole role, int64_t layer) {
  auto [file, info] = ckpt.lookup(role, layer);
  Type element;
  switch (info->dtype) {
  case io::DType::F16:
    element = b.getF16Type();
    break;
  case io::DType::BF16:
    element = b.getBF16Type();
    break;
  default:
    element = f32;
  }
  auto type = RankedTensorType::get(info->shape, element);
  return ParamOp::create(b, nameLoc(info->name), type, info->name);
}

/// x * weight / sqrt(mean(x^2) + eps), as llama2.c's rmsnorm.
Value ModelBuilder::rmsNorm(Value x, Value weight) {
  Value rows = rowsOf(x);
  int64_t width = c.dim;
  Value sumSquares = filled({kDyn}, rows, 0.0);
  sumSquares =
      linalg::GenericOp::create(
          b, loc, sumSquares.getType(), x, sumSquares,
          {dims(2, {0, 1}), dims(2, {0})},
          {utils::IteratorType::parallel, utils::IteratorType::reduction},
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value sq = arith::MulFOp::create(nb, l, args[0], args[0]);
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, args[1], sq).getResult());
          })
          .getResult(0);
  return linalg::GenericOp::create(
             b, loc, act(width), ValueRange{x, sumSquares, weight},
             empty({kDyn, width}, rows),
             {dims(2, {0, 1}), dims(2, {0}), dims(2, {1}), dims(2, {0, 1})},
             parallel(2),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               Value mean = arith::DivFOp::create(nb, l, args[1],
                                                  constF32(nb, double(width)));
               Value eps = constF32(nb, c.rmsEps);
               Value inv = arith::DivFOp::create(
                   nb, l, constF32(nb, 1.0),
                   math::SqrtOp::create(
                       nb, l, arith::AddFOp::create(nb, l, mean, eps)));
               Value scaled = arith::MulFOp::create(nb, l, inv, args[0]);
               linalg::YieldOp::create(
                   nb, l,
                   arith::MulFOp::create(nb, l, toF32(nb, args[2]), scaled)
                       .getResult());
             })
      .getResult(0);
}

/// x * weight^T: a transpose-B matmul accumulating in f32 (a bf16/f16
/// weight is extended element by element).
Value ModelBuilder::linear(Value x, Value weight, int64_t outWidth) {
  Value acc = filled({kDyn, outWidth}, rowsOf(x), 0.0);
  return linalg::MatmulTransposeBOp::create(b, loc, TypeRange{act(outWidth)},
                                            ValueRange{x, weight},
                                            ValueRange{acc})
      .getResult(0);
}

/// Rotary embedding of the heads of x ([T, numHeads * headDim]) for tokens
/// at positions pos + t, pairing dimensions as the checkpoint's rope style
/// says. Angles follow llama2.c: (pos + t) / theta^(2i / headDim) in f32.
Value ModelBuilder::rope(Value x, Value pos, int64_t numHeads) {
  Value rows = rowsOf(x);
  int64_t width = numHeads * c.headDim();
  int64_t headDim = c.headDim(), half = headDim / 2;
  bool interleaved = c.ropeStyle == io::RopeStyle::Interleaved;
  return linalg::GenericOp::create(
             b, loc, act(width), ValueRange{}, empty({kDyn, width}, rows),
             {dims(2, {0, 1})}, parallel(2),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               Value t = linalg::IndexOp::create(nb, l, 0);
               Value j = linalg::IndexOp::create(nb, l, 1);
               Value i = arith::RemUIOp::create(nb, l, j,
                                                constIndex(nb, headDim));
               // pair: index of the rotation frequency; first: whether this
               // element is the first (cos, -sin) of its pair.
               Value pair, first, partner;
               if (interleaved) {
                 pair = arith::DivUIOp::create(nb, l, i, constIndex(nb, 2));
                 Value odd = arith::RemUIOp::create(nb, l, i, constIndex(nb, 2));
                 first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::eq,
                                               odd, constIndex(nb, 0));
                 partner = arith::SelectOp::create(
                     nb, l, first,
                     arith::AddIOp::create(nb, l, j, constIndex(nb, 1)),
                     arith::SubIOp::create(nb, l, j, constIndex(nb, 1)));
               } else {
                 pair = arith::RemUIOp::create(nb, l, i, constIndex(nb, half));
                 first = arith::CmpIOp::create(nb, l, arith::CmpIPredicate::ult,
                                               i, constIndex(nb, half));
                 partner = arith::SelectOp::create(
                     nb, l, first,
                     arith::AddIOp::create(nb, l, j, constIndex(nb, half)),
                     arith::SubIOp::create(nb, l, j, constIndex(nb, half)));
               }
               Value exponent = arith::DivFOp::create(
                   nb, l,
                   arith::MulFOp::create(nb, l, indexToF32(nb, pair),
                                         constF32(nb, 2.0)),
                   constF32(nb, double(headDim)));
               Value freq = arith::DivFOp::create(
                   nb, l, constF32(nb, 1.0),
                   math::PowFOp::create(nb, l, constF32(nb, c.ropeTheta),
                                        exponent));
               Value position = arith::AddIOp::create(nb, l, pos, t);
               Value angle = arith::MulFOp::create(
                   nb, l, indexToF32(nb, position), freq);
               Value cos = math::CosOp::create(nb, l, angle);
               Value sin = math::SinOp::create(nb, l, angle);
               Value self = tensor::ExtractOp::create(nb, l, x, ValueRange{t, j});
               Value other =
                   tensor::ExtractOp::create(nb, l, x, ValueRange{t, partner});
               Value rotated = arith::MulFOp::create(nb, l, other, sin);
               Value signedRotated = arith::SelectOp::create(
                   nb, l, first, arith::NegFOp::create(nb, l, rotated),
                   rotated);
               linalg::YieldOp::create(
                   nb, l,
                   arith::AddFOp::create(
                       nb, l, arith::MulFOp::create(nb, l, self, cos),
                       signedRotated)
                       .getResult());
             })
      .getResult(0);
}

/// Causal grouped-query attention of the T query rows at positions
/// pos..pos+T-1 over `keys`/`values` ([pos + T, kvDim], the cache prefix and
/// the new rows). Heads are split with expand_shape so that query head
/// h = kvHead * group + r shares key/value head kvHead.
Value ModelBuilder::attention(Value q, Value keys, Value values, Value pos,
                              Value rows) {
  int64_t kvHeads = c.nKvHeads, group = c.nHeads / c.nKvHeads;
  int64_t headDim = c.headDim();
  auto q4Type = RankedTensorType::get({kDyn, kvHeads, group, headDim}, f32);
  Value q4 = tensor::ExpandShapeOp::create(
      b, loc, q4Type, q, SmallVector<ReassociationIndices>{{0}, {1, 2, 3}});
  auto kv3Type = RankedTensorType::get({kDyn, kvHeads, headDim}, f32);
  SmallVector<ReassociationIndices> kvGroups = {{0}, {1, 2}};
  Value k3 = tensor::ExpandShapeOp::create(b, loc, kv3Type, keys, kvGroups);
  Value v3 = tensor::ExpandShapeOp::create(b, loc, kv3Type, values, kvGroups);
  Value span = tensor::DimOp::create(b, loc, keys, 0);

  // scores[t, g, r, s] = q . k / sqrt(headDim), -inf where s > pos + t.
  // Keys are transposed to [g, d, s] first (a copy of the cache prefix, small
  // next to the scores) so that the innermost loop runs over s with
  // contiguous keys and scores: it vectorizes without gathers. The sum over
  // d still runs in order d = 0, 1, ... for every score, as llama2.c's.
  auto scoreType = RankedTensorType::get({kDyn, kvHeads, group, kDyn}, f32);
  Value zeroScores = linalg::FillOp::create(
                         b, loc, constF32(b, 0.0),
                         tensor::EmptyOp::create(b, loc, scoreType,
                                                 ValueRange{rows, span})
                             .getResult())
                         .getResult(0);
  auto reduction = utils::IteratorType::reduction;
  auto par = utils::IteratorType::parallel;
  Value keysByHead =
      linalg::TransposeOp::create(
          b, loc, k3,
          tensor::EmptyOp::create(
              b, loc, RankedTensorType::get({kvHeads, headDim, kDyn}, f32),
              ValueRange{span})
              .getResult(),
          ArrayRef<int64_t>{1, 2, 0})
          .getResult()[0];
  // Loops (t, g, r, d, s).
  Value scores =
      linalg::GenericOp::create(
          b, loc, scoreType, ValueRange{q4, keysByHead}, zeroScores,
          {dims(5, {0, 1, 2, 3}), dims(5, {1, 3, 4}), dims(5, {0, 1, 2, 4})},
          {par, par, par, reduction, par},
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value p = arith::MulFOp::create(nb, l, args[0], args[1]);
            linalg::YieldOp::create(
                nb, l, arith::AddFOp::create(nb, l, args[2], p).getResult());
          })
          .getResult(0);
  float negInf = -std::numeric_limits<float>::infinity();
  scores =
      linalg::GenericOp::create(
          b, loc, scoreType, ValueRange{}, scores, {dims(4, {0, 1, 2, 3})},
          parallel(4),
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value t = linalg::IndexOp::create(nb, l, 0);
            Value s = linalg::IndexOp::create(nb, l, 3);
            Value last = arith::AddIOp::create(nb, l, pos, t);
            Value future = arith::CmpIOp::create(
                nb, l, arith::CmpIPredicate::ugt, s, last);
            Value scaled = arith::DivFOp::create(
                nb, l, args[0], constF32(nb, std::sqrt(float(headDim))));
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, future, constF32(nb, negInf),
                                        scaled)
                    .getResult());
          })
          .getResult(0);

  // Softmax over s: exp(x - max) / sum.
  auto rowStatType = RankedTensorType::get({kDyn, kvHeads, group}, f32);
  auto rowStat = [&](double init) {
    return linalg::FillOp::create(
               b, loc, constF32(b, init),
               tensor::EmptyOp::create(b, loc, rowStatType, ValueRange{rows})
                   .getResult())
        .getResult(0);
  };
  AffineMap all4 = dims(4, {0, 1, 2, 3}), rows3 = dims(4, {0, 1, 2});
  SmallVector<utils::IteratorType> overS = {par, par, par, reduction};
  Value maxima =
      linalg::GenericOp::create(
          b, loc, rowStatType, scores, rowStat(negInf), {all4, rows3}, overS,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            Value greater = arith::CmpFOp::create(
                nb, l, arith::CmpFPredicate::OGT, args[0], args[1]);
            linalg::YieldOp::create(
                nb, l,
                arith::SelectOp::create(nb, l, greater, args[0], args[1])
                    .getResult());
          })
          .getResult(0);
  // f(score, statistic of its row), elementwise over [t, g, r, s].
  auto withRowStat = [&](Value all, Value stats,
                         function_ref<Value(OpBuilder &, Location, Value,
                                            Value)>
                             combine) {
    return linalg::GenericOp::create(
               b, loc, scoreType, ValueRange{all, stats},
               tensor::EmptyOp::create(b, loc, scoreType,
                                       ValueRange{rows, span})
                   .getResult(),
               {all4, rows3, all4}, parallel(4),
               [&](OpBuilder &nb, Location l, ValueRange args) {
                 linalg::YieldOp::create(nb, l,
                                         combine(nb, l, args[0], args[1]));
               })
        .getResult(0);
  };
  Value exps = withRowStat(
      scores, maxima, [](OpBuilder &nb, Location l, Value x, Value max) {
        return math::ExpOp::create(nb, l, arith::SubFOp::create(nb, l, x, max))
            .getResult();
      });
  Value sums =
      linalg::GenericOp::create(
          b, loc, rowStatType, exps, rowStat(0.0), {all4, rows3}, overS,
          [&](OpBuilder &nb, Location l, ValueRange args) {
            linalg::YieldOp::create(
                nb, l,
                arith::AddFOp::create(nb, l, args[1], args[0]).getResult());
          })
          .getResult(0);

  // probs = exps / sums, then out[t, g, r, d] = sum_s probs * v[s, g, d]
  // with d innermost (contiguous values and outputs, vectorizable) and s
  // summed in order: the same operations as dividing inside the sum.
  Value probs = withRowStat(
      exps, sums, [](OpBuilder &nb, Location l, Value e, Value sum) {
        return arith::DivFOp::create(nb, l, e, sum).getResult();
      });
  Value out = linalg::FillOp::create(
                  b, loc, constF32(b, 0.0),
                  tensor::EmptyOp::create(b, loc, q4Type, ValueRange{rows})
                      .getResult())
                  .getResult(0);
  // Loops (t, g, r, s, d).
  out = linalg::GenericOp::create(
            b, loc, q4Type, ValueRange{probs, v3}, out,
            {dims(5, {0, 1, 2, 3}), dims(5, {3, 1, 4}), dims(5, {0, 1, 2, 4})},
            {par, par, par, reduction, par},
            [&](OpBuilder &nb, Location l, ValueRange args) {
              Value pv = arith::MulFOp::create(nb, l, args[0], args[1]);
              linalg::YieldOp::create(
                  nb, l, arith::AddFOp::create(nb, l, args[2], pv).getResult());
            })
            .getResult(0);
  return tensor::CollapseShapeOp::create(
      b, loc, act(c.nHeads * headDim), out,
      SmallVector<ReassociationIndices>{{0}, {1, 2, 3}});
}

Value ModelBuilder::add(Value x, Value y) {
  auto type = cast<RankedTensorType>(x.getType());
  int64_t width = type.getDimSize(1);
  return linalg::GenericOp::create(
             b, loc, type, ValueRange{x, y}, empty({kDyn, width}, rowsOf(x)),
             {dims(2, {0, 1}), dims(2, {0, 1}), dims(2, {0, 1})}, parallel(2),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               linalg::YieldOp::create(
                   nb, l,
                   arith::AddFOp::create(nb, l, args[0], args[1]).getResult());
             })
      .getResult(0);
}

/// silu(gate) * up, with silu(v) = v / (1 + exp(-v)) as llama2.c.
Value ModelBuilder::swiGlu(Value gate, Value up) {
  auto type = cast<RankedTensorType>(gate.getType());
  int64_t width = type.getDimSize(1);
  return linalg::GenericOp::create(
             b, loc, type, ValueRange{gate, up},
             empty({kDyn, width}, rowsOf(gate)),
             {dims(2, {0, 1}), dims(2, {0, 1}), dims(2, {0, 1})}, parallel(2),
             [&](OpBuilder &nb, Location l, ValueRange args) {
               Value v = args[0];
               Value e = math::ExpOp::create(nb, l,
                                             arith::NegFOp::create(nb, l, v));
               Value sigmoid = arith::DivFOp::create(
                   nb, l, constF32(nb, 1.0),
                   arith::AddFOp::create(nb, l, constF32(nb, 1.0), e));
               Value silu = arith::MulFOp::create(nb, l, v, sigmoid);
               linalg::YieldOp::create(
                   nb, l, arith::MulFOp::create(nb, l, silu, args[1]).getResult());
             })
      .getResult(0);
}

void ModelBuilder::buildEmbed(ModuleOp module) {
  auto tokensType = RankedTensorType::get({kDyn}, b.getI32Type());
  func::FuncOp func =
      startFunction(module, "embed", {tokensType}, {act(c.dim)});
  Value tokens = func.getArgument(0);
  Value table = param(TensorRole::TokEmbeddings, -1);
  Value rows = tensor::DimOp::create(b, loc, tokens, 0);
  Value out =
      linalg::GenericOp::create(
          b, loc, act(c.dim), ValueRange{tokens}, empty({kDyn, c.dim}, rows),
          {dims(2, {0}), dims(2, {0, 1})}, parallel(2),
          [&](OpBuilder &nb, Location l, ValueRange args) {
            // Token ids are checked against the vocabulary by the runtime.
            Value id = arith::IndexCastOp::create(nb, l, nb.getIndexType(),
                                                  args[0]);
            Value d = linalg::IndexOp::create(nb, l, 1);
            Value w = tensor::ExtractOp::create(nb, l, table, ValueRange{id, d});
            linalg::YieldOp::create(nb, l, toF32(nb, w));
          })
          .getResult(0);
  func::ReturnOp::create(b, loc, out);
}

void ModelBuilder::buildBlock(ModuleOp module, int64_t layer) {
  int64_t kvDim = c.kvDim(), qDim = c.nHeads * c.headDim();
  // The caches hold as many positions as the caller's run needs (at most
  // max_seq_len): a model's stated context can be far larger than any run,
  // and attention only reads the prefix [0, pos + rows).
  auto cacheType = RankedTensorType::get({kDyn, kvDim}, f32);
  auto posType = RankedTensorType::get({}, b.getI64Type());
  func::FuncOp func = startFunction(
      module, blockFunctionName(layer),
      {act(c.dim), posType, cacheType, cacheType},
      {act(c.dim), act(kvDim), act(kvDim)});
  Value x = func.getArgument(0);
  Value pos = arith::IndexCastOp::create(
      b, loc, b.getIndexType(),
      tensor::ExtractOp::create(b, loc, func.getArgument(1), ValueRange{}));
  Value kcache = func.getArgument(2), vcache = func.getArgument(3);
  Value rows = rowsOf(x);

  Value h = rmsNorm(x, param(TensorRole::AttnNorm, layer));
  Value q = rope(linear(h, param(TensorRole::Wq, layer), qDim), pos,
                 c.nHeads);
  Value k = rope(linear(h, param(TensorRole::Wk, layer), kvDim), pos,
                 c.nKvHeads);
  Value v = linear(h, param(TensorRole::Wv, layer), kvDim);

  // The cache prefix [0, pos) followed by this call's rows. Inserting in
  // place into the cache argument is an optimization bufferization may
  // take; the caller stores the returned k and v either way.
  auto insert = [&](Value rowsToAdd, Value cache) {
    SmallVector<OpFoldResult> offsets = {pos, b.getIndexAttr(0)};
    SmallVector<OpFoldResult> sizes = {rows, b.getIndexAttr(kvDim)};
    SmallVector<OpFoldResult> strides(2, b.getIndexAttr(1));
    Value updated = tensor::InsertSliceOp::create(b, loc, rowsToAdd, cache,
                                                  offsets, sizes, strides);
    Value span = arith::AddIOp::create(b, loc, pos, rows);
    SmallVector<OpFoldResult> prefixOffsets(2, b.getIndexAttr(0));
    SmallVector<OpFoldResult> prefixSizes = {span, b.getIndexAttr(kvDim)};
    return tensor::ExtractSliceOp::create(b, loc, act(kvDim), updated,
                                          prefixOffsets, prefixSizes, strides)
        .getResult();
  };
  Value keys = insert(k, kcache), values = insert(v, vcache);
  Value attended = attention(q, keys, values, pos, rows);
  Value x1 = add(x, linear(attended, param(TensorRole::Wo, layer), c.dim));

  Value h2 = rmsNorm(x1, param(TensorRole::FfnNorm, layer));
  Value gate = linear(h2, param(TensorRole::W1, layer), c.hiddenDim);
  Value up = linear(h2, param(TensorRole::W3, layer), c.hiddenDim);
  Value down =
      linear(swiGlu(gate, up), param(TensorRole::W2, layer), c.dim);
  Value out = add(x1, down);
  func::ReturnOp::create(b, loc, ValueRange{out, k, v});
}

void ModelBuilder::buildHead(ModuleOp module) {
  func::FuncOp func =
      startFunction(module, "head", {act(c.dim)}, {act(c.vocabSize)});
  Value h = rmsNorm(func.getArgument(0), param(TensorRole::FinalNorm, -1));
  Value logits =
      linear(h, param(TensorRole::Classifier, -1), c.vocabSize);
  func::ReturnOp::create(b, loc, logits);
}

void writeModelConfig(ModuleOp module, const io::LlamaConfig &c,
                      io::CheckpointFormat format) {
  Builder b(module.getContext());
  SmallVector<NamedAttribute> entries = {
      b.getNamedAttr("format", b.getStringAttr(io::formatName(format))),
      b.getNamedAttr("dim", b.getI64IntegerAttr(c.dim)),
      b.getNamedAttr("hidden_dim", b.getI64IntegerAttr(c.hiddenDim)),
      b.getNamedAttr("n_layers", b.getI64IntegerAttr(c.nLayers)),
      b.getNamedAttr("n_heads", b.getI64IntegerAttr(c.nHeads)),
      b.getNamedAttr("n_kv_heads", b.getI64IntegerAttr(c.nKvHeads)),
      b.getNamedAttr("vocab_size", b.getI64IntegerAttr(c.vocabSize)),
      b.getNamedAttr("max_seq_len", b.getI64IntegerAttr(c.maxSeqLen)),
      b.getNamedAttr("rope_theta", b.getF64FloatAttr(c.ropeTheta)),
      b.getNamedAttr("rms_eps", b.getF64FloatAttr(c.rmsEps)),
      b.getNamedAttr("tied_embeddings", b.getBoolAttr(c.tiedEmbeddings)),
      b.getNamedAttr("rope_style",
                     b.getStringAttr(c.ropeStyle == io::RopeStyle::Interleaved
                                         ? "interleaved"
                                         : "half_split"))};
  module->setAttr(kModelAttrName, b.getDictionaryAttr(entries));
}

} // namespace

OwningOpRef<ModuleOp>
mlir::qnt::importLlama(MLIRContext *context,
                       const io::LlamaCheckpoint &checkpoint,
                       StringRef sourcePath) {
  loadImportDialects(context);
  OpBuilder b(context);
  Location loc = FileLineColLoc::get(context, sourcePath, 0, 0);
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  writeModelConfig(*module, checkpoint.config(), checkpoint.format());
  // Absolute paths, so that the written module runs from any directory.
  for (const auto &file : checkpoint.files()) {
    llvm::SmallString<256> path(file->path());
    llvm::sys::fs::make_absolute(path);
    llvm::sys::path::remove_dots(path, /*remove_dot_dot=*/true);
    appendParamFile(*module, path);
  }

  ModelBuilder builder(b, checkpoint);
  builder.buildEmbed(*module);
  for (int64_t layer = 0; layer < checkpoint.config().nLayers; ++layer)
    builder.buildBlock(*module, layer);
  builder.buildHead(*module);
  if (failed(verify(*module)))
    return nullptr;
  return module;
}

FailureOr<io::LlamaConfig> mlir::qnt::readModelConfig(ModuleOp module) {
  auto dict = module->getAttrOfType<DictionaryAttr>(kModelAttrName);
  if (!dict)
    return emitError(module.getLoc()) << "the module has no '" << kModelAttrName
                              << "' attribute: it is not an imported model";
  io::LlamaConfig c;
  std::string missing;
  auto getInt = [&](StringRef key, int64_t &out) {
    if (auto attr = dict.getAs<IntegerAttr>(key))
      out = attr.getInt();
    else if (missing.empty())
      missing = key.str();
  };
  auto getFloat = [&](StringRef key, double &out) {
    if (auto attr = dict.getAs<FloatAttr>(key))
      out = attr.getValueAsDouble();
    else if (missing.empty())
      missing = key.str();
  };
  getInt("dim", c.dim);
  getInt("hidden_dim", c.hiddenDim);
  getInt("n_layers", c.nLayers);
  getInt("n_heads", c.nHeads);
  getInt("n_kv_heads", c.nKvHeads);
  getInt("vocab_size", c.vocabSize);
  getInt("max_seq_len", c.maxSeqLen);
  getFloat("rope_theta", c.ropeTheta);
  getFloat("rms_eps", c.rmsEps);
  if (auto tied = dict.getAs<BoolAttr>("tied_embeddings"))
    c.tiedEmbeddings = tied.getValue();
  auto style = dict.getAs<StringAttr>("rope_style");
  if (!style && missing.empty())
    missing = "rope_style";
  if (!missing.empty())
    return emitError(module.getLoc()) << "'" << kModelAttrName << "' lacks '"
                              << missing << "'";
  if (style.getValue() == "interleaved")
    c.ropeStyle = io::RopeStyle::Interleaved;
  else if (style.getValue() == "half_split")
    c.ropeStyle = io::RopeStyle::HalfSplit;
  else
    return emitError(module.getLoc())
           << "'" << kModelAttrName << "': unknown rope_style '"
           << style.getValue() << "'; expected interleaved or half_split";
  std::string problem = c.validate();
  if (!problem.empty())
    return emitError(module.getLoc()) << "'" << kModelAttrName << "': " << problem;
  return c;
}

/// Relative entries of qnt.param_files that do not exist from the current
/// directory but do next to `modulePath` are taken from there: a module
/// and the parameter files written beside it move together.
static void resolveParamFilesNextTo(ModuleOp module, StringRef modulePath) {
  auto files = module->getAttrOfType<ArrayAttr>(kParamFilesAttrName);
  if (!files)
    return;
  StringRef dir = llvm::sys::path::parent_path(modulePath);
  SmallVector<Attribute> resolved;
  for (Attribute entry : files) {
    auto path = dyn_cast<StringAttr>(entry);
    if (path && llvm::sys::path::is_relative(path.getValue()) &&
        !llvm::sys::fs::exists(path.getValue()) && !dir.empty()) {
      llvm::SmallString<256> candidate(dir);
      llvm::sys::path::append(candidate, path.getValue());
      if (llvm::sys::fs::exists(candidate))
        entry = StringAttr::get(module.getContext(), candidate);
    }
    resolved.push_back(entry);
  }
  module->setAttr(kParamFilesAttrName,
                  ArrayAttr::get(module.getContext(), resolved));
}

OwningOpRef<ModuleOp> mlir::qnt::loadModel(MLIRContext *context,
                                           StringRef path) {
  // A directory written by `quant-compile --recipe` holds model.mlir.
  llvm::SmallString<256> compiled(path);
  llvm::sys::path::append(compiled, kCompiledModelFileName);
  if (llvm::sys::fs::is_directory(path) && llvm::sys::fs::exists(compiled))
    return loadModel(context, compiled);
  StringRef ext = llvm::sys::path::extension(path);
  if (ext == ".mlir" || ext == ".mlirbc") {
    loadImportDialects(context);
    OwningOpRef<ModuleOp> module =
        parseSourceFile<ModuleOp>(path, ParserConfig(context));
    if (!module || failed(readModelConfig(*module)))
      return nullptr;
    resolveParamFilesNextTo(*module, path);
    return module;
  }
  std::string error;
  std::unique_ptr<io::LlamaCheckpoint> checkpoint =
      io::LlamaCheckpoint::open(path.str(), &error);
  if (!checkpoint) {
    emitError(FileLineColLoc::get(context, path, 0, 0)) << error;
    return nullptr;
  }
  return importLlama(context, *checkpoint, path);
}

OwningOpRef<ModuleOp> mlir::qnt::loadModel(MLIRContext *context,
                                           StringRef path,
                                           StringRef pipeline) {
  OwningOpRef<ModuleOp> module = loadModel(context, path);
  if (!module || pipeline.empty())
    return module;
  if (failed(runPassPipeline(*module, pipeline)))
    return nullptr;
  return module;
}
