//===- ComponentConstants.h - Encoded storage as IR constants ---*- C++ -*-===//
//
// The storage components of a host-encoded matrix as arith.constant ops, for
// the tests that run the dequantization and matmul IR on them.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_TEST_UNIT_SUPPORT_COMPONENTCONSTANTS_H
#define QNT_TEST_UNIT_SUPPORT_COMPONENTCONSTANTS_H

#include "dialects/qnt/QntDialect.h"
#include "qnt/numerics/Encoding.h"

namespace qnt::testing {

/// One constant per component of `m`, in operand order, at `b`'s insertion
/// point.
inline llvm::SmallVector<mlir::Value>
componentConstants(mlir::OpBuilder &b, const numerics::EncodedMatrix &m) {
  llvm::SmallVector<mlir::Value> values;
  for (const numerics::Component &c : m.components) {
    auto type = mlir::RankedTensorType::get(
        c.layout.shape,
        mlir::qnt::elementTypeOf(b.getContext(), c.layout.dtype));
    llvm::ArrayRef<char> raw(reinterpret_cast<const char *>(c.bytes.data()),
                             c.bytes.size());
    values.push_back(mlir::arith::ConstantOp::create(
        b, b.getUnknownLoc(),
        mlir::DenseElementsAttr::getFromRawBuffer(type, raw)));
  }
  return values;
}

} // namespace qnt::testing

#endif // QNT_TEST_UNIT_SUPPORT_COMPONENTCONSTANTS_H
