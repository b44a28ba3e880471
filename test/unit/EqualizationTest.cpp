//===- EqualizationTest.cpp - Equalization and bias correction ------------===//
//
// Cross-layer equalization is checked on the maps it claims to commute with
// (grouped-query attention's P V and the SwiGLU product), computed here
// explicitly: the rescaled pair must give the same outputs to 1e-5
// relative, and the ranges must end equal. Bias correction is checked on
// the quantity it promises to cancel, the mean output error over the
// calibration inputs, computed from the outputs themselves (not from the
// input mean).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Equalization.h"

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <stdexcept>

using namespace qnt::numerics;

namespace {

using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Entries of very different magnitudes per row, so that t is far from 1.
RowMajorF randomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  RowMajorF m(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      m(r, c) = normal(rng) * std::pow(4.0f, float((r * 7 + c * 3) % 5) - 2);
  return m;
}

double relativeDifference(const RowMajorF &a, const RowMajorF &b) {
  return (a - b).cast<double>().norm() / b.cast<double>().norm();
}

/// Applies t: W1's rows / t, W2's columns * t[rowOfColumn[c]].
void rescale(RowMajorF &w1, RowMajorF &w2, const std::vector<float> &t,
             const std::vector<int64_t> &rowOfColumn) {
  for (int64_t j = 0; j < w1.rows(); ++j)
    w1.row(j) /= t[j];
  for (int64_t c = 0; c < w2.cols(); ++c)
    w2.col(c) *= t[rowOfColumn.empty() ? c : rowOfColumn[c]];
}

/// Grouped-query attention's value path: v = x W1^T ([T][kvHeads*hd]);
/// head h reads KV head h / rep; out[s][h*hd + d] = sum_t p[h][s][t] v[t][
/// (h/rep)*hd + d]; y = out W2^T.
RowMajorF attention(const RowMajorF &x, const RowMajorF &w1,
                    const RowMajorF &w2, const std::vector<RowMajorF> &p,
                    int64_t headDim, int64_t rep) {
  RowMajorF v = x * w1.transpose();
  int64_t heads = int64_t(p.size()), tokens = x.rows();
  RowMajorF out = RowMajorF::Zero(tokens, heads * headDim);
  for (int64_t h = 0; h < heads; ++h)
    out.middleCols(h * headDim, headDim) =
        p[h] * v.middleCols((h / rep) * headDim, headDim);
  return out * w2.transpose();
}

TEST(EqualizationTest, ScalesBalanceTheRanges) {
  std::vector<float> r1 = {4.0f, 1.0f, 0.25f, 3.0f};
  std::vector<float> r2 = {1.0f, 4.0f, 2.0f, 0.0f};
  std::vector<float> t = equalizationScales(r1, r2, 0.5);
  EXPECT_FLOAT_EQ(t[0], 2.0f);
  EXPECT_FLOAT_EQ(t[1], 0.5f);
  for (int j = 0; j < 3; ++j)
    EXPECT_NEAR(r1[j] / t[j], r2[j] * t[j], 1e-6f) << j;
  EXPECT_EQ(t[3], 1.0f); // a dead consumer channel is left alone
  // alpha = 1 moves the whole range into the consumer: r1 / t = 1.
  std::vector<float> all = equalizationScales(r1, r2, 1.0);
  EXPECT_FLOAT_EQ(all[2], 0.25f);
  EXPECT_THROW(equalizationScales(r1, r2, 1.5), std::invalid_argument);
  EXPECT_THROW(equalizationScales(r1, {1.0f}, 0.5), std::invalid_argument);
}

TEST(EqualizationTest, ColumnRangesFollowTheChannelMap) {
  RowMajorF w = randomMatrix(3, 6, 1);
  std::vector<int64_t> map = {0, 1, 2, 0, 1, 2};
  std::vector<float> ranges = columnRanges(w.data(), 3, 6, map, 3);
  for (int64_t j = 0; j < 3; ++j) {
    float expected = 0;
    for (int64_t c = 0; c < 6; ++c)
      if (map[c] == j)
        expected = std::max(expected, w.col(c).cwiseAbs().maxCoeff());
    EXPECT_EQ(ranges[j], expected) << j;
  }
  EXPECT_THROW(columnRanges(w.data(), 3, 6, {0, 1}, 3), std::invalid_argument);
  EXPECT_THROW(columnRanges(w.data(), 3, 6, {0, 1, 2, 3, 0, 0}, 3),
               std::invalid_argument);
}

TEST(EqualizationTest, ValueToOutputIsExactWithGroupedHeads) {
  const int64_t dim = 12, kvHeads = 2, rep = 2, headDim = 3, tokens = 7;
  RowMajorF x = randomMatrix(tokens, dim, 2);
  RowMajorF w1 = randomMatrix(kvHeads * headDim, dim, 3);
  RowMajorF w2 = randomMatrix(dim, kvHeads * rep * headDim, 4);
  std::vector<RowMajorF> p;
  for (int64_t h = 0; h < kvHeads * rep; ++h)
    p.push_back(randomMatrix(tokens, tokens, 10 + h).cwiseAbs());
  std::vector<int64_t> map; // output channel -> value row
  for (int64_t h = 0; h < kvHeads * rep; ++h)
    for (int64_t d = 0; d < headDim; ++d)
      map.push_back((h / rep) * headDim + d);
  RowMajorF before = attention(x, w1, w2, p, headDim, rep);
  std::vector<float> t = equalizationScales(
      rowRanges(w1.data(), w1.rows(), w1.cols()),
      columnRanges(w2.data(), w2.rows(), w2.cols(), map, w1.rows()), 0.5);
  rescale(w1, w2, t, map);
  EXPECT_LT(relativeDifference(attention(x, w1, w2, p, headDim, rep), before),
            1e-5);
  std::vector<float> r1 = rowRanges(w1.data(), w1.rows(), w1.cols());
  std::vector<float> r2 =
      columnRanges(w2.data(), w2.rows(), w2.cols(), map, w1.rows());
  for (size_t j = 0; j < r1.size(); ++j)
    EXPECT_NEAR(r1[j], r2[j], 1e-5f * r1[j]) << j;
}

TEST(EqualizationTest, UpToDownIsExactThroughSwiGlu) {
  const int64_t dim = 8, hidden = 10, tokens = 5;
  RowMajorF x = randomMatrix(tokens, dim, 20);
  RowMajorF gate = randomMatrix(hidden, dim, 21);
  RowMajorF up = randomMatrix(hidden, dim, 22);
  RowMajorF down = randomMatrix(dim, hidden, 23);
  auto mlp = [&](const RowMajorF &u, const RowMajorF &d) {
    RowMajorF g = x * gate.transpose();
    RowMajorF silu = g.array() / (1.0f + (-g.array()).exp());
    RowMajorF h = silu.array() * (x * u.transpose()).array();
    return RowMajorF(h * d.transpose());
  };
  RowMajorF before = mlp(up, down);
  std::vector<float> t = equalizationScales(
      rowRanges(up.data(), hidden, dim),
      columnRanges(down.data(), dim, hidden, {}, hidden), 0.5);
  rescale(up, down, t, {});
  EXPECT_LT(relativeDifference(mlp(up, down), before), 1e-5);
}

TEST(EqualizationTest, BiasCorrectionZeroesTheMeanOutputError) {
  const int64_t tokens = 200, k = 16, n = 6;
  RowMajorF x = randomMatrix(tokens, k, 30);
  x.array() += 0.7f; // a non-zero mean, as after SwiGLU or a norm gain
  RowMajorF w = randomMatrix(n, k, 31);
  RowMajorF wq = (w.array() * 4.0f).round() / 4.0f; // a coarse grid
  std::vector<double> mean(k, 0.0);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = 0; c < k; ++c)
      mean[c] += double(x(t, c)) / tokens;
  std::vector<float> bias = biasCorrection(w.data(), wq.data(), n, k, mean);
  Eigen::MatrixXd reference = x.cast<double>() * w.cast<double>().transpose();
  Eigen::MatrixXd quantized = x.cast<double>() * wq.cast<double>().transpose();
  double largestBefore = 0;
  for (int64_t o = 0; o < n; ++o) {
    double before = (reference.col(o) - quantized.col(o)).mean();
    double after = before - bias[o];
    largestBefore = std::max(largestBefore, std::fabs(before));
    EXPECT_LT(std::fabs(after), 1e-6 * (1 + std::fabs(before))) << o;
  }
  EXPECT_GT(largestBefore, 1e-2) << "the test needs a biased error";
  EXPECT_THROW(biasCorrection(w.data(), wq.data(), n, k, {1.0}),
               std::invalid_argument);
}

} // namespace
