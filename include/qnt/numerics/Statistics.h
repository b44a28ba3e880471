//===- Statistics.h - Input statistics of one linear layer ------*- C++ -*-===//
//
// IR-free accumulator of what the PTQ methods need to know about a linear
// layer's input activations X ([tokens, K]): per-channel absmax and sum |x|,
// the Hessian X^T X (double, lower triangle) and the token count. The
// calibration driver, the sequential block driver and the statistics file
// reader all produce these.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_STATISTICS_H
#define QNT_NUMERICS_STATISTICS_H

#include <Eigen/Core>

#include <cstdint>
#include <vector>

namespace qnt::numerics {

struct LayerStatistics {
  int64_t channels = 0;
  int64_t count = 0;          ///< rows (tokens) accumulated
  std::vector<float> absmax;  ///< max |x[t, k]|
  std::vector<double> sumAbs; ///< sum |x[t, k]|
  std::vector<double> sum;    ///< sum x[t, k] (kept with sumAbs)
  Eigen::MatrixXd hessian;    ///< sum x[t]^T x[t]; lower triangle
  bool wantsAbsmax = true, wantsMeanAbs = true, wantsHessian = true;

  LayerStatistics() = default;
  explicit LayerStatistics(int64_t channels) : channels(channels) {}

  /// Adds the rows of `x` (row-major [rows, channels] f32).
  void accumulate(const float *x, int64_t rows);
  /// The full symmetric Hessian sum X^T X.
  Eigen::MatrixXd fullHessian() const;
  /// mean |x[:, k]| (zeros before any row was added).
  std::vector<float> meanAbs() const;
  /// mean x[:, k] (zeros before any row was added).
  std::vector<double> mean() const;
  /// Drops what was accumulated; keeps `channels` and the wants* flags.
  void reset();
};

} // namespace qnt::numerics

#endif // QNT_NUMERICS_STATISTICS_H
