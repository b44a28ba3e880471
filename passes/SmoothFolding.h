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
//    SwiGLU gate * up): that linear's rows / s;
//  - attention's output (softmax(Q K^T) V, heads flattened): the value
//    projection's rows / s, when every head that reads a value channel is
//    divided by the same factor (grouped-query attention ties the heads of
//    one KV group). The values pass through the KV cache, which this block
//    alone writes and reads, so the cache holds V / s consistently.
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
  /// WeightRows: empty when channel c of the value is row c of the weight;
  /// else the weight row each channel of the value is proportional to
  /// (attention outputs: several heads read one value row).
  SmallVector<int64_t> rowOfChannel;
};

/// Where a per-channel scale of `value`'s last dimension folds exactly, or
/// nullopt with the reason in `whyNot`. Only the producer is examined; the
/// caller checks that every other user of `value` is divided by the same
/// scale.
std::optional<SmoothFoldSite> findSmoothFoldSite(Value value,
                                                 std::string *whyNot = nullptr);

class ParamRewriter;

/// Folds every qnt.smooth of `input` (all its users must be smooths with
/// the same constant factors) into `input`'s producer, writing the
/// rescaled data through `data`; the smooths are erased. Returns the number
/// of smooths folded, or failure with a located error saying why not.
FailureOr<int64_t> foldSmoothedInput(Value input, ParamRewriter &data);

} // namespace mlir::qnt

#endif // QNT_PASSES_SMOOTHFOLDING_H
