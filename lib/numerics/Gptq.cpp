//===- Gptq.cpp - GPTQ weight quantization --------------------------------===//
//
// See Gptq.h and ALGORITHMS.md §1. The weight is held column-major so that
// a column and a lazy batch of columns are contiguous; the factor U with
// H^-1 = U^T U is computed without forming H^-1 (see inverseHessianFactor).
// Group parameters are taken from the weights as they were when the group's
// lazy batch started, as the reference code does, or (freshGroupParams) as
// they are when the group's first column is reached, with the updates from
// the batch's earlier columns.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Gptq.h"

#include "NumericsInternal.h"

#include <Eigen/Cholesky>
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace qnt::numerics {

using detail::fail;

namespace {

using MatrixF = Eigen::MatrixXf; // column-major
using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The scalar grid of a uniform or minifloat spec, with the reference's
/// parameter rules: asymmetric min/max widened to include 0, symmetric
/// [-2^(b-1), 2^(b-1) - 1] * s with s = 2 absmax / (2^b - 1), minifloat
/// s = absmax / largest finite value.
class ScalarGrid {
public:
  explicit ScalarGrid(const EncodingSpec &spec) {
    if (auto *u = std::get_if<UniformSpec>(&spec)) {
      minifloat = false;
      symmetric = u->symmetric;
      maxq = float((1 << u->bits) - 1);
      granularity = u->granularity;
      groupSize = u->groupSize;
      scaleStorage = u->scaleStorage;
    } else if (auto *m = std::get_if<MinifloatSpec>(&spec)) {
      minifloat = true;
      format = *m;
      formatMax = minifloatMax(*m);
      granularity = m->granularity;
      groupSize = m->groupSize;
      scaleStorage = m->scaleStorage;
    } else {
      fail("GPTQ supports uniform integer and minifloat grids, not " +
           describe(spec));
    }
    if (granularity == Granularity::PerTensor)
      fail("GPTQ quantizes per channel or per group, not per tensor");
  }

  bool hasZeros() const { return !minifloat && !symmetric; }
  bool grouped() const { return granularity == Granularity::PerGroup; }

  float quantize(float x, float scale, float zero) const {
    if (minifloat)
      return scale * decodeMinifloat(encodeMinifloat(x / scale, format), format);
    float code = std::clamp(roundHalfEven(x / scale) + zero, 0.0f, maxq);
    return scale * (code - zero);
  }

  /// Scale and zero for the values [lo, hi] (lo <= 0 <= hi); the scale as
  /// the encoding stores it.
  void paramsForRange(float lo, float hi, float &scale, float &zero) const {
    if (minifloat) {
      float absmax = std::max(-lo, hi);
      scale = storedScale(absmax > 0 ? absmax / formatMax : 1.0f,
                          scaleStorage);
      zero = 0;
      return;
    }
    if (symmetric) {
      float absmax = std::max(-lo, hi);
      if (absmax == 0)
        absmax = 1;
      scale = storedScale(2 * absmax / maxq, scaleStorage);
      zero = (maxq + 1) / 2;
      return;
    }
    if (lo == 0 && hi == 0) {
      lo = -1;
      hi = 1;
    }
    scale = storedScale((hi - lo) / maxq, scaleStorage);
    zero = std::clamp(roundHalfEven(-lo / scale), 0.0f, maxq);
  }

  /// Parameters of the values value(c), c in [begin, end) (one row's
  /// group).
  template <typename ValueAt>
  void findParams(ValueAt value, int64_t begin, int64_t end, bool mseSearch,
                  float &scale, float &zero) const {
    float lo = 0, hi = 0;
    for (int64_t c = begin; c < end; ++c) {
      lo = std::min(lo, value(c));
      hi = std::max(hi, value(c));
    }
    paramsForRange(lo, hi, scale, zero);
    if (!mseSearch)
      return;
    // The reference's grid: 100 steps, shrink down to 0.2, error norm 2.4.
    double best = errorOf(value, begin, end, scale, zero);
    for (int i = 1; i < 80; ++i) {
      float p = 1.0f - float(i) / 100.0f, s, z;
      paramsForRange(p * lo, p * hi, s, z);
      double err = errorOf(value, begin, end, s, z);
      if (err < best) {
        best = err;
        scale = s;
        zero = z;
      }
    }
  }

  Granularity granularity = Granularity::PerChannel;
  int64_t groupSize = 0;
  ScaleStorage scaleStorage = ScaleStorage::F32;

private:
  template <typename ValueAt>
  double errorOf(ValueAt value, int64_t begin, int64_t end, float scale,
                 float zero) const {
    double err = 0;
    for (int64_t c = begin; c < end; ++c)
      err += std::pow(
          std::fabs(double(quantize(value(c), scale, zero) - value(c))), 2.4);
    return err;
  }

  bool minifloat = false, symmetric = false;
  float maxq = 15;
  MinifloatSpec format;
  float formatMax = 1;
};

/// Factors the damped Hessian for GPTQ. `reversed` holds J H J (J the
/// reversal permutation) and is overwritten. On success `u` is upper
/// triangular with H^-1 = U^T U: with J H J = L L^T, H = (J L J)(J L J)^T
/// where J L J is upper triangular, so H^-1 = V^T V with
/// V = (J L J)^-1 = J L^-1 J, upper triangular with a positive diagonal,
/// which by uniqueness is the upper Cholesky factor of H^-1. H^-1 itself is
/// never formed. Returns false if H is not positive definite.
bool inverseHessianFactor(MatrixF &reversed, MatrixF &u) {
  const int64_t k = reversed.rows();
  Eigen::LLT<Eigen::Ref<MatrixF>> llt(reversed); // in place: L in the lower
  if (llt.info() != Eigen::Success)
    return false;
  // L^-1 is lower triangular: its columns [c0, c1) only have rows [c0, k),
  // which solve against the trailing block of L. Blocks of columns are
  // independent, so they run in parallel (a third of the flops of a full
  // triangular solve against the identity).
  u = MatrixF::Zero(k, k);
  const int64_t block = 128;
#pragma omp parallel for schedule(dynamic)
  for (int64_t c0 = 0; c0 < k; c0 += block) {
    const int64_t c1 = std::min(k, c0 + block);
    auto columns = u.block(c0, c0, k - c0, c1 - c0);
    for (int64_t j = c0; j < c1; ++j)
      columns(j - c0, j - c0) = 1.0f;
    reversed.bottomRightCorner(k - c0, k - c0)
        .triangularView<Eigen::Lower>()
        .solveInPlace(columns);
  }
  u.reverseInPlace(); // J L^-1 J
  if (!u.allFinite())
    return false;
  for (int64_t i = 0; i < k; ++i)
    if (!(u(i, i) > 0))
      return false;
  return true;
}

void checkFinite(const float *w, int64_t rows, int64_t cols,
                 const Eigen::MatrixXd &hessian) {
  if (!Eigen::Map<const Eigen::ArrayXf>(w, rows * cols).allFinite())
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        if (!std::isfinite(w[n * cols + k]))
          fail("weight W[" + std::to_string(n) + "][" + std::to_string(k) +
               "] = " + std::to_string(w[n * cols + k]) + " is not finite");
  if (hessian.rows() != cols || hessian.cols() != cols)
    fail("the Hessian is " + std::to_string(hessian.rows()) + "x" +
         std::to_string(hessian.cols()) + ", expected " +
         std::to_string(cols) + "x" + std::to_string(cols) +
         " for a weight with " + std::to_string(cols) + " inputs");
  if (!hessian.allFinite())
    for (int64_t r = 0; r < cols; ++r)
      for (int64_t c = 0; c < cols; ++c)
        if (!std::isfinite(hessian(r, c)))
          fail("Hessian entry H[" + std::to_string(r) + "][" +
               std::to_string(c) + "] is not finite");
  // A sum of outer products X^T X has a non-negative diagonal.
  for (int64_t k = 0; k < cols; ++k)
    if (hessian(k, k) < 0)
      fail("Hessian diagonal H[" + std::to_string(k) + "][" +
           std::to_string(k) + "] = " + std::to_string(hessian(k, k)) +
           " is negative: not a sum X^T X of layer inputs");
}

/// dst = src between storage orders, in tiles that stay in cache (a plain
/// transposing assignment of a large matrix misses on every element).
template <typename Dst, typename Src>
void copyTiled(Dst &&dst, const Src &src) {
  const int64_t tile = 64;
  for (int64_t c0 = 0; c0 < src.cols(); c0 += tile)
    for (int64_t r0 = 0; r0 < src.rows(); r0 += tile) {
      const int64_t nr = std::min(tile, int64_t(src.rows()) - r0);
      const int64_t nc = std::min(tile, int64_t(src.cols()) - c0);
      dst.block(r0, c0, nr, nc) = src.block(r0, c0, nr, nc);
    }
}

std::vector<float> rowMajor(const MatrixF &m) {
  std::vector<float> out(m.size());
  copyTiled(Eigen::Map<RowMajorF>(out.data(), m.rows(), m.cols()), m);
  return out;
}

} // namespace

MethodResult runGPTQ(const EncodingSpec &spec, const GptqOptions &options,
                     const float *weight, int64_t rows, int64_t cols,
                     const Eigen::MatrixXd &hessian) {
  detail::requireValidSpec(spec, rows, cols);
  const ScalarGrid grid(spec);
  checkFinite(weight, rows, cols, hessian);
  if (!(options.percDamp >= 0) || !std::isfinite(options.percDamp))
    fail("GPTQ dampening must be a finite non-negative number");
  if (options.blockSize <= 0)
    fail("GPTQ block size must be positive, got " +
         std::to_string(options.blockSize));

  MethodResult result;
  result.spec = spec;
  // Inputs that never fire carry no information: their weights are zeroed
  // and their Hessian diagonal set to 1 so that H stays invertible.
  std::vector<bool> dead(cols);
  for (int64_t k = 0; k < cols; ++k)
    dead[k] = hessian(k, k) == 0;
  auto diagonal = [&](int64_t k) { return dead[k] ? 1.0 : hessian(k, k); };

  const int64_t g = grid.grouped() ? grid.groupSize : cols;
  const int64_t numGroups = (cols + g - 1) / g;
  MatrixF scales(rows, numGroups), zeros(rows, numGroups);
  if (options.staticGroups || !grid.grouped())
    for (int64_t n = 0; n < rows; ++n) {
      const float *row = weight + n * cols;
      auto original = [&](int64_t c) { return dead[c] ? 0.0f : row[c]; };
      for (int64_t j = 0; j < numGroups; ++j)
        grid.findParams(original, j * g, std::min(cols, (j + 1) * g),
                        options.mseSearch, scales(n, j), zeros(n, j));
    }

  std::vector<int32_t> perm(cols);
  std::iota(perm.begin(), perm.end(), 0);
  if (options.actOrder)
    std::stable_sort(perm.begin(), perm.end(), [&](int32_t a, int32_t b) {
      return diagonal(a) > diagonal(b);
    });

  // W in processing order, column-major; each row of the input is read
  // contiguously and written in tiles.
  MatrixF w(rows, cols);
  const int64_t tile = 64;
  for (int64_t n0 = 0; n0 < rows; n0 += tile)
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t source = perm[c];
      for (int64_t n = n0, e = std::min(rows, n0 + tile); n < e; ++n)
        w(n, c) = dead[source] ? 0.0f : weight[n * cols + source];
    }

  // The damped Hessian, permuted and reversed for inverseHessianFactor;
  // rebuilt when the damping has to be raised (the factorization overwrites
  // it).
  double meanDiagonal = 0;
  for (int64_t k = 0; k < cols; ++k)
    meanDiagonal += diagonal(k);
  meanDiagonal /= double(cols);
  MatrixF reversed(cols, cols);
  auto buildReversed = [&](double damp) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t pc = perm[cols - 1 - c];
      for (int64_t r = 0; r < cols; ++r)
        reversed(r, c) = float(hessian(perm[cols - 1 - r], pc));
      reversed(c, c) = float(diagonal(pc) + damp);
    }
  };
  double damp = options.percDamp * meanDiagonal;
  MatrixF u;
  for (int attempt = 0;; ++attempt) {
    buildReversed(damp);
    if (inverseHessianFactor(reversed, u))
      break;
    if (attempt == options.maxDampingRetries)
      fail("the Hessian is not positive definite even with damping " +
           std::to_string(damp) + " (" + std::to_string(attempt) +
           " increases); the layer's inputs may be degenerate");
    double raised = damp > 0 ? damp * 10 : 1e-6 * std::max(1.0, meanDiagonal);
    result.remarks.push_back("Hessian not positive definite with damping " +
                             std::to_string(damp) + "; retried with " +
                             std::to_string(raised));
    damp = raised;
  }
  reversed = MatrixF(); // no longer needed: free it before the main loop

  MatrixF q(rows, cols);
  std::vector<float> scale(rows), zero(rows);
  if (!grid.grouped())
    for (int64_t n = 0; n < rows; ++n) {
      scale[n] = scales(n, 0);
      zero[n] = zeros(n, 0);
    }
  // Groups follow the processing order unless they are static; static
  // groups (and per-channel parameters) are looked up by original column.
  const bool groupsInProcessingOrder =
      grid.grouped() && !options.staticGroups;
  Eigen::VectorXf err(rows);
  MatrixF batchErr, batchStart;
  for (int64_t i1 = 0; i1 < cols; i1 += options.blockSize) {
    const int64_t i2 = std::min(cols, i1 + options.blockSize);
    batchErr.resize(rows, i2 - i1);
    if (!options.freshGroupParams)
      batchStart = w.middleCols(i1, i2 - i1);
    for (int64_t j = i1; j < i2; ++j) {
      if (groupsInProcessingOrder && j % g == 0) {
        const int64_t end = std::min(cols, j + g);
        for (int64_t n = 0; n < rows; ++n) {
          auto current = [&](int64_t c) { return w(n, c); };
          auto atBatchStart = [&](int64_t c) {
            return c < i2 ? batchStart(n, c - i1) : w(n, c);
          };
          if (options.freshGroupParams)
            grid.findParams(current, j, end, options.mseSearch, scale[n],
                            zero[n]);
          else
            grid.findParams(atBatchStart, j, end, options.mseSearch, scale[n],
                            zero[n]);
          scales(n, j / g) = scale[n];
          zeros(n, j / g) = zero[n];
        }
      } else if (grid.grouped() && options.staticGroups) {
        const int64_t group = perm[j] / g;
        for (int64_t n = 0; n < rows; ++n) {
          scale[n] = scales(n, group);
          zero[n] = zeros(n, group);
        }
      }
      const float d = u(j, j);
      for (int64_t n = 0; n < rows; ++n) {
        q(n, j) = grid.quantize(w(n, j), scale[n], zero[n]);
        err[n] = (w(n, j) - q(n, j)) / d;
      }
      if (j + 1 < i2)
        w.block(0, j + 1, rows, i2 - j - 1).noalias() -=
            err * u.row(j).segment(j + 1, i2 - j - 1);
      batchErr.col(j - i1) = err;
    }
    if (i2 < cols)
      w.rightCols(cols - i2).noalias() -=
          batchErr * u.block(i1, i2, i2 - i1, cols - i2);
  }

  // Storage: with act-order and groups in processing order the encoded
  // matrix keeps the processing order and the input is permuted; otherwise
  // it is in natural order, which is the dequantized result itself.
  const bool permuted = options.actOrder && groupsInProcessingOrder;
  result.dequantized.resize(rows * cols);
  for (int64_t n0 = 0; n0 < rows; n0 += tile)
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t n = n0, e = std::min(rows, n0 + tile); n < e; ++n)
        result.dequantized[n * cols + perm[c]] = q(n, c);
  std::vector<float> processingOrder;
  if (permuted) {
    result.inputPermutation = perm;
    processingOrder = rowMajor(q);
  }
  const float *stored =
      permuted ? processingOrder.data() : result.dequantized.data();

  QuantParams params;
  params.scales = rowMajor(scales);
  if (grid.hasZeros())
    params.zeros = rowMajor(zeros);
  result.encoded = quantizeWithParams(spec, params, stored, rows, cols);
  return result;
}

MethodResult runGPTQ(const EncodingSpec &spec, const GptqOptions &options,
                     const WeightProblem &problem) {
  if (!problem.stats || problem.stats->count == 0 ||
      problem.stats->hessian.size() == 0)
    fail("GPTQ needs the Hessian of the layer's inputs; none was recorded");
  if (problem.stats->channels != problem.cols)
    fail("the statistics have " + std::to_string(problem.stats->channels) +
         " input channels, the weight has " + std::to_string(problem.cols));
  return runGPTQ(spec, options, problem.weight, problem.rows, problem.cols,
                 problem.stats->fullHessian());
}

} // namespace qnt::numerics
