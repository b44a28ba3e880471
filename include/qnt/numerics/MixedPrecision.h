//===- MixedPrecision.h - Bit allocation from a noise model -----*- C++ -*-===//
//
// Mixed precision in the QReg view (../shared/docs/ALGORITHMS.md §12):
// quantizing a layer adds noise to its output whose expected energy is its
// Hessian-weighted weight noise, E||X (W - Q(W))^T||^2 = tr(D H D^T) with
// D = W - Q(W); for a uniform grid with step Delta and rounding noise
// uniform in [-Delta/2, Delta/2], that is sum over rows and scale groups of
// Delta^2 / 12 * tr(H_gg) ("trace" model), or it is measured by rounding
// ("measured" model). A layer's options (bits, format, group size) each
// have a storage cost and a predicted loss; the allocator picks one option
// per layer minimizing the total predicted loss within a storage budget (a
// multiple-choice knapsack, solved exactly by dynamic programming). IR-free.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_MIXEDPRECISION_H
#define QNT_NUMERICS_MIXEDPRECISION_H

#include "qnt/numerics/Encoding.h"

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace qnt::numerics {

/// The trace model of the output noise of round-to-nearest under `spec`
/// (uniform grids: per row and scale group, Delta^2 / 12 times the trace
/// of the group's Hessian block; H = X^T X unnormalized).
double predictedOutputNoise(const UniformSpec &spec, const float *w,
                            int64_t rows, int64_t cols,
                            const Eigen::MatrixXd &hessian);

/// The measured model: tr(D H D^T) of round-to-nearest under `spec`.
double measuredOutputNoise(const EncodingSpec &spec, const float *w,
                           int64_t rows, int64_t cols,
                           const Eigen::MatrixXd &hessian);

/// One way to store a layer.
struct PrecisionOption {
  int64_t bits = 0; ///< storage, every component counted
  double loss = 0;  ///< predicted loss increase
};

struct Allocation {
  std::vector<int> choice; ///< option index per layer
  int64_t bits = 0;
  double loss = 0;
  /// False when the cost table was coarsened to fit `maxStates` (the
  /// result is then feasible but may miss the optimum by one unit).
  bool exact = true;
};

/// One option per layer minimizing the summed loss with the summed bits at
/// most `budgetBits`. Dynamic programming over costs divided by their
/// greatest common divisor: exact while layers x states <= maxStates, with
/// costs rounded up to a coarser unit beyond. Throws std::invalid_argument
/// when even the cheapest options exceed the budget.
Allocation allocatePrecision(
    const std::vector<std::vector<PrecisionOption>> &layers,
    int64_t budgetBits, int64_t maxStates = int64_t(1) << 27);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_MIXEDPRECISION_H
