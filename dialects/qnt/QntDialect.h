//===- QntDialect.h - The qnt dialect ---------------------------*- C++ -*-===//
//
// Public header of the qnt dialect: the dialect, its enums, the encoding
// attribute interface, the encodings and the ops.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_DIALECT_QNT_QNTDIALECT_H
#define QNT_DIALECT_QNT_QNTDIALECT_H

#include "qnt/numerics/Encoding.h"

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::qnt {
/// Reads element `indices` of storage component `component` at the
/// builder's insertion point. Each lowering supplies its own (tensor.extract,
/// memref.load, ...); encodings read components only through it.
using ComponentLoader = llvm::function_ref<Value(
    OpBuilder &builder, Location loc, unsigned component, ValueRange indices)>;

/// Reads the `count` consecutive elements of storage component `component`
/// that start at `indices` (along its last dimension) as a vector.
using VectorComponentLoader = llvm::function_ref<Value(
    OpBuilder &builder, Location loc, unsigned component, ValueRange indices,
    int64_t count)>;

/// An encoding whose element (n, k) is
///   scale(n, g) * multiplier * (u - zero(n, g))
/// with u an unsigned integer of at most 8 bits: the `bits`-bit code of
/// (n, k) in component 0 (an LSB-first bitstream per row, each row starting
/// on a byte) mapped through `codeValues` when it is not empty. Integer
/// kernels (int8 activations) multiply u by integer activations and apply
/// the scale and zero point once per group.
struct IntegerWeightForm {
  int64_t bits = 0;
  /// Consecutive elements of a row sharing one scale: the scale of (n, k)
  /// is element [perTensor ? 0 : n, k / groupSize] of `scaleComponent`
  /// (f32 or f16).
  int64_t groupSize = 0;
  bool perTensor = false;
  unsigned scaleComponent = 1;
  /// code -> u for all 2^bits codes; empty when u is the code itself.
  SmallVector<uint8_t> codeValues;
  /// The zero point: the unsigned i8 at the scale's indices of
  /// `zeroComponent` when set, else the constant `zero`.
  std::optional<unsigned> zeroComponent;
  int64_t zero = 0;
  float multiplier = 1.0f;
};

class EncodingAttrInterface;

/// The default of EncodingAttrInterface::emitDequantVector: `width` calls of
/// the scalar hook gathered into a vector.
Value emitDequantVectorByElements(EncodingAttrInterface encoding,
                                  OpBuilder &builder, Location loc,
                                  ComponentLoader load, Value row, Value col,
                                  int64_t width, int64_t numRows,
                                  int64_t numCols);
} // namespace mlir::qnt

#include "dialects/qnt/QntDialect.h.inc"
#include "dialects/qnt/QntEnums.h.inc"
#include "dialects/qnt/QntInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/qnt/QntAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/qnt/QntOps.h.inc"

namespace mlir::qnt {

/// Name of the module attribute listing parameter files (array of strings).
inline constexpr llvm::StringLiteral kParamFilesAttrName = "qnt.param_files";

/// Name of the argument attribute qnt-bind-params puts on the arguments it
/// creates: the bound parameter's name.
inline constexpr llvm::StringLiteral kParamArgAttrName = "qnt.param";

/// Converts a host spec back into an encoding attribute.
EncodingAttrInterface encodingFromSpec(MLIRContext *context,
                                       const ::qnt::numerics::EncodingSpec &spec);

/// MLIR element type of a component dtype.
Type elementTypeOf(MLIRContext *context, ::qnt::numerics::DType dtype);

/// Checks that `components` are exactly the storage of an `shape` weight
/// under `encoding`; reports on `op` otherwise.
LogicalResult verifyEncodedWeight(Operation *op, EncodingAttrInterface encoding,
                                  ValueRange components,
                                  ArrayRef<int64_t> shape);

} // namespace mlir::qnt

#endif // QNT_DIALECT_QNT_QNTDIALECT_H
