//===- Equalization.cpp - Cross-layer equalization and bias correction ----===//

#include "qnt/numerics/Equalization.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace qnt::numerics {

std::vector<float> rowRanges(const float *w, int64_t rows, int64_t cols) {
  std::vector<float> range(rows, 0.0f);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k)
      range[n] = std::max(range[n], std::fabs(w[n * cols + k]));
  return range;
}

std::vector<float> columnRanges(const float *w, int64_t rows, int64_t cols,
                                const std::vector<int64_t> &rowOfColumn,
                                int64_t numChannels) {
  if (!rowOfColumn.empty() && int64_t(rowOfColumn.size()) != cols)
    throw std::invalid_argument("columnRanges: the column map has " +
                                std::to_string(rowOfColumn.size()) +
                                " entries for " + std::to_string(cols) +
                                " columns");
  std::vector<float> range(numChannels, 0.0f);
  for (int64_t c = 0; c < cols; ++c) {
    int64_t channel = rowOfColumn.empty() ? c : rowOfColumn[c];
    if (channel < 0 || channel >= numChannels)
      throw std::invalid_argument("columnRanges: column " + std::to_string(c) +
                                  " maps to channel " +
                                  std::to_string(channel) + " of " +
                                  std::to_string(numChannels));
    for (int64_t n = 0; n < rows; ++n)
      range[channel] = std::max(range[channel], std::fabs(w[n * cols + c]));
  }
  return range;
}

std::vector<float> equalizationScales(const std::vector<float> &r1,
                                      const std::vector<float> &r2,
                                      double alpha) {
  if (!(alpha >= 0 && alpha <= 1))
    throw std::invalid_argument("equalization alpha must be in [0, 1], got " +
                                std::to_string(alpha));
  if (r1.size() != r2.size())
    throw std::invalid_argument("equalization ranges differ in length");
  std::vector<float> t(r1.size(), 1.0f);
  for (size_t j = 0; j < r1.size(); ++j) {
    double a = r1[j], b = r2[j];
    if (!(a > 0 && b > 0 && std::isfinite(a) && std::isfinite(b)))
      continue; // a dead channel: nothing to balance
    double scale = std::pow(a, alpha) / std::pow(b, 1 - alpha);
    if (std::isfinite(scale) && scale > 0)
      t[j] = float(scale);
  }
  return t;
}

std::vector<float> biasCorrection(const float *w, const float *wq,
                                  int64_t rows, int64_t cols,
                                  const std::vector<double> &mean) {
  if (int64_t(mean.size()) != cols)
    throw std::invalid_argument("bias correction: the input mean has " +
                                std::to_string(mean.size()) +
                                " channels for K = " + std::to_string(cols));
  std::vector<float> bias(rows);
  for (int64_t n = 0; n < rows; ++n) {
    double sum = 0;
    for (int64_t k = 0; k < cols; ++k)
      sum += mean[k] * (double(w[n * cols + k]) - double(wq[n * cols + k]));
    bias[n] = float(sum);
  }
  return bias;
}

} // namespace qnt::numerics
