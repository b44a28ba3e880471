//===- MixedPrecisionTest.cpp - Bit allocation against exhaustive search --===//

#include "qnt/numerics/MixedPrecision.h"

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <random>

using namespace qnt::numerics;

namespace {

/// The best loss within the budget over every combination.
double exhaustive(const std::vector<std::vector<PrecisionOption>> &layers,
                  int64_t budget) {
  double best = INFINITY;
  std::vector<size_t> pick(layers.size(), 0);
  while (true) {
    int64_t bits = 0;
    double loss = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      bits += layers[l][pick[l]].bits;
      loss += layers[l][pick[l]].loss;
    }
    if (bits <= budget)
      best = std::min(best, loss);
    size_t l = 0;
    while (l < layers.size() && ++pick[l] == layers[l].size())
      pick[l++] = 0;
    if (l == layers.size())
      return best;
  }
}

TEST(MixedPrecisionTest, AllocatorIsOptimalOnSmallInstances) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::vector<PrecisionOption>> layers(2 + trial % 4);
    for (auto &options : layers) {
      int count = 1 + rng() % 4;
      for (int o = 0; o < count; ++o)
        options.push_back({int64_t(8 * (1 + rng() % 40) + rng() % 3),
                           double(rng() % 1000) / 7.0});
    }
    int64_t least = 0, most = 0;
    for (const auto &options : layers) {
      int64_t lo = INT64_MAX, hi = 0;
      for (const PrecisionOption &o : options) {
        lo = std::min(lo, o.bits);
        hi = std::max(hi, o.bits);
      }
      least += lo;
      most += hi;
    }
    int64_t budget = least + rng() % (most - least + 1);
    Allocation a = allocatePrecision(layers, budget);
    EXPECT_TRUE(a.exact);
    EXPECT_LE(a.bits, budget);
    double recomputed = 0;
    int64_t bits = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      recomputed += layers[l][a.choice[l]].loss;
      bits += layers[l][a.choice[l]].bits;
    }
    EXPECT_EQ(bits, a.bits);
    EXPECT_NEAR(recomputed, a.loss, 1e-9);
    EXPECT_NEAR(a.loss, exhaustive(layers, budget), 1e-9) << "trial " << trial;
  }
}

TEST(MixedPrecisionTest, CoarsenedTableStaysWithinBudget) {
  std::vector<std::vector<PrecisionOption>> layers = {
      {{1000, 5.0}, {2001, 1.0}}, {{1000, 4.0}, {2003, 0.5}}};
  Allocation a = allocatePrecision(layers, 3005, /*maxStates=*/64);
  EXPECT_FALSE(a.exact);
  EXPECT_LE(a.bits, 3005);
  EXPECT_THROW(allocatePrecision(layers, 1999), std::invalid_argument);
}

TEST(MixedPrecisionTest, TraceModelPredictsRoundingNoise) {
  // Gaussian weights with many elements per group: rounding noise is close
  // to uniform, so Delta^2/12 tr(H) predicts the measured tr(D H D^T). H is
  // diagonal with unequal entries (the model uses only the diagonal).
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  const int64_t rows = 64, cols = 256;
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = normal(rng);
  Eigen::MatrixXd h = Eigen::MatrixXd::Zero(cols, cols);
  for (int64_t k = 0; k < cols; ++k)
    h(k, k) = 1.0 + (k % 7);
  for (int bits : {3, 4, 6}) {
    UniformSpec spec;
    spec.bits = bits;
    spec.symmetric = false;
    spec.granularity = Granularity::PerGroup;
    spec.groupSize = 64;
    double predicted = predictedOutputNoise(spec, w.data(), rows, cols, h);
    double measured = measuredOutputNoise(spec, w.data(), rows, cols, h);
    EXPECT_NEAR(measured / predicted, 1.0, 0.1) << bits << " bits";
  }
  // One bit less: the step grows by 15/7 asymmetric (2^b - 1 levels),
  // 7/3 symmetric (2^(b-1) - 1 per side).
  UniformSpec s3, s4;
  s3.bits = 3;
  s4.bits = 4;
  s3.symmetric = s4.symmetric = false;
  double r = predictedOutputNoise(s3, w.data(), rows, cols, h) /
             predictedOutputNoise(s4, w.data(), rows, cols, h);
  EXPECT_NEAR(r, (15.0 * 15.0) / (7.0 * 7.0), 1e-9);
  s3.symmetric = s4.symmetric = true;
  r = predictedOutputNoise(s3, w.data(), rows, cols, h) /
      predictedOutputNoise(s4, w.data(), rows, cols, h);
  EXPECT_NEAR(r, (7.0 * 7.0) / (3.0 * 3.0), 1e-9);
}

} // namespace
