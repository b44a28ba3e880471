//===- LinearLayers.h - Find and name the linear layers of IR ---*- C++ -*-===//
//
// One definition of "a linear layer and its name", shared by the observers
// (whose names key the statistics file) and the PTQ driver (which looks
// statistics up by the same names), so that a constant weight's layer has
// the same name in both.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_LINEARLAYERS_H
#define QNT_PASSES_LINEARLAYERS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

#include <string>

namespace mlir::qnt {

struct LinearLayer {
  /// A linalg.matmul (plain or transpose-B) or a qnt.matmul.
  Operation *op;
  /// The weight operand (for qnt.matmul its first component; may be null).
  Value weight;
  /// True for the layers whose input qnt-insert-observers observes:
  /// transpose-B linalg.matmul and qnt.matmul.
  bool observable;
  /// The weight's name location or qnt.param name; else
  /// "<function>.linear<i>" (i counting unnamed observable layers in walk
  /// order) or "<function>.matmul<i>" (unnamed plain matmuls).
  std::string name;
};

/// The linear layers of `func`, in walk order.
SmallVector<LinearLayer> collectLinearLayers(func::FuncOp func);

} // namespace mlir::qnt

#endif // QNT_PASSES_LINEARLAYERS_H
