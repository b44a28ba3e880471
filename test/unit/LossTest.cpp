//===- LossTest.cpp - Losses against closed forms and finite differences --===//
//
// Every gradient is compared with central finite differences of the loss
// in double; values with closed forms (known MSEs, parallel and opposite
// rows, the two-class KL divergence) are checked directly.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Loss.h"
#include "qnt/support/Random.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

using namespace qnt;
using namespace qnt::numerics;

namespace {

std::vector<double> randomMatrix(uint64_t seed, int64_t n, double scale) {
  Xoshiro256 rng(seed);
  std::vector<double> v(static_cast<size_t>(n));
  for (double &x : v)
    x = scale * (2 * rng.uniform() - 1);
  return v;
}

using LossOf = std::function<double(const double *, double *)>;

/// Checks `loss`'s gradient at `x` against central differences.
void expectGradientMatchesDifferences(const LossOf &loss,
                                      std::vector<double> x) {
  std::vector<double> gradient(x.size());
  loss(x.data(), gradient.data());
  const double h = 1e-6;
  for (size_t i = 0; i < x.size(); ++i) {
    double saved = x[i];
    x[i] = saved + h;
    double up = loss(x.data(), nullptr);
    x[i] = saved - h;
    double down = loss(x.data(), nullptr);
    x[i] = saved;
    double numeric = (up - down) / (2 * h);
    EXPECT_NEAR(gradient[i], numeric, 1e-6 * (1 + std::abs(numeric)))
        << "element " << i;
  }
}

constexpr int64_t kRows = 3, kCols = 7;

TEST(LossTest, MseValuesAndGradients) {
  std::vector<double> p = {1, 2, 3, 4}, t = {0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(mseLoss(p.data(), t.data(), 2, 2, Reduction::Mean), 7.5);
  EXPECT_DOUBLE_EQ(mseLoss(p.data(), t.data(), 2, 2, Reduction::RowSumMean),
                   15.0);
  std::vector<double> target = randomMatrix(2, kRows * kCols, 1.0);
  for (Reduction r : {Reduction::Mean, Reduction::RowSumMean})
    expectGradientMatchesDifferences(
        [&](const double *x, double *g) {
          return mseLoss(x, target.data(), kRows, kCols, r, g);
        },
        randomMatrix(1, kRows * kCols, 1.0));
}

TEST(LossTest, CosineValuesAndGradients) {
  std::vector<double> a = {1, 2, 3, -1, 0, 2};
  std::vector<double> twice = {2, 4, 6, -3, 0, 6};
  std::vector<double> opposite = {-1, -2, -3, 1, 0, -2};
  EXPECT_NEAR(meanRowCosine(a.data(), twice.data(), 2, 3), 1.0, 1e-15);
  EXPECT_NEAR(negLogCosineLoss(a.data(), twice.data(), 2, 3), 0.0, 1e-15);
  EXPECT_NEAR(cosineDistanceLoss(a.data(), twice.data(), 2, 3), 0.0, 1e-15);
  // -log|C| takes the absolute value: opposite outputs also score 0.
  EXPECT_NEAR(negLogCosineLoss(a.data(), opposite.data(), 2, 3), 0.0, 1e-15);
  EXPECT_NEAR(cosineDistanceLoss(a.data(), opposite.data(), 2, 3), 2.0, 1e-15);
  // Orthogonal rows: C = 0, the loss is infinite with a zero gradient.
  std::vector<double> x = {1, 0}, y = {0, 1}, g(2, 5.0);
  EXPECT_TRUE(std::isinf(negLogCosineLoss(x.data(), y.data(), 1, 2, g.data())));
  EXPECT_EQ(g, std::vector<double>(2, 0.0));

  std::vector<double> target = randomMatrix(4, kRows * kCols, 1.0);
  // Shifted towards the target so that C stays away from 0.
  std::vector<double> start = randomMatrix(3, kRows * kCols, 0.5);
  for (size_t i = 0; i < start.size(); ++i)
    start[i] += target[i];
  expectGradientMatchesDifferences(
      [&](const double *p, double *g) {
        return meanRowCosine(p, target.data(), kRows, kCols, g);
      },
      start);
  expectGradientMatchesDifferences(
      [&](const double *p, double *g) {
        return cosineDistanceLoss(p, target.data(), kRows, kCols, g);
      },
      start);
  expectGradientMatchesDifferences(
      [&](const double *p, double *g) {
        return negLogCosineLoss(p, target.data(), kRows, kCols, g);
      },
      start);
}

TEST(LossTest, KlDivergenceValuesAndGradients) {
  // Two classes: softmax of (z, 0) is (sigmoid z, 1 - sigmoid z).
  auto sigmoid = [](double z) { return 1 / (1 + std::exp(-z)); };
  std::vector<double> q = {0.3, 0}, p = {-1.2, 0};
  double ps = sigmoid(-1.2), qs = sigmoid(0.3);
  double expected =
      ps * std::log(ps / qs) + (1 - ps) * std::log((1 - ps) / (1 - qs));
  EXPECT_NEAR(klDivergenceLoss(q.data(), p.data(), 1, 2, 1.0), expected,
              1e-15);
  // The temperature divides the logits.
  std::vector<double> q2 = {0.6, 0}, p2 = {-2.4, 0};
  EXPECT_NEAR(klDivergenceLoss(q2.data(), p2.data(), 1, 2, 2.0), expected,
              1e-15);
  // Equal logits (up to a shift per row): zero loss and gradient.
  std::vector<double> z = randomMatrix(5, kRows * kCols, 3.0), shifted = z;
  for (int64_t r = 0; r < kRows; ++r)
    for (int64_t c = 0; c < kCols; ++c)
      shifted[r * kCols + c] += double(r) * 10;
  std::vector<double> g(z.size());
  EXPECT_NEAR(klDivergenceLoss(shifted.data(), z.data(), kRows, kCols, 4.0,
                               g.data()),
              0.0, 1e-14);
  for (double gi : g)
    EXPECT_NEAR(gi, 0.0, 1e-15);
  for (double temperature : {1.0, 4.0}) {
    std::vector<double> target = randomMatrix(6, kRows * kCols, 3.0);
    expectGradientMatchesDifferences(
        [&](const double *x, double *grad) {
          return klDivergenceLoss(x, target.data(), kRows, kCols, temperature,
                                  grad);
        },
        randomMatrix(7, kRows * kCols, 3.0));
    EXPECT_GT(klDivergenceLoss(z.data(), target.data(), kRows, kCols,
                               temperature),
              0.0);
  }
  EXPECT_THROW(klDivergenceLoss(z.data(), z.data(), kRows, kCols, 0.0),
               std::invalid_argument);
}

TEST(LossTest, AdaRoundRegularizer) {
  // h(v) = 0 or 1 (far from 0): no penalty and no gradient; h = 1/2 (v = 0):
  // the full penalty of 1 whatever beta, and a zero gradient (|a|^(b-1)).
  std::vector<double> v = {-20, 20, 0}, g(3);
  EXPECT_NEAR(adaRoundRegularizer(v.data(), 3, 2.0, g.data()), 1.0, 1e-12);
  for (double gi : g)
    EXPECT_NEAR(gi, 0.0, 1e-12);
  // Values where the stretched sigmoid is inside (0, 1).
  std::vector<double> inner = randomMatrix(12, 20, 2.0);
  for (double beta : {2.0, 7.5, 20.0})
    expectGradientMatchesDifferences(
        [&](const double *x, double *grad) {
          return adaRoundRegularizer(x, 20, beta, grad);
        },
        inner);
  EXPECT_THROW(adaRoundRegularizer(v.data(), 3, 0.5), std::invalid_argument);
}

TEST(LossTest, FloatAgreesWithDoubleOnLargeInputs) {
  // Large enough for the parallel path; the sums are taken in row order,
  // so the float and double runs differ only by the inputs' rounding.
  const int64_t rows = 512, cols = 256;
  std::vector<double> p = randomMatrix(8, rows * cols, 1.0),
                      t = randomMatrix(9, rows * cols, 1.0);
  std::vector<float> pf(p.begin(), p.end()), tf(t.begin(), t.end());
  std::vector<float> gf(pf.size());
  std::vector<double> gd(p.size());
  EXPECT_NEAR(mseLoss(pf.data(), tf.data(), rows, cols, Reduction::Mean,
                      gf.data()),
              mseLoss(p.data(), t.data(), rows, cols, Reduction::Mean,
                      gd.data()),
              1e-6);
  for (size_t i = 0; i < gd.size(); i += 997)
    EXPECT_NEAR(gf[i], gd[i], 1e-10) << i;
  EXPECT_NEAR(klDivergenceLoss(pf.data(), tf.data(), rows, cols, 2.0),
              klDivergenceLoss(p.data(), t.data(), rows, cols, 2.0), 1e-6);
}

} // namespace
