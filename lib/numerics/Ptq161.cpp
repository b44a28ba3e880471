//===- Ptq161.cpp - PTQ1.61 salient mask and binarized rest ---------------===//
//
// See Ptq161.h. The reference is zjq0455/PTQ1.61 (quantize/int_linear.py,
// the `mix` quantizer).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Ptq161.h"

#include <Eigen/Cholesky>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <stdexcept>

namespace qnt::numerics {

std::vector<bool> salientChannels(const std::vector<float> &absmax,
                                  double ratio) {
  if (!(ratio >= 0 && ratio < 1))
    throw std::invalid_argument("PTQ1.61: the salient ratio must be in "
                                "[0, 1), got " + std::to_string(ratio));
  if (absmax.empty())
    return {};
  std::vector<float> sorted = absmax;
  std::sort(sorted.begin(), sorted.end(), std::greater<float>());
  size_t index = std::min(sorted.size() - 1,
                          size_t(std::floor(ratio * double(sorted.size()))));
  float threshold = sorted[index];
  std::vector<bool> salient(absmax.size());
  for (size_t j = 0; j < absmax.size(); ++j)
    salient[j] = absmax[j] >= threshold;
  return salient;
}

std::vector<int32_t> salientChannelMap(const std::vector<bool> &salient) {
  std::vector<int32_t> map(salient.size());
  int32_t salientColumn = 0, restColumn = 0;
  for (size_t k = 0; k < salient.size(); ++k)
    map[k] = salient[k] ? salientColumn++ : -1 - restColumn++;
  return map;
}

SalientBinarization initializePtq161(const float *w, int64_t rows,
                                     int64_t cols,
                                     const std::vector<bool> &salient,
                                     int salientBits) {
  if (int64_t(salient.size()) != cols)
    throw std::invalid_argument("PTQ1.61: the mask has " +
                                std::to_string(salient.size()) +
                                " channels, the weight " +
                                std::to_string(cols));
  const int64_t numSalient = std::count(salient.begin(), salient.end(), true);
  if (numSalient == 0 || numSalient == cols)
    throw std::invalid_argument(
        "PTQ1.61: " + std::to_string(numSalient) + " of " +
        std::to_string(cols) +
        " channels are salient; the split needs both parts");
  UniformSpec grid;
  grid.bits = salientBits;
  grid.symmetric = false;
  grid.granularity = Granularity::PerChannel;
  BinarySpec binary;
  binary.withOffset = true;
  binary.granularity = Granularity::PerChannel;
  SalientSpec spec;
  spec.numSalient = numSalient;
  spec.salient = std::make_shared<const EncodingSpec>(grid);
  spec.rest = std::make_shared<const EncodingSpec>(binary);

  SalientBinarization out;
  out.spec = spec;
  out.params.channelMap = salientChannelMap(salient);
  // The reference's salient quantizer takes min and max over the whole row,
  // the binarized channels included (ALGORITHMS.md §5 (g)).
  out.params.salientParams =
      std::make_shared<QuantParams>(rtnParams(grid, w, rows, cols));
  auto rest = std::make_shared<QuantParams>();
  rest->scales.resize(rows);
  rest->offsets.resize(rows);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0, magnitude = 0;
    int64_t count = 0;
    for (int64_t k = 0; k < cols; ++k) {
      float v = w[r * cols + k];
      if (salient[k] || v == 0.0f)
        continue;
      sum += v;
      magnitude += std::fabs(v);
      ++count;
    }
    // A row whose binarized entries are all zero stays zero: mu = 0 and
    // alpha = 0 (the reference's NaN guard).
    rest->offsets[r] = count ? float(sum / double(count)) : 0.0f;
    rest->scales[r] = count ? float(magnitude / double(count)) : 0.0f;
  }
  out.params.restParams = rest;
  return out;
}

std::vector<float> compensateSalientBinarization(SalientBinarization &init,
                                                 const WeightProblem &problem,
                                                 double percDamp) {
  const int64_t rows = problem.rows, cols = problem.cols;
  if (!problem.stats || problem.stats->hessian.rows() != cols ||
      problem.stats->hessian.cols() != cols)
    throw std::invalid_argument("PTQ1.61: error feedback on layer '" +
                                problem.name + "' needs its Hessian");
  const std::vector<int32_t> &map = init.params.channelMap;
  const QuantParams &rest = *init.params.restParams;
  const auto &grid = std::get<UniformSpec>(
      *std::get<SalientSpec>(init.spec).salient);
  // Binarized channels first, then the salient ones, each in channel order.
  std::vector<int64_t> order;
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t k = 0; k < cols; ++k)
      if ((map[k] >= 0) == (pass == 1))
        order.push_back(k);
  const int64_t numRest = cols - std::get<SalientSpec>(init.spec).numSalient;
  Eigen::MatrixXd h =
      problem.stats->hessian.selfadjointView<Eigen::Lower>();
  // A channel the calibration never saw gets a unit diagonal (GPTQ's rule).
  for (int64_t k = 0; k < cols; ++k)
    if (h(k, k) == 0)
      h(k, k) = 1;
  h.diagonal().array() += percDamp * h.diagonal().mean();
  Eigen::MatrixXd permuted(cols, cols);
  for (int64_t i = 0; i < cols; ++i)
    for (int64_t j = 0; j < cols; ++j)
      permuted(i, j) = h(order[i], order[j]);
  Eigen::LLT<Eigen::MatrixXd> factor(permuted);
  if (factor.info() != Eigen::Success)
    throw std::invalid_argument("PTQ1.61: the Hessian of layer '" +
                                problem.name + "' is not positive definite");
  Eigen::MatrixXd inverse =
      factor.solve(Eigen::MatrixXd::Identity(cols, cols));
  Eigen::LLT<Eigen::MatrixXd> inverseFactor(inverse);
  if (inverseFactor.info() != Eigen::Success)
    throw std::invalid_argument("PTQ1.61: the inverse Hessian of layer '" +
                                problem.name + "' is not positive definite");
  Eigen::MatrixXd u = inverseFactor.matrixU();
  Eigen::MatrixXd w(rows, cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < cols; ++i)
      w(r, i) = problem.weight[r * cols + order[i]];
  std::vector<float> adjusted(rows * cols);
  const double qmax = double((int64_t(1) << grid.bits) - 1);
  QuantParams salient;
  for (int64_t i = 0; i < cols; ++i) {
    if (i == numRest) {
      // The salient scales from the row as it now is (the reference's
      // whole-row min and max).
      std::vector<float> current(rows * cols);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < cols; ++j)
          current[r * cols + order[j]] = float(w(r, j));
      salient = rtnParams(grid, current.data(), rows, cols);
    }
    for (int64_t r = 0; r < rows; ++r) {
      float v = float(w(r, i));
      adjusted[r * cols + order[i]] = v;
      double q;
      if (i < numRest) {
        q = v >= rest.offsets[r] ? rest.offsets[r] + rest.scales[r]
                                 : rest.offsets[r] - rest.scales[r];
      } else {
        double s = salient.scales[r], z = salient.zeros[r];
        q = s == 0 ? 0.0
                   : s * std::clamp(double(roundHalfEven(v / float(s))), -z,
                                    qmax - z);
      }
      double error = (double(v) - q) / u(i, i);
      for (int64_t j = i + 1; j < cols; ++j)
        w(r, j) -= error * u(i, j);
    }
  }
  init.params.salientParams = std::make_shared<QuantParams>(salient);
  return adjusted;
}

SalientBinarizationTensors
salientBinarizationTensors(const SalientBinarization &init, const float *w,
                           int64_t rows, int64_t cols) {
  if (!std::holds_alternative<SalientSpec>(init.spec) ||
      !init.params.restParams)
    throw std::invalid_argument("PTQ1.61: not a salient binarization");
  const std::vector<int32_t> &map = init.params.channelMap;
  if (int64_t(map.size()) != cols)
    throw std::invalid_argument("PTQ1.61: the channel map does not match "
                                "the weight");
  // The salient part as the encoding stores it: encode and decode it.
  EncodedMatrix encoded =
      quantizeWithParams(init.spec, init.params, w, rows, cols);
  std::vector<float> decoded = dequantize(init.spec, encoded);
  const QuantParams &rest = *init.params.restParams;
  SalientBinarizationTensors t;
  t.salientWeight.assign(rows * cols, 0.0f);
  t.signs.assign(rows * cols, 0.0f);
  t.restMask.assign(cols, 0.0f);
  t.offset = rest.offsets;
  t.alpha = rest.scales;
  for (int64_t k = 0; k < cols; ++k)
    t.restMask[k] = map[k] < 0 ? 1.0f : 0.0f;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k) {
      int64_t i = r * cols + k;
      if (map[k] >= 0)
        t.salientWeight[i] = decoded[i];
      else
        t.signs[i] = w[i] >= rest.offsets[r] ? 1.0f : -1.0f;
    }
  return t;
}

MethodResult bakeSalientBinarization(const SalientBinarization &init,
                                     const float *w, int64_t rows,
                                     int64_t cols,
                                     const std::vector<float> &alpha,
                                     const std::vector<float> &r1,
                                     const std::vector<float> &r2) {
  if (int64_t(alpha.size()) != rows || int64_t(r1.size()) != rows ||
      int64_t(r2.size()) != cols)
    throw std::invalid_argument("PTQ1.61: alpha and r1 need one value per "
                                "row, r2 one per input channel");
  SalientBinarizationTensors t = salientBinarizationTensors(init, w, rows, cols);
  std::vector<float> inputScale(cols, 1.0f);
  for (int64_t k = 0; k < cols; ++k)
    if (t.restMask[k] != 0) {
      if (!(r2[k] > 0) || !std::isfinite(1.0f / r2[k]))
        throw std::invalid_argument(
            "PTQ1.61: the column scale of input channel " + std::to_string(k) +
            " is " + std::to_string(r2[k]) + "; it must be positive");
      inputScale[k] = 1.0f / r2[k];
    }
  // The stored matrix E = W^ diag(s): salient columns Q(W), rest columns
  // alpha' S + mu' with alpha' = r1 alpha, mu' = r1 mu. The binarization's
  // bit is e >= mu', so |alpha'| keeps the sign of alpha' S.
  QuantParams params = init.params;
  auto rest = std::make_shared<QuantParams>(*init.params.restParams);
  std::vector<float> stored(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    float scaledAlpha = r1[r] * alpha[r], scaledMu = r1[r] * t.offset[r];
    rest->scales[r] = std::fabs(scaledAlpha);
    rest->offsets[r] = scaledMu;
    for (int64_t k = 0; k < cols; ++k) {
      int64_t i = r * cols + k;
      stored[i] = t.restMask[k] != 0 ? scaledAlpha * t.signs[i] + scaledMu
                                     : w[i];
    }
  }
  params.restParams = rest;
  MethodResult result;
  result.spec = init.spec;
  result.encoded = quantizeWithParams(init.spec, params, stored.data(), rows,
                                      cols);
  std::vector<float> decoded = dequantize(init.spec, result.encoded);
  result.dequantized.resize(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t k = 0; k < cols; ++k)
      result.dequantized[r * cols + k] =
          decoded[r * cols + k] / inputScale[k];
  bool scaled = std::any_of(inputScale.begin(), inputScale.end(),
                            [](float s) { return s != 1.0f; });
  if (scaled) {
    // Kept as the layer's qnt.smooth: K f32 values.
    result.extraStorageBits = 32 * cols;
    result.inputScale = std::move(inputScale);
  }
  return result;
}

SalientBinarization initializePtq161(const WeightProblem &problem,
                                     double ratio, int salientBits) {
  if (!problem.stats ||
      int64_t(problem.stats->absmax.size()) != problem.cols)
    throw std::invalid_argument("PTQ1.61: layer '" + problem.name +
                                "' needs calibration statistics with the "
                                "input absmax");
  return initializePtq161(problem.weight, problem.rows, problem.cols,
                          salientChannels(problem.stats->absmax, ratio),
                          salientBits);
}

MethodResult runPtq161Initialization(const WeightProblem &problem,
                                     double ratio, int salientBits,
                                     bool compensate) {
  SalientBinarization init = initializePtq161(problem, ratio, salientBits);
  std::vector<float> adjusted;
  if (compensate)
    adjusted = compensateSalientBinarization(init, problem);
  MethodResult result;
  result.spec = init.spec;
  result.encoded = quantizeWithParams(
      init.spec, init.params, compensate ? adjusted.data() : problem.weight,
      problem.rows, problem.cols);
  result.dequantized = dequantize(init.spec, result.encoded);
  return result;
}

} // namespace qnt::numerics
