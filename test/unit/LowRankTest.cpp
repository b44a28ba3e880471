//===- LowRankTest.cpp - LoRC factors against independent computations ----===//
//
// The singular values come from the eigenvalues of E^T E (a different
// algorithm from the SVD under test); full rank must reproduce the error,
// and the rank-r residual must be the tail singular values (Eckart-Young).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"
#include "qnt/numerics/LowRank.h"

#include <Eigen/Eigenvalues>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

using namespace qnt::numerics;

namespace {

/// A quantization error: W - RTN4(W) of a heavy-tailed random W, per-row
/// asymmetric, so that it has realistic (nearly flat) spectrum.
std::vector<float> rtnError(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> t(4.0f);
  std::vector<float> error(size_t(rows * cols));
  for (int64_t n = 0; n < rows; ++n) {
    std::vector<float> w(static_cast<size_t>(cols));
    for (float &x : w)
      x = 0.02f * t(rng);
    auto [lo, hi] = std::minmax_element(w.begin(), w.end());
    float scale = (*hi - *lo) / 15.0f;
    float zero = roundHalfEven(-*lo / scale);
    for (int64_t k = 0; k < cols; ++k) {
      float q = std::clamp(roundHalfEven(w[k] / scale) + zero, 0.0f, 15.0f);
      error[size_t(n * cols + k)] = w[k] - (q - zero) * scale;
    }
  }
  return error;
}

/// Singular values from the eigenvalues of E^T E, descending.
std::vector<double> eigenSingularValues(const std::vector<float> &e,
                                        int64_t rows, int64_t cols) {
  Eigen::MatrixXd m(rows, cols);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k)
      m(n, k) = e[size_t(n * cols + k)];
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(m.transpose() * m);
  std::vector<double> s;
  for (int64_t i = cols - 1; i >= 0; --i)
    s.push_back(std::sqrt(std::max(0.0, eig.eigenvalues()(i))));
  s.resize(size_t(std::min(rows, cols)));
  return s;
}

/// || E - U V^T ||_F.
double residual(const std::vector<float> &e, const LowRankFactors &f) {
  double sum = 0.0;
  for (int64_t n = 0; n < f.rows; ++n)
    for (int64_t k = 0; k < f.cols; ++k) {
      double d = e[size_t(n * f.cols + k)] - lowRankEntry(f, n, k);
      sum += d * d;
    }
  return std::sqrt(sum);
}

} // namespace

TEST(LowRank, SingularValuesMatchEigenvaluesOfGram) {
  const int64_t rows = 24, cols = 16;
  std::vector<float> e = rtnError(rows, cols, 1);
  LowRankFactors f =
      lowRankCompensation(e.data(), rows, cols, {4, FactorFormat::F32});
  std::vector<double> want = eigenSingularValues(e, rows, cols);
  ASSERT_EQ(f.singularValues.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_NEAR(f.singularValues[i], want[i], 1e-6 * want[0]) << i;
}

TEST(LowRank, FullRankReproducesTheError) {
  const int64_t rows = 12, cols = 20;
  std::vector<float> e = rtnError(rows, cols, 2);
  LowRankFactors f =
      lowRankCompensation(e.data(), rows, cols, {12, FactorFormat::F32});
  double norm = std::sqrt(std::inner_product(e.begin(), e.end(), e.begin(),
                                             0.0));
  EXPECT_LT(residual(e, f), 1e-6 * norm);
}

TEST(LowRank, RankRResidualIsTheTailSingularValues) {
  const int64_t rows = 32, cols = 24;
  std::vector<float> e = rtnError(rows, cols, 3);
  std::vector<double> sigma = eigenSingularValues(e, rows, cols);
  for (int64_t r : {1, 4, 8, 23}) {
    LowRankFactors f =
        lowRankCompensation(e.data(), rows, cols, {r, FactorFormat::F32});
    double tail = 0.0;
    for (size_t i = size_t(r); i < sigma.size(); ++i)
      tail += sigma[i] * sigma[i];
    EXPECT_NEAR(residual(e, f), std::sqrt(tail), 1e-5 * sigma[0]) << r;
  }
}

TEST(LowRank, RoundedFactors) {
  const int64_t rows = 32, cols = 48, r = 8;
  std::vector<float> e = rtnError(rows, cols, 4);
  double exact =
      residual(e, lowRankCompensation(e.data(), rows, cols,
                                      {r, FactorFormat::F32}));
  // f16 factors: the residual barely moves.
  LowRankFactors half =
      lowRankCompensation(e.data(), rows, cols, {r, FactorFormat::F16});
  EXPECT_NEAR(residual(e, half), exact, 1e-3 * exact);
  // int8: codes times per-row scales are the factors, each within half a
  // step of the exact factor, and the residual stays below the error.
  LowRankFactors f32 =
      lowRankCompensation(e.data(), rows, cols, {r, FactorFormat::F32});
  LowRankFactors q8 =
      lowRankCompensation(e.data(), rows, cols, {r, FactorFormat::Int8});
  ASSERT_EQ(q8.uCodes.size(), size_t(rows * r));
  ASSERT_EQ(q8.vScales.size(), size_t(cols));
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t j = 0; j < r; ++j) {
      size_t i = size_t(n * r + j);
      EXPECT_EQ(q8.u[i], float(q8.uCodes[i]) * q8.uScales[size_t(n)]);
      EXPECT_LE(std::fabs(q8.u[i] - f32.u[i]),
                0.5f * q8.uScales[size_t(n)] + 1e-9f);
    }
  double norm = std::sqrt(std::inner_product(e.begin(), e.end(), e.begin(),
                                             0.0));
  EXPECT_LT(residual(e, q8), norm);
  EXPECT_LT(residual(e, q8), exact * 1.05);
}

TEST(LowRank, StorageBits) {
  EXPECT_EQ(lowRankStorageBits(4096, 11008, 8, FactorFormat::Int8),
            8 * 8 * (4096 + 11008) + 32 * (4096 + 11008));
  EXPECT_EQ(lowRankStorageBits(64, 64, 2, FactorFormat::F16), 16 * 2 * 128);
  EXPECT_EQ(lowRankStorageBits(64, 64, 2, FactorFormat::F32), 32 * 2 * 128);
}

TEST(LowRank, BadArguments) {
  std::vector<float> e(6, 1.0f);
  EXPECT_THROW(lowRankCompensation(e.data(), 2, 3, {0, FactorFormat::F32}),
               std::invalid_argument);
  EXPECT_THROW(lowRankCompensation(e.data(), 2, 3, {3, FactorFormat::F32}),
               std::invalid_argument);
  EXPECT_THROW(lowRankCompensation(e.data(), 0, 3, {1, FactorFormat::F32}),
               std::invalid_argument);
}
