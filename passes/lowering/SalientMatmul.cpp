//===- SalientMatmul.cpp - Salient-channel matmuls as two kernels -*- C++ -*-=//
//
// Implements buildSalientSplitMatmul (SalientMatmul.h).
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/SalientMatmul.h"
#include "dialects/qnt/SalientChannels.h"
#include "passes/lowering/DequantLowering.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

using namespace mlir;
using namespace mlir::qnt;

namespace {

/// The input's columns in the two parts: input column k is column
/// map[k] of the salient part when map[k] >= 0, else column -1 - map[k] of
/// the rest part. One loop over rows and columns, so the copy costs M * K
/// scalar moves per call. A map that lies (an entry past its part, two
/// entries naming one column) cannot make it write out of bounds: entries
/// are clamped into their part and unnamed columns stay zero.
struct ColumnSplit {
  Value salient, rest;
};

ColumnSplit splitColumns(OpBuilder &b, Location loc, Value input, Value map,
                         int64_t k, int64_t numSalient) {
  auto inputType = cast<RankedTensorType>(input.getType());
  auto partType = [&](int64_t cols) {
    return RankedTensorType::get({inputType.getDimSize(0), cols},
                                 inputType.getElementType());
  };
  Value zero = arith::ConstantIndexOp::create(b, loc, 0);
  Value one = arith::ConstantIndexOp::create(b, loc, 1);
  Value rows = tensor::DimOp::create(b, loc, input, 0);
  Value cols = arith::ConstantIndexOp::create(b, loc, k);
  Value salientStart = buildZeroTensor(b, loc, partType(numSalient), input);
  Value restStart = buildZeroTensor(b, loc, partType(k - numSalient), input);
  auto insertInto = [](OpBuilder &ib, Location l, Value value, Value part,
                       Value row, Value col) -> Value {
    return tensor::InsertOp::create(ib, l, value, part, ValueRange{row, col});
  };
  auto rowLoop = scf::ForOp::create(
      b, loc, zero, rows, one, ValueRange{salientStart, restStart},
      [&](OpBuilder &rb, Location rl, Value row, ValueRange rowParts) {
        auto colLoop = scf::ForOp::create(
            rb, rl, zero, cols, one, rowParts,
            [&](OpBuilder &cb, Location l, Value col, ValueRange parts) {
              Value value = tensor::ExtractOp::create(cb, l, input,
                                                      ValueRange{row, col});
              Value entry =
                  tensor::ExtractOp::create(cb, l, map, ValueRange{col});
              auto [isSalient, partCol] =
                  decodeSalientChannel(cb, l, entry, numSalient, k);
              auto ifOp = scf::IfOp::create(
                  cb, l, isSalient,
                  [&](OpBuilder &tb, Location tl) {
                    scf::YieldOp::create(
                        tb, tl,
                        ValueRange{insertInto(tb, tl, value, parts[0], row,
                                              partCol),
                                   parts[1]});
                  },
                  [&](OpBuilder &eb, Location el) {
                    scf::YieldOp::create(
                        eb, el,
                        ValueRange{parts[0], insertInto(eb, el, value,
                                                        parts[1], row,
                                                        partCol)});
                  });
              scf::YieldOp::create(cb, l, ifOp.getResults());
            });
        scf::YieldOp::create(rb, rl, colLoop.getResults());
      });
  return {rowLoop.getResult(0), rowLoop.getResult(1)};
}

} // namespace

Value mlir::qnt::buildSalientSplitMatmul(OpBuilder &b, Location loc,
                                         Value input, ValueRange components,
                                         SalientEncodingAttr encoding,
                                         int64_t n, int64_t k,
                                         const VectorMatmulShape &shape) {
  int64_t numSalient = encoding.getNumSalient();
  ColumnSplit split =
      splitColumns(b, loc, input, components[0], k, numSalient);
  size_t salientComponents =
      encoding.getSalient().getComponentTypes({n, numSalient}).size();
  ValueRange salient = components.slice(1, salientComponents);
  ValueRange rest = components.drop_front(1 + salientComponents);
  auto resultType = RankedTensorType::get(
      {cast<RankedTensorType>(input.getType()).getDimSize(0), n},
      b.getF32Type());
  Value salientProduct =
      buildVectorFusedMatmul(b, loc, encoding.getSalient(), split.salient,
                             salient, resultType, shape);
  return buildVectorFusedMatmul(b, loc, encoding.getRest(), split.rest, rest,
                                resultType, shape, /*init=*/salientProduct);
}
