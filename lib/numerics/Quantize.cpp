//===- Quantize.cpp - Round-to-nearest and parameterized quantization -----===//
//
// quantizeRTN derives per-group scales (and zeros) from the weights and then
// goes through quantizeWithParams, so both entry points share one rounding
// path per encoding. The components are laid out by componentLayout.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include "NumericsInternal.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace qnt::numerics {

using detail::fail;
using detail::ScaleGroups;

float storedScale(float scale, ScaleStorage storage) {
  if (storage == ScaleStorage::F32)
    return scale;
  // Half keeps 11 significant bits between 6.1e-5 and 65504.
  constexpr float kHalfMax = 65504.0f, kHalfMinSubnormal = 5.9604645e-8f;
  float magnitude = std::min(std::fabs(scale), kHalfMax);
  float rounded = float(Eigen::half(magnitude));
  if (scale != 0.0f && rounded == 0.0f)
    rounded = kHalfMinSubnormal; // a scale must stay nonzero
  return std::copysign(rounded, scale);
}

float roundHalfEven(float x) {
  // Explicit rather than std::nearbyint so that the result does not depend
  // on the floating-point environment's rounding mode.
  const float down = std::floor(x);
  const float fraction = x - down; // exact: |x| < 2^23 or fraction == 0
  if (fraction < 0.5f)
    return down;
  if (fraction > 0.5f)
    return down + 1.0f;
  // A tie: the even neighbour (down is exact here, |x| < 2^23, and so are
  // halving and doubling it).
  return std::floor(down * 0.5f) * 2.0f == down ? down : down + 1.0f;
}

namespace {

/// Clamps an integer-valued `v` to [lo, hi]; NaN goes to lo.
int64_t clampToInt(double v, int64_t lo, int64_t hi) {
  if (!(v > static_cast<double>(lo)))
    return lo;
  if (v >= static_cast<double>(hi))
    return hi;
  return static_cast<int64_t>(v);
}

std::string floatString(float v) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", static_cast<double>(v));
  return buffer;
}

void checkFiniteWeights(const float *w, int64_t rows, int64_t cols) {
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k)
      if (!std::isfinite(w[n * cols + k]))
        fail("weight W[" + std::to_string(n) + "][" + std::to_string(k) +
             "] = " + floatString(w[n * cols + k]) + " is not finite");
}

/// How many entries each QuantParams field must have; 0 means the field is
/// unused by the encoding and must be empty, so that a misrouted parameter
/// (say offsets for a binary spec without offsets) is an error rather than
/// silently ignored.
struct ParamSizes {
  int64_t scales = 0, zeros = 0, offsets = 0, planeScales = 0, codebooks = 0,
          channelMap = 0;
  bool parts = false;
};

void checkParamSizes(const std::string &what, const QuantParams &p,
                     const ParamSizes &want) {
  auto check = [&](const char *field, size_t got, int64_t expected) {
    if (static_cast<int64_t>(got) == expected)
      return;
    if (expected == 0)
      fail(what + ": params." + field + " is not used by this encoding and " +
           "must be empty, got " + std::to_string(got) + " entries");
    fail(what + ": params." + field + " has " + std::to_string(got) +
         " entries, expected " + std::to_string(expected));
  };
  check("scales", p.scales.size(), want.scales);
  check("zeros", p.zeros.size(), want.zeros);
  check("offsets", p.offsets.size(), want.offsets);
  check("planeScales", p.planeScales.size(), want.planeScales);
  check("codebooks", p.codebooks.size(), want.codebooks);
  check("channelMap", p.channelMap.size(), want.channelMap);
  if (want.parts && (!p.salientParams || !p.restParams))
    fail(what + ": params.salientParams and params.restParams are required");
  if (!want.parts && (p.salientParams || p.restParams))
    fail(what + ": params.salientParams/restParams are only used by salient "
                "encodings");
}

/// Requires finite values, and nonzero ones when they are divided by.
void checkValues(const std::string &what, const char *field,
                 const std::vector<float> &values, bool nonzero) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]) || (nonzero && values[i] == 0.0f))
      fail(what + ": params." + field + "[" + std::to_string(i) +
           "] = " + floatString(values[i]) + " must be finite" +
           (nonzero ? " and nonzero" : ""));
}

/// Zips `spec`'s layout with the payloads, which must come in layout order.
EncodedMatrix assemble(const EncodingSpec &spec, int64_t rows, int64_t cols,
                       std::vector<std::vector<uint8_t>> payloads) {
  std::vector<ComponentLayout> layouts = componentLayout(spec, rows, cols);
  EncodedMatrix out;
  out.rows = rows;
  out.cols = cols;
  for (size_t i = 0; i < layouts.size(); ++i)
    out.components.push_back(
        detail::makeComponent(std::move(layouts[i]), std::move(payloads[i])));
  return out;
}

/// The scales as `storage` holds them: the codes are chosen for these.
std::vector<float> storedScales(const std::vector<float> &scales,
                                ScaleStorage storage) {
  std::vector<float> stored(scales.size());
  for (size_t i = 0; i < scales.size(); ++i)
    stored[i] = storedScale(scales[i], storage);
  return stored;
}

/// The scales and codebooks of a codebook encoding: sizes and values.
void checkCodebookParams(const std::string &what, const CodebookSpec &s,
                         const QuantParams &p, int64_t rows) {
  ParamSizes want;
  want.scales = rows;
  want.codebooks = s.numCodebooks * (int64_t(1) << s.codeBits) * s.groupSize;
  checkParamSizes(what, p, want);
  checkValues(what, "scales", p.scales, /*nonzero=*/true);
  checkValues(what, "codebooks", p.codebooks, /*nonzero=*/false);
}

/// The components of a codebook encoding from its codes, row-major
/// [N][G][M], laid out as `s` stores them.
EncodedMatrix packCodebookEncoding(const CodebookSpec &s, const QuantParams &p,
                                   const std::vector<uint32_t> &rowMajor,
                                   int64_t rows, int64_t cols) {
  const int64_t numGroups = cols / s.groupSize, m = s.numCodebooks;
  // Zero-filled: the padding of a tiled layout holds code 0.
  std::vector<uint32_t> codes(
      componentLayout(s, rows, cols)[0].numElements(), 0);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t j = 0; j < numGroups; ++j)
      for (int64_t book = 0; book < m; ++book)
        codes[s.codeIndex(rows, cols, n, j, book)] =
            rowMajor[(n * numGroups + j) * m + book];
  std::vector<uint8_t> codeBytes =
      s.codeBits <= 8 ? std::vector<uint8_t>(codes.begin(), codes.end())
                      : detail::u16Bytes(codes);
  return assemble(s, rows, cols,
                  {std::move(codeBytes), detail::f32Bytes(p.codebooks),
                   detail::scaleBytes(storedScales(p.scales, s.scaleStorage),
                                      s.scaleStorage)});
}

/// quantizeWithParams for one (already verified) spec.
struct ParamEncoder {
  const QuantParams &p;
  const float *w;
  int64_t rows, cols;
  std::string what; // "quantizeWithParams(<spec>)", for messages

  EncodedMatrix operator()(const UniformSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    ParamSizes want;
    want.scales = groups.count();
    want.zeros = s.symmetric ? 0 : groups.count();
    checkParamSizes(what, p, want);
    checkValues(what, "scales", p.scales, /*nonzero=*/true);
    const std::vector<float> scales = storedScales(p.scales, s.scaleStorage);
    const int64_t qmax = (int64_t(1) << s.bits) - 1;
    const int64_t half = int64_t(1) << (s.bits - 1);
    std::vector<uint8_t> zeroBytes(p.zeros.size());
    for (size_t i = 0; i < p.zeros.size(); ++i) {
      float z = p.zeros[i];
      if (!(z >= 0.0f && z <= static_cast<float>(qmax)) || z != std::floor(z))
        fail(what + ": params.zeros[" + std::to_string(i) +
             "] = " + floatString(z) + " is not an integer in 0.." +
             std::to_string(qmax));
      zeroBytes[i] = static_cast<uint8_t>(z);
    }

    std::vector<uint32_t> codes(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t g = groups.of(n, k);
        const float q = roundHalfEven(w[n * cols + k] / scales[g]);
        const int64_t u =
            s.symmetric
                ? clampToInt(q, -half, half - 1) + half
                : clampToInt(static_cast<double>(q) + zeroBytes[g], 0, qmax);
        codes[n * cols + k] = static_cast<uint32_t>(u);
      }
    std::vector<std::vector<uint8_t>> payloads = {
        packBits(codes, rows, cols, s.bits),
        detail::scaleBytes(scales, s.scaleStorage)};
    if (!s.symmetric)
      payloads.push_back(std::move(zeroBytes));
    return assemble(s, rows, cols, std::move(payloads));
  }

  EncodedMatrix operator()(const MinifloatSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    ParamSizes want;
    want.scales = groups.count();
    checkParamSizes(what, p, want);
    checkValues(what, "scales", p.scales, /*nonzero=*/true);
    const std::vector<float> scales = storedScales(p.scales, s.scaleStorage);
    std::vector<uint32_t> codes(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        codes[n * cols + k] =
            encodeMinifloat(w[n * cols + k] / scales[groups.of(n, k)], s);
    return assemble(s, rows, cols,
                    {packBits(codes, rows, cols, minifloatBits(s)),
                     detail::scaleBytes(scales, s.scaleStorage)});
  }

  EncodedMatrix operator()(const CodebookSpec &s) const {
    checkCodebookParams(what, s, p, rows);
    const int64_t numCodes = int64_t(1) << s.codeBits;
    const int64_t g = s.groupSize, numGroups = cols / g, m = s.numCodebooks;
    // Row-major [N][G][M], as encodeWithCodes takes them.
    std::vector<uint32_t> codes(rows * numGroups * m, 0);
    std::vector<double> residual(g);
    const std::vector<float> scales = storedScales(p.scales, s.scaleStorage);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t j = 0; j < numGroups; ++j) {
        // Work in scale units: the codebooks approximate W / scale[n].
        for (int64_t t = 0; t < g; ++t)
          residual[t] = w[n * cols + j * g + t] / scales[n];
        detail::nearestResidualCodes(residual.data(), p.codebooks.data(),
                                     numCodes, g, m,
                                     codes.data() + (n * numGroups + j) * m);
      }
    return packCodebookEncoding(s, p, codes, rows, cols);
  }

  EncodedMatrix operator()(const BinarySpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    ParamSizes want;
    want.scales = groups.count();
    want.offsets = s.withOffset ? groups.count() : 0;
    checkParamSizes(what, p, want);
    checkValues(what, "scales", p.scales, /*nonzero=*/false);
    checkValues(what, "offsets", p.offsets, /*nonzero=*/false);
    std::vector<uint32_t> bits(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const float mu = s.withOffset ? p.offsets[groups.of(n, k)] : 0.0f;
        bits[n * cols + k] = w[n * cols + k] >= mu ? 1 : 0;
      }
    std::vector<std::vector<uint8_t>> payloads = {packBits(bits, rows, cols, 1),
                                                  detail::f32Bytes(p.scales)};
    if (s.withOffset)
      payloads.push_back(detail::f32Bytes(p.offsets));
    return assemble(s, rows, cols, std::move(payloads));
  }

  EncodedMatrix operator()(const BitPlaneSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    const int64_t numGroups = groups.count();
    const int planes = s.numPlanes;
    const int64_t numCombos = int64_t(1) << planes;
    ParamSizes want;
    want.planeScales = planes * numGroups;
    want.offsets = numGroups;
    checkParamSizes(what, p, want);
    checkValues(what, "planeScales", p.planeScales, /*nonzero=*/false);
    checkValues(what, "offsets", p.offsets, /*nonzero=*/false);

    // Every group's 2^P representable values, computed with the exact
    // arithmetic of dequantize so that the chosen one is what comes back.
    std::vector<float> values(numGroups * numCombos);
    for (int64_t g = 0; g < numGroups; ++g)
      for (int64_t c = 0; c < numCombos; ++c) {
        float v = 0.0f;
        for (int b = 0; b < planes; ++b)
          if ((c >> b) & 1)
            v += p.planeScales[b * numGroups + g];
        values[g * numCombos + c] = v + p.offsets[g];
      }

    const int64_t words = (cols + 31) / 32;
    std::vector<uint32_t> bits(planes * rows * words, 0);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const double x = w[n * cols + k];
        const float *candidates = values.data() + groups.of(n, k) * numCombos;
        int64_t best = 0;
        double bestDistance = std::fabs(candidates[0] - x);
        for (int64_t c = 1; c < numCombos; ++c) {
          double distance = std::fabs(candidates[c] - x);
          if (distance < bestDistance) { // strict: ties keep the lower index
            bestDistance = distance;
            best = c;
          }
        }
        for (int b = 0; b < planes; ++b)
          if ((best >> b) & 1)
            bits[(b * rows + n) * words + k / 32] |= 1u << (k % 32);
      }
    return assemble(s, rows, cols,
                    {detail::u32Bytes(bits), detail::f32Bytes(p.planeScales),
                     detail::f32Bytes(p.offsets)});
  }

  EncodedMatrix operator()(const SalientSpec &s) const {
    ParamSizes want;
    want.channelMap = cols;
    want.parts = true;
    checkParamSizes(what, p, want);
    detail::ChannelSplit split =
        detail::splitChannels(p.channelMap.data(), cols, s.numSalient);
    auto encodePart = [&](const EncodingSpec &spec, const QuantParams &params,
                          const std::vector<int64_t> &channels) {
      std::vector<float> part = detail::gatherColumns(w, rows, cols, channels);
      return quantizeWithParams(spec, params, part.data(), rows,
                                static_cast<int64_t>(channels.size()));
    };
    EncodedMatrix salient =
        encodePart(*s.salient, *p.salientParams, split.salient);
    EncodedMatrix rest = encodePart(*s.rest, *p.restParams, split.rest);

    std::vector<uint32_t> map(p.channelMap.begin(), p.channelMap.end());
    EncodedMatrix out;
    out.rows = rows;
    out.cols = cols;
    out.components.push_back(detail::makeComponent(
        {"channel_map", DType::I32, {cols}}, detail::u32Bytes(map)));
    detail::appendPrefixed(out.components, salient.components, "salient.");
    detail::appendPrefixed(out.components, rest.components, "rest.");
    return out;
  }
};

} // namespace

EncodedMatrix quantizeWithParams(const EncodingSpec &spec,
                                 const QuantParams &params, const float *w,
                                 int64_t rows, int64_t cols) {
  detail::requireValidSpec(spec, rows, cols);
  checkFiniteWeights(w, rows, cols);
  return std::visit(ParamEncoder{params, w, rows, cols,
                                 "quantizeWithParams(" + describe(spec) + ")"},
                    spec);
}

EncodedMatrix encodeWithCodes(const CodebookSpec &spec,
                              const QuantParams &params,
                              const std::vector<uint32_t> &codes,
                              int64_t rows, int64_t cols) {
  detail::requireValidSpec(spec, rows, cols);
  const std::string what = "encodeWithCodes(" + describe(spec) + ")";
  checkCodebookParams(what, spec, params, rows);
  const int64_t want = rows * (cols / spec.groupSize) * spec.numCodebooks;
  if (static_cast<int64_t>(codes.size()) != want)
    fail(what + ": " + std::to_string(codes.size()) + " codes, expected " +
         std::to_string(want));
  const int64_t numGroups = cols / spec.groupSize, m = spec.numCodebooks;
  for (int64_t i = 0; i < want; ++i)
    if (codes[i] >> spec.codeBits)
      fail(what + ": code " + std::to_string(codes[i]) + " of row " +
           std::to_string(i / (numGroups * m)) + ", group " +
           std::to_string(i / m % numGroups) + ", codebook " +
           std::to_string(i % m) + " does not fit " +
           std::to_string(spec.codeBits) + " bits");
  return packCodebookEncoding(spec, params, codes, rows, cols);
}

//===----------------------------------------------------------------------===//
// quantizeRTN
//===----------------------------------------------------------------------===//

namespace {

/// Per scale group: min, max and absmax of the weights.
struct GroupRange {
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  float absMax = 0.0f;
};

std::vector<GroupRange> groupRanges(const ScaleGroups &groups, const float *w,
                                    int64_t rows, int64_t cols) {
  std::vector<GroupRange> ranges(groups.count());
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t k = 0; k < cols; ++k) {
      const float x = w[n * cols + k];
      GroupRange &r = ranges[groups.of(n, k)];
      r.min = std::min(r.min, x);
      r.max = std::max(r.max, x);
      r.absMax = std::max(r.absMax, std::fabs(x));
    }
  return ranges;
}

QuantParams uniformRTNParams(const UniformSpec &s, const float *w, int64_t rows,
                             int64_t cols) {
  ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
  const int64_t qmax = (int64_t(1) << s.bits) - 1;
  QuantParams p;
  for (const GroupRange &r : groupRanges(groups, w, rows, cols)) {
    if (s.symmetric) {
      float scale = r.absMax / static_cast<float>((1 << (s.bits - 1)) - 1);
      p.scales.push_back(
          storedScale(scale == 0.0f ? 1.0f : scale, s.scaleStorage));
      continue;
    }
    // Widen the range to include 0 so that 0 is exactly representable.
    const float lo = std::min(r.min, 0.0f), hi = std::max(r.max, 0.0f);
    float scale = (hi - lo) / static_cast<float>(qmax);
    if (scale == 0.0f)
      scale = 1.0f;
    scale = storedScale(scale, s.scaleStorage);
    p.scales.push_back(scale);
    p.zeros.push_back(
        static_cast<float>(clampToInt(roundHalfEven(-lo / scale), 0, qmax)));
  }
  return p;
}

QuantParams minifloatRTNParams(const MinifloatSpec &s, const float *w,
                               int64_t rows, int64_t cols) {
  ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
  const float top = minifloatMax(s);
  QuantParams p;
  for (const GroupRange &r : groupRanges(groups, w, rows, cols)) {
    float scale = r.absMax / top;
    p.scales.push_back(
        storedScale(scale == 0.0f ? 1.0f : scale, s.scaleStorage));
  }
  return p;
}

} // namespace

QuantParams rtnParams(const EncodingSpec &spec, const float *w, int64_t rows,
                      int64_t cols) {
  detail::requireValidSpec(spec, rows, cols);
  checkFiniteWeights(w, rows, cols);
  if (const auto *u = std::get_if<UniformSpec>(&spec))
    return uniformRTNParams(*u, w, rows, cols);
  if (const auto *m = std::get_if<MinifloatSpec>(&spec))
    return minifloatRTNParams(*m, w, rows, cols);
  throw std::invalid_argument("RTN supports uniform and minifloat encodings");
}

EncodedMatrix quantizeRTN(const EncodingSpec &spec, const float *w,
                          int64_t rows, int64_t cols) {
  return quantizeWithParams(spec, rtnParams(spec, w, rows, cols), w, rows,
                            cols);
}

} // namespace qnt::numerics
