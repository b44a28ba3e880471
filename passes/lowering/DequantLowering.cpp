//===- DequantLowering.cpp - Building blocks of qnt lowerings ---*- C++ -*-===//
//
// See DequantLowering.h.
//
//===----------------------------------------------------------------------===//

#include "passes/lowering/DequantLowering.h"
#include "passes/lowering/VectorMatmul.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

using namespace mlir;
using namespace mlir::qnt;

/// Converts scalar `v` between float types.
static Value convertScalar(OpBuilder &b, Location loc, Value v, Type to) {
  Type from = v.getType();
  if (from == to)
    return v;
  if (cast<FloatType>(from).getWidth() < cast<FloatType>(to).getWidth())
    return arith::ExtFOp::create(b, loc, to, v);
  return arith::TruncFOp::create(b, loc, to, v);
}

/// A loader over tensor components: element `indices` of component `i` via
/// tensor.extract.
static auto tensorLoader(ValueRange components) {
  return [components](OpBuilder &b, Location loc, unsigned i,
                      ValueRange indices) -> Value {
    return tensor::ExtractOp::create(b, loc, components[i], indices);
  };
}

/// A vector loader over tensor components (in bounds by the
/// emitDequantVector contract).
static auto tensorVectorLoader(ValueRange components) {
  return [components](OpBuilder &b, Location loc, unsigned i,
                      ValueRange indices, int64_t count) -> Value {
    return readRun(b, loc, components[i], indices, count);
  };
}

Value mlir::qnt::buildEmpty(OpBuilder &b, Location loc, RankedTensorType type,
                            Value shapeSource) {
  SmallVector<Value> dynamicSizes;
  for (auto [dim, size] : llvm::enumerate(type.getShape())) {
    if (!ShapedType::isDynamic(size))
      continue;
    assert(shapeSource && "a dynamic dimension needs a shape source");
    dynamicSizes.push_back(tensor::DimOp::create(b, loc, shapeSource, dim));
  }
  return tensor::EmptyOp::create(b, loc, type, dynamicSizes);
}

Value mlir::qnt::buildZeroTensor(OpBuilder &b, Location loc,
                                 RankedTensorType type, Value shapeSource) {
  Value empty = buildEmpty(b, loc, type, shapeSource);
  Value zero = arith::ConstantOp::create(
      b, loc, b.getFloatAttr(type.getElementType(), 0.0));
  return linalg::FillOp::create(b, loc, zero, empty).getResult(0);
}

Value mlir::qnt::convertElementType(OpBuilder &b, Location loc, Value value,
                                    Type elementType) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getElementType() == elementType)
    return value;
  auto resultType = type.clone(elementType);
  Value empty = buildEmpty(b, loc, resultType, value);
  SmallVector<AffineMap> maps(2, b.getMultiDimIdentityMap(type.getRank()));
  SmallVector<utils::IteratorType> iterators(type.getRank(),
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, resultType, value, empty, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        linalg::YieldOp::create(nb, nloc,
                                convertScalar(nb, nloc, args[0], elementType));
      });
  return generic.getResult(0);
}

Value mlir::qnt::buildDequantizedWeight(OpBuilder &b, Location loc,
                                        EncodingAttrInterface encoding,
                                        ValueRange components,
                                        RankedTensorType resultType) {
  int64_t rows = resultType.getDimSize(0), cols = resultType.getDimSize(1);
  Value empty = tensor::EmptyOp::create(b, loc, resultType.getShape(),
                                        resultType.getElementType());
  SmallVector<AffineMap> maps = {b.getMultiDimIdentityMap(2)};
  SmallVector<utils::IteratorType> iterators(2, utils::IteratorType::parallel);
  SmallVector<Value> captured(components);
  auto generic = linalg::GenericOp::create(
      b, loc, resultType, ValueRange{}, empty, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange) {
        Value row = linalg::IndexOp::create(nb, nloc, 0);
        Value col = linalg::IndexOp::create(nb, nloc, 1);
        Value value = encoding.emitDequantElement(
            nb, nloc, tensorLoader(captured), row, col, rows, cols);
        linalg::YieldOp::create(
            nb, nloc,
            convertScalar(nb, nloc, value, resultType.getElementType()));
      });
  return generic.getResult(0);
}

Value mlir::qnt::buildFusedMatmul(OpBuilder &b, Location loc,
                                  EncodingAttrInterface encoding, Value input,
                                  ValueRange components,
                                  RankedTensorType resultType) {
  int64_t rows = resultType.getDimSize(1);
  int64_t cols = cast<RankedTensorType>(input.getType()).getDimSize(1);
  Type f32 = b.getF32Type();
  Value acc = buildZeroTensor(b, loc, resultType.clone(f32), input);

  MLIRContext *ctx = b.getContext();
  AffineExpr m, n, k;
  bindDims(ctx, m, n, k);
  SmallVector<AffineMap> maps = {AffineMap::get(3, 0, {m, k}, ctx),
                                 AffineMap::get(3, 0, {m, n}, ctx)};
  SmallVector<utils::IteratorType> iterators = {
      utils::IteratorType::parallel, utils::IteratorType::parallel,
      utils::IteratorType::reduction};
  SmallVector<Value> captured(components);
  auto generic = linalg::GenericOp::create(
      b, loc, acc.getType(), input, acc, maps, iterators,
      [&](OpBuilder &nb, Location nloc, ValueRange args) {
        Value row = linalg::IndexOp::create(nb, nloc, 1);
        Value col = linalg::IndexOp::create(nb, nloc, 2);
        Value weight = encoding.emitDequantElement(
            nb, nloc, tensorLoader(captured), row, col, rows, cols);
        Value x = convertScalar(nb, nloc, args[0], f32);
        Value product = arith::MulFOp::create(nb, nloc, x, weight);
        linalg::YieldOp::create(
            nb, nloc, arith::AddFOp::create(nb, nloc, args[1], product)
                          .getResult());
      });
  return convertElementType(b, loc, generic.getResult(0),
                            resultType.getElementType());
}

Value mlir::qnt::buildVectorFusedMatmul(OpBuilder &b, Location loc,
                                        EncodingAttrInterface encoding,
                                        Value input, ValueRange components,
                                        RankedTensorType resultType,
                                        const VectorMatmulShape &shape,
                                        Value init) {
  int64_t rows = resultType.getDimSize(1);
  int64_t cols = cast<RankedTensorType>(input.getType()).getDimSize(1);
  SmallVector<Value> captured(components);
  auto load = tensorLoader(captured);
  auto loadVector = tensorVectorLoader(captured);
  auto run = [&](OpBuilder &nb, Location nloc, Value n, Value k,
                 int64_t width) {
    return encoding.emitDequantVector(nb, nloc, load, loadVector, n, k, width,
                                      rows, cols);
  };
  auto element = [&](OpBuilder &nb, Location nloc, Value n, Value k) {
    return encoding.emitDequantElement(nb, nloc, load, n, k, rows, cols);
  };
  Value y =
      buildVectorMatmul(b, loc, input, rows, cols, run, element, init, shape);
  return convertElementType(b, loc, y, resultType.getElementType());
}
