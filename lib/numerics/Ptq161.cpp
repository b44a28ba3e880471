//===- Ptq161.cpp - PTQ1.61 salient mask and binarized rest ---------------===//
//
// See Ptq161.h. The reference is zjq0455/PTQ1.61 (quantize/int_linear.py,
// the `mix` quantizer).
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Ptq161.h"

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
  if (scaled)
    result.inputScale = std::move(inputScale);
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
                                     double ratio, int salientBits) {
  SalientBinarization init = initializePtq161(problem, ratio, salientBits);
  MethodResult result;
  result.spec = init.spec;
  result.encoded = quantizeWithParams(init.spec, init.params, problem.weight,
                                      problem.rows, problem.cols);
  result.dequantized = dequantize(init.spec, result.encoded);
  return result;
}

} // namespace qnt::numerics
