//===- Gptq.h - GPTQ weight quantization ------------------------*- C++ -*-===//
//
// GPTQ (Frantar et al., IST-DASLab/gptq @2d65066; ALGORITHMS.md §1): columns
// are quantized one at a time in a common order, and the rounding error of
// each is spread over the columns not yet quantized through the upper
// Cholesky factor of the inverse Hessian, with lazy batches of columns.
// Works on any scalar grid: uniform integers (2..8 bits, symmetric or not)
// and minifloats, per channel or per group (ragged last groups included).
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_GPTQ_H
#define QNT_NUMERICS_GPTQ_H

#include "qnt/numerics/Method.h"

namespace qnt::numerics {

struct GptqOptions {
  /// Dampening added to the Hessian's diagonal, relative to its mean.
  double percDamp = 0.01;
  /// Columns per lazy batch.
  int64_t blockSize = 128;
  /// Quantize columns in order of decreasing Hessian diagonal. Without
  /// static groups, groups are then formed in that order and the result
  /// carries an input permutation.
  bool actOrder = false;
  /// Group parameters computed once on the original weights in natural
  /// column order (no input permutation even with act-order).
  bool staticGroups = false;
  /// The reference's `mse` option: per scale group, shrink the range
  /// (p = 1, 0.99, ..., 0.21) and keep the p minimizing sum |w - q|^2.4.
  bool mseSearch = false;
  /// Where a group's parameters come from when the group starts inside a
  /// lazy batch. By default, as in the reference code, from the weights as
  /// they were when the batch started (it reads its global W, updated batch
  /// by batch). With freshGroupParams, from the current weights, including
  /// the updates from the batch's earlier columns. On stories260K the fresh
  /// parameters help at 4 bits and hurt at 3 (docs/Recipes.md).
  bool freshGroupParams = false;
  /// How many times the damping is multiplied by 10 when the damped
  /// Hessian is not positive definite, before giving up.
  int maxDampingRetries = 4;
};

/// Quantizes `problem` (whose stats must hold a Hessian) with GPTQ onto the
/// grid of `spec` (a per-channel or per-group UniformSpec or MinifloatSpec).
/// Throws std::invalid_argument on an unsupported spec, missing or
/// mis-sized statistics, non-finite weights or Hessian entries, or a
/// Hessian that stays indefinite after the damping retries.
MethodResult runGPTQ(const EncodingSpec &spec, const GptqOptions &options,
                     const WeightProblem &problem);

/// The same on an explicit Hessian H = sum X^T X ([cols, cols], full).
MethodResult runGPTQ(const EncodingSpec &spec, const GptqOptions &options,
                     const float *weight, int64_t rows, int64_t cols,
                     const Eigen::MatrixXd &hessian);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_GPTQ_H
