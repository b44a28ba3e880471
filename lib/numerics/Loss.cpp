//===- Loss.cpp - Reconstruction and distillation losses ------------------===//
//
// See Loss.h. Rows are independent: they are processed in parallel and
// their contributions summed in row order afterwards, so the value does not
// depend on the thread count.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Loss.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace qnt::numerics {

/// Runs `perRow(r)` for every row (in parallel for large inputs) and returns
/// the sum of its results in row order.
template <typename PerRow>
static double sumRows(int64_t rows, int64_t cols, PerRow perRow) {
  std::vector<double> partial(std::max<int64_t>(rows, 0));
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 16))
  for (int64_t r = 0; r < rows; ++r)
    partial[r] = perRow(r);
  double total = 0;
  for (double p : partial)
    total += p;
  return total;
}

template <typename T>
double mseLoss(const T *prediction, const T *target, int64_t rows,
               int64_t cols, Reduction reduction, T *gradient) {
  if (rows <= 0 || cols <= 0)
    return 0;
  const double divisor =
      reduction == Reduction::Mean ? double(rows) * double(cols) : double(rows);
  return sumRows(rows, cols, [&](int64_t r) {
           double sum = 0;
           for (int64_t c = r * cols; c < (r + 1) * cols; ++c) {
             double d = double(prediction[c]) - double(target[c]);
             sum += d * d;
             if (gradient)
               gradient[c] = T(2 * d / divisor);
           }
           return sum;
         }) /
         divisor;
}

namespace {
/// torch.nn.functional.cosine_similarity's clamp of each norm.
constexpr double kCosineEps = 1e-8;

struct RowCosine {
  double cosine, predictionNorm, targetNorm;
};
} // namespace

template <typename T>
static RowCosine rowCosine(const T *p, const T *t, int64_t cols) {
  double dot = 0, pp = 0, tt = 0;
  for (int64_t c = 0; c < cols; ++c) {
    dot += double(p[c]) * double(t[c]);
    pp += double(p[c]) * double(p[c]);
    tt += double(t[c]) * double(t[c]);
  }
  double pn = std::max(std::sqrt(pp), kCosineEps);
  double tn = std::max(std::sqrt(tt), kCosineEps);
  return {dot / (pn * tn), std::sqrt(pp), tn};
}

/// d cos / d p for one row, times `scale`, into `gradient`.
template <typename T>
static void rowCosineGradient(const T *p, const T *t, int64_t cols,
                              const RowCosine &rc, double scale, T *gradient) {
  const bool clamped = rc.predictionNorm < kCosineEps;
  const double pn = std::max(rc.predictionNorm, kCosineEps);
  for (int64_t c = 0; c < cols; ++c) {
    // cos = p.t / (|p| |t|): d/dp = t / (|p| |t|) - cos p / |p|^2; the
    // second term vanishes where |p| is clamped (constant denominator).
    double d = double(t[c]) / (pn * rc.targetNorm);
    if (!clamped)
      d -= rc.cosine * double(p[c]) / (pn * pn);
    gradient[c] = T(scale * d);
  }
}

/// Mean row cosine; with `gradient`, d(mean)/dp times `scale`.
template <typename T>
static double meanRowCosineScaled(const T *prediction, const T *target,
                                  int64_t rows, int64_t cols, T *gradient,
                                  double scale) {
  if (rows <= 0 || cols <= 0)
    return 0;
  return sumRows(rows, cols, [&](int64_t r) {
           const T *p = prediction + r * cols, *t = target + r * cols;
           RowCosine rc = rowCosine(p, t, cols);
           if (gradient)
             rowCosineGradient(p, t, cols, rc, scale / double(rows),
                               gradient + r * cols);
           return rc.cosine;
         }) /
         double(rows);
}

template <typename T>
double meanRowCosine(const T *prediction, const T *target, int64_t rows,
                     int64_t cols, T *gradient) {
  return meanRowCosineScaled(prediction, target, rows, cols, gradient, 1.0);
}

template <typename T>
double cosineDistanceLoss(const T *prediction, const T *target, int64_t rows,
                          int64_t cols, T *gradient) {
  return 1.0 -
         meanRowCosineScaled(prediction, target, rows, cols, gradient, -1.0);
}

template <typename T>
double negLogCosineLoss(const T *prediction, const T *target, int64_t rows,
                        int64_t cols, T *gradient) {
  // The gradient's scale -1/C needs C first: the rows are visited twice
  // when a gradient is asked for.
  double mean = meanRowCosine(prediction, target, rows, cols, (T *)nullptr);
  if (mean == 0) {
    if (gradient)
      std::fill(gradient, gradient + std::max<int64_t>(rows * cols, 0), T(0));
    return std::numeric_limits<double>::infinity();
  }
  if (gradient)
    meanRowCosineScaled(prediction, target, rows, cols, gradient, -1.0 / mean);
  return -std::log(std::abs(mean));
}

/// log_softmax(x / temperature) of one row into `out` (double).
template <typename T>
static void logSoftmax(const T *x, int64_t cols, double temperature,
                       double *out) {
  double top = -std::numeric_limits<double>::infinity();
  for (int64_t c = 0; c < cols; ++c)
    top = std::max(top, double(x[c]) / temperature);
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c)
    sum += std::exp(double(x[c]) / temperature - top);
  double logSum = top + std::log(sum);
  for (int64_t c = 0; c < cols; ++c)
    out[c] = double(x[c]) / temperature - logSum;
}

template <typename T>
double klDivergenceLoss(const T *predictionLogits, const T *targetLogits,
                        int64_t rows, int64_t cols, double temperature,
                        T *gradient) {
  if (!(temperature > 0) || !std::isfinite(temperature))
    throw std::invalid_argument("KL loss: the temperature must be > 0");
  if (rows <= 0 || cols <= 0)
    return 0;
  return sumRows(rows, cols, [&](int64_t r) {
           std::vector<double> logQ(cols), logP(cols);
           logSoftmax(predictionLogits + r * cols, cols, temperature,
                      logQ.data());
           logSoftmax(targetLogits + r * cols, cols, temperature,
                      logP.data());
           double kl = 0;
           for (int64_t c = 0; c < cols; ++c) {
             double p = std::exp(logP[c]);
             if (p > 0)
               kl += p * (logP[c] - logQ[c]);
             // d/dz_q of sum p (log p - log softmax(z_q / t)) = (q - p) / t.
             if (gradient)
               gradient[r * cols + c] =
                   T((std::exp(logQ[c]) - p) / (temperature * double(rows)));
           }
           return kl;
         }) /
         double(rows);
}

template <typename T>
double adaRoundRegularizer(const T *v, int64_t count, double beta,
                           T *gradient) {
  if (!(beta >= 1) || !std::isfinite(beta))
    throw std::invalid_argument("AdaRound regularizer: beta must be >= 1");
  constexpr double zeta = 1.1, gamma = -0.1;
  return sumRows(count, 1, [&](int64_t i) {
    double sigmoid = 1 / (1 + std::exp(-double(v[i])));
    double stretched = sigmoid * (zeta - gamma) + gamma;
    double h = std::clamp(stretched, 0.0, 1.0);
    double a = 2 * h - 1, magnitude = std::abs(a);
    if (gradient) {
      // d/dv (1 - |a|^beta) = -beta |a|^(beta-1) sign(a) 2 dh/dv; h is flat
      // where the stretched sigmoid is clamped.
      double dh = stretched > 0 && stretched < 1
                      ? (zeta - gamma) * sigmoid * (1 - sigmoid)
                      : 0.0;
      double sign = a > 0 ? 1.0 : (a < 0 ? -1.0 : 0.0);
      gradient[i] =
          T(-beta * std::pow(magnitude, beta - 1) * sign * 2 * dh);
    }
    return 1 - std::pow(magnitude, beta);
  });
}

#define QNT_INSTANTIATE_LOSSES(T)                                              \
  template double mseLoss<T>(const T *, const T *, int64_t, int64_t,          \
                             Reduction, T *);                                  \
  template double meanRowCosine<T>(const T *, const T *, int64_t, int64_t,    \
                                   T *);                                       \
  template double cosineDistanceLoss<T>(const T *, const T *, int64_t,        \
                                        int64_t, T *);                         \
  template double negLogCosineLoss<T>(const T *, const T *, int64_t, int64_t, \
                                      T *);                                    \
  template double klDivergenceLoss<T>(const T *, const T *, int64_t, int64_t, \
                                      double, T *);                            \
  template double adaRoundRegularizer<T>(const T *, int64_t, double, T *);
QNT_INSTANTIATE_LOSSES(float)
QNT_INSTANTIATE_LOSSES(double)
#undef QNT_INSTANTIATE_LOSSES

} // namespace qnt::numerics
