//===- Dequantize.cpp - Reference dequantization --------------------------===//
//
// dequantize is the reference the qnt code generators must match bit for
// bit, so every formula below is written in the operation order (and float
// precision) that docs/PackedLayouts.md specifies. Components are checked
// against componentLayout before any payload is read, so malformed input is
// an exception, never an out-of-bounds read.
//
//===----------------------------------------------------------------------===//

#include "qnt/numerics/Encoding.h"

#include "NumericsInternal.h"

namespace qnt::numerics {

using detail::fail;
using detail::ScaleGroups;

namespace {

/// Checks names, dtypes, shapes and payload sizes against the layout.
void checkComponents(const std::string &what,
                     const std::vector<ComponentLayout> &expected,
                     const std::vector<Component> &actual) {
  if (actual.size() != expected.size())
    fail(what + ": expected " + std::to_string(expected.size()) +
         " components, got " + std::to_string(actual.size()));
  for (size_t i = 0; i < expected.size(); ++i) {
    const ComponentLayout &want = expected[i];
    const Component &got = actual[i];
    if (got.layout.name != want.name)
      fail(what + ": component " + std::to_string(i) + " is '" +
           got.layout.name + "', expected '" + want.name + "'");
    if (got.layout.dtype != want.dtype)
      fail(what + ": component '" + want.name + "' has dtype " +
           dtypeName(got.layout.dtype) + ", expected " + dtypeName(want.dtype));
    if (got.layout.shape != want.shape)
      fail(what + ": component '" + want.name + "' has shape " +
           detail::shapeString(got.layout.shape) + ", expected " +
           detail::shapeString(want.shape));
    if (static_cast<int64_t>(got.bytes.size()) != want.numBytes())
      fail(what + ": component '" + want.name + "' has " +
           std::to_string(got.bytes.size()) + " bytes, expected " +
           std::to_string(want.numBytes()));
  }
}

/// Zero points of an asymmetric uniform encoding, checked to be codes.
std::vector<int> uniformZeros(const std::string &what, const UniformSpec &s,
                              const std::vector<uint8_t> &bytes) {
  const int qmax = (1 << s.bits) - 1;
  std::vector<int> zeros(bytes.begin(), bytes.end());
  for (size_t i = 0; i < zeros.size(); ++i)
    if (zeros[i] > qmax)
      fail(what + ": zeros[" + std::to_string(i) +
           "] = " + std::to_string(zeros[i]) + " is out of range for int" +
           std::to_string(s.bits));
  return zeros;
}

/// Dequantizes components already checked against the layout.
struct Dequantizer {
  int64_t rows, cols;
  const std::vector<Component> &c;
  std::string what;

  std::vector<float> operator()(const UniformSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    std::vector<uint32_t> codes =
        unpackBits(c[0].bytes.data(), rows, cols, s.bits);
    std::vector<float> scales = detail::floatValues(c[1]);
    std::vector<int> zeros =
        s.symmetric ? std::vector<int>(groups.count(), 1 << (s.bits - 1))
                    : uniformZeros(what, s, c[2].bytes);
    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t g = groups.of(n, k);
        const int diff = static_cast<int>(codes[n * cols + k]) - zeros[g];
        out[n * cols + k] = scales[g] * static_cast<float>(diff);
      }
    return out;
  }

  std::vector<float> operator()(const MinifloatSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    const int bits = minifloatBits(s);
    std::vector<float> decoded(size_t(1) << bits);
    for (uint32_t code = 0; code < decoded.size(); ++code)
      decoded[code] = decodeMinifloat(code, s);
    std::vector<uint32_t> codes =
        unpackBits(c[0].bytes.data(), rows, cols, bits);
    std::vector<float> scales = detail::floatValues(c[1]);
    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        out[n * cols + k] =
            scales[groups.of(n, k)] * decoded[codes[n * cols + k]];
    return out;
  }

  std::vector<float> operator()(const CodebookSpec &s) const {
    const int64_t numCodes = int64_t(1) << s.codeBits;
    const int64_t g = s.groupSize, numGroups = cols / g, m = s.numCodebooks;
    std::vector<uint32_t> codes =
        s.codeBits <= 8
            ? std::vector<uint32_t>(c[0].bytes.begin(), c[0].bytes.end())
            : detail::bytesU16(c[0].bytes);
    for (size_t i = 0; i < codes.size(); ++i)
      if (codes[i] >= numCodes)
        fail(what + ": code " + std::to_string(codes[i]) + " at flat index " +
             std::to_string(i) + " is out of range for " +
             std::to_string(s.codeBits) + "-bit codebooks");
    std::vector<float> books = detail::floatValues(c[1]);
    std::vector<float> scales = detail::floatValues(c[2]);
    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t j = 0; j < numGroups; ++j)
        detail::decodeCodebookGroup(
            books.data(), numCodes, g, m,
            codes.data() + s.codeIndex(rows, cols, n, j, 0), scales[n],
            out.data() + n * cols + j * g);
    return out;
  }

  std::vector<float> operator()(const BinarySpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    std::vector<uint32_t> bits = unpackBits(c[0].bytes.data(), rows, cols, 1);
    std::vector<float> alphas = detail::floatValues(c[1]);
    std::vector<float> mus =
        s.withOffset ? detail::floatValues(c[2]) : std::vector<float>();
    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t g = groups.of(n, k);
        const float sign = bits[n * cols + k] ? 1.0f : -1.0f;
        // alpha * sign is exact, so fusing into an FMA cannot change this.
        out[n * cols + k] =
            s.withOffset ? alphas[g] * sign + mus[g] : alphas[g] * sign;
      }
    return out;
  }

  std::vector<float> operator()(const BitPlaneSpec &s) const {
    ScaleGroups groups(s.granularity, s.groupSize, rows, cols);
    const int64_t numGroups = groups.count(), words = (cols + 31) / 32;
    std::vector<uint32_t> planes = detail::bytesU32(c[0].bytes);
    std::vector<float> planeScales = detail::floatValues(c[1]);
    std::vector<float> offsets = detail::floatValues(c[2]);
    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k) {
        const int64_t g = groups.of(n, k);
        float v = 0.0f;
        for (int p = 0; p < s.numPlanes; ++p)
          if ((planes[(p * rows + n) * words + k / 32] >> (k % 32)) & 1)
            v += planeScales[p * numGroups + g];
        out[n * cols + k] = v + offsets[g];
      }
    return out;
  }

  std::vector<float> operator()(const SalientSpec &s) const {
    std::vector<uint32_t> raw = detail::bytesU32(c[0].bytes);
    std::vector<int32_t> map(raw.begin(), raw.end());
    detail::ChannelSplit split =
        detail::splitChannels(map.data(), cols, s.numSalient);

    // The layout check guarantees the salient part's components follow
    // channel_map and the rest part's follow those.
    auto takePart = [&](size_t begin, size_t count, size_t prefixLength,
                        int64_t partCols) {
      EncodedMatrix part;
      part.rows = rows;
      part.cols = partCols;
      for (size_t i = begin; i < begin + count; ++i) {
        part.components.push_back(c[i]);
        part.components.back().layout.name.erase(0, prefixLength);
      }
      return part;
    };
    const size_t numSalientComponents =
        componentLayout(*s.salient, rows, s.numSalient).size();
    const int64_t restCols = cols - s.numSalient;
    std::vector<float> salient = dequantize(
        *s.salient, takePart(1, numSalientComponents,
                             std::string("salient.").size(), s.numSalient));
    std::vector<float> rest =
        dequantize(*s.rest, takePart(1 + numSalientComponents,
                                     c.size() - 1 - numSalientComponents,
                                     std::string("rest.").size(), restCols));

    std::vector<float> out(rows * cols);
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t j = 0; j < s.numSalient; ++j)
        out[n * cols + split.salient[j]] = salient[n * s.numSalient + j];
      for (int64_t j = 0; j < restCols; ++j)
        out[n * cols + split.rest[j]] = rest[n * restCols + j];
    }
    return out;
  }
};

} // namespace

std::vector<float> dequantize(const EncodingSpec &spec,
                              const EncodedMatrix &encoded) {
  detail::requireValidSpec(spec, encoded.rows, encoded.cols);
  std::string what = "dequantize(" + describe(spec) + ")";
  checkComponents(what, componentLayout(spec, encoded.rows, encoded.cols),
                  encoded.components);
  return std::visit(
      Dequantizer{encoded.rows, encoded.cols, encoded.components, what}, spec);
}

EncodedMatrix uniformToBitPlanes(const UniformSpec &uniform,
                                 const EncodedMatrix &encoded,
                                 BitPlaneSpec *planesSpecOut) {
  const int64_t rows = encoded.rows, cols = encoded.cols;
  detail::requireValidSpec(uniform, rows, cols);
  const std::string what = "uniformToBitPlanes(" + describe(uniform) + ")";
  checkComponents(what, componentLayout(uniform, rows, cols),
                  encoded.components);
  const std::vector<Component> &c = encoded.components;

  BitPlaneSpec planesSpec;
  planesSpec.numPlanes = uniform.bits;
  planesSpec.granularity = uniform.granularity;
  planesSpec.groupSize = uniform.groupSize;

  ScaleGroups groups(uniform.granularity, uniform.groupSize, rows, cols);
  const int64_t numGroups = groups.count(), words = (cols + 31) / 32;
  std::vector<uint32_t> codes =
      unpackBits(c[0].bytes.data(), rows, cols, uniform.bits);
  std::vector<float> scales = detail::floatValues(c[1]);
  std::vector<int> zeros =
      uniform.symmetric ? std::vector<int>(numGroups, 1 << (uniform.bits - 1))
                        : uniformZeros(what, uniform, c[2].bytes);

  // Plane p holds bit p of the code u, so sum_p 2^p * bit_p = u.
  std::vector<uint32_t> planes(uniform.bits * rows * words, 0);
  for (int p = 0; p < uniform.bits; ++p)
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t k = 0; k < cols; ++k)
        if ((codes[n * cols + k] >> p) & 1)
          planes[(p * rows + n) * words + k / 32] |= 1u << (k % 32);
  // scale * 2^p and -(scale * zero): value = scale * u - scale * zero.
  std::vector<float> planeScales(uniform.bits * numGroups);
  std::vector<float> offsets(numGroups);
  for (int64_t g = 0; g < numGroups; ++g) {
    for (int p = 0; p < uniform.bits; ++p)
      planeScales[p * numGroups + g] = scales[g] * static_cast<float>(1 << p);
    offsets[g] = -(scales[g] * static_cast<float>(zeros[g]));
  }

  std::vector<ComponentLayout> layouts =
      componentLayout(planesSpec, rows, cols);
  EncodedMatrix out;
  out.rows = rows;
  out.cols = cols;
  out.components.push_back(
      detail::makeComponent(layouts[0], detail::u32Bytes(planes)));
  out.components.push_back(
      detail::makeComponent(layouts[1], detail::f32Bytes(planeScales)));
  out.components.push_back(
      detail::makeComponent(layouts[2], detail::f32Bytes(offsets)));
  if (planesSpecOut)
    *planesSpecOut = planesSpec;
  return out;
}

} // namespace qnt::numerics
