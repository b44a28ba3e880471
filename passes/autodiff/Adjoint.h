//===- Adjoint.h - Reverse-mode differentiation of tensor functions -*- C++ -*-===//
//
// Builds the adjoint of a function on tensors (a transformer block, the
// head) from its IR, so that the gradients of the learned-rounding methods
// come from the very code that runs, not from a second model that could
// disagree with it (docs/Autodiff.md).
//
// The adjoint of `f(a_0, ..., a_n) -> (r_0, ..., r_m)` with respect to
// arguments `wrt` is
//
//   f_adjoint(a_0, ..., a_n, dr_0, ..., dr_m) -> (da_w0, da_w1, ...)
//
// taking one cotangent per result (of the result's type) and returning
// the vector-Jacobian product for each argument in `wrt`, in that order.
//
// Policy: recompute. The adjoint first runs the whole forward again (the
// same ops, so the same kernels: quantized matmuls stay fused), then the
// reverse sweep; nothing is saved between a forward call and the adjoint.
//
// Rules:
//  - linalg.generic (and every named linalg op, through its generic form)
//    with projected-permutation indexing maps: the gradient for an operand
//    is a generic over the same iteration space whose output is indexed by
//    that operand's map (the dimensions it does not use become
//    reductions), and whose body is the forward body followed by its scalar
//    reverse. Reductions must combine with addf (sums) or a maximum or
//    minimum (the gradient goes to the elements equal to the result);
//  - scalar body ops: arith addf, subf, mulf, divf, negf, maximumf,
//    minimumf, maxnumf, minnumf, select, extf, truncf; math exp, log, sqrt,
//    rsqrt, tanh, sin, cos, powf, absf, fma; rounding (roundeven, round,
//    floor, ceil) is straight-through (derivative 1), as every reference's
//    round_ste; index and integer arithmetic carries no gradient;
//  - tensor expand_shape, collapse_shape, extract_slice, insert_slice, cast;
//  - qnt.matmul with respect to its activation (the weight dequantized,
//    then a matmul; the primal keeps the fused kernel);
//  - the other qnt compute ops on differentiated values (fake_quant,
//    smooth, lowrank_add, dequant, and qnt.matmul with differentiated
//    float components) through their reference lowering
//    (lowerQntOpsToLinalg), so their gradients are those of their
//    executable definitions; qnt.observe passes the cotangent through;
//  - tensor.extract (top level: into zeros; inside a body: a scatter-add
//    loop nest) and scalars between tensor ops.
//
// Any other op on a differentiated value is refused with an error at the
// op naming it.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_PASSES_AUTODIFF_ADJOINT_H
#define QNT_PASSES_AUTODIFF_ADJOINT_H

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::qnt {

/// Builds the adjoint of `func` with respect to the arguments `wrt` (float
/// tensors) as a new function `name` inserted after `func`. On failure an
/// error has been emitted at the offending op or argument and nothing is
/// left in the module.
FailureOr<func::FuncOp> buildAdjoint(func::FuncOp func,
                                     ArrayRef<unsigned> wrt, StringRef name);

/// True for the arguments and results the adjoint handles: ranked tensors
/// of a float type.
bool isDifferentiableType(Type type);

} // namespace mlir::qnt

#endif // QNT_PASSES_AUTODIFF_ADJOINT_H
