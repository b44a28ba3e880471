//===- Aqlm.cpp - Additive quantization of language models ----------------===//
//
// See Aqlm.h. The reference is Vahe1994/AQLM (src/aq.py, src/beam_search_l2.py,
// src/kmeans.py); ALGORITHMS.md §10 has its defaults.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Aqlm.h"
#include "NumericsInternal.h"
#include "qnt/numerics/Optimizer.h"
#include "qnt/support/Random.h"

#include <Eigen/Dense>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace qnt::numerics {

namespace {

using RowMajorD =
    Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void requireShape(const CodebookSpec &spec, int64_t rows, int64_t cols) {
  std::string error = verifySpec(spec, rows, cols);
  if (!error.empty())
    throw std::invalid_argument("AQLM: " + error);
}

template <typename Matrix>
void requireHessian(const Matrix &hessian, int64_t cols) {
  if (hessian.rows() != cols || hessian.cols() != cols)
    throw std::invalid_argument(
        "AQLM: the Hessian is " + std::to_string(hessian.rows()) + "x" +
        std::to_string(hessian.cols()) + ", the weight has " +
        std::to_string(cols) + " input channels");
}

/// dW = W^ - W as doubles.
RowMajorD weightError(const AdditiveCodes &state, const float *w) {
  std::vector<float> wq = state.reconstruct();
  RowMajorD error(state.rows, state.cols);
  for (int64_t i = 0; i < state.rows * state.cols; ++i)
    error.data()[i] = double(wq[i]) - double(w[i]);
  return error;
}

/// Lloyd's k-means of `points` [P][g] with `numCenters` centers started at
/// distinct sampled points (repeated when there are fewer points); an empty
/// cluster keeps its center. Returns the assignment, fills `centers`.
std::vector<int64_t> kmeans(const std::vector<double> &points, int64_t g,
                            int64_t numCenters, int iterations,
                            Xoshiro256 &rng, std::vector<double> &centers) {
  const int64_t numPoints = int64_t(points.size()) / g;
  std::vector<int64_t> order(numPoints);
  std::iota(order.begin(), order.end(), 0);
  // A partial Fisher-Yates: the first numCenters entries are a sample.
  int64_t sampled = std::min(numPoints, numCenters);
  for (int64_t i = 0; i < sampled; ++i)
    std::swap(order[i], order[i + int64_t(rng.below(numPoints - i))]);
  centers.assign(numCenters * g, 0.0);
  for (int64_t c = 0; c < numCenters; ++c)
    std::copy_n(points.data() + order[c % sampled] * g, g,
                centers.data() + c * g);
  std::vector<int64_t> assignment(numPoints, -1);
  // ||p - c||^2 = ||p||^2 + ||c||^2 - 2 p.c, and ||p||^2 does not change
  // which center is nearest: a block of points' scores against every
  // center is one matrix product (near the machine's peak), instead of a
  // distance loop per center.
  using RowMajorD =
      Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  constexpr int64_t kBlock = 512;
  const int64_t numBlocks = (numPoints + kBlock - 1) / kBlock;
  for (int it = 0; it < iterations; ++it) {
    Eigen::Map<const RowMajorD> centerMatrix(centers.data(), numCenters, g);
    Eigen::RowVectorXd centerNorms = centerMatrix.rowwise().squaredNorm().transpose();
    RowMajorD twiceCentersT = -2.0 * centerMatrix.transpose();
    bool changed = false;
#pragma omp parallel reduction(|| : changed)
    {
      RowMajorD scores;
#pragma omp for schedule(static)
      for (int64_t block = 0; block < numBlocks; ++block) {
        int64_t first = block * kBlock,
                count = std::min(kBlock, numPoints - first);
        Eigen::Map<const RowMajorD> x(points.data() + first * g, count, g);
        scores.noalias() = x * twiceCentersT;
        scores.rowwise() += centerNorms;
        for (int64_t i = 0; i < count; ++i) {
          Eigen::Index c;
          scores.row(i).minCoeff(&c);
          changed = changed || c != assignment[first + i];
          assignment[first + i] = c;
        }
      }
    }
    if (!changed)
      break;
    std::vector<double> sums(numCenters * g, 0.0);
    std::vector<int64_t> counts(numCenters, 0);
    for (int64_t p = 0; p < numPoints; ++p) {
      ++counts[assignment[p]];
      for (int64_t t = 0; t < g; ++t)
        sums[assignment[p] * g + t] += points[p * g + t];
    }
    for (int64_t c = 0; c < numCenters; ++c)
      if (counts[c])
        for (int64_t t = 0; t < g; ++t)
          centers[c * g + t] = sums[c * g + t] / double(counts[c]);
  }
  return assignment;
}

/// One hypothesis of a row's beam: its codes [G][M], residual R = W - W^,
/// R H, and objective R H R^T.
struct Hypothesis {
  std::vector<uint32_t> codes;
  Eigen::VectorXd residual, residualTimesH;
  double loss = 0;
};

Hypothesis rowHypothesis(const AdditiveCodes &state, const float *w,
                         const std::vector<float> &wq,
                         const Eigen::MatrixXd &hessian, int64_t n) {
  const int64_t k = state.cols, perRow = state.groups() * state.spec.numCodebooks;
  Hypothesis h;
  h.codes.assign(state.codes.begin() + n * perRow,
                 state.codes.begin() + (n + 1) * perRow);
  h.residual.resize(k);
  for (int64_t c = 0; c < k; ++c)
    h.residual[c] = double(w[n * k + c]) - double(wq[n * k + c]);
  h.residualTimesH = hessian * h.residual; // H symmetric: (R H)^T = H R^T
  h.loss = h.residual.dot(h.residualTimesH);
  return h;
}

/// What the candidates of one position (group j, codebook m) share for a
/// hypothesis: u = (R H)_J + H_JJ q_old and the terms of the change that do
/// not depend on the new code.
struct PositionTerms {
  Eigen::VectorXd u;
  double removal = 0; // 2 q_old . (R H)_J + q_old H_JJ q_old
};

PositionTerms positionTerms(const AdditiveCodes &state,
                            const Eigen::MatrixXd &hessianJJ,
                            const Hypothesis &h, double scale, int64_t j,
                            int m) {
  const int64_t g = state.spec.groupSize;
  const float *old = state.word(m, h.codes[j * state.spec.numCodebooks + m]);
  Eigen::VectorXd qOld(g);
  for (int64_t t = 0; t < g; ++t)
    qOld[t] = scale * double(old[t]);
  Eigen::VectorXd rhJ = h.residualTimesH.segment(j * g, g);
  Eigen::VectorXd hq = hessianJJ * qOld;
  PositionTerms terms;
  terms.u = rhJ + hq;
  terms.removal = 2 * qOld.dot(rhJ) + qOld.dot(hq);
  return terms;
}

/// The closed-form change of the objective for the new code `c`.
double candidateChange(const AdditiveCodes &state, const PositionTerms &terms,
                       double energy, double scale, int m, uint32_t c) {
  const int64_t g = state.spec.groupSize;
  const float *word = state.word(m, c);
  double dot = 0;
  for (int64_t t = 0; t < g; ++t)
    dot += double(word[t]) * terms.u[t];
  return scale * scale * energy - 2 * scale * dot + terms.removal;
}

/// C_m[c] H_JJ C_m[c]^T for every code of codebook m.
std::vector<double> wordEnergies(const AdditiveCodes &state,
                                 const Eigen::MatrixXd &hessianJJ, int m) {
  const int64_t g = state.spec.groupSize;
  std::vector<double> energies(state.numCodes());
  Eigen::VectorXd word(g);
  for (int64_t c = 0; c < state.numCodes(); ++c) {
    const float *values = state.word(m, uint32_t(c));
    for (int64_t t = 0; t < g; ++t)
      word[t] = values[t];
    energies[c] = word.dot(hessianJJ * word);
  }
  return energies;
}

/// Moves hypothesis `h` to code `c` at (j, m): R and R H follow.
void applyChange(const AdditiveCodes &state, const Eigen::MatrixXd &hessian,
                 Hypothesis &h, double scale, int64_t j, int m, uint32_t c,
                 double change) {
  const int64_t g = state.spec.groupSize;
  uint32_t &code = h.codes[j * state.spec.numCodebooks + m];
  const float *old = state.word(m, code), *next = state.word(m, c);
  for (int64_t t = 0; t < g; ++t) {
    double d = scale * (double(next[t]) - double(old[t]));
    h.residual[j * g + t] -= d;
    h.residualTimesH -= d * hessian.col(j * g + t);
  }
  code = c;
  h.loss += change;
}

struct Candidate {
  double loss;
  int64_t parent;
  uint32_t code;
  bool operator<(const Candidate &o) const {
    if (loss != o.loss)
      return loss < o.loss;
    if (parent != o.parent)
      return parent < o.parent;
    return code < o.code;
  }
};

/// The next beam of one row at position (j, m).
std::vector<Hypothesis> advanceBeam(const AdditiveCodes &state,
                                    const Eigen::MatrixXd &hessian,
                                    const Eigen::MatrixXd &hessianJJ,
                                    const std::vector<double> &energies,
                                    std::vector<Hypothesis> beam, double scale,
                                    int64_t j, int m, int beamSize) {
  const int numBooks = state.spec.numCodebooks;
  if (beamSize == 1 && beam.size() == 1) {
    // Greedy: the best code for the one hypothesis, changed in place.
    Hypothesis &h = beam[0];
    PositionTerms terms = positionTerms(state, hessianJJ, h, scale, j, m);
    uint32_t current = h.codes[j * numBooks + m], best = current;
    double bestChange = 0;
    for (int64_t c = 0; c < state.numCodes(); ++c) {
      if (uint32_t(c) == current)
        continue; // its change is exactly 0 (bestChange's start)
      double change = candidateChange(state, terms, energies[c], scale, m,
                                      uint32_t(c));
      if (change < bestChange) {
        bestChange = change;
        best = uint32_t(c);
      }
    }
    if (best != current)
      applyChange(state, hessian, h, scale, j, m, best, bestChange);
    return beam;
  }
  std::vector<Candidate> candidates;
  candidates.reserve(beam.size() * state.numCodes());
  for (size_t b = 0; b < beam.size(); ++b) {
    PositionTerms terms = positionTerms(state, hessianJJ, beam[b], scale, j, m);
    uint32_t current = beam[b].codes[j * numBooks + m];
    for (int64_t c = 0; c < state.numCodes(); ++c) {
      // Keeping the code changes nothing: exactly 0, so that the objective
      // never grows by the rounding of the closed form.
      double change = uint32_t(c) == current
                          ? 0.0
                          : candidateChange(state, terms, energies[c], scale,
                                            m, uint32_t(c));
      candidates.push_back({beam[b].loss + change, int64_t(b), uint32_t(c)});
    }
  }
  // A code vector occurs at most once per parent, so the best beamSize^2
  // candidates hold the best beamSize distinct ones.
  size_t considered =
      std::min(candidates.size(), size_t(beamSize) * size_t(beamSize));
  std::partial_sort(candidates.begin(), candidates.begin() + considered,
                    candidates.end());
  std::vector<Hypothesis> next;
  for (size_t i = 0; i < considered && int(next.size()) < beamSize; ++i) {
    const Candidate &cand = candidates[i];
    Hypothesis h = beam[cand.parent];
    uint32_t current = h.codes[j * numBooks + m];
    if (cand.code != current)
      applyChange(state, hessian, h, scale, j, m, cand.code,
                  cand.loss - beam[cand.parent].loss);
    bool duplicate = std::any_of(next.begin(), next.end(),
                                 [&](const Hypothesis &o) {
                                   return o.codes == h.codes;
                                 });
    if (!duplicate)
      next.push_back(std::move(h));
  }
  return next;
}

} // namespace

std::vector<float> AdditiveCodes::reconstruct() const {
  // The decoder's arithmetic: the row's scale times each sum of words.
  std::vector<float> wq = words();
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < cols; ++c)
      wq[n * cols + c] *= scales[n];
  return wq;
}

std::vector<float> AdditiveCodes::words() const {
  const int64_t g = spec.groupSize;
  std::vector<float> d(rows * cols);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t j = 0; j < groups(); ++j)
      detail::decodeCodebookGroup(
          codebooks.data(), numCodes(), g, spec.numCodebooks,
          codes.data() + (n * groups() + j) * spec.numCodebooks, 1.0f,
          d.data() + n * cols + j * g);
  return d;
}

std::vector<float> codebookGradient(const AdditiveCodes &state,
                                    const float *wordsGradient) {
  const int64_t g = state.spec.groupSize;
  std::vector<double> sum(state.codebooks.size(), 0.0);
  for (int64_t n = 0; n < state.rows; ++n)
    for (int64_t j = 0; j < state.groups(); ++j) {
      const float *gradient = wordsGradient + n * state.cols + j * g;
      for (int m = 0; m < state.spec.numCodebooks; ++m) {
        double *word =
            sum.data() + (m * state.numCodes() + state.code(n, j, m)) * g;
        for (int64_t t = 0; t < g; ++t)
          word[t] += double(gradient[t]);
      }
    }
  return std::vector<float>(sum.begin(), sum.end());
}

EncodedMatrix AdditiveCodes::encode() const {
  QuantParams params;
  params.scales = scales;
  params.codebooks = codebooks;
  return encodeWithCodes(spec, params, codes, rows, cols);
}

namespace {

/// Residual k-means: codebook m clusters what codebooks 0..m-1 left of
/// `residual` [P][g] (updated in place). Fills `codebooks` [M][2^B][g] and,
/// when given, `codes` [P][M].
void residualKmeans(std::vector<double> &residual, const CodebookSpec &spec,
                    int kmeansIterations, uint64_t seed,
                    std::vector<float> &codebooks,
                    std::vector<uint32_t> *codes) {
  const int64_t g = spec.groupSize, numCodes = int64_t(1) << spec.codeBits;
  const int64_t numPoints = int64_t(residual.size()) / g;
  const int numBooks = spec.numCodebooks;
  codebooks.assign(numBooks * numCodes * g, 0.0f);
  if (codes)
    codes->assign(numPoints * numBooks, 0);
  Xoshiro256 rng(seed);
  for (int m = 0; m < numBooks; ++m) {
    std::vector<double> centers;
    std::vector<int64_t> assignment =
        kmeans(residual, g, numCodes, std::max(kmeansIterations, 1), rng,
               centers);
    float *book = codebooks.data() + m * numCodes * g;
    for (int64_t i = 0; i < numCodes * g; ++i)
      book[i] = float(centers[i]);
    for (int64_t p = 0; p < numPoints; ++p) {
      if (codes)
        (*codes)[p * numBooks + m] = uint32_t(assignment[p]);
      for (int64_t t = 0; t < g; ++t)
        residual[p * g + t] -= double(book[assignment[p] * g + t]);
    }
  }
}

/// The groups of W / s as points [N * K/g][g].
std::vector<double> scaledGroups(const float *w, int64_t rows, int64_t cols,
                                 const std::vector<float> &scales) {
  std::vector<double> points(rows * cols);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < cols; ++c)
      points[n * cols + c] = double(w[n * cols + c]) / double(scales[n]);
  return points;
}

} // namespace

AdditiveCodes initializeAdditiveCodes(const CodebookSpec &spec, const float *w,
                                      int64_t rows, int64_t cols,
                                      int kmeansIterations, uint64_t seed) {
  requireShape(spec, rows, cols);
  if (kmeansIterations < 0)
    throw std::invalid_argument("AQLM: k-means iterations must be >= 0");
  AdditiveCodes state;
  state.spec = spec;
  state.rows = rows;
  state.cols = cols;
  state.scales.resize(rows);
  for (int64_t n = 0; n < rows; ++n) {
    double norm = 0;
    for (int64_t c = 0; c < cols; ++c)
      norm += double(w[n * cols + c]) * double(w[n * cols + c]);
    state.scales[n] = norm > 0 ? float(std::sqrt(norm)) : 1.0f;
  }
  // The groups of W / s, the first codebook's points; each later codebook
  // clusters what the earlier ones left.
  std::vector<double> residual = scaledGroups(w, rows, cols, state.scales);
  residualKmeans(residual, spec, kmeansIterations, seed, state.codebooks,
                 &state.codes);
  return state;
}

double additiveObjective(const AdditiveCodes &state, const float *w,
                         const Eigen::MatrixXd &hessian) {
  requireHessian(hessian, state.cols);
  RowMajorD error = weightError(state, w);
  return (error * hessian).cwiseProduct(error).sum();
}

double codeChangeLoss(const AdditiveCodes &state, const float *w,
                      const Eigen::MatrixXd &hessian, int64_t n, int64_t j,
                      int m, uint32_t c) {
  requireHessian(hessian, state.cols);
  const int64_t g = state.spec.groupSize;
  Hypothesis h = rowHypothesis(state, w, state.reconstruct(), hessian, n);
  Eigen::MatrixXd hessianJJ = hessian.block(j * g, j * g, g, g);
  PositionTerms terms = positionTerms(state, hessianJJ, h, state.scales[n], j, m);
  std::vector<double> energies = wordEnergies(state, hessianJJ, m);
  return candidateChange(state, terms, energies[c], state.scales[n], m, c);
}

double beamSearchCodes(AdditiveCodes &state, const float *w,
                       const Eigen::MatrixXd &hessian,
                       const BeamSearchOptions &options) {
  requireHessian(hessian, state.cols);
  if (options.beamSize < 1)
    throw std::invalid_argument("AQLM: the beam size must be >= 1, got " +
                                std::to_string(options.beamSize));
  const int64_t g = state.spec.groupSize, numGroups = state.groups();
  const int numBooks = state.spec.numCodebooks;
  std::vector<int64_t> order(numGroups);
  std::iota(order.begin(), order.end(), 0);
  Xoshiro256 rng(options.seed);
  rng.shuffle(order);
  std::vector<float> wq = state.reconstruct();
  // Rows are independent; a chunk of them walks the groups together so that
  // the word energies of a group are computed once per chunk.
  constexpr int64_t kChunkRows = 64;
  for (int64_t first = 0; first < state.rows; first += kChunkRows) {
    int64_t last = std::min(state.rows, first + kChunkRows);
    std::vector<std::vector<Hypothesis>> beams(last - first);
    for (int64_t n = first; n < last; ++n)
      beams[n - first] = {rowHypothesis(state, w, wq, hessian, n)};
    for (int64_t j : order) {
      Eigen::MatrixXd hessianJJ = hessian.block(j * g, j * g, g, g);
      for (int m = 0; m < numBooks; ++m) {
        std::vector<double> energies = wordEnergies(state, hessianJJ, m);
#pragma omp parallel for schedule(dynamic)
        for (int64_t n = first; n < last; ++n)
          beams[n - first] =
              advanceBeam(state, hessian, hessianJJ, energies,
                          std::move(beams[n - first]), state.scales[n], j, m,
                          options.beamSize);
      }
    }
    for (int64_t n = first; n < last; ++n) {
      const std::vector<Hypothesis> &beam = beams[n - first];
      const Hypothesis &best = *std::min_element(
          beam.begin(), beam.end(),
          [](const Hypothesis &a, const Hypothesis &b) { return a.loss < b.loss; });
      std::copy(best.codes.begin(), best.codes.end(),
                state.codes.begin() + n * numGroups * numBooks);
    }
  }
  return additiveObjective(state, w, hessian);
}

namespace {
AdamOptions codebookAdam(const CodebookUpdateOptions &options) {
  AdamOptions adam;
  adam.learningRate = options.learningRate;
  adam.beta1 = 0;
  adam.beta2 = 0.95;
  adam.amsgrad = true;
  return adam;
}
} // namespace

void AdditiveGradient::compute(const AdditiveCodes &state, const float *w,
                               const Eigen::MatrixXf &hessian) {
  const int64_t rows = state.rows, cols = state.cols, g = state.spec.groupSize;
  const int64_t numGroups = state.groups(), numCodes = state.numCodes();
  const int numBooks = state.spec.numCodebooks;
  requireHessian(hessian, cols);
  words_.resize(rows, cols);
  error_.resize(rows, cols);
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t j = 0; j < numGroups; ++j)
      detail::decodeCodebookGroup(
          state.codebooks.data(), numCodes, g, numBooks,
          state.codes.data() + (n * numGroups + j) * numBooks, 1.0f,
          words_.data() + n * cols + j * g);
    // The decoder's arithmetic (float product), then the difference.
    for (int64_t c = 0; c < cols; ++c)
      error_(n, c) = words_(n, c) * state.scales[n] - w[n * cols + c];
  }
  product_.noalias() = error_ * hessian;
  const float factor = 2.0f / float(rows);
  scales.resize(rows);
  std::vector<double> sum(state.codebooks.size(), 0.0);
#pragma omp parallel
  {
    // Each thread collects its rows' word gradients apart; the sums meet
    // once at the end (the codebooks are small: M 2^B g numbers).
    std::vector<double> local(sum.size(), 0.0);
#pragma omp for schedule(static) nowait
    for (int64_t n = 0; n < rows; ++n) {
      const float *gradient = product_.data() + n * cols;
      const float *word = words_.data() + n * cols;
      double scaleSum = 0, scale = double(state.scales[n]);
      for (int64_t c = 0; c < cols; ++c)
        scaleSum += double(gradient[c]) * double(word[c]);
      scales[n] = float(scaleSum) * factor;
      for (int64_t j = 0; j < numGroups; ++j)
        for (int m = 0; m < numBooks; ++m) {
          double *target =
              local.data() + (m * numCodes + state.code(n, j, m)) * g;
          for (int64_t t = 0; t < g; ++t)
            target[t] += scale * double(gradient[j * g + t]);
        }
    }
#pragma omp critical
    for (size_t i = 0; i < sum.size(); ++i)
      sum[i] += local[i];
  }
  codebooks.resize(sum.size());
  for (size_t i = 0; i < sum.size(); ++i)
    codebooks[i] = float(sum[i]) * factor;
}

CodebookOptimizer::CodebookOptimizer(AdditiveCodes &state,
                                     const CodebookUpdateOptions &options)
    : state_(state), adam_([&] {
        gradient_.codebooks.resize(state.codebooks.size());
        gradient_.scales.resize(state.scales.size());
        return std::vector<ParameterGroup>{
            {"codebooks",
             codebookAdam(options),
             {{"codebooks", state.codebooks.data(),
               gradient_.codebooks.data(), int64_t(state.codebooks.size())},
              {"scales", state.scales.data(), gradient_.scales.data(),
               int64_t(state.scales.size())}}}};
      }()) {
  if (options.steps < 0 || !(options.learningRate > 0))
    throw std::invalid_argument(
        "AQLM: codebook steps must be >= 0 and the learning rate > 0");
}

double CodebookOptimizer::run(const float *w, const Eigen::MatrixXd &hessian,
                              int steps) {
  requireHessian(hessian, state_.cols);
  Eigen::MatrixXf hessianF = hessian.cast<float>();
  for (int step = 0; step < steps; ++step) {
    // In place: Adam holds pointers to the gradient's buffers.
    gradient_.compute(state_, w, hessianF);
    adam_.step();
  }
  return additiveObjective(state_, w, hessian);
}

double updateCodebooks(AdditiveCodes &state, const float *w,
                       const Eigen::MatrixXd &hessian,
                       const CodebookUpdateOptions &options) {
  return CodebookOptimizer(state, options).run(w, hessian, options.steps);
}

AdditiveCodes quantizeAdditive(const CodebookSpec &spec, const float *w,
                               int64_t rows, int64_t cols,
                               const Eigen::MatrixXd &hessian,
                               const AqlmOptions &options) {
  requireHessian(hessian, cols);
  if (options.maxEpochs < 0 || !(options.relativeTolerance >= 0) ||
      !(options.relativeTolerance < 1))
    throw std::invalid_argument(
        "AQLM: max epochs must be >= 0 and the relative tolerance in [0, 1)");
  auto stageStart = std::chrono::steady_clock::now();
  auto finishStage = [&](AqlmStage::Kind kind, int phase, double objective) {
    auto now = std::chrono::steady_clock::now();
    if (options.onStage)
      options.onStage(
          {kind, phase, objective,
           std::chrono::duration<double>(now - stageStart).count()});
    stageStart = std::chrono::steady_clock::now();
  };
  AdditiveCodes state = initializeAdditiveCodes(
      spec, w, rows, cols, options.kmeansIterations, options.seed);
  // Adam may overshoot (its first steps are lr-sized whatever the
  // gradient): the best state seen is the result.
  AdditiveCodes best = state;
  double bestLoss = additiveObjective(state, w, hessian);
  finishStage(AqlmStage::Initialization, 0, bestLoss);
  auto keepIfBest = [&](double loss) {
    if (loss < bestLoss) {
      bestLoss = loss;
      best = state;
    }
  };
  // One optimizer for the whole run (its moments and AMSGrad maximum carry
  // over from phase to phase, as the reference's).
  CodebookOptimizer optimizer(state, options.codebookUpdate);
  double previous = std::numeric_limits<double>::infinity();
  for (int epoch = 0; epoch < options.maxEpochs; ++epoch) {
    double loss = optimizer.run(w, hessian, options.codebookUpdate.steps);
    if (std::isnan(loss))
      throw std::runtime_error("AQLM: the objective became NaN");
    keepIfBest(loss);
    finishStage(AqlmStage::CodebookUpdate, epoch + 1, loss);
    // Stop when this phase (Adam, after the last beam search) is not 1 -
    // tolerance below the previous one; an exact fit stops at once.
    if (!(loss < previous * (1 - options.relativeTolerance)) || loss == 0)
      break;
    previous = loss;
    BeamSearchOptions beam;
    beam.beamSize = options.beamSize;
    beam.seed = options.seed + uint64_t(epoch) + 1;
    double searched = beamSearchCodes(state, w, hessian, beam);
    keepIfBest(searched);
    finishStage(AqlmStage::BeamSearch, epoch + 1, searched);
  }
  return best;
}

namespace {
/// X^T X / T of the problem's statistics (required).
Eigen::MatrixXd layerHessian(const WeightProblem &problem) {
  if (!problem.stats || problem.stats->count <= 0 ||
      problem.stats->hessian.rows() != problem.cols)
    throw std::invalid_argument("AQLM: layer '" + problem.name +
                                "' needs calibration statistics with the "
                                "input Hessian");
  return problem.stats->fullHessian() / double(problem.stats->count);
}

} // namespace

MethodResult codebookResult(const AdditiveCodes &state) {
  MethodResult result;
  result.spec = state.spec;
  result.encoded = state.encode();
  result.dequantized = state.reconstruct();
  return result;
}

AdditiveCodes runAqlm(const CodebookSpec &spec, const WeightProblem &problem,
                      const AqlmOptions &options) {
  Eigen::MatrixXd hessian = layerHessian(problem);
  AdditiveCodes state = quantizeAdditive(spec, problem.weight, problem.rows,
                                         problem.cols, hessian, options);
  // What is stored is what the model runs (Adam's scales are f32).
  for (float &scale : state.scales)
    scale = storedScale(scale, spec.scaleStorage);
  return state;
}

std::vector<float> rowRmsScales(const float *w, int64_t rows, int64_t cols) {
  std::vector<float> scales(rows);
  for (int64_t n = 0; n < rows; ++n) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c)
      sum += double(w[n * cols + c]) * double(w[n * cols + c]);
    scales[n] = sum > 0 ? float(std::sqrt(sum / double(cols))) : 1.0f;
  }
  return scales;
}

SharedCodebookFit::SharedCodebookFit(const CodebookSpec &spec,
                                     int64_t maxPoints)
    : spec_(spec), maxPoints_(maxPoints) {
  if (maxPoints < 1)
    throw std::invalid_argument("AQLM: shared codebooks need >= 1 point");
}

void SharedCodebookFit::add(const float *w, int64_t rows, int64_t cols) {
  requireShape(spec_, rows, cols);
  const int64_t g = spec_.groupSize;
  std::vector<double> groups =
      scaledGroups(w, rows, cols, rowRmsScales(w, rows, cols));
  for (int64_t p = 0; p < rows * cols / g; ++p, ++seen_) {
    if (seen_ % stride_ != 0)
      continue;
    points_.insert(points_.end(), groups.begin() + p * g,
                   groups.begin() + (p + 1) * g);
    if (int64_t(points_.size()) / g < maxPoints_)
      continue;
    // Full: keep every other point (those at multiples of twice the
    // stride, point 0 first) and sample half as often from now on.
    int64_t kept = 0;
    for (int64_t i = 0; i < int64_t(points_.size()) / g; i += 2, ++kept)
      std::copy_n(points_.begin() + i * g, g, points_.begin() + kept * g);
    points_.resize(kept * g);
    stride_ *= 2;
  }
  weights_ += rows * cols;
}

std::vector<float> SharedCodebookFit::fit(int kmeansIterations,
                                          uint64_t seed) const {
  if (points_.empty())
    throw std::invalid_argument("AQLM: shared codebooks need a weight");
  if (kmeansIterations < 0)
    throw std::invalid_argument("AQLM: k-means iterations must be >= 0");
  std::vector<double> residual = points_;
  std::vector<float> codebooks;
  residualKmeans(residual, spec_, kmeansIterations, seed, codebooks, nullptr);
  return codebooks;
}

double fitScales(AdditiveCodes &state, const float *w,
                 const Eigen::MatrixXd &hessian) {
  requireHessian(hessian, state.cols);
  const int64_t k = state.cols, g = state.spec.groupSize;
  const int numBooks = state.spec.numCodebooks;
#pragma omp parallel for schedule(static)
  for (int64_t n = 0; n < state.rows; ++n) {
    // c: the row's sum of words, unscaled.
    std::vector<float> words(k);
    for (int64_t j = 0; j < state.groups(); ++j)
      detail::decodeCodebookGroup(
          state.codebooks.data(), state.numCodes(), g, numBooks,
          state.codes.data() + (n * state.groups() + j) * numBooks, 1.0f,
          words.data() + j * g);
    Eigen::VectorXd c(k), x(k);
    for (int64_t i = 0; i < k; ++i) {
      c[i] = words[i];
      x[i] = w[n * k + i];
    }
    Eigen::VectorXd hc = hessian * c;
    double energy = c.dot(hc);
    float scale = state.scales[n];
    if (energy > 0) {
      scale = float(x.dot(hc) / energy);
      // A zero row's least-squares scale is 0, which no encoding stores:
      // the smallest normal float keeps the row at (almost) zero.
      if (scale == 0.0f)
        scale = std::numeric_limits<float>::min();
    }
    state.scales[n] = storedScale(scale, state.spec.scaleStorage);
  }
  return additiveObjective(state, w, hessian);
}

AdditiveCodes quantizeWithCodebooks(const CodebookSpec &spec,
                                    const std::vector<float> &codebooks,
                                    const float *w, int64_t rows, int64_t cols,
                                    const Eigen::MatrixXd &hessian,
                                    const AqlmOptions &options) {
  requireShape(spec, rows, cols);
  requireHessian(hessian, cols);
  if (options.maxEpochs < 0 || !(options.relativeTolerance >= 0) ||
      !(options.relativeTolerance < 1))
    throw std::invalid_argument(
        "AQLM: max epochs must be >= 0 and the relative tolerance in [0, 1)");
  AdditiveCodes state;
  state.spec = spec;
  state.rows = rows;
  state.cols = cols;
  if (int64_t(codebooks.size()) !=
      spec.numCodebooks * state.numCodes() * spec.groupSize)
    throw std::invalid_argument(
        "AQLM: the shared codebooks hold " + std::to_string(codebooks.size()) +
        " values, " + describe(EncodingSpec(spec)) + " needs " +
        std::to_string(spec.numCodebooks * state.numCodes() * spec.groupSize));
  state.codebooks = codebooks;
  state.scales = rowRmsScales(w, rows, cols);
  // The codes k-means would give these groups: the nearest word of each
  // codebook in turn, on what the earlier ones left.
  const int64_t g = spec.groupSize, numPoints = rows * cols / g;
  const int numBooks = spec.numCodebooks;
  std::vector<double> residual = scaledGroups(w, rows, cols, state.scales);
  state.codes.assign(numPoints * numBooks, 0);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < numPoints; ++p)
    detail::nearestResidualCodes(residual.data() + p * g,
                                 state.codebooks.data(), state.numCodes(), g,
                                 numBooks, state.codes.data() + p * numBooks);
  double loss = fitScales(state, w, hessian);
  AdditiveCodes best = state;
  double bestLoss = loss, previous = loss;
  for (int epoch = 0; epoch < options.maxEpochs && loss > 0; ++epoch) {
    BeamSearchOptions beam;
    beam.beamSize = options.beamSize;
    beam.seed = options.seed + uint64_t(epoch) + 1;
    beamSearchCodes(state, w, hessian, beam);
    loss = fitScales(state, w, hessian);
    if (std::isnan(loss))
      throw std::runtime_error("AQLM: the objective became NaN");
    if (loss < bestLoss) {
      bestLoss = loss;
      best = state;
    }
    if (!(loss < previous * (1 - options.relativeTolerance)))
      break;
    previous = loss;
  }
  return best;
}

AdditiveCodes runAqlmWithCodebooks(const CodebookSpec &spec,
                                   const std::vector<float> &codebooks,
                                   const WeightProblem &problem,
                                   const AqlmOptions &options) {
  Eigen::MatrixXd hessian = layerHessian(problem);
  return quantizeWithCodebooks(spec, codebooks, problem.weight, problem.rows,
                               problem.cols, hessian, options);
}

} // namespace qnt::numerics
