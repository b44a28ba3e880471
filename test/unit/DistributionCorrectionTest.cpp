//===- DistributionCorrectionTest.cpp - PD-Quant's input correction -------===//
//
// The objective's gradient against central differences in double
// precision, the channel statistics against a direct two-pass computation,
// and the correction's effect: the statistics move toward the targets, by
// less when the proximity term weighs more.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/DistributionCorrection.h"
#include "qnt/support/Random.h"

#include <gtest/gtest.h>

#include <cmath>

namespace nx = ::qnt::numerics;

namespace {

constexpr int64_t kRows = 7, kCols = 5;

std::vector<float> randomValues(uint64_t seed, int64_t count, double scale,
                                double shift) {
  ::qnt::Xoshiro256 random(seed);
  std::vector<float> v(count);
  for (float &x : v)
    x = float(shift + scale * (2 * random.uniform() - 1));
  return v;
}

/// Distance of x's per-channel mean and std from the targets.
double statisticsDistance(const std::vector<float> &x,
                          const std::vector<float> &mean,
                          const std::vector<float> &std) {
  nx::ChannelStatistics stats(kCols);
  stats.add(x.data(), kRows);
  std::vector<float> m = stats.mean(), s = stats.standardDeviation();
  double d = 0;
  for (int64_t c = 0; c < kCols; ++c)
    d += (m[c] - mean[c]) * (m[c] - mean[c]) + (s[c] - std[c]) * (s[c] - std[c]);
  return d;
}

TEST(DistributionCorrectionTest, StatisticsMatchATwoPassComputation) {
  std::vector<float> x = randomValues(1, kRows * kCols, 2.0, 0.5);
  nx::ChannelStatistics stats(kCols);
  stats.add(x.data(), 3);
  stats.add(x.data() + 3 * kCols, kRows - 3);
  std::vector<float> mean = stats.mean(), std = stats.standardDeviation();
  for (int64_t c = 0; c < kCols; ++c) {
    double m = 0, v = 0;
    for (int64_t r = 0; r < kRows; ++r)
      m += x[r * kCols + c] / double(kRows);
    for (int64_t r = 0; r < kRows; ++r)
      v += (x[r * kCols + c] - m) * (x[r * kCols + c] - m) / double(kRows);
    EXPECT_NEAR(mean[c], m, 1e-6);
    EXPECT_NEAR(std[c], std::sqrt(v), 1e-5);
  }
}

TEST(DistributionCorrectionTest, GradientMatchesCentralDifferences) {
  std::vector<float> x = randomValues(2, kRows * kCols, 1.0, 0.0);
  std::vector<float> corrected = randomValues(3, kRows * kCols, 1.5, 0.2);
  std::vector<float> mean = randomValues(4, kCols, 0.5, 0.0);
  std::vector<float> std = randomValues(5, kCols, 0.3, 1.0);
  std::vector<float> gradient(kRows * kCols);
  nx::distributionCorrectionLoss(corrected.data(), x.data(), kRows, kCols,
                                 mean.data(), std.data(), 0.3,
                                 gradient.data());
  for (int64_t i = 0; i < kRows * kCols; ++i) {
    // Float inputs: a step of 1e-2 keeps the float rounding of the
    // perturbed value far below the curvature error.
    std::vector<float> plus = corrected, minus = corrected;
    float h = 1e-2f;
    plus[i] += h;
    minus[i] -= h;
    double up = nx::distributionCorrectionLoss(plus.data(), x.data(), kRows,
                                               kCols, mean.data(), std.data(),
                                               0.3);
    double down = nx::distributionCorrectionLoss(
        minus.data(), x.data(), kRows, kCols, mean.data(), std.data(), 0.3);
    double expected = (up - down) / (double(plus[i]) - double(minus[i]));
    EXPECT_NEAR(gradient[i], expected, 1e-3 * std::abs(expected) + 1e-5)
        << "element " << i;
  }
}

TEST(DistributionCorrectionTest, MovesTheStatisticsTowardTheTargets) {
  std::vector<float> x = randomValues(6, kRows * kCols, 1.0, 0.0);
  std::vector<float> mean(kCols, 0.5f), std(kCols, 2.0f);
  double before = statisticsDistance(x, mean, std);
  nx::DistributionCorrectionOptions loose, tight;
  loose.proximity = 10;
  loose.iterations = tight.iterations = 400;
  loose.learningRate = tight.learningRate = 1e-2;
  tight.proximity = 0.01;
  std::vector<float> movedFar = nx::correctDistribution(
      x.data(), kRows, kCols, mean.data(), std.data(), loose);
  std::vector<float> movedLittle = nx::correctDistribution(
      x.data(), kRows, kCols, mean.data(), std.data(), tight);
  double far = statisticsDistance(movedFar, mean, std);
  double little = statisticsDistance(movedLittle, mean, std);
  EXPECT_LT(far, 0.2 * before);
  EXPECT_LT(little, before);
  EXPECT_GT(little, far);
  // Zero iterations change nothing; bad options are refused.
  nx::DistributionCorrectionOptions none;
  none.iterations = 0;
  EXPECT_EQ(nx::correctDistribution(x.data(), kRows, kCols, mean.data(),
                                    std.data(), none),
            x);
  none.proximity = 0;
  EXPECT_THROW(nx::correctDistribution(x.data(), kRows, kCols, mean.data(),
                                       std.data(), none),
               std::invalid_argument);
}

} // namespace
