//===- AwqTest.cpp - AWQ against brute force ------------------------------===//
//
// The scale search and the clipping search are checked against objectives
// computed here independently: outputs X W^T formed explicitly from the
// activations (not through the Hessian), scales from the activations'
// mean |x| (not through the statistics), every grid point evaluated.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Awq.h"
#include "support/Specs.h"

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace qnt::numerics;

namespace {

using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Heavy-tailed activations with two outlier channels, [tokens][k].
RowMajorF makeActivations(int64_t tokens, int64_t k, unsigned seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> heavy(3.0f);
  RowMajorF x(tokens, k);
  for (int64_t i = 0; i < x.size(); ++i)
    x.data()[i] = heavy(rng);
  x.col(1) *= 20.0f;
  x.col(k - 2) *= 8.0f;
  return x;
}

RowMajorF makeWeights(int64_t n, int64_t k, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.5f);
  RowMajorF w(n, k);
  for (int64_t i = 0; i < w.size(); ++i)
    w.data()[i] = normal(rng);
  return w;
}

LayerStatistics statisticsOf(const RowMajorF &x) {
  LayerStatistics stats(x.cols());
  stats.accumulate(x.data(), x.rows());
  return stats;
}

/// The asymmetric grids AWQ is run with.
UniformSpec uniform(int bits, int64_t groupSize) {
  return ::qnt::testing::uniformSpec(bits, /*symmetric=*/false, groupSize);
}

/// mean((X W^T - X Wq^T)^2) computed from X.
double outputMse(const RowMajorF &x, const RowMajorF &w,
                 const std::vector<float> &wq) {
  Eigen::Map<const RowMajorF> q(wq.data(), w.rows(), w.cols());
  Eigen::MatrixXd d = (x.cast<double>() * (w - q).cast<double>().transpose());
  return d.squaredNorm() / double(d.size());
}

/// The independent objective of one alpha: s from the activations, the
/// weight quantized scaled and unscaled back.
std::vector<float> bruteCandidate(const EncodingSpec &spec, const RowMajorF &x,
                                  const RowMajorF &w, double alpha) {
  int64_t k = x.cols();
  std::vector<double> s(k);
  for (int64_t j = 0; j < k; ++j)
    s[j] = std::max(std::pow(double(x.col(j).cwiseAbs().mean()), alpha),
                    1e-4);
  double lo = *std::min_element(s.begin(), s.end());
  double hi = *std::max_element(s.begin(), s.end());
  for (double &v : s)
    v /= std::sqrt(lo * hi);
  RowMajorF scaled = w;
  for (int64_t j = 0; j < k; ++j)
    scaled.col(j) *= float(s[j]);
  std::vector<float> q = dequantize(
      spec, quantizeRTN(spec, scaled.data(), scaled.rows(), scaled.cols()));
  for (int64_t n = 0; n < w.rows(); ++n)
    for (int64_t j = 0; j < k; ++j)
      q[n * k + j] /= float(s[j]);
  return q;
}

TEST(AwqTest, ScalesAreNormalizedPowersOfMeanAbs) {
  std::vector<float> m = {4.0f, 1.0f, 1.0f, 0.25f, 0.0f};
  std::vector<float> s = awqScales(m, 0.5);
  // 0 is clamped to 1e-4; sqrt(max * min) = sqrt(2 * 1e-4).
  float norm = std::sqrt(2.0f * 1e-4f);
  EXPECT_NEAR(s[0], 2.0f / norm, 1e-3f * s[0]);
  EXPECT_NEAR(s[3], 0.5f / norm, 1e-3f * s[3]);
  EXPECT_NEAR(s[4], 1e-4f / norm, 1e-6f);
  for (float v : awqScales(m, 0.0))
    EXPECT_EQ(v, 1.0f);
}

TEST(AwqTest, TiedScalesAreTheGeometricMeanOfTheirClass) {
  std::vector<float> s = {4.0f, 1.0f, 9.0f, 0.25f};
  std::vector<float> tied = tieScales(s, {0, 1, 0, 1});
  EXPECT_FLOAT_EQ(tied[0], 6.0f); // sqrt(4 * 9)
  EXPECT_FLOAT_EQ(tied[2], 6.0f);
  EXPECT_FLOAT_EQ(tied[1], 0.5f); // sqrt(1 * 0.25)
  EXPECT_FLOAT_EQ(tied[3], 0.5f);
  EXPECT_EQ(tieScales(s, {}), s);
  EXPECT_THROW(tieScales(s, {0, 1}), std::invalid_argument);

  // A search with tied channels only proposes tied scales.
  RowMajorF x = makeActivations(256, 48, 5), w = makeWeights(16, 48, 6);
  LayerStatistics stats = statisticsOf(x);
  AwqGroup group;
  group.layers.push_back({"layer", w.data(), w.rows(), w.cols(), &stats});
  group.specs = {uniform(3, 16)};
  group.clip = {false};
  for (int64_t c = 0; c < 48; ++c)
    group.channelClass.push_back(c % 16); // three heads read 16 rows
  AwqSearch search = searchAwqScales(group, AwqOptions());
  ASSERT_GT(search.alpha, 0.0);
  for (int64_t c = 16; c < 48; ++c)
    EXPECT_EQ(search.scales[c], search.scales[c % 16]) << c;
}

TEST(AwqTest, ChosenAlphaIsTheGridMinimumOfTheOutputError) {
  RowMajorF x = makeActivations(512, 48, 1), w = makeWeights(24, 48, 2);
  LayerStatistics stats = statisticsOf(x);
  EncodingSpec spec = uniform(3, 16);
  AwqGroup group;
  group.layers.push_back({"layer", w.data(), w.rows(), w.cols(), &stats});
  group.specs = {spec};
  group.clip = {false};
  AwqOptions options;
  AwqSearch search = searchAwqScales(group, options);

  ASSERT_EQ(int(search.losses.size()), options.scaleGrid);
  int best = 0;
  std::vector<double> brute;
  for (int i = 0; i < options.scaleGrid; ++i) {
    double alpha = double(i) / options.scaleGrid;
    brute.push_back(outputMse(x, w, bruteCandidate(spec, x, w, alpha)));
    EXPECT_NEAR(search.losses[i], brute[i], 1e-4 * brute[i]) << "alpha " << alpha;
    if (brute[i] < brute[best])
      best = i;
  }
  EXPECT_DOUBLE_EQ(search.alpha, double(best) / options.scaleGrid);
  // The outlier channels make scaling worth it here.
  EXPECT_GT(search.alpha, 0.0);
  EXPECT_LT(brute[best], brute[0]);
}

TEST(AwqTest, ModuleLossDecidesWithSeveralLayers) {
  // Two layers sharing the input; the module squashes their outputs, so the
  // choice can differ from the linear error. The search must pick the
  // minimum of whatever the module loss says.
  RowMajorF x = makeActivations(256, 32, 3);
  RowMajorF w0 = makeWeights(16, 32, 4), w1 = makeWeights(8, 32, 5);
  LayerStatistics stats = statisticsOf(x);
  EncodingSpec spec = uniform(3, 0);
  auto module = [&](const std::vector<float> &a, const std::vector<float> &b) {
    Eigen::Map<const RowMajorF> qa(a.data(), 16, 32), qb(b.data(), 8, 32);
    Eigen::MatrixXf ya = (x * qa.transpose()).array().tanh();
    Eigen::MatrixXf yb = (x * qb.transpose()).array().tanh();
    Eigen::MatrixXf ra = (x * w0.transpose()).array().tanh();
    Eigen::MatrixXf rb = (x * w1.transpose()).array().tanh();
    return double((ya - ra).squaredNorm() + (yb - rb).squaredNorm());
  };
  AwqGroup group;
  group.layers.push_back({"a", w0.data(), 16, 32, &stats});
  group.layers.push_back({"b", w1.data(), 8, 32, &stats});
  group.specs = {spec, spec};
  group.clip = {false, false};
  int calls = 0;
  group.moduleLoss = [&](const std::vector<std::vector<float>> &c) {
    ++calls;
    return module(c[0], c[1]);
  };
  AwqOptions options;
  options.scaleGrid = 10;
  AwqSearch search = searchAwqScales(group, options);
  EXPECT_EQ(calls, 10);
  double best = INFINITY, bestAlpha = -1;
  for (int i = 0; i < 10; ++i) {
    double alpha = i / 10.0;
    double loss = module(bruteCandidate(spec, x, w0, alpha),
                         bruteCandidate(spec, x, w1, alpha));
    if (loss < best) {
      best = loss;
      bestAlpha = alpha;
    }
  }
  EXPECT_DOUBLE_EQ(search.alpha, bestAlpha);
}

TEST(AwqTest, ClipBoundsAreTheBruteForceMinimaWithRaggedGroups) {
  // K = 40 with groups of 16: 16 + 16 + 8.
  RowMajorF x = makeActivations(300, 40, 6), w = makeWeights(6, 40, 7);
  w(2, 5) = 4.0f; // an outlier weight worth clipping
  LayerStatistics stats = statisticsOf(x);
  UniformSpec spec = uniform(3, 16);
  AwqOptions options;
  std::vector<float> bounds = searchAwqClip(spec, w.data(), 6, 40,
                                            stats.fullHessian(), options);
  ASSERT_EQ(bounds.size(), 6u * 3u);
  UniformSpec perRow = uniform(3, 0);
  const int64_t begins[] = {0, 16, 32}, widths[] = {16, 16, 8};
  for (int64_t n = 0; n < 6; ++n)
    for (int g = 0; g < 3; ++g) {
      RowMajorF xg = x.middleCols(begins[g], widths[g]);
      Eigen::RowVectorXf wg = w.row(n).segment(begins[g], widths[g]);
      float absMax = wg.cwiseAbs().maxCoeff();
      double best = INFINITY;
      float bestBound = absMax;
      for (int i = 0; i < options.clipSteps; ++i) {
        float bound = absMax * (1.0f - float(i) / options.clipGrid);
        Eigen::RowVectorXf c = wg.cwiseMax(-bound).cwiseMin(bound);
        std::vector<float> q = dequantize(
            perRow, quantizeRTN(perRow, c.data(), 1, widths[g]));
        Eigen::Map<Eigen::RowVectorXf> qv(q.data(), widths[g]);
        double loss = (xg * (wg - qv).transpose()).cast<double>().squaredNorm();
        if (loss < best * (1 - 1e-9)) {
          best = loss;
          bestBound = bound;
        }
      }
      EXPECT_FLOAT_EQ(bounds[n * 3 + g], bestBound) << "row " << n
                                                    << " group " << g;
    }
  // The outlier is clipped.
  EXPECT_LT(bounds[2 * 3 + 0], 4.0f);
}

TEST(AwqTest, ResultIsExactUnderTheFoldAndNoWorseThanRtn) {
  RowMajorF x = makeActivations(512, 64, 8), w = makeWeights(32, 64, 9);
  LayerStatistics stats = statisticsOf(x);
  EncodingSpec spec = uniform(4, 32);
  AwqGroup group;
  group.layers.push_back({"layer", w.data(), 32, 64, &stats});
  group.specs = {spec};
  group.clip = {false};
  AwqSearch search;
  std::vector<MethodResult> results = runAWQ(group, AwqOptions(), &search);
  ASSERT_EQ(results.size(), 1u);
  const MethodResult &r = results[0];
  ASSERT_EQ(r.inputScale.size(), 64u);
  // Stored: Q(W diag(s)); effective: that divided by s. (x / s) Q^T equals
  // x (Q / s)^T.
  std::vector<float> stored = dequantize(r.spec, r.encoded);
  for (int64_t n = 0; n < 32; ++n)
    for (int64_t k = 0; k < 64; ++k)
      EXPECT_FLOAT_EQ(r.dequantized[n * 64 + k],
                      stored[n * 64 + k] / r.inputScale[k]);
  // Without clipping the chosen loss is at most alpha = 0's, which is RTN.
  std::vector<float> rtn =
      dequantize(spec, quantizeRTN(spec, w.data(), 32, 64));
  EXPECT_LE(outputMse(x, w, r.dequantized), outputMse(x, w, rtn));
  EXPECT_DOUBLE_EQ(search.losses[0] , groupOutputLoss(group, {rtn}));
}

TEST(AwqTest, RefusesWhatItCannotDo) {
  RowMajorF w = makeWeights(4, 8, 10);
  AwqGroup group;
  group.layers.push_back({"layer", w.data(), 4, 8, nullptr});
  group.specs = {uniform(4, 0)};
  group.clip = {true};
  EXPECT_THROW(runAWQ(group, AwqOptions()), std::invalid_argument);
  group.specs = {BinarySpec()};
  EXPECT_THROW(runAWQ(group, AwqOptions()), std::invalid_argument);
}

} // namespace
