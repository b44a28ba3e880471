//===- SmoothFolding.h - Where a per-channel input scale folds --*- C++ -*-===//
//
// AWQ, SmoothQuant and cross-layer equalization divide a layer's input by a
// per-channel vector s (qnt.smooth) and multiply the weight's input columns
// by s. The division costs nothing at run time when the producer of the
// input can absorb it exactly:
//  - a normalization whose output is a product with a per-channel gain
//    (RMSNorm, LayerNorm without bias): gain / s;
//  - a linear layer (a transpose-B matmul, float or dequantized weight):
//    its weight rows / s;
//  - an elementwise product with such a linear layer as one factor (the
//    SwiGLU gate * up): that linear's rows / s.
// One definition, shared by the methods (which search a scale only where it
// will fold) and qnt-fold-smooth (which folds it).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_SMOOTHFOLDING_H
#define QNT_PASSES_SMOOTHFOLDING_H

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <optional>
#include <string>

namespace mlir::qnt {

struct SmoothFoldSite {
  enum class Kind { Gain, WeightRows };
  Kind kind;
  /// Gain: the elementwise op whose gain operand scales its output columns.
  linalg::GenericOp norm;
  /// Gain: the gain operand (1-D, indexed by the last dimension).
  OpOperand *gain = nullptr;
  /// WeightRows: the linear layer whose output columns (weight rows) scale.
  linalg::MatmulOp matmul;
};

/// Where a per-channel scale of `value`'s last dimension folds exactly, or
/// nullopt with the reason in `whyNot`. Only the producer is examined; the
/// caller checks that every other user of `value` is divided by the same
/// scale.
std::optional<SmoothFoldSite> findSmoothFoldSite(Value value,
                                                 std::string *whyNot = nullptr);

} // namespace mlir::qnt

#endif // QNT_PASSES_SMOOTHFOLDING_H
