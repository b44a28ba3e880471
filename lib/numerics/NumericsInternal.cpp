//===- NumericsInternal.cpp - Helpers shared by lib/numerics --------------===//
//
// Scale-group indexing, little-endian payload (de)serialization, format
// checks and the salient channel split.
//
//===----------------------------------------------------------------------===//

#include "NumericsInternal.h"

#include <Eigen/Core>

#include <cstring>
#include <stdexcept>

namespace qnt::numerics::detail {

void fail(const std::string &msg) { throw std::invalid_argument(msg); }

std::string granularityName(Granularity g, int64_t groupSize) {
  switch (g) {
  case Granularity::PerTensor:
    return "per-tensor";
  case Granularity::PerChannel:
    return "per-channel";
  case Granularity::PerGroup:
    return "g" + std::to_string(groupSize);
  }
  return "<invalid granularity>";
}

std::string verifyGranularity(Granularity g, int64_t groupSize, int64_t cols) {
  switch (g) {
  case Granularity::PerTensor:
  case Granularity::PerChannel:
    if (groupSize != 0)
      return "group size " + std::to_string(groupSize) + " given for " +
             granularityName(g, 0) + " granularity (must be 0)";
    return "";
  case Granularity::PerGroup:
    if (groupSize <= 0)
      return "per-group granularity needs a positive group size, got " +
             std::to_string(groupSize);
    // A group size that does not divide K leaves a shorter last group in
    // every row ("ragged"), as the reference GPTQ and RTN code does.
    return "";
  }
  return "invalid granularity " + std::to_string(static_cast<int>(g));
}

std::string verifyMinifloatFormat(int e, int m, MinifloatSpecial special) {
  std::string name = "e" + std::to_string(e) + "m" + std::to_string(m);
  if (e < 1 || e > 5)
    return "minifloat exponent bits must be in 1..5, got " + std::to_string(e);
  if (m < 0 || m > 5)
    return "minifloat mantissa bits must be in 0..5, got " + std::to_string(m);
  int bits = 1 + e + m;
  if (bits > 8)
    return "minifloat " + name + " takes " + std::to_string(bits) +
           " bits, more than 8";
  if (bits < 3)
    return "minifloat " + name + " takes " + std::to_string(bits) +
           " bits, fewer than 3";
  switch (special) {
  case MinifloatSpecial::Finite:
    return "";
  case MinifloatSpecial::Ocp:
    if ((e == 4 && m == 3) || (e == 5 && m == 2))
      return "";
    return "OCP special values are defined only for e4m3 and e5m2, not " + name;
  }
  return "invalid minifloat special-value mode " +
         std::to_string(static_cast<int>(special));
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

ScaleGroups::ScaleGroups(Granularity g, int64_t groupSize, int64_t rows,
                         int64_t cols)
    : granularity_(g), groupSize_(groupSize) {
  switch (g) {
  case Granularity::PerTensor:
    break;
  case Granularity::PerChannel:
    groupRows_ = rows;
    break;
  case Granularity::PerGroup:
    groupRows_ = rows;
    groupCols_ = (cols + groupSize - 1) / groupSize;
    break;
  }
}

std::vector<uint8_t> f32Bytes(const std::vector<float> &values) {
  std::vector<uint32_t> bits(values.size());
  for (size_t i = 0; i < values.size(); ++i)
    std::memcpy(&bits[i], &values[i], 4);
  return u32Bytes(bits);
}

std::vector<float> bytesF32(const std::vector<uint8_t> &bytes) {
  std::vector<uint32_t> bits = bytesU32(bytes);
  std::vector<float> values(bits.size());
  for (size_t i = 0; i < bits.size(); ++i)
    std::memcpy(&values[i], &bits[i], 4);
  return values;
}

std::vector<uint8_t> scaleBytes(const std::vector<float> &values,
                                ScaleStorage storage) {
  if (storage == ScaleStorage::F32)
    return f32Bytes(values);
  std::vector<uint8_t> bytes(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t bits = Eigen::numext::bit_cast<uint16_t>(Eigen::half(values[i]));
    bytes[2 * i] = static_cast<uint8_t>(bits);
    bytes[2 * i + 1] = static_cast<uint8_t>(bits >> 8);
  }
  return bytes;
}

std::vector<float> floatValues(const Component &component) {
  if (component.layout.dtype == DType::F32)
    return bytesF32(component.bytes);
  if (component.layout.dtype != DType::F16)
    fail("component '" + component.layout.name + "' is " +
         dtypeName(component.layout.dtype) + ", not a float type");
  const std::vector<uint8_t> &bytes = component.bytes;
  std::vector<float> values(bytes.size() / 2);
  for (size_t i = 0; i < values.size(); ++i) {
    uint16_t bits = uint16_t(bytes[2 * i] | (bytes[2 * i + 1] << 8));
    values[i] = float(Eigen::numext::bit_cast<Eigen::half>(bits));
  }
  return values;
}

std::vector<uint8_t> u32Bytes(const std::vector<uint32_t> &values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  for (size_t i = 0; i < values.size(); ++i)
    for (int b = 0; b < 4; ++b)
      bytes[4 * i + b] = static_cast<uint8_t>(values[i] >> (8 * b));
  return bytes;
}

std::vector<uint32_t> bytesU32(const std::vector<uint8_t> &bytes) {
  std::vector<uint32_t> values(bytes.size() / 4);
  for (size_t i = 0; i < values.size(); ++i)
    for (int b = 0; b < 4; ++b)
      values[i] |= static_cast<uint32_t>(bytes[4 * i + b]) << (8 * b);
  return values;
}

std::vector<uint8_t> u16Bytes(const std::vector<uint32_t> &values) {
  std::vector<uint8_t> bytes(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    bytes[2 * i] = static_cast<uint8_t>(values[i]);
    bytes[2 * i + 1] = static_cast<uint8_t>(values[i] >> 8);
  }
  return bytes;
}

std::vector<uint32_t> bytesU16(const std::vector<uint8_t> &bytes) {
  std::vector<uint32_t> values(bytes.size() / 2);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = bytes[2 * i] | (static_cast<uint32_t>(bytes[2 * i + 1]) << 8);
  return values;
}

Component makeComponent(ComponentLayout layout, std::vector<uint8_t> bytes) {
  if (static_cast<int64_t>(bytes.size()) != layout.numBytes())
    fail("internal error: component '" + layout.name + "' has " +
         std::to_string(bytes.size()) + " bytes, expected " +
         std::to_string(layout.numBytes()));
  return Component{std::move(layout), std::move(bytes)};
}

void appendPrefixed(std::vector<Component> &out,
                    const std::vector<Component> &components,
                    const std::string &prefix) {
  for (const Component &c : components) {
    out.push_back(c);
    out.back().layout.name = prefix + c.layout.name;
  }
}

ChannelSplit splitChannels(const int32_t *channelMap, int64_t cols,
                           int64_t numSalient) {
  ChannelSplit split;
  split.salient.assign(numSalient, -1);
  split.rest.assign(cols - numSalient, -1);
  for (int64_t k = 0; k < cols; ++k) {
    int64_t entry = channelMap[k];
    bool isSalient = entry >= 0;
    int64_t column = isSalient ? entry : -1 - entry;
    std::vector<int64_t> &part = isSalient ? split.salient : split.rest;
    const char *partName = isSalient ? "salient" : "rest";
    if (column >= static_cast<int64_t>(part.size()))
      fail("channel_map[" + std::to_string(k) + "] = " + std::to_string(entry) +
           " names " + partName + " column " + std::to_string(column) +
           ", but there are only " + std::to_string(part.size()) + " " +
           partName + " columns");
    if (part[column] >= 0)
      fail("channel_map maps inputs " + std::to_string(part[column]) + " and " +
           std::to_string(k) + " to the same " + partName + " column " +
           std::to_string(column));
    part[column] = k;
  }
  // K entries, each a distinct slot among S + (K - S): every slot is taken.
  return split;
}

std::vector<float> gatherColumns(const float *w, int64_t rows, int64_t cols,
                                 const std::vector<int64_t> &channels) {
  int64_t subCols = static_cast<int64_t>(channels.size());
  std::vector<float> out(rows * subCols);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t c = 0; c < subCols; ++c)
      out[n * subCols + c] = w[n * cols + channels[c]];
  return out;
}

void requireValidSpec(const EncodingSpec &spec, int64_t rows, int64_t cols) {
  std::string error = verifySpec(spec, rows, cols);
  if (!error.empty())
    fail("invalid encoding for a " + std::to_string(rows) + "x" +
         std::to_string(cols) + " matrix: " + error);
}

} // namespace qnt::numerics::detail
