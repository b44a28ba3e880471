//===- Ptq161Test.cpp - PTQ1.61's mask and starting point -----------------===//
//
// The mask against ranks counted directly, the channel map against the
// encoding's split, the starting weight against the reference's formulas
// computed element by element, and the error feedback against the direct
// least-squares solve it stands for.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Ptq161.h"
#include "qnt/support/Random.h"

#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <cmath>

using namespace qnt::numerics;

namespace {

TEST(Ptq161Test, MaskIsTheTopRatioChannelsByAbsmax) {
  qnt::Xoshiro256 rng(1);
  for (int64_t k : {5, 64, 172})
    for (double ratio : {0.0, 0.2, 0.5, 0.9}) {
      std::vector<float> absmax(k);
      for (float &a : absmax)
        a = float(rng.below(40)) / 4; // ties on purpose
      std::vector<bool> mask = salientChannels(absmax, ratio);
      const int64_t top = int64_t(std::floor(ratio * double(k)));
      int64_t count = 0;
      for (int64_t j = 0; j < k; ++j) {
        // Salient exactly when at most floor(ratio K) channels are larger.
        int64_t larger = 0;
        for (int64_t i = 0; i < k; ++i)
          larger += absmax[i] > absmax[j];
        EXPECT_EQ(mask[j], larger <= top) << "K " << k << " ratio " << ratio;
        count += mask[j];
      }
      EXPECT_GE(count, top + 1);
    }
  EXPECT_THROW(salientChannels({1, 2}, 1.0), std::invalid_argument);
}

TEST(Ptq161Test, StartingPointIsTheReferenceFormula) {
  const int64_t rows = 4, cols = 10;
  qnt::Xoshiro256 rng(2);
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = float(2 * rng.uniform() - 1);
  w[3 * cols + 1] = 0; // a zero entry is left out of mu and alpha
  std::vector<bool> salient(cols, false);
  salient[2] = salient[7] = true;
  SalientBinarization init = initializePtq161(w.data(), rows, cols, salient);
  // The channel map lists salient 2 and 7 as columns 0 and 1.
  EXPECT_EQ(init.params.channelMap,
            (std::vector<int32_t>{-1, -2, 0, -3, -4, -5, -6, 1, -7, -8}));
  EncodedMatrix encoded = quantizeWithParams(init.spec, init.params, w.data(),
                                             rows, cols);
  std::vector<float> wq = dequantize(init.spec, encoded);
  for (int64_t r = 0; r < rows; ++r) {
    float lo = 0, hi = 0; // over the whole row, range including 0
    double sum = 0, magnitude = 0;
    int count = 0;
    for (int64_t k = 0; k < cols; ++k) {
      float v = w[r * cols + k];
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      if (!salient[k] && v != 0) {
        sum += v;
        magnitude += std::fabs(v);
        ++count;
      }
    }
    float scale = (hi - lo) / 15, zero = std::nearbyint(-lo / scale);
    float mu = float(sum / count), alpha = float(magnitude / count);
    for (int64_t k = 0; k < cols; ++k) {
      float v = w[r * cols + k], expected;
      if (salient[k])
        expected =
            scale * (std::clamp(std::nearbyint(v / scale) + zero, 0.0f, 15.0f) -
                     zero);
      else
        expected = alpha * (v >= mu ? 1.0f : -1.0f) + mu;
      EXPECT_NEAR(wq[r * cols + k], expected, 1e-6) << r << "," << k;
    }
  }
  // Both parts are needed.
  EXPECT_THROW(initializePtq161(w.data(), rows, cols,
                                std::vector<bool>(cols, true)),
               std::invalid_argument);
  EXPECT_THROW(initializePtq161(w.data(), rows, cols,
                                std::vector<bool>(cols, false)),
               std::invalid_argument);
}

/// Baking folds r1 into the rest's alpha and mu and r2 into the input
/// scale; the stored encoding, divided by that scale, is the trained
/// weight W^ = Wsal + r1 r2 (alpha S + mu m).
TEST(Ptq161Test, BakingIsTheTrainedWeight) {
  const int64_t rows = 3, cols = 8;
  qnt::Xoshiro256 rng(3);
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = float(2 * rng.uniform() - 1);
  std::vector<bool> salient(cols, false);
  salient[1] = salient[6] = true;
  SalientBinarization init = initializePtq161(w.data(), rows, cols, salient);
  SalientBinarizationTensors t =
      salientBinarizationTensors(init, w.data(), rows, cols);
  std::vector<float> start = dequantize(
      init.spec, quantizeWithParams(init.spec, init.params, w.data(), rows,
                                    cols));
  // At the start (alpha from the initialization, r1 = r2 = 1) the tensors
  // give the initialization's weight, and baking changes nothing.
  for (int64_t i = 0; i < rows * cols; ++i) {
    int64_t r = i / cols, k = i % cols;
    float formula =
        t.salientWeight[i] + t.alpha[r] * t.signs[i] + t.offset[r] * t.restMask[k];
    EXPECT_FLOAT_EQ(formula, start[i]) << i;
  }
  MethodResult same = bakeSalientBinarization(
      init, w.data(), rows, cols, t.alpha, std::vector<float>(rows, 1.0f),
      std::vector<float>(cols, 1.0f));
  EXPECT_TRUE(same.inputScale.empty());
  EXPECT_EQ(same.extraStorageBits, 0);
  EXPECT_EQ(same.dequantized, start);

  // Trained values, one alpha negative (its sign moves into the bits).
  std::vector<float> alpha = {0.7f, -0.4f, 0.2f}, r1 = {1.1f, 0.9f, 1.3f},
                     r2(cols);
  for (float &v : r2)
    v = float(0.5 + rng.uniform());
  MethodResult baked =
      bakeSalientBinarization(init, w.data(), rows, cols, alpha, r1, r2);
  ASSERT_EQ(baked.inputScale.size(), size_t(cols));
  // The input scale is stored with the layer: K f32 values.
  EXPECT_EQ(baked.extraStorageBits, 32 * cols);
  std::vector<float> stored = dequantize(baked.spec, baked.encoded);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      int64_t i = r * cols + k;
      double trained =
          t.salientWeight[i] +
          double(r1[r]) * r2[k] *
              (double(alpha[r]) * t.signs[i] + double(t.offset[r]) * t.restMask[k]);
      EXPECT_NEAR(baked.dequantized[i], trained, 1e-5) << i;
      EXPECT_FLOAT_EQ(baked.inputScale[k], salient[k] ? 1.0f : 1.0f / r2[k]);
      // The stored weight is W^ diag(s): the layer divides its input by s.
      EXPECT_NEAR(stored[i], trained * baked.inputScale[k], 1e-5) << i;
    }
  // A non-positive column scale on a binarized channel has no exact place.
  r2[3] = -0.5f;
  EXPECT_THROW(
      bakeSalientBinarization(init, w.data(), rows, cols, alpha, r1, r2),
      std::invalid_argument);
  // On a salient channel r2 is unused.
  r2[3] = 1.0f;
  r2[1] = 0.0f;
  EXPECT_NO_THROW(
      bakeSalientBinarization(init, w.data(), rows, cols, alpha, r1, r2));
}

// Error feedback quantizes the binarized channels, then the salient ones;
// when channel i's turn comes, the channels not yet quantized (F) hold the
// minimizer of the Hessian-weighted error given the quantized ones (Q):
// w_F + (H_FF)^-1 H_FQ (w_Q - q_Q), H damped by 1% of its mean diagonal.
// Checked by solving that system directly for every i, against the
// recursion through the inverse Hessian's Cholesky factor.
TEST(Ptq161Test, ErrorFeedbackIsTheLeastSquaresUpdate) {
  const int64_t rows = 3, cols = 9, tokens = 40;
  qnt::Xoshiro256 rng(5);
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = float(2 * rng.uniform() - 1);
  Eigen::MatrixXd x(tokens, cols);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t k = 0; k < cols; ++k)
      x(t, k) = (2 * rng.uniform() - 1) * (k == 4 ? 3 : 1) +
                (k == 6 ? x(t, 1) : 0); // correlated channels
  LayerStatistics stats;
  stats.channels = cols;
  stats.hessian = x.transpose() * x;
  std::vector<bool> salient(cols, false);
  salient[4] = salient[6] = true;
  WeightProblem problem{"layer", w.data(), rows, cols, &stats};
  SalientBinarization init = initializePtq161(w.data(), rows, cols, salient);
  std::vector<float> adjusted = compensateSalientBinarization(init, problem);
  const QuantParams &rest = *init.params.restParams;
  const QuantParams &sal = *init.params.salientParams;
  auto quantized = [&](int64_t r, int64_t k) -> double {
    double v = adjusted[r * cols + k];
    if (!salient[k])
      return v >= rest.offsets[r] ? rest.offsets[r] + rest.scales[r]
                                  : rest.offsets[r] - rest.scales[r];
    double q = std::nearbyint(v / sal.scales[r]);
    return sal.scales[r] * std::clamp(q, -double(sal.zeros[r]),
                                      15 - double(sal.zeros[r]));
  };
  Eigen::MatrixXd h = stats.hessian;
  h.diagonal().array() += 0.01 * h.diagonal().mean();
  std::vector<int64_t> order = {0, 1, 2, 3, 5, 7, 8, 4, 6};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i) {
      std::vector<int64_t> done(order.begin(), order.begin() + i),
          free(order.begin() + i, order.end());
      Eigen::MatrixXd hff(free.size(), free.size());
      Eigen::MatrixXd hfq(free.size(), done.size());
      Eigen::VectorXd gap(done.size());
      for (size_t a = 0; a < free.size(); ++a) {
        for (size_t b = 0; b < free.size(); ++b)
          hff(a, b) = h(free[a], free[b]);
        for (size_t b = 0; b < done.size(); ++b)
          hfq(a, b) = h(free[a], done[b]);
      }
      for (size_t b = 0; b < done.size(); ++b)
        gap(b) = w[r * cols + done[b]] - quantized(r, done[b]);
      Eigen::VectorXd shift = hff.ldlt().solve(hfq * gap);
      EXPECT_NEAR(adjusted[r * cols + free[0]],
                  w[r * cols + free[0]] + shift(0), 1e-4)
          << "row " << r << " channel " << free[0];
    }
  // The encoding of the adjusted weight makes the same decisions.
  std::vector<float> decoded = dequantize(
      init.spec, quantizeWithParams(init.spec, init.params, adjusted.data(),
                                    rows, cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      EXPECT_NEAR(decoded[r * cols + k], quantized(r, k), 1e-6);
  // Without a Hessian it refuses.
  LayerStatistics none;
  WeightProblem bare{"bare", w.data(), rows, cols, &none};
  EXPECT_THROW(compensateSalientBinarization(init, bare),
               std::invalid_argument);
}

TEST(Ptq161Test, NeedsTheActivationAbsmax) {
  std::vector<float> w(8, 1.0f);
  WeightProblem problem;
  problem.name = "layers.1.feed_forward.w2";
  problem.weight = w.data();
  problem.rows = 2;
  problem.cols = 4;
  try {
    runPtq161Initialization(problem, 0.2);
    ADD_FAILURE() << "no statistics accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("layers.1.feed_forward.w2"),
              std::string::npos);
  }
}

} // namespace
