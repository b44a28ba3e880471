//===- DistributionCorrection.cpp - PD-Quant's input correction -----------===//
//
// See DistributionCorrection.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/DistributionCorrection.h"
#include "qnt/numerics/Optimizer.h"

#include <cmath>
#include <stdexcept>

namespace qnt::numerics {

void ChannelStatistics::add(const float *x, int64_t rows) {
  int64_t cols = channels();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      double v = x[r * cols + c];
      sum[c] += v;
      squares[c] += v * v;
    }
  count += rows;
}

std::vector<float> ChannelStatistics::mean() const {
  std::vector<float> m(sum.size());
  for (size_t c = 0; c < m.size(); ++c)
    m[c] = count ? float(sum[c] / double(count)) : 0.0f;
  return m;
}

std::vector<float> ChannelStatistics::standardDeviation() const {
  std::vector<float> s(sum.size());
  for (size_t c = 0; c < s.size(); ++c) {
    if (!count)
      continue;
    double m = sum[c] / double(count);
    s[c] = float(std::sqrt(std::max(0.0, squares[c] / double(count) - m * m)));
  }
  return s;
}

double distributionCorrectionLoss(const float *corrected, const float *x,
                                  int64_t rows, int64_t cols,
                                  const float *mean, const float *std,
                                  double proximity, float *gradient) {
  double loss = 0, t = double(rows), c = double(cols);
  for (int64_t j = 0; j < cols; ++j) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < rows; ++i)
      mu += corrected[i * cols + j];
    mu /= t;
    for (int64_t i = 0; i < rows; ++i) {
      double d = corrected[i * cols + j] - mu;
      var += d * d;
    }
    double sigma = std::sqrt(var / t);
    double dMean = mu - mean[j], dStd = sigma - std[j];
    loss += (dMean * dMean + dStd * dStd) / c;
    if (!gradient)
      continue;
    // d mu / dX'_ij = 1 / T; d sigma / dX'_ij = (X'_ij - mu) / (T sigma)
    // (0 where sigma = 0, the subgradient torch's std gives there).
    for (int64_t i = 0; i < rows; ++i) {
      double centered = corrected[i * cols + j] - mu;
      double g = 2 * dMean / (t * c);
      if (sigma > 0)
        g += 2 * dStd * centered / (t * sigma * c);
      gradient[i * cols + j] = float(g);
    }
  }
  double n = t * c, close = 0;
  for (int64_t k = 0; k < rows * cols; ++k) {
    double d = double(corrected[k]) - double(x[k]);
    close += d * d;
    if (gradient)
      gradient[k] += float(2 * d / (n * proximity));
  }
  return loss + close / (n * proximity);
}

std::vector<float>
correctDistribution(const float *x, int64_t rows, int64_t cols,
                    const float *mean, const float *std,
                    const DistributionCorrectionOptions &options) {
  if (rows < 1 || cols < 1 || !(options.proximity > 0) ||
      options.iterations < 0)
    throw std::invalid_argument(
        "distribution correction needs rows >= 1, proximity > 0 and "
        "iterations >= 0");
  std::vector<float> corrected(x, x + rows * cols), gradient(rows * cols);
  AdamOptions adam;
  adam.learningRate = options.learningRate;
  Adam optimizer({{"input", adam,
                   {{"x", corrected.data(), gradient.data(),
                     int64_t(corrected.size())}}}});
  for (int64_t step = 0; step < options.iterations; ++step) {
    distributionCorrectionLoss(corrected.data(), x, rows, cols, mean, std,
                               options.proximity, gradient.data());
    optimizer.step();
  }
  return corrected;
}

} // namespace qnt::numerics
