//===- Loss.h - Reconstruction and distillation losses ----------*- C++ -*-===//
//
// The losses of the block-reconstruction methods (../shared/docs/
// ALGORITHMS.md §5, §7, §8, §9, §15), each with its gradient with respect
// to the prediction, which becomes the output cotangent of a block's
// adjoint. Matrices are row-major [rows][cols]: a row is one token's
// features (or one sample's logits), reductions over features run along a
// row. Values are accumulated in double; the functions are templates over
// the element type so that tests can check the gradients in double against
// finite differences. IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_LOSS_H
#define QNT_NUMERICS_LOSS_H

#include <cstdint>
#include <string>

namespace qnt::numerics {

enum class Reduction {
  /// Mean over every element (torch's MSELoss).
  Mean,
  /// Sum over a row's features, mean over rows (BRECQ/QDrop/FlexRound's
  /// lp_loss with p = 2, reduction "none").
  RowSumMean,
};

/// Squared error of `prediction` against `target`, reduced as asked. When
/// `gradient` is not null it receives dL/dprediction.
template <typename T>
double mseLoss(const T *prediction, const T *target, int64_t rows,
               int64_t cols, Reduction reduction, T *gradient = nullptr);

/// Cosine similarity of each row pair (torch's cosine_similarity along the
/// features, norms clamped below at 1e-8), averaged over rows: C.
template <typename T>
double meanRowCosine(const T *prediction, const T *target, int64_t rows,
                     int64_t cols, T *gradient = nullptr);

/// 1 - C.
template <typename T>
double cosineDistanceLoss(const T *prediction, const T *target, int64_t rows,
                          int64_t cols, T *gradient = nullptr);

/// -log |C| (OmniQuant's, and so PTQ1.61's and ABQ-LLM's, cosine term);
/// +infinity with a zero gradient when C = 0.
template <typename T>
double negLogCosineLoss(const T *prediction, const T *target, int64_t rows,
                        int64_t cols, T *gradient = nullptr);

/// KL(softmax(target / t) || softmax(prediction / t)) per row, summed over
/// the classes and averaged over the rows (torch's kl_div with
/// reduction "batchmean" on log_softmax(prediction / t) and
/// softmax(target / t): PD-Quant's prediction-difference term, without the
/// t^2 factor of distillation). Both arguments are logits. Throws
/// std::invalid_argument unless temperature > 0.
template <typename T>
double klDivergenceLoss(const T *predictionLogits, const T *targetLogits,
                        int64_t rows, int64_t cols, double temperature,
                        T *gradient = nullptr);

/// AdaRound's rounding regularizer sum_i (1 - |2 h(v_i) - 1|^beta), with
/// h(v) = clamp(sigmoid(v) (zeta - gamma) + gamma, 0, 1), zeta = 1.1,
/// gamma = -0.1 (the rectified sigmoid of the quantizer in
/// passes/ptq/LearnedRounding.h): it pushes every h to 0 or 1 as beta is
/// annealed (annealedBeta in Optimizer.h). Throws std::invalid_argument
/// unless beta >= 1.
template <typename T>
double adaRoundRegularizer(const T *v, int64_t count, double beta,
                           T *gradient = nullptr);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_LOSS_H
