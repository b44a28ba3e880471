//===- Awq.cpp - Activation-aware weight quantization ---------------------===//
//
// See Awq.h. The reference is mit-han-lab/llm-awq (auto_scale.py,
// auto_clip.py); its quantizer is the uniform min/max RTN of Encoding.h.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Awq.h"
#include "qnt/numerics/Equalization.h"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <stdexcept>

namespace qnt::numerics {

namespace {

using RowMajorF =
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The width of one clipping group along K: the encoding's group size, or
/// the whole row for per-channel scales; 0 for per-tensor (not clipped).
int64_t clipGroupWidth(const EncodingSpec &spec, int64_t cols) {
  auto width = [&](Granularity g, int64_t groupSize) -> int64_t {
    switch (g) {
    case Granularity::PerTensor:
      return 0;
    case Granularity::PerChannel:
      return cols;
    case Granularity::PerGroup:
      return std::min(groupSize, cols);
    }
    return 0;
  };
  if (const auto *u = std::get_if<UniformSpec>(&spec))
    return width(u->granularity, u->groupSize);
  if (const auto *m = std::get_if<MinifloatSpec>(&spec))
    return width(m->granularity, m->groupSize);
  throw std::invalid_argument("AWQ quantizes to uniform integer or minifloat "
                              "grids, not " + describe(spec));
}

/// `spec` with one scale per row: a 1 x len slice is then one scale group.
EncodingSpec perRow(EncodingSpec spec) {
  if (auto *u = std::get_if<UniformSpec>(&spec)) {
    u->granularity = Granularity::PerChannel;
    u->groupSize = 0;
  } else if (auto *m = std::get_if<MinifloatSpec>(&spec)) {
    m->granularity = Granularity::PerChannel;
    m->groupSize = 0;
  }
  return spec;
}

/// Round-to-nearest of one scale group (a 1 x n slice), as the full matrix
/// quantizer would round it.
std::vector<float> fakeQuantizeGroup(const EncodingSpec &rowSpec,
                                     const float *values, int64_t n) {
  return dequantize(rowSpec, quantizeRTN(rowSpec, values, 1, n));
}

/// diag(1/s) H diag(1/s): the Hessian of the inputs divided by s.
Eigen::MatrixXd scaledHessian(const Eigen::MatrixXd &h,
                              const std::vector<float> &scales) {
  if (scales.empty())
    return h;
  Eigen::VectorXd inv(scales.size());
  for (size_t k = 0; k < scales.size(); ++k)
    inv[k] = 1.0 / double(scales[k]);
  return inv.asDiagonal() * h * inv.asDiagonal();
}

} // namespace

std::vector<float> awqScales(const std::vector<float> &meanAbs, double alpha) {
  std::vector<float> s(meanAbs.size());
  if (s.empty())
    return s;
  for (size_t k = 0; k < s.size(); ++k)
    s[k] = std::max(std::pow(std::max(meanAbs[k], 0.0f), float(alpha)), 1e-4f);
  auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  float norm = std::sqrt(*lo * *hi);
  for (float &v : s)
    v /= norm;
  return s;
}

std::vector<float> awqCandidate(const EncodingSpec &spec, const float *w,
                                int64_t rows, int64_t cols,
                                const std::vector<float> &scales) {
  std::vector<float> scaled(w, w + rows * cols);
  if (!scales.empty())
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        scaled[n * cols + k] *= scales[k];
  std::vector<float> q =
      dequantize(spec, quantizeRTN(spec, scaled.data(), rows, cols));
  if (!scales.empty())
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        q[n * cols + k] /= scales[k];
  return q;
}

/// The full Hessian of every layer of the group, checked present.
static std::vector<Eigen::MatrixXd> groupHessians(const AwqGroup &group) {
  std::vector<Eigen::MatrixXd> hessians;
  for (const WeightProblem &p : group.layers) {
    if (!p.stats || p.stats->count == 0)
      throw std::invalid_argument("AWQ needs input statistics for layer '" +
                                  p.name + "'");
    hessians.push_back(p.stats->fullHessian());
  }
  return hessians;
}

/// groupOutputLoss with the Hessians formed once by the caller.
static double outputLoss(const AwqGroup &group,
                         const std::vector<Eigen::MatrixXd> &hessians,
                         const std::vector<std::vector<float>> &candidates) {
  double loss = 0;
  for (size_t i = 0; i < group.layers.size(); ++i) {
    const WeightProblem &p = group.layers[i];
    Eigen::Map<const RowMajorF> w(p.weight, p.rows, p.cols),
        q(candidates[i].data(), p.rows, p.cols);
    Eigen::MatrixXd d = (w - q).cast<double>();
    loss += (d * hessians[i]).cwiseProduct(d).sum() /
            (double(p.stats->count) * double(p.rows));
  }
  return loss;
}

double groupOutputLoss(const AwqGroup &group,
                       const std::vector<std::vector<float>> &candidates) {
  return outputLoss(group, groupHessians(group), candidates);
}

std::vector<float> tieScales(const std::vector<float> &scales,
                             const std::vector<int64_t> &channelClass) {
  if (channelClass.empty())
    return scales;
  if (channelClass.size() != scales.size())
    throw std::invalid_argument("tieScales: " +
                                std::to_string(channelClass.size()) +
                                " classes for " +
                                std::to_string(scales.size()) + " scales");
  std::map<int64_t, std::pair<double, int64_t>> logSum;
  for (size_t c = 0; c < scales.size(); ++c) {
    if (channelClass[c] < 0)
      throw std::invalid_argument("tieScales: negative class id");
    auto &[sum, count] = logSum[channelClass[c]];
    sum += std::log(double(scales[c]));
    ++count;
  }
  std::vector<float> tied(scales.size());
  for (size_t c = 0; c < scales.size(); ++c) {
    const auto &[sum, count] = logSum[channelClass[c]];
    tied[c] = float(std::exp(sum / double(count)));
  }
  return tied;
}

AwqSearch searchAwqScales(const AwqGroup &group, const AwqOptions &options) {
  if (group.layers.empty())
    throw std::invalid_argument("AWQ: an empty group");
  const WeightProblem &first = group.layers.front();
  if (!first.stats || first.stats->count == 0)
    throw std::invalid_argument("AWQ needs input statistics for layer '" +
                                first.name + "'");
  if (options.scaleGrid < 1)
    throw std::invalid_argument("AWQ: the scale grid needs at least 1 point");
  std::vector<float> meanAbs = first.stats->meanAbs();
  // Without a module to run, the loss is the group's own output error:
  // its Hessians are formed once for the whole grid.
  std::vector<Eigen::MatrixXd> hessians;
  if (!group.moduleLoss)
    hessians = groupHessians(group);
  AwqSearch search;
  search.losses.reserve(options.scaleGrid);
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < options.scaleGrid; ++i) {
    double alpha = double(i) / options.scaleGrid;
    std::vector<float> s =
        tieScales(awqScales(meanAbs, alpha), group.channelClass);
    std::vector<std::vector<float>> candidates;
    for (size_t l = 0; l < group.layers.size(); ++l) {
      const WeightProblem &p = group.layers[l];
      candidates.push_back(
          awqCandidate(group.specs[l], p.weight, p.rows, p.cols, s));
    }
    double loss = group.moduleLoss ? group.moduleLoss(candidates)
                                   : outputLoss(group, hessians, candidates);
    search.losses.push_back(loss);
    // Strictly lower, as the reference: the first of equal losses wins.
    if (loss < best) {
      best = loss;
      search.alpha = alpha;
      search.scales = std::move(s);
    }
  }
  if (search.scales.empty())
    throw std::runtime_error("AWQ: every candidate scale gave a NaN loss");
  return search;
}

std::vector<float> searchAwqClip(const EncodingSpec &spec, const float *w,
                                 int64_t rows, int64_t cols,
                                 const Eigen::MatrixXd &hessian,
                                 const AwqOptions &options) {
  int64_t width = clipGroupWidth(spec, cols);
  if (width == 0)
    return {};
  EncodingSpec rowSpec = perRow(spec);
  int64_t groups = (cols + width - 1) / width;
  std::vector<float> bounds(rows * groups);
  for (int64_t j = 0; j < groups; ++j) {
    int64_t begin = j * width, len = std::min(width, cols - begin);
    Eigen::MatrixXd h = hessian.block(begin, begin, len, len);
    std::vector<float> clamped(len);
    Eigen::VectorXd d(len);
    for (int64_t n = 0; n < rows; ++n) {
      const float *g = w + n * cols + begin;
      float absMax = 0;
      for (int64_t t = 0; t < len; ++t)
        absMax = std::max(absMax, std::fabs(g[t]));
      double best = std::numeric_limits<double>::infinity();
      float bestBound = absMax;
      for (int i = 0; i < options.clipSteps; ++i) {
        float bound = absMax * (1.0f - float(i) / float(options.clipGrid));
        for (int64_t t = 0; t < len; ++t)
          clamped[t] = std::clamp(g[t], -bound, bound);
        std::vector<float> q = fakeQuantizeGroup(rowSpec, clamped.data(), len);
        for (int64_t t = 0; t < len; ++t)
          d[t] = double(g[t]) - double(q[t]);
        double loss = d.dot(h * d);
        if (loss < best) {
          best = loss;
          bestBound = bound;
        }
      }
      bounds[n * groups + j] = bestBound;
    }
  }
  return bounds;
}

std::vector<float> smoothQuantScales(const std::vector<float> &activationMax,
                                     const std::vector<WeightProblem> &layers,
                                     double alpha) {
  std::vector<float> weightMax(activationMax.size(), 0.0f);
  for (const WeightProblem &p : layers) {
    if (p.cols != int64_t(activationMax.size()))
      throw std::invalid_argument("SmoothQuant: layer '" + p.name +
                                  "' has K = " + std::to_string(p.cols) +
                                  ", its statistics " +
                                  std::to_string(activationMax.size()));
    std::vector<float> columns =
        columnRanges(p.weight, p.rows, p.cols, /*rowOfColumn=*/{}, p.cols);
    for (int64_t k = 0; k < p.cols; ++k)
      weightMax[k] = std::max(weightMax[k], columns[k]);
  }
  std::vector<float> s(activationMax.size(), 1.0f);
  for (size_t k = 0; k < s.size(); ++k) {
    if (!(activationMax[k] > 0) || !(weightMax[k] > 0))
      continue;
    double v = std::pow(double(activationMax[k]), alpha) /
               std::pow(double(weightMax[k]), 1.0 - alpha);
    s[k] = float(std::max(v, 1e-5));
  }
  return s;
}

/// One spec and one clip flag per layer, each spec usable at the layer's K.
static void checkGroupShape(const AwqGroup &group) {
  if (group.specs.size() != group.layers.size() ||
      group.clip.size() != group.layers.size())
    throw std::invalid_argument("AWQ: one spec and one clip flag per layer");
  for (size_t l = 0; l < group.layers.size(); ++l)
    (void)clipGroupWidth(group.specs[l], group.layers[l].cols);
}

std::vector<MethodResult> quantizeScaled(const AwqGroup &group,
                                         const std::vector<float> &s,
                                         const AwqOptions &options) {
  checkGroupShape(group);
  std::vector<MethodResult> results;
  for (size_t l = 0; l < group.layers.size(); ++l) {
    const WeightProblem &p = group.layers[l];
    const EncodingSpec &spec = group.specs[l];
    int64_t width = clipGroupWidth(spec, p.cols);
    if (!s.empty() && int64_t(s.size()) != p.cols)
      throw std::invalid_argument("AWQ: " + std::to_string(s.size()) +
                                  " scales for K = " + std::to_string(p.cols));
    std::vector<float> scaled(p.weight, p.weight + p.rows * p.cols);
    if (!s.empty())
      for (int64_t n = 0; n < p.rows; ++n)
        for (int64_t k = 0; k < p.cols; ++k)
          scaled[n * p.cols + k] *= s[k];
    MethodResult result;
    result.spec = spec;
    if (group.clip[l] && p.stats && p.stats->count > 0) {
      std::vector<float> bounds =
          searchAwqClip(spec, scaled.data(), p.rows, p.cols,
                        scaledHessian(p.stats->fullHessian(), s), options);
      if (!bounds.empty()) {
        int64_t groups = (p.cols + width - 1) / width;
        for (int64_t n = 0; n < p.rows; ++n)
          for (int64_t k = 0; k < p.cols; ++k) {
            float b = bounds[n * groups + k / width];
            float &v = scaled[n * p.cols + k];
            v = std::clamp(v, -b, b);
          }
      }
    }
    result.encoded = quantizeRTN(spec, scaled.data(), p.rows, p.cols);
    result.dequantized = dequantize(spec, result.encoded);
    if (!s.empty()) {
      for (int64_t n = 0; n < p.rows; ++n)
        for (int64_t k = 0; k < p.cols; ++k)
          result.dequantized[n * p.cols + k] /= s[k];
      if (std::any_of(s.begin(), s.end(), [](float v) { return v != 1.0f; }))
        result.inputScale = s;
    }
    results.push_back(std::move(result));
  }
  return results;
}

std::vector<MethodResult> runAWQ(const AwqGroup &group,
                                 const AwqOptions &options,
                                 AwqSearch *searchOut) {
  // What quantizeScaled would refuse is refused before the search, the
  // expensive part.
  checkGroupShape(group);
  AwqSearch search;
  if (options.searchScales)
    search = searchAwqScales(group, options);
  std::vector<MethodResult> results =
      quantizeScaled(group, search.scales, options);
  if (options.searchScales) {
    char remark[32];
    std::snprintf(remark, sizeof remark, "alpha %.2f", search.alpha);
    for (MethodResult &result : results)
      result.remarks.push_back(remark);
  }
  if (searchOut)
    *searchOut = std::move(search);
  return results;
}

} // namespace qnt::numerics
