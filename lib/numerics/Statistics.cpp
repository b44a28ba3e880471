//===- Statistics.cpp - Input statistics of one linear layer --------------===//

#include "qnt/numerics/Statistics.h"

#include <algorithm>
#include <cmath>

namespace qnt::numerics {

void LayerStatistics::accumulate(const float *x, int64_t rows) {
  using RowMajor =
      Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const RowMajor> batch(x, rows, channels);
  if (count == 0) {
    absmax.assign(channels, 0.0f);
    sumAbs.assign(channels, 0.0);
    sum.assign(channels, 0.0);
    if (wantsHessian)
      hessian = Eigen::MatrixXd::Zero(channels, channels);
  }
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t k = 0; k < channels; ++k) {
      float magnitude = std::fabs(batch(t, k));
      absmax[k] = std::max(absmax[k], magnitude);
      sumAbs[k] += magnitude;
      sum[k] += batch(t, k);
    }
  if (wantsHessian) {
    // H += X^T X on the lower triangle, in double: a rank-k update that
    // Eigen blocks as a GEMM.
    Eigen::MatrixXd xt = batch.cast<double>().transpose();
    hessian.selfadjointView<Eigen::Lower>().rankUpdate(xt);
  }
  count += rows;
}

Eigen::MatrixXd LayerStatistics::fullHessian() const {
  Eigen::MatrixXd full = hessian.selfadjointView<Eigen::Lower>();
  return full;
}

std::vector<float> LayerStatistics::meanAbs() const {
  std::vector<float> mean(channels, 0.0f);
  if (count > 0)
    for (int64_t k = 0; k < channels && k < int64_t(sumAbs.size()); ++k)
      mean[k] = float(sumAbs[k] / double(count));
  return mean;
}

std::vector<double> LayerStatistics::mean() const {
  std::vector<double> result(channels, 0.0);
  if (count > 0)
    for (int64_t k = 0; k < channels && k < int64_t(sum.size()); ++k)
      result[k] = sum[k] / double(count);
  return result;
}

void LayerStatistics::reset() {
  count = 0;
  absmax.clear();
  sumAbs.clear();
  sum.clear();
  hessian.resize(0, 0);
}

} // namespace qnt::numerics
