//===- DistributionCorrection.h - PD-Quant's input correction -*- C++ -*-===//
//
// PD-Quant's distribution correction (../shared/docs/ALGORITHMS.md §7),
// adapted to a network without BatchNorm. The reference moves each
// calibration batch's float block input X so that the per-channel mean and
// standard deviation it produces at every BatchNorm inside the block match
// the BatchNorm running statistics (the training set's), while staying
// close to X. A LLaMA block has no BatchNorm and no running statistics;
// here the statistics are those of the block input itself, and the
// population values are the per-channel mean and standard deviation over
// the whole calibration set's float stream (what a BatchNorm's running
// statistics would hold there). The objective for one sequence [T, C]:
//
//   L(X') = mean_c (mu_c(X') - m_c)^2 + mean_c (sigma_c(X') - s_c)^2
//           + mean_tc (X'_tc - X_tc)^2 / lambda_c
//
// (mu_c, sigma_c: the mean and the biased standard deviation of channel c
// over the tokens; the reference's mean-reduced MSE terms), minimized by
// Adam from X' = X.
//
//===----------------------------------------------------------------------===//

#ifndef QNT_NUMERICS_DISTRIBUTIONCORRECTION_H
#define QNT_NUMERICS_DISTRIBUTIONCORRECTION_H

#include <cstdint>
#include <vector>

namespace qnt::numerics {

struct DistributionCorrectionOptions {
  /// lambda_c: the proximity term's weight is 1 / lambda_c (the reference's
  /// ResNet value).
  double proximity = 0.02;
  int64_t iterations = 500;
  double learningRate = 1e-3;
};

/// Per-channel mean and biased standard deviation of `rows` x `cols`
/// (row-major) values, accumulated over several calls.
class ChannelStatistics {
public:
  explicit ChannelStatistics(int64_t cols) : sum(cols), squares(cols) {}
  void add(const float *x, int64_t rows);
  int64_t channels() const { return int64_t(sum.size()); }
  std::vector<float> mean() const;
  std::vector<float> standardDeviation() const;

private:
  std::vector<double> sum, squares;
  int64_t count = 0;
};

/// L(X') above and, when `gradient` is not null, dL/dX' ([rows, cols]).
double distributionCorrectionLoss(const float *corrected, const float *x,
                                  int64_t rows, int64_t cols,
                                  const float *mean, const float *std,
                                  double proximity, float *gradient = nullptr);

/// X' after `options.iterations` Adam steps on L from X' = X. Throws
/// std::invalid_argument for rows < 1, proximity <= 0 or iterations < 0.
std::vector<float>
correctDistribution(const float *x, int64_t rows, int64_t cols,
                    const float *mean, const float *std,
                    const DistributionCorrectionOptions &options);

} // namespace qnt::numerics

#endif // QNT_NUMERICS_DISTRIBUTIONCORRECTION_H
