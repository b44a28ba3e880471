//===- MixedPrecision.cpp - Bit allocation from a noise model -------------===//
//
// See MixedPrecision.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/MixedPrecision.h"

#include <Eigen/Dense>

#include <algorithm>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace qnt::numerics {

namespace {

using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The columns [begin, end) of each scale group of a row under `spec`.
std::vector<std::pair<int64_t, int64_t>> rowGroups(const UniformSpec &spec,
                                                   int64_t cols) {
  std::vector<std::pair<int64_t, int64_t>> groups;
  int64_t width =
      spec.granularity == Granularity::PerGroup ? spec.groupSize : cols;
  for (int64_t begin = 0; begin < cols; begin += width)
    groups.push_back({begin, std::min(cols, begin + width)});
  return groups;
}

} // namespace

double predictedOutputNoise(const UniformSpec &spec, const float *w,
                            int64_t rows, int64_t cols,
                            const Eigen::MatrixXd &hessian) {
  if (spec.granularity == Granularity::PerTensor)
    throw std::invalid_argument("the trace noise model needs per-channel or "
                                "per-group scales");
  const double levels = double((int64_t(1) << spec.bits) - 1);
  double noise = 0;
  for (auto [begin, end] : rowGroups(spec, cols)) {
    double trace = hessian.diagonal().segment(begin, end - begin).sum();
    for (int64_t n = 0; n < rows; ++n) {
      const float *g = w + n * cols;
      double step;
      if (spec.symmetric) {
        double absMax = 0;
        for (int64_t k = begin; k < end; ++k)
          absMax = std::max(absMax, double(std::fabs(g[k])));
        step = absMax / double((int64_t(1) << (spec.bits - 1)) - 1);
      } else {
        // The quantizer's range includes 0 (Encoding.h).
        double lo = 0, hi = 0;
        for (int64_t k = begin; k < end; ++k) {
          lo = std::min(lo, double(g[k]));
          hi = std::max(hi, double(g[k]));
        }
        step = (hi - lo) / levels;
      }
      noise += step * step / 12.0 * trace;
    }
  }
  return noise;
}

double measuredOutputNoise(const EncodingSpec &spec, const float *w,
                           int64_t rows, int64_t cols,
                           const Eigen::MatrixXd &hessian) {
  std::vector<float> q = dequantize(spec, quantizeRTN(spec, w, rows, cols));
  Eigen::Map<const RowMajorF> original(w, rows, cols), rounded(q.data(), rows,
                                                               cols);
  Eigen::MatrixXd d = (original - rounded).cast<double>();
  return (d * hessian).cwiseProduct(d).sum();
}

Allocation allocatePrecision(
    const std::vector<std::vector<PrecisionOption>> &layers,
    int64_t budgetBits, int64_t maxStates) {
  if (layers.empty())
    return {};
  int64_t cheapest = 0;
  int64_t unit = 0;
  for (const auto &options : layers) {
    if (options.empty())
      throw std::invalid_argument("a layer has no storage option");
    int64_t least = std::numeric_limits<int64_t>::max();
    for (const PrecisionOption &o : options) {
      if (o.bits <= 0)
        throw std::invalid_argument("an option with no "
                                    "storage");
      least = std::min(least, o.bits);
      unit = std::gcd(unit, o.bits);
    }
    cheapest += least;
  }
  if (cheapest > budgetBits)
    throw std::invalid_argument(
        "the budget of " + std::to_string(budgetBits) +
        " bits is below the cheapest choice (" + std::to_string(cheapest) +
        " bits)");
  Allocation result;
  const int64_t numLayers = layers.size();
  // Coarsen the unit until the table fits; costs round up, so the result
  // stays within the budget.
  while ((budgetBits / unit + 1) * numLayers > maxStates) {
    unit *= 2;
    result.exact = false;
  }
  auto cost = [&](const PrecisionOption &o) {
    return (o.bits + unit - 1) / unit;
  };
  const int64_t states = budgetBits / unit + 1;
  const double inf = std::numeric_limits<double>::infinity();
  // best[s]: least loss of the layers so far with cost exactly s.
  std::vector<double> best(states, inf), next(states);
  best[0] = 0;
  std::vector<std::vector<int16_t>> choice(numLayers,
                                           std::vector<int16_t>(states, -1));
  for (int64_t l = 0; l < numLayers; ++l) {
    std::fill(next.begin(), next.end(), inf);
    for (int64_t s = 0; s < states; ++s) {
      if (best[s] == inf)
        continue;
      for (size_t o = 0; o < layers[l].size(); ++o) {
        int64_t t = s + cost(layers[l][o]);
        if (t >= states)
          continue;
        double loss = best[s] + layers[l][o].loss;
        if (loss < next[t]) {
          next[t] = loss;
          choice[l][t] = int16_t(o);
        }
      }
    }
    std::swap(best, next);
  }
  int64_t end = std::min_element(best.begin(), best.end()) - best.begin();
  if (best[end] == inf)
    throw std::invalid_argument("no choice fits the budget "
                                "at the coarsened cost unit");
  result.choice.assign(numLayers, 0);
  for (int64_t l = numLayers - 1, s = end; l >= 0; --l) {
    int o = choice[l][s];
    result.choice[l] = o;
    result.bits += layers[l][o].bits;
    result.loss += layers[l][o].loss;
    s -= cost(layers[l][o]);
  }
  return result;
}

} // namespace qnt::numerics
