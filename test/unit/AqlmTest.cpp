//===- AqlmTest.cpp - AQLM's codes, codebooks and search ------------------===//
//
// The closed-form change of the objective against the objective recomputed,
// the beam search against its invariant (never worse) and against
// exhaustive search on tiny cases, the codebook updates against the
// objective, and the codes against the packed encoding, bit for bit.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Aqlm.h"
#include "qnt/support/Random.h"

#include <Eigen/Dense>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

using namespace qnt::numerics;

namespace {

/// H = X^T X / T of heavy-tailed inputs with one outlier channel.
Eigen::MatrixXd randomHessian(int64_t cols, uint64_t seed) {
  qnt::Xoshiro256 rng(seed);
  const int64_t tokens = 4 * cols;
  Eigen::MatrixXd x(tokens, cols);
  for (int64_t t = 0; t < tokens; ++t)
    for (int64_t c = 0; c < cols; ++c) {
      double u = 2 * rng.uniform() - 1;
      x(t, c) = u * u * u * (c == 1 ? 8.0 : 1.0);
    }
  return x.transpose() * x / double(tokens);
}

std::vector<float> randomWeight(int64_t rows, int64_t cols, uint64_t seed) {
  qnt::Xoshiro256 rng(seed);
  std::vector<float> w(rows * cols);
  for (float &v : w)
    v = float(2 * rng.uniform() - 1);
  return w;
}

CodebookSpec codebooks(int m, int bits, int64_t group) {
  CodebookSpec spec;
  spec.numCodebooks = m;
  spec.codeBits = bits;
  spec.groupSize = group;
  return spec;
}

/// A state with random codebooks, scales and codes (not k-means'). Words
/// are multiples of 1/64 and scales powers of two, so W^ is exact in float
/// and objectives are compared with the closed form to double rounding.
AdditiveCodes randomState(const CodebookSpec &spec, int64_t rows,
                          int64_t cols, uint64_t seed) {
  qnt::Xoshiro256 rng(seed);
  AdditiveCodes s;
  s.spec = spec;
  s.rows = rows;
  s.cols = cols;
  s.scales.resize(rows);
  for (float &v : s.scales)
    v = std::ldexp(1.0f, int(rng.below(3)) - 1);
  s.codebooks.resize(spec.numCodebooks * s.numCodes() * spec.groupSize);
  for (float &v : s.codebooks)
    v = float(int(rng.below(64)) - 32) / 64.0f;
  s.codes.resize(rows * s.groups() * spec.numCodebooks);
  for (uint32_t &c : s.codes)
    c = uint32_t(rng.below(uint64_t(s.numCodes())));
  return s;
}

TEST(AqlmTest, ClosedFormChangeIsTheRecomputedObjective) {
  const int64_t rows = 5, cols = 16;
  std::vector<float> w = randomWeight(rows, cols, 1);
  Eigen::MatrixXd h = randomHessian(cols, 2);
  AdditiveCodes state = randomState(codebooks(2, 3, 4), rows, cols, 3);
  const double before = additiveObjective(state, w.data(), h);
  qnt::Xoshiro256 rng(4);
  for (int trial = 0; trial < 40; ++trial) {
    int64_t n = int64_t(rng.below(rows)), j = int64_t(rng.below(4));
    int m = int(rng.below(2));
    uint32_t c = uint32_t(rng.below(8));
    AdditiveCodes changed = state;
    changed.codes[(n * changed.groups() + j) * 2 + m] = c;
    double recomputed = additiveObjective(changed, w.data(), h) - before;
    double closed = codeChangeLoss(state, w.data(), h, n, j, m, c);
    EXPECT_NEAR(closed, recomputed, 1e-9 * (1 + std::fabs(before)))
        << "row " << n << " group " << j << " book " << m << " code " << c;
  }
}

TEST(AqlmTest, BeamSearchNeverIncreasesTheObjective) {
  const int64_t rows = 6, cols = 24;
  std::vector<float> w = randomWeight(rows, cols, 5);
  Eigen::MatrixXd h = randomHessian(cols, 6);
  int improved = 0;
  for (int beam : {1, 2, 4})
    for (uint64_t seed : {7, 8, 9}) {
      AdditiveCodes state = randomState(codebooks(2, 4, 8), rows, cols, seed);
      double loss = additiveObjective(state, w.data(), h);
      for (int pass = 0; pass < 3; ++pass) {
        BeamSearchOptions options;
        options.beamSize = beam;
        options.seed = seed + pass;
        double next = beamSearchCodes(state, w.data(), h, options);
        EXPECT_LE(next, loss * (1 + 1e-12))
            << "beam " << beam << " seed " << seed << " pass " << pass;
        improved += next < loss * (1 - 1e-6);
        loss = next;
      }
    }
  // Random codes are far from the best: the first passes find better ones.
  EXPECT_GE(improved, 9);
}

/// With as many hypotheses as one position has codes the beam keeps every
/// completion of the first position, so for two positions it is
/// exhaustive: two codebooks on one group, or one codebook on two groups.
TEST(AqlmTest, FullBeamFindsTheExhaustiveOptimum) {
  struct Case {
    int m;
    int64_t cols;
  };
  int greedyMissed = 0;
  for (Case tiny : {Case{2, 4}, Case{1, 8}}) {
    const int64_t rows = 24, group = 4;
    CodebookSpec spec = codebooks(tiny.m, 3, group);
    std::vector<float> w = randomWeight(rows, tiny.cols, 10 + tiny.m);
    // Strongly correlated inputs couple the positions: one greedy pass
    // (beam 1) misses the optimum of some rows.
    Eigen::MatrixXd h = randomHessian(tiny.cols, 11) +
                        Eigen::MatrixXd::Constant(tiny.cols, tiny.cols, 0.9);
    AdditiveCodes state = randomState(spec, rows, tiny.cols, 12);
    AdditiveCodes greedy = state;
    BeamSearchOptions options;
    beamSearchCodes(greedy, w.data(), h, options);
    options.beamSize = 8;
    beamSearchCodes(state, w.data(), h, options);
    for (int64_t n = 0; n < rows; ++n) {
      // Rows are independent: the objective of row n alone.
      auto rowLoss = [&](const AdditiveCodes &s) {
        std::vector<float> wq = s.reconstruct();
        Eigen::VectorXd d(tiny.cols);
        for (int64_t c = 0; c < tiny.cols; ++c)
          d[c] = double(wq[n * tiny.cols + c]) - w[n * tiny.cols + c];
        return d.dot(h * d);
      };
      double best = std::numeric_limits<double>::infinity();
      AdditiveCodes trial = state;
      for (uint32_t a = 0; a < 8; ++a)
        for (uint32_t b = 0; b < 8; ++b) {
          trial.codes[n * 2] = a;
          trial.codes[n * 2 + 1] = b;
          best = std::min(best, rowLoss(trial));
        }
      EXPECT_NEAR(rowLoss(state), best, 1e-12 * (1 + best))
          << "M " << tiny.m << " row " << n;
      greedyMissed += rowLoss(greedy) > best * (1 + 1e-9);
    }
  }
  // The case needs the beam: greedy search stops short on some rows.
  EXPECT_GT(greedyMissed, 0);
}

TEST(AqlmTest, CodebookUpdatesLowerTheObjective) {
  // 64 groups of 8 for 16 words: k-means leaves an error to learn.
  const int64_t rows = 16, cols = 32;
  std::vector<float> w = randomWeight(rows, cols, 13);
  Eigen::MatrixXd h = randomHessian(cols, 14);
  AdditiveCodes state =
      initializeAdditiveCodes(codebooks(1, 4, 8), w.data(), rows, cols, 10, 15);
  double initial = additiveObjective(state, w.data(), h);
  CodebookUpdateOptions options;
  options.steps = 200;
  options.learningRate = 1e-3;
  double updated = updateCodebooks(state, w.data(), h, options);
  EXPECT_LT(updated, 0.9 * initial);
  AqlmOptions aqlm;
  aqlm.beamSize = 2;
  aqlm.kmeansIterations = 10;
  aqlm.maxEpochs = 5;
  aqlm.codebookUpdate = options;
  aqlm.seed = 15;
  AdditiveCodes learned = quantizeAdditive(codebooks(1, 4, 8), w.data(), rows,
                                           cols, h, aqlm);
  // Beyond its first Adam phase (the call above, from the same start): the
  // beam searches and later phases gain more.
  EXPECT_LT(additiveObjective(learned, w.data(), h), 0.9 * updated);
}

TEST(AqlmTest, GradientMatchesFiniteDifferences) {
  // 2 codebooks (their words add), a ragged count of rows, f32 arithmetic:
  // every codebook entry and scale against a central difference of the
  // double objective / N.
  const int64_t rows = 5, cols = 16;
  std::vector<float> w = randomWeight(rows, cols, 41);
  Eigen::MatrixXd h = randomHessian(cols, 42);
  AdditiveCodes state =
      initializeAdditiveCodes(codebooks(2, 2, 4), w.data(), rows, cols, 5, 43);
  AdditiveGradient gradient;
  gradient.compute(state, w.data(), h.cast<float>());
  ASSERT_EQ(gradient.codebooks.size(), state.codebooks.size());
  ASSERT_EQ(gradient.scales.size(), size_t(rows));
  auto objective = [&] {
    return additiveObjective(state, w.data(), h) / double(rows);
  };
  auto centralDifference = [&](float &value) {
    const float step = 1e-2f * std::max(1.0f, std::abs(value));
    float saved = value;
    value = saved + step;
    double up = objective();
    value = saved - step;
    double down = objective();
    value = saved;
    return (up - down) / (2.0 * double(step));
  };
  double largest = 0;
  for (float g : gradient.codebooks)
    largest = std::max(largest, double(std::abs(g)));
  ASSERT_GT(largest, 0.0);
  // The objective is quadratic in each parameter: the central difference
  // is exact up to rounding, so the tolerance is the float gradient's.
  for (size_t i = 0; i < state.codebooks.size(); ++i)
    EXPECT_NEAR(gradient.codebooks[i], centralDifference(state.codebooks[i]),
                1e-3 * largest)
        << "codebook entry " << i;
  for (int64_t n = 0; n < rows; ++n) {
    double expected = centralDifference(state.scales[n]);
    EXPECT_NEAR(gradient.scales[n], expected, 1e-3 * (1 + std::abs(expected)))
        << "scale " << n;
  }
}

TEST(AqlmTest, ReportsEveryStage) {
  const int64_t rows = 8, cols = 16;
  std::vector<float> w = randomWeight(rows, cols, 51);
  Eigen::MatrixXd h = randomHessian(cols, 52);
  AqlmOptions options;
  options.kmeansIterations = 5;
  options.maxEpochs = 3;
  options.relativeTolerance = 0; // every phase runs unless the fit is exact
  options.codebookUpdate.steps = 10;
  options.codebookUpdate.learningRate = 1e-3;
  std::vector<AqlmStage> stages;
  options.onStage = [&](const AqlmStage &stage) { stages.push_back(stage); };
  AdditiveCodes learned = quantizeAdditive(codebooks(1, 3, 4), w.data(), rows,
                                           cols, h, options);
  // Initialization, then Adam and beam search per phase; the last phase's
  // beam search may be skipped when its Adam phase did not improve.
  ASSERT_GE(stages.size(), 6u);
  EXPECT_EQ(stages[0].kind, AqlmStage::Initialization);
  EXPECT_EQ(stages[0].phase, 0);
  for (size_t i = 1; i < stages.size(); ++i) {
    EXPECT_EQ(stages[i].kind, i % 2 ? AqlmStage::CodebookUpdate
                                    : AqlmStage::BeamSearch);
    EXPECT_EQ(stages[i].phase, int(i + 1) / 2);
    EXPECT_GE(stages[i].seconds, 0.0);
  }
  // The result is the best state any stage reached.
  double best = stages[0].objective;
  for (const AqlmStage &stage : stages)
    best = std::min(best, stage.objective);
  EXPECT_NEAR(additiveObjective(learned, w.data(), h), best, 1e-9 * best);
}

TEST(AqlmTest, KmeansInitializationFitsTheWeights) {
  // 2 rows of 4 groups each equal to one of 2 patterns: 1 codebook of 4
  // words recovers them exactly (the scale is the row norm).
  const int64_t rows = 2, cols = 16;
  std::vector<float> w(rows * cols);
  const float patterns[2][4] = {{1, -2, 0.5f, 3}, {-1, 0, 2, -0.5f}};
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t t = 0; t < 4; ++t)
        w[n * cols + j * 4 + t] = patterns[(n + j) % 2][t] * float(n + 1);
  AdditiveCodes state =
      initializeAdditiveCodes(codebooks(1, 2, 4), w.data(), rows, cols, 20, 1);
  std::vector<float> wq = state.reconstruct();
  for (int64_t i = 0; i < rows * cols; ++i)
    EXPECT_NEAR(wq[i], w[i], 1e-5) << i;
}

TEST(AqlmTest, CodesRoundTripThroughTheEncodingBitForBit) {
  for (CodebookSpec spec : {codebooks(2, 8, 8), codebooks(1, 16, 8),
                            codebooks(3, 5, 4)}) {
    AdditiveCodes state = randomState(spec, 5, 32, 21);
    EncodedMatrix encoded = state.encode();
    std::vector<float> decoded = dequantize(spec, encoded);
    std::vector<float> wq = state.reconstruct();
    ASSERT_EQ(decoded.size(), wq.size());
    for (size_t i = 0; i < wq.size(); ++i)
      ASSERT_EQ(decoded[i], wq[i]) << describe(spec) << " at " << i;
  }
}

TEST(AqlmTest, RefusesCodesThatDoNotFit) {
  CodebookSpec spec = codebooks(1, 4, 4);
  AdditiveCodes state = randomState(spec, 2, 8, 22);
  auto encodeError = [&] {
    try {
      state.encode();
    } catch (const std::invalid_argument &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  state.codes[3] = 16;
  EXPECT_NE(encodeError().find("code 16 of row 1, group 1, codebook 0 does "
                               "not fit 4 bits"),
            std::string::npos)
      << encodeError();
  state.codes[3] = 15;
  state.codes.pop_back();
  EXPECT_NE(encodeError().find("3 codes, expected 4"), std::string::npos)
      << encodeError();
  WeightProblem problem;
  problem.name = "layers.0.attention.wq";
  std::vector<float> w = randomWeight(2, 8, 23);
  problem.weight = w.data();
  problem.rows = 2;
  problem.cols = 8;
  try {
    runAqlm(spec, problem, {});
    ADD_FAILURE() << "no statistics accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("layers.0.attention.wq"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(beamSearchCodes(state, w.data(), Eigen::MatrixXd::Identity(4, 4),
                               {}),
               std::invalid_argument);
}

} // namespace

//===----------------------------------------------------------------------===//
// Shared codebooks
//===----------------------------------------------------------------------===//

TEST(AqlmSharedTest, FittedScalesAreTheLeastSquaresOnes) {
  // The objective is a quadratic in each row's scale: at the fitted scale
  // its derivative vanishes, so moving any one scale either way raises it.
  const int64_t rows = 6, cols = 16;
  std::vector<float> w = randomWeight(rows, cols, 31);
  Eigen::MatrixXd h = randomHessian(cols, 32);
  AdditiveCodes state = randomState(codebooks(2, 3, 4), rows, cols, 33);
  double before = additiveObjective(state, w.data(), h);
  double fitted = fitScales(state, w.data(), h);
  EXPECT_LT(fitted, before);
  EXPECT_NEAR(fitted, additiveObjective(state, w.data(), h), 1e-9 * before);
  for (int64_t n = 0; n < rows; ++n)
    for (float factor : {0.999f, 1.001f}) {
      AdditiveCodes moved = state;
      moved.scales[n] *= factor;
      EXPECT_GT(additiveObjective(moved, w.data(), h), fitted) << n;
    }
  // Against the closed form computed directly for row 0.
  AdditiveCodes unit = state;
  std::fill(unit.scales.begin(), unit.scales.end(), 1.0f);
  std::vector<float> c = unit.reconstruct();
  Eigen::VectorXd cv(cols), wv(cols);
  for (int64_t i = 0; i < cols; ++i) {
    cv[i] = c[i];
    wv[i] = w[i];
  }
  EXPECT_NEAR(state.scales[0], cv.dot(h * wv) / cv.dot(h * cv), 1e-6);
}

TEST(AqlmSharedTest, SharedCodebooksFitTheGroupsOfEveryLayer) {
  // Two layers of different K built from 4 patterns: every row of either,
  // divided by its RMS, is made of the patterns (each pattern has RMS 1 and
  // every row repeats them), so 8 shared words represent both exactly.
  const float patterns[4][4] = {{1, -1, 1, -1},
                                {1, 1, -1, -1},
                                {-1, 1, 1, -1},
                                {1, 1, 1, 1}};
  auto layer = [&](int64_t rows, int64_t cols, int offset) {
    std::vector<float> w(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t j = 0; j < cols / 4; ++j)
        for (int64_t t = 0; t < 4; ++t)
          w[n * cols + j * 4 + t] =
              patterns[(n + j + offset) % 4][t] * float(n + 1);
    return w;
  };
  std::vector<float> a = layer(3, 8, 0), b = layer(5, 12, 1);
  CodebookSpec spec = codebooks(1, 3, 4);
  SharedCodebookFit fit(spec);
  fit.add(a.data(), 3, 8);
  fit.add(b.data(), 5, 12);
  EXPECT_EQ(fit.numWeights(), 3 * 8 + 5 * 12);
  std::vector<float> shared = fit.fit(20, 3);
  ASSERT_EQ(shared.size(), 32u);
  AqlmOptions options;
  options.maxEpochs = 3;
  for (auto [w, rows, cols] : {std::tuple{&a, 3, 8}, std::tuple{&b, 5, 12}}) {
    Eigen::MatrixXd h = randomHessian(cols, 40 + cols);
    AdditiveCodes state = quantizeWithCodebooks(spec, shared, w->data(), rows,
                                                cols, h, options);
    EXPECT_EQ(state.codebooks, shared); // fixed, bit for bit
    std::vector<float> wq = state.reconstruct();
    for (int64_t i = 0; i < rows * cols; ++i)
      EXPECT_NEAR(wq[i], (*w)[i], 1e-5) << cols << " at " << i;
  }
}

TEST(AqlmSharedTest, FixedCodebookSearchNeverIncreasesTheObjective) {
  // Codebooks fitted on other weights: the layer's result is never worse
  // than its starting point (nearest words, fitted scales) and improves on
  // it, each beam pass and scale fit being non-increasing.
  const int64_t rows = 12, cols = 32;
  CodebookSpec spec = codebooks(2, 3, 4);
  std::vector<float> other = randomWeight(20, cols, 51);
  SharedCodebookFit fit(spec);
  fit.add(other.data(), 20, cols);
  std::vector<float> shared = fit.fit(10, 52);
  std::vector<float> w = randomWeight(rows, cols, 53);
  Eigen::MatrixXd h = randomHessian(cols, 54);
  AqlmOptions start;
  start.maxEpochs = 0;
  double initial = additiveObjective(
      quantizeWithCodebooks(spec, shared, w.data(), rows, cols, h, start),
      w.data(), h);
  AqlmOptions options;
  options.maxEpochs = 10;
  options.relativeTolerance = 0;
  options.beamSize = 2;
  AdditiveCodes learned =
      quantizeWithCodebooks(spec, shared, w.data(), rows, cols, h, options);
  double final = additiveObjective(learned, w.data(), h);
  EXPECT_LT(final, 0.95 * initial);
  // One more pass from the result changes nothing for the worse.
  AdditiveCodes again = learned;
  BeamSearchOptions beam;
  beam.beamSize = 2;
  EXPECT_LE(beamSearchCodes(again, w.data(), h, beam), final * (1 + 1e-12));
  EXPECT_LE(fitScales(again, w.data(), h), final * (1 + 1e-12));
}

TEST(AqlmSharedTest, PointSamplingKeepsEvenlySpacedGroups) {
  // Ten groups on the unit circle at angles 0, 0.1, ..., 0.9 (one row of
  // one group each), with room for 3 points: the fit keeps groups 0, 1, 2,
  // is full and keeps 0, 2 (every other) sampling every 2nd group from
  // now on; 4 fills it again (0, 2, 4 -> 0, 4, every 4th); 8 fills it again
  // (0, 4, 8 -> 0, 8). k-means with 2 words on those 2 points returns them.
  CodebookSpec spec = codebooks(1, 1, 2);
  std::vector<float> w;
  for (int n = 0; n < 10; ++n) {
    w.push_back(float(std::cos(0.1 * n)));
    w.push_back(float(std::sin(0.1 * n)));
  }
  SharedCodebookFit fit(spec, 3);
  fit.add(w.data(), 10, 2);
  std::vector<float> words = fit.fit(5, 1);
  ASSERT_EQ(words.size(), 4u);
  std::vector<std::pair<float, float>> found = {{words[0], words[1]},
                                                {words[2], words[3]}};
  std::sort(found.begin(), found.end());
  const double r = std::sqrt(2.0); // W / RMS of a unit 2-vector
  EXPECT_NEAR(found[0].first, r * std::cos(0.8), 1e-6);
  EXPECT_NEAR(found[0].second, r * std::sin(0.8), 1e-6);
  EXPECT_NEAR(found[1].first, r * std::cos(0.0), 1e-6);
  EXPECT_NEAR(found[1].second, r * std::sin(0.0), 1e-6);
}

TEST(AqlmSharedTest, RefusesCodebooksOfTheWrongSize) {
  std::vector<float> w = randomWeight(2, 8, 61);
  Eigen::MatrixXd h = randomHessian(8, 62);
  std::vector<float> shared(4 * 4 - 1, 0.5f);
  try {
    quantizeWithCodebooks(codebooks(1, 2, 4), shared, w.data(), 2, 8, h, {});
    FAIL() << "no error";
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("hold 15 values"), std::string::npos)
        << e.what();
  }
}


TEST(AqlmSharedTest, HalfPrecisionScalesAreWhatTheLayerRuns) {
  // With f16 scales the fitted scales are rounded before the codes are
  // searched: the stored component is f16 and decodes, bit for bit, to the
  // weight the method reports; the objective stays close to f32's.
  const int64_t rows = 8, cols = 16;
  std::vector<float> w = randomWeight(rows, cols, 71);
  Eigen::MatrixXd h = randomHessian(cols, 72);
  LayerStatistics stats(cols);
  stats.count = 1;
  stats.hessian = h;
  CodebookSpec half = codebooks(1, 4, 4), single = half;
  half.scaleStorage = ScaleStorage::F16;
  SharedCodebookFit fit(half);
  fit.add(w.data(), rows, cols);
  std::vector<float> shared = fit.fit(10, 73);
  WeightProblem problem{"layer", w.data(), rows, cols, &stats};
  MethodResult rounded =
      codebookResult(runAqlmWithCodebooks(half, shared, problem, {}));
  MethodResult exact =
      codebookResult(runAqlmWithCodebooks(single, shared, problem, {}));
  ASSERT_EQ(rounded.encoded.components.size(), 3u);
  EXPECT_EQ(rounded.encoded.components[2].layout.dtype, DType::F16);
  EXPECT_EQ(rounded.encoded.components[2].bytes.size(), size_t(2 * rows));
  EXPECT_EQ(exact.encoded.components[2].layout.dtype, DType::F32);
  std::vector<float> decoded = dequantize(half, rounded.encoded);
  ASSERT_EQ(decoded.size(), rounded.dequantized.size());
  for (size_t i = 0; i < decoded.size(); ++i)
    ASSERT_EQ(decoded[i], rounded.dequantized[i]) << i;
  EXPECT_EQ(describe(EncodingSpec(half)), "aqlm 1x4 g4 f16-scales");
  auto objective = [&](const std::vector<float> &wq) {
    double sum = 0;
    for (int64_t a = 0; a < rows; ++a)
      for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j)
          sum += (wq[a * cols + i] - w[a * cols + i]) * h(i, j) *
                 (wq[a * cols + j] - w[a * cols + j]);
    return sum;
  };
  EXPECT_LT(objective(rounded.dequantized),
            1.01 * objective(exact.dequantized));
  EXPECT_NE(rounded.dequantized, exact.dequantized);
}

TEST(AqlmSharedTest, AZeroRowKeepsAStorableScale) {
  // Row 1 is zero but its nearest words are not: the least-squares scale
  // is 0, which no encoding stores; the smallest normal float (f32) or the
  // smallest half subnormal (f16) keeps the row at almost zero, and the
  // result encodes.
  const int64_t rows = 2, cols = 8;
  std::vector<float> w = {1, 2, -1, 0.5f, 3, -2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  Eigen::MatrixXd h = randomHessian(cols, 81);
  for (ScaleStorage storage : {ScaleStorage::F32, ScaleStorage::F16}) {
    CodebookSpec spec = codebooks(1, 1, 4);
    spec.scaleStorage = storage;
    std::vector<float> words = {1, 1, 1, 1, -1, 0.5f, 2, 1};
    AdditiveCodes state =
        quantizeWithCodebooks(spec, words, w.data(), rows, cols, h, {});
    EXPECT_EQ(state.scales[1], storage == ScaleStorage::F32
                                   ? std::numeric_limits<float>::min()
                                   : 5.9604645e-8f);
    EXPECT_NO_THROW(state.encode());
  }
}

TEST(AqlmFineTuningTest, CodebookGradientIsTheWordsGradientCollected) {
  // The words are linear in the codebooks, so the gradient of
  // f(C) = sum G * words(C) is exact: checked entry by entry against the
  // change of f when one codebook entry moves (computed in double from a
  // reconstruction here), for two additive codebooks.
  const int64_t rows = 5, cols = 12;
  std::vector<float> w = randomWeight(rows, cols, 81);
  AdditiveCodes state = initializeAdditiveCodes(codebooks(2, 3, 4), w.data(),
                                                rows, cols, 5, 82);
  std::vector<float> words = state.words(), full = state.reconstruct();
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < cols; ++c)
      ASSERT_EQ(full[n * cols + c], state.scales[n] * words[n * cols + c]);
  std::vector<float> g = randomWeight(rows, cols, 83);
  auto f = [&](const AdditiveCodes &s) {
    std::vector<float> d = s.words();
    double sum = 0;
    for (size_t i = 0; i < d.size(); ++i)
      sum += double(g[i]) * d[i];
    return sum;
  };
  std::vector<float> gradient = codebookGradient(state, g.data());
  ASSERT_EQ(gradient.size(), state.codebooks.size());
  int64_t used = 0;
  for (size_t e = 0; e < state.codebooks.size(); ++e) {
    AdditiveCodes moved = state;
    moved.codebooks[e] += 0.5f;
    EXPECT_NEAR((f(moved) - f(state)) / 0.5, gradient[e], 1e-5) << e;
    used += gradient[e] != 0.0f;
  }
  // Every word gets the gradient of the groups that chose it.
  EXPECT_GT(used, 0);
}
